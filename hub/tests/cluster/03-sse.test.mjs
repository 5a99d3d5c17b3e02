// An SSE session held by n1 whose later commands (the SDK's /emulation POSTs) all go to
// n2: n2 hands them to n1 through RabbitMQ.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import EventSource from 'eventsource';

import { startCluster, Clients, subscribe, apiResult, nextEvent, poll, sleep, withTimeout } from './helpers.mjs';

let cluster;
const clients = new Clients();

before(async () => {
  cluster = await startCluster();
});

after(async () => {
  clients.closeAll();
  if (cluster) await cluster.close();
});

test('SSE session on n1 with its /emulation POSTs sent to n2', { timeout: 60000 }, async () => {
  const { n1, n2, n3 } = cluster.byName;
  const channel = 'news';

  // Every HTTP request the SDK makes besides the event stream, with its answer.
  const requests = [];
  // The SDK resolves a command when its reply arrives on the stream, which can
  // be before n2 has answered the POST that carried it: the statuses are
  // checked once every recorded request has settled.
  const settled = [];
  const recordingFetch = (url, options) => {
    const entry = { url: String(url), method: options?.method, body: options?.body, status: null };
    requests.push(entry);
    const done = (async () => {
      try {
        const res = await fetch(url, options);
        entry.status = res.status;
        return res;
      } catch (e) {
        entry.status = `failed: ${e.message}`;
        throw e;
      }
    })();
    settled.push(done.catch(() => {}));
    return done;
  };

  const sse = clients.create([{ transport: 'sse', endpoint: n1.sseUrl }], {
    eventsource: EventSource,
    fetch: recordingFetch,
    emulationEndpoint: n2.emulationUrl,
  });
  const connected = nextEvent(sse, 'connected', `the SSE client to connect to ${n1.sseUrl}`);
  sse.connect();
  const ctx = await connected;
  assert.equal(ctx.transport, 'sse', `connected over SSE: ${JSON.stringify(ctx)}`);

  // Subscribe: the subscribe command is an /emulation POST to n2.
  const { sub } = await subscribe(sse, channel, {}, 'SSE client');
  assert.ok(
    requests.some((r) => r.body && JSON.parse(r.body).data.includes('"subscribe"')),
    `the subscribe command went out as an /emulation POST: ${JSON.stringify(requests)}`,
  );

  // The session is n1's: presence seen from n3 shows it.
  const presence = await apiResult(n3, 'presence', { channel });
  assert.ok(ctx.client in presence.presence, `presence (n3) lists the SSE client ${ctx.client}: ${JSON.stringify(presence)}`);

  // It receives a publication made on n3.
  await apiResult(n3, 'publish', { channel, data: { text: 'to the SSE client' } });
  const got = await sub.pubs.waitFor(1, 'a publication on the SSE stream');
  assert.deepEqual(got[0].data, { text: 'to the SSE client' });

  // It publishes (another /emulation POST to n2); a WebSocket client on n3 receives it.
  const { client: watcher } = await clients.connected(n3, {}, 'watcher on n3');
  const { sub: watch } = await subscribe(watcher, channel, {}, 'watcher on n3');
  const published = await sub.publish({ text: 'from the SSE client' });
  assert.ok(published !== undefined, 'publish answered');
  const seen = await watch.pubs.waitFor(1, 'the SSE client publication at the watcher on n3');
  assert.deepEqual(seen[0].data, { text: 'from the SSE client' });
  const own = await sub.pubs.waitFor(2, 'the SSE client to receive its own publication');
  assert.deepEqual(own[1].data, { text: 'from the SSE client' });

  // Presence and history commands through n2 too.
  const p = await sub.presence();
  assert.ok(ctx.client in p.clients, 'presence command through /emulation on n2 answers');
  const h = await sub.history({ limit: 10 });
  assert.deepEqual(
    h.publications.map((x) => x.data),
    [{ text: 'to the SSE client' }, { text: 'from the SSE client' }],
    'history command through /emulation on n2 answers',
  );

  await withTimeout(Promise.all(settled), 'every /emulation POST to be answered');
  const emulation = requests.filter((r) => r.method === 'POST');
  assert.ok(emulation.length >= 4, `at least 4 commands were POSTed: ${JSON.stringify(requests)}`);
  for (const r of requests) {
    assert.equal(r.url, n2.emulationUrl, `every SDK request went to n2's /emulation: ${JSON.stringify(r)}`);
    assert.equal(r.status, 204, `every /emulation POST was taken (204): ${JSON.stringify(r)}`);
  }

  // Unsubscribing through n2 makes n1 drop the subscription.
  sub.unsubscribe();
  await poll(
    async () => !(ctx.client in (await apiResult(n3, 'presence', { channel })).presence),
    'the SSE client to leave presence after its unsubscribe through n2',
  );
  await sleep(50);
});

test('/emulation on n2 for a session n1 does not hold answers 404', { timeout: 30000 }, async () => {
  const { n1, n2 } = cluster.byName;
  let t = Date.now();
  const res = await fetch(n2.emulationUrl, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ node: 'n1', session: 'no-such-session', data: '{"id":1,"ping":{}}' }),
  });
  assert.equal(res.status, 404, `unknown session on a known node: ${res.status} ${await res.text()}`);
  console.log(`# /emulation on n2, unknown session of n1: 404 in ${Date.now() - t} ms`);
  t = Date.now();
  const res2 = await fetch(n2.emulationUrl, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ node: 'no-such-node', session: 'x', data: '{"id":1,"ping":{}}' }),
  });
  assert.equal(res2.status, 404, `unknown node: ${res2.status} ${await res2.text()}`);
  console.log(`# /emulation on n2, unknown node: 404 in ${Date.now() - t} ms`);
  assert.ok(n1.running, 'n1 still runs');
});
