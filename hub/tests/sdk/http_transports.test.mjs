// The HTTP transports for networks that block WebSocket, against the real hub binary:
// - the `centrifuge` SDK over `sse` (the `eventsource` package) and `http_stream` (Node's
//   fetch and ReadableStream; JSON and Protobuf): connect, subscribe, server API
//   publications, client publish seen by a WebSocket client, presence, and recovery after
//   the stream is cut underneath the SDK;
// - fallback from a WebSocket endpoint that refuses to an HTTP transport;
// - `/connection/uni_sse` with nothing but a plain EventSource: events, ids, `retry:`,
//   resuming from `Last-Event-ID` (by hand and by the EventSource's own reconnect), tokens;
// - `/emulation` answers (204, 404, 400) and bounded POST bodies;
// - CORS (`allowed_origins`) on the HTTP endpoints and the WebSocket handshake;
// - clients gone mid-stream: the hub cleans their sessions up.

import { describe, it, before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import WebSocket from 'ws';

import {
  PROTOCOLS,
  Clients,
  HttpNetwork,
  api,
  nextEvent,
  publish,
  rawStream,
  record,
  startHub,
  subscribe,
  uniqueChannel,
  withTimeout,
} from './helpers.mjs';

const TEST = { timeout: 45000 };
const [JSON_P, PROTOBUF_P] = PROTOCOLS;

/** The SDK configurations under test: a transport and a wire format. */
const VARIANTS = [
  { name: 'sse', transport: 'sse', P: JSON_P },
  { name: 'http_stream', transport: 'http_stream', P: JSON_P },
  { name: 'http_stream over protobuf', transport: 'http_stream', P: PROTOBUF_P, protocol: 'protobuf' },
];

/** An SDK client over one HTTP transport of `hub`, through `network`. */
function httpClient(hub, network, variant, options = {}) {
  return new variant.P.Centrifuge([{ transport: variant.transport, endpoint: `${hub.url}/connection/${variant.transport}` }], {
    emulationEndpoint: `${hub.url}/emulation`,
    eventsource: network.EventSource,
    fetch: network.fetch,
    readableStream: ReadableStream,
    minReconnectDelay: 100,
    maxReconnectDelay: 500,
    ...(variant.protocol ? { protocol: variant.protocol } : {}),
    ...options,
  });
}

/** Connects `client`, resolving with the connected context; the error names `label`. */
async function connect(client, label) {
  const errors = record(client, 'error');
  const connected = nextEvent(client, 'connected', `${label} to connect`, { ms: 10000 });
  client.connect();
  try {
    return await connected;
  } catch (e) {
    e.message += `; client errors: ${JSON.stringify(errors.items)}`;
    throw e;
  }
}

/** Retries `fn` until it stops throwing, for at most `ms`; then rethrows naming `what`. */
async function eventually(fn, what, ms = 5000) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (Date.now() > deadline) {
        e.message = `${what}: still failing after ${ms} ms: ${e.message}`;
        throw e;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** `/api/info` of a one-node hub: its only node. */
async function nodeInfo(hub) {
  const info = await api(hub.apiUrl, 'info', {});
  assert.equal(info.nodes?.length, 1, `info of a one-node hub: ${JSON.stringify(info)}`);
  return info.nodes[0];
}

/** An HS256 JWT with `claims`, signed with `secret`. */
function jwt(claims, secret) {
  const b64 = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');
  const unsigned = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${unsigned}.${createHmac('sha256', secret).update(unsigned).digest('base64url')}`;
}

/** A TCP port on 127.0.0.1 where nothing listens (connections are refused). */
async function closedPort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A request with a deadline; resolves with { status, headers, text, json }. */
async function request(url, init = {}, what = `${init.method ?? 'GET'} ${url}`) {
  const res = await withTimeout(fetch(url, init), `the response to ${what}`);
  const text = await withTimeout(res.text(), `the body of the response to ${what}`);
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** Asserts `r` is an error answer `{"error":{"code","message"}}` with HTTP `status`. */
function assertJsonError(r, status, what) {
  const shown = `${what} -> HTTP ${r.status} ${r.text}`;
  assert.equal(r.status, status, shown);
  assert.match(r.headers.get('content-type') ?? '', /application\/json/, `${shown}: content-type`);
  assert.equal(typeof r.json?.error?.code, 'number', `${shown}: a JSON error with a numeric code`);
  assert.equal(typeof r.json?.error?.message, 'string', `${shown}: a JSON error with a message`);
}

/**
 * Parses SSE text as a browser would: the events with data, each with the last event id
 * in force when it was dispatched (ids carry over to later events without one).
 */
function parseSse(text) {
  const events = [];
  let lastId = '';
  // Only complete events (ended by a blank line).
  const complete = text.slice(0, text.lastIndexOf('\n\n') + 2);
  for (const block of complete.split('\n\n')) {
    let data = null;
    for (const line of block.split('\n')) {
      if (line.startsWith('id:')) lastId = line.slice(3).replace(/^ /, '');
      else if (line.startsWith('data:')) data = (data === null ? '' : `${data}\n`) + line.slice(5).replace(/^ /, '');
    }
    if (data !== null) events.push({ id: lastId, data });
  }
  return events;
}

/**
 * Records the messages of a plain EventSource on `/connection/uni_sse`, each parsed:
 * { kind, channel, body, id, raw } where kind is the event's key (connect, subscribe,
 * pub, join, leave, unsubscribe, disconnect, error) and id the EventSource's lastEventId.
 */
function uniEvents(es) {
  const items = [];
  const waiters = new Set();
  es.on('message', (e) => {
    const msg = JSON.parse(e.data);
    const kind = ['connect', 'subscribe', 'pub', 'join', 'leave', 'unsubscribe', 'disconnect', 'error'].find((k) => k in msg) ?? 'unknown';
    items.push({ kind, channel: msg.channel, body: msg[kind], id: e.lastEventId, raw: e.data });
    for (const w of [...waiters]) {
      const matching = items.filter(w.filter);
      if (matching.length >= w.n) {
        waiters.delete(w);
        w.resolve(matching);
      }
    }
  });
  return {
    items,
    of: (filter) => items.filter(filter),
    waitFor(filter, n, what, ms = 5000) {
      const matching = items.filter(filter);
      if (matching.length >= n) return Promise.resolve(matching);
      const p = new Promise((resolve) => waiters.add({ filter, n, resolve }));
      return withTimeout(p, `${what} (got ${items.filter(filter).length} of ${n})`, ms).catch((e) => {
        e.message += `; events so far: ${JSON.stringify(items.map((i) => (i.id ? `id ${i.id} ${i.raw}` : i.raw)))}`;
        throw e;
      });
    },
  };
}

describe('the centrifuge SDK over the HTTP transports (hub --dev)', () => {
  let hub;
  before(async () => {
    hub = await startHub(['--dev'], { name: 'http-transports' });
  });
  after(async () => {
    if (hub) await hub.stop();
  });

  for (const variant of VARIANTS) {
    describe(`over ${variant.name}`, () => {
      const P = variant.P;
      let network;
      let created;
      let wsClients;
      beforeEach(async () => {
        network = await new HttpNetwork().start();
        created = [];
        wsClients = new Clients(P, hub.wsUrl);
      });
      afterEach(async () => {
        for (const c of created) {
          c.disconnect();
          c.removeAllListeners();
        }
        wsClients.disconnectAll();
        await network.close();
      });

      const newClient = (options) => {
        const c = httpClient(hub, network, variant, options);
        created.push(c);
        return c;
      };

      it('connects, subscribes, receives the server API publications with exact data', TEST, async () => {
        const client = newClient();
        const ctx = await connect(client, `a ${variant.name} client`);
        assert.equal(ctx.transport, variant.transport, 'the connected context names the transport');
        assert.equal(typeof ctx.client, 'string');
        assert.ok(ctx.client.length > 0, 'a non-empty client id');
        assert.equal(client.state, 'connected');

        const channel = uniqueChannel(`http-news-${variant.transport}-${P.name}`);
        const { sub, ctx: subCtx } = await subscribe(client, channel);
        assert.equal(subCtx.recoverable, true, 'dev forces recovery');

        const sent = [
          { text: 'hello', n: 1 },
          { nested: { list: [1, 2.5, 'three', null, true], empty: {} }, unicode: 'héllo ✓ 日本', nl: 'a\nb' },
          ['an', 'array', { at: 'top level' }],
        ];
        const results = [];
        for (const data of sent) results.push(await publish(hub.apiUrl, channel, data));
        const pubs = await sub.pubs.waitFor(sent.length, `${sent.length} publications on "${channel}"`);
        assert.deepEqual(
          pubs.map((p) => ({ channel: p.channel, offset: p.offset, data: P.decode(p.data) })),
          sent.map((data, i) => ({ channel, offset: results[i].offset, data })),
        );
        assert.deepEqual(results.map((r) => r.offset), [1, 2, 3]);
      });

      it('publishes from the client to a WebSocket client; presence lists both', TEST, async () => {
        const channel = uniqueChannel(`http-room-${variant.transport}-${P.name}`, 'chat:');
        const client = newClient();
        const { client: httpId } = await connect(client, `the ${variant.name} client`);
        const ws = await wsClients.connected({}, 'the WebSocket client');

        const { sub } = await subscribe(client, channel, {}, `${variant.name} subscription`);
        const { sub: wsSub } = await subscribe(ws.client, channel, {}, 'WebSocket subscription');

        const data = { text: `from ${variant.name}`, list: [1, 2, 3] };
        await withTimeout(sub.publish(P.encode(data)), `the reply to the ${variant.name} client's publish on "${channel}"`);
        const [seen] = await wsSub.pubs.waitFor(1, `the ${variant.name} client's publication at the WebSocket client`);
        assert.deepEqual(P.decode(seen.data), data);
        assert.equal(seen.info?.client, httpId, 'the publication carries the publisher client id');
        const [own] = await sub.pubs.waitFor(1, `the ${variant.name} client's own publication`);
        assert.deepEqual(P.decode(own.data), data);

        // And the other way round.
        const back = { text: 'from websocket' };
        await withTimeout(wsSub.publish(P.encode(back)), 'the reply to the WebSocket client publish');
        const pubs = await sub.pubs.waitFor(2, `the WebSocket client's publication at the ${variant.name} client`);
        assert.deepEqual(P.decode(pubs[1].data), back);
        assert.equal(pubs[1].info?.client, ws.id);

        const presence = await withTimeout(sub.presence(), `presence of "${channel}" asked over ${variant.name}`);
        assert.deepEqual(Object.keys(presence.clients).sort(), [httpId, ws.id].sort(), `presence ${JSON.stringify(presence)}`);
        const wsPresence = await withTimeout(wsSub.presence(), `presence of "${channel}" asked over WebSocket`);
        assert.deepEqual(Object.keys(wsPresence.clients).sort(), [httpId, ws.id].sort());
        const stats = await withTimeout(sub.presenceStats(), `presence stats of "${channel}" over ${variant.name}`);
        assert.deepEqual(stats, { numClients: 2, numUsers: 1 });
      });

      it('recovers exactly the publications missed while the stream was cut', TEST, async () => {
        const channel = uniqueChannel(`http-recovery-${variant.transport}-${P.name}`);
        const client = newClient();
        const first = await connect(client, `the recovering ${variant.name} client`);
        const { sub, ctx: subCtx } = await subscribe(client, channel, {}, 'recovering subscription');
        const epoch = subCtx.streamPosition?.epoch;
        assert.ok(epoch, `a stream position with an epoch: ${JSON.stringify(subCtx)}`);

        const earlier = [{ seq: 1 }, { seq: 2 }];
        for (const data of earlier) await publish(hub.apiUrl, channel, data);
        await sub.pubs.waitFor(2, 'the two publications made before the cut');

        const streamsBefore = variant.transport === 'sse' ? network.eventSources.length : network.streamRequests;
        const subscribing = nextEvent(sub, 'subscribing', 'the subscription to go back to subscribing after the stream was cut');
        // The stream underneath the SDK goes away (its socket destroyed, or its fetch
        // aborted) and new attempts fail until restore().
        network.cut();
        await subscribing;

        const missed = [3, 4, 5].map((seq) => ({ seq, missed: true, text: `missed ${seq}` }));
        const results = [];
        for (const data of missed) results.push(await publish(hub.apiUrl, channel, data));
        assert.deepEqual(results.map((r) => r.offset), [3, 4, 5]);
        assert.ok(results.every((r) => r.epoch === epoch), 'the epoch did not change during the cut');

        const reconnected = nextEvent(client, 'connected', 'the client to reconnect after the cut', { ms: 15000 });
        const resubscribed = nextEvent(sub, 'subscribed', 'the subscription to be recovered after the reconnect', { ms: 15000 });
        network.restore();
        const again = await reconnected;
        assert.equal(again.transport, variant.transport, 'reconnected over the same transport');
        assert.notEqual(again.client, first.client, 'a new connection, with a new client id');
        const ctx = await resubscribed;
        assert.equal(ctx.wasRecovering, true, 'the SDK asked for recovery');
        assert.equal(ctx.recovered, true, `the hub recovered the missed publications: ${JSON.stringify(ctx)}`);
        assert.equal(ctx.streamPosition?.epoch, epoch);
        const streamsAfter = variant.transport === 'sse' ? network.eventSources.length : network.streamRequests;
        assert.ok(streamsAfter > streamsBefore, 'the SDK opened a new stream');

        await sub.pubs.waitFor(5, 'the three missed publications after recovery', 10000);
        // A live one after them: anything duplicated would come before it.
        await publish(hub.apiUrl, channel, { seq: 6 });
        const pubs = await sub.pubs.waitFor(6, 'a live publication after recovery');
        assert.deepEqual(
          pubs.map((p) => ({ offset: p.offset, data: P.decode(p.data) })),
          [...earlier, ...missed, { seq: 6 }].map((data, i) => ({ offset: i + 1, data })),
          'every publication exactly once, in order',
        );
        assert.equal(pubs.length, 6);
      });
    });
  }

  describe('fallback when WebSocket is refused', () => {
    let network;
    let created;
    beforeEach(async () => {
      network = await new HttpNetwork().start();
      created = [];
    });
    afterEach(async () => {
      for (const c of created) {
        c.disconnect();
        c.removeAllListeners();
      }
      await network.close();
    });

    for (const fallback of ['sse', 'http_stream']) {
      it(`[websocket → a refused endpoint, ${fallback}] connects over ${fallback} and works`, TEST, async () => {
        const port = await closedPort();
        const client = new JSON_P.Centrifuge(
          [
            { transport: 'websocket', endpoint: `ws://127.0.0.1:${port}/connection/websocket` },
            { transport: fallback, endpoint: `${hub.url}/connection/${fallback}` },
          ],
          {
            websocket: WebSocket,
            emulationEndpoint: `${hub.url}/emulation`,
            eventsource: network.EventSource,
            fetch: network.fetch,
            readableStream: ReadableStream,
            minReconnectDelay: 100,
            maxReconnectDelay: 500,
          },
        );
        created.push(client);
        const errors = record(client, 'error');
        const ctx = await connect(client, `the client falling back to ${fallback}`);
        assert.equal(ctx.transport, fallback, `connected over ${fallback}`);
        assert.ok(
          errors.items.some((e) => e.type === 'transport' && e.transport === 'websocket'),
          `the websocket attempt failed first: errors ${JSON.stringify(errors.items)}`,
        );

        const channel = uniqueChannel(`fallback-${fallback}`, 'chat:');
        const { sub } = await subscribe(client, channel);
        await publish(hub.apiUrl, channel, { via: 'api' });
        await withTimeout(sub.publish({ via: 'client' }), 'the reply to the client publish');
        const pubs = await sub.pubs.waitFor(2, `two publications on "${channel}"`);
        assert.deepEqual(pubs.map((p) => p.data), [{ via: 'api' }, { via: 'client' }]);
        assert.deepEqual(pubs.map((p) => p.offset), [1, 2]);
      });
    }
  });

  describe('uni_sse with a plain EventSource', () => {
    let network;
    beforeEach(async () => {
      network = await new HttpNetwork().start();
    });
    afterEach(async () => {
      await network.close();
    });

    it('gets connect, subscribe and publication events with ids; resumes from Last-Event-ID', TEST, async () => {
      const channel = uniqueChannel('uni-news');
      const url = `${hub.url}/connection/uni_sse?channel=${encodeURIComponent(channel)}`;
      const es = new network.EventSource(url);
      const events = uniEvents(es);
      const ofChannel = (kind) => (e) => e.kind === kind && e.channel === channel;

      const [subscribed] = await events.waitFor(ofChannel('subscribe'), 1, `the subscribe event of "${channel}"`);
      const firstEvent = events.items[0];
      assert.equal(firstEvent.kind, 'connect', `the first event is connect: ${firstEvent.raw}`);
      assert.equal(typeof firstEvent.body.client, 'string');
      assert.ok(firstEvent.body.client.length > 0, 'connect carries a client id');
      assert.equal(subscribed.body.recoverable, true, `dev forces recovery: ${subscribed.raw}`);
      const epoch = subscribed.body.epoch;
      assert.equal(typeof epoch, 'string');
      assert.ok(epoch.length > 0, `the subscribe event carries an epoch: ${subscribed.raw}`);
      assert.ok(!subscribed.body.recovered, 'a fresh stream did not recover anything');
      assert.deepEqual(JSON.parse(subscribed.id), [[channel, epoch, 0]], `the id of the subscribe event: ${subscribed.id}`);

      const sent = [{ n: 1, text: 'first' }, { n: 2, unicode: 'héllo ✓ 日本', nl: 'line\nbreak' }, ['array', 3]];
      for (const data of sent) await publish(hub.apiUrl, channel, data);
      const pubs = await events.waitFor(ofChannel('pub'), 3, `three publication events on "${channel}"`);
      assert.deepEqual(
        pubs.map((p) => ({ data: p.body.data, offset: p.body.offset, id: JSON.parse(p.id) })),
        sent.map((data, i) => ({ data, offset: i + 1, id: [[channel, epoch, i + 1]] })),
      );

      // The stream goes away; four publications are made before a new EventSource comes
      // back with the last id it saw.
      const lastId = pubs[2].id;
      es.close();
      const missed = [4, 5, 6, 7].map((seq) => ({ seq, missed: true }));
      for (const data of missed) await publish(hub.apiUrl, channel, data);

      const es2 = new network.EventSource(url, { headers: { 'Last-Event-ID': lastId } });
      const events2 = uniEvents(es2);
      const [resumed] = await events2.waitFor(ofChannel('subscribe'), 1, `the subscribe event of "${channel}" after Last-Event-ID`);
      assert.equal(events2.items[0].kind, 'connect', `the first event is connect: ${events2.items[0].raw}`);
      assert.equal(resumed.body.was_recovering, true, `the subscribe event after Last-Event-ID: ${resumed.raw}`);
      assert.equal(resumed.body.recovered, true, `the subscribe event after Last-Event-ID: ${resumed.raw}`);
      assert.equal(resumed.body.epoch, epoch);
      await events2.waitFor(ofChannel('pub'), 4, 'the four missed publications');
      await publish(hub.apiUrl, channel, { seq: 8, live: true });
      const pubs2 = await events2.waitFor(ofChannel('pub'), 5, 'a live publication after the missed ones');
      assert.deepEqual(
        pubs2.map((p) => ({ data: p.body.data, offset: p.body.offset, id: JSON.parse(p.id) })),
        [...missed, { seq: 8, live: true }].map((data, i) => ({ data, offset: i + 4, id: [[channel, epoch, i + 4]] })),
        'exactly the missed publications, in order, then the live one',
      );

      // Now the EventSource's own reconnect: the connection drops, four more are published
      // while it cannot reach the hub, then it reconnects by itself with Last-Event-ID.
      assert.equal(es2.reconnectInterval, 1000, 'the EventSource took `retry: 1000` from the stream');
      const dropped = nextEvent(es2, 'error', 'the EventSource to notice the dropped connection');
      network.cut();
      await dropped;
      const missedAgain = [9, 10, 11, 12].map((seq) => ({ seq, during: 'auto-reconnect' }));
      for (const data of missedAgain) await publish(hub.apiUrl, channel, data);
      network.restore();
      const [autoResumed] = await events2.waitFor(ofChannel('subscribe'), 2, 'the subscribe event after the automatic reconnect', 10000).then((s) => s.slice(1));
      assert.equal(autoResumed.body.was_recovering, true, `the subscribe event after the automatic reconnect: ${autoResumed.raw}`);
      assert.equal(autoResumed.body.recovered, true, `the subscribe event after the automatic reconnect: ${autoResumed.raw}`);
      await events2.waitFor(ofChannel('pub'), 9, 'the four publications missed during the automatic reconnect');
      await publish(hub.apiUrl, channel, { seq: 13, live: true });
      const all = await events2.waitFor(ofChannel('pub'), 10, 'a live publication after the automatic reconnect');
      assert.deepEqual(
        all.slice(5).map((p) => ({ data: p.body.data, offset: p.body.offset })),
        [...missedAgain, { seq: 13, live: true }].map((data, i) => ({ data, offset: i + 9 })),
        'exactly the publications missed during the automatic reconnect, in order, then the live one',
      );
      assert.equal(events2.of((e) => e.kind === 'connect').length, 2, 'two connections: the first and the automatic reconnect');
      es2.close();
    });

    it('names each ?channel= it refused with an unsubscribe event and streams the others', TEST, async () => {
      const ok = uniqueChannel('uni-ok');
      const url = `${hub.url}/connection/uni_sse?channel=nope%3Ax&channel=${encodeURIComponent(ok)}`;
      const es = new network.EventSource(url);
      const events = uniEvents(es);
      const [refused] = await events.waitFor((e) => e.kind === 'unsubscribe', 1, 'the unsubscribe event of the refused channel');
      assert.deepEqual(JSON.parse(refused.raw), { channel: 'nope:x', unsubscribe: { code: 2000, reason: 'unknown channel' } });
      const [sub] = await events.waitFor((e) => e.kind === 'subscribe', 1, 'the subscribe event of the valid channel');
      assert.equal(sub.channel, ok);
      await publish(hub.apiUrl, ok, { n: 1 });
      const [pub] = await events.waitFor((e) => e.kind === 'pub', 1, 'a publication on the valid channel');
      assert.deepEqual([pub.channel, pub.body.data], [ok, { n: 1 }]);
      // (--dev has join/leave on: the stream's own join is left out here.)
      assert.deepEqual(
        events.items.filter((e) => e.kind !== 'join').map((e) => e.kind),
        ['connect', 'unsubscribe', 'subscribe', 'pub'],
        'events in order, nothing else',
      );
      es.close();
    });

    it('resumes several channels from one Last-Event-ID', TEST, async () => {
      const a = uniqueChannel('uni-multi-a');
      const b = uniqueChannel('uni-multi-b');
      const url = `${hub.url}/connection/uni_sse?channel=${encodeURIComponent(a)}&channel=${encodeURIComponent(b)}`;
      const es = new network.EventSource(url);
      const events = uniEvents(es);
      const subs = await events.waitFor((e) => e.kind === 'subscribe', 2, 'the subscribe events of both channels');
      assert.deepEqual(subs.map((s) => s.channel).sort(), [a, b].sort());
      const epochs = Object.fromEntries(subs.map((s) => [s.channel, s.body.epoch]));
      await publish(hub.apiUrl, a, { a: 1 });
      await publish(hub.apiUrl, b, { b: 1 });
      await publish(hub.apiUrl, a, { a: 2 });
      const pubs = await events.waitFor((e) => e.kind === 'pub', 3, 'three publications on the two channels');
      const byChannel = (id) => Object.fromEntries(JSON.parse(id).map(([c, e, o]) => [c, [e, o]]));
      assert.deepEqual(byChannel(pubs[2].id), { [a]: [epochs[a], 2], [b]: [epochs[b], 1] }, `the id names every channel: ${pubs[2].id}`);
      es.close();

      await publish(hub.apiUrl, b, { b: 2 });
      await publish(hub.apiUrl, a, { a: 3 });
      const es2 = new network.EventSource(url, { headers: { 'Last-Event-ID': pubs[2].id } });
      const events2 = uniEvents(es2);
      const resumed = await events2.waitFor((e) => e.kind === 'subscribe', 2, 'both channels resumed');
      for (const s of resumed) assert.equal(s.body.recovered, true, `${s.channel} recovered: ${s.raw}`);
      const missed = await events2.waitFor((e) => e.kind === 'pub', 2, 'the two missed publications');
      assert.deepEqual(
        missed.map((p) => [p.channel, p.body.offset, p.body.data]).sort((x, y) => x[0].localeCompare(y[0])),
        [[a, 3, { a: 3 }], [b, 2, { b: 2 }]].sort((x, y) => x[0].localeCompare(y[0])),
      );
      await publish(hub.apiUrl, a, { a: 4, live: true });
      const all = await events2.waitFor((e) => e.kind === 'pub', 3, 'a live publication after the missed ones');
      assert.equal(all.length, 3, 'nothing duplicated');
      es2.close();
    });

    it('says recovered: false when Last-Event-ID names another epoch', TEST, async () => {
      const channel = uniqueChannel('uni-epoch');
      for (let n = 1; n <= 3; n++) await publish(hub.apiUrl, channel, { n });
      const url = `${hub.url}/connection/uni_sse?channel=${encodeURIComponent(channel)}`;
      const es = new network.EventSource(url, { headers: { 'Last-Event-ID': JSON.stringify([[channel, 'not-the-epoch', 1]]) } });
      const events = uniEvents(es);
      try {
        const [sub] = await events.waitFor((e) => e.kind === 'subscribe', 1, 'the subscribe event');
        assert.equal(sub.body.was_recovering, true, sub.raw);
        assert.ok(!sub.body.recovered, `a position of another epoch is not recovered: ${sub.raw}`);
        assert.notEqual(sub.body.epoch, 'not-the-epoch');
        assert.deepEqual(JSON.parse(sub.id), [[channel, sub.body.epoch, 3]], `the id moves to the stream's position: ${sub.id}`);
        await publish(hub.apiUrl, channel, { n: 4 });
        const pubs = await events.waitFor((e) => e.kind === 'pub', 1, 'a live publication');
        assert.deepEqual(pubs.map((p) => p.body.offset), [4], 'only the live publication, none of another epoch');
      } finally {
        es.close();
      }
    });

    it('resumes from a Last-Event-ID position with an empty epoch as the current epoch', TEST, async () => {
      // Issue 16, fault 3: an empty epoch is the stream's current one (Centrifugo), so
      // [[channel, "", 1]] resumes after offset 1 of the current stream.
      const channel = uniqueChannel('uni-emptyepoch');
      let epoch;
      for (let n = 1; n <= 3; n++) ({ epoch } = await publish(hub.apiUrl, channel, { n }));
      const url = `${hub.url}/connection/uni_sse?channel=${encodeURIComponent(channel)}`;
      const es = new network.EventSource(url, { headers: { 'Last-Event-ID': JSON.stringify([[channel, '', 1]]) } });
      const events = uniEvents(es);
      try {
        const [sub] = await events.waitFor((e) => e.kind === 'subscribe', 1, 'the subscribe event');
        assert.equal(sub.body.was_recovering, true, sub.raw);
        assert.equal(sub.body.recovered, true, `an empty epoch is the current one: ${sub.raw}`);
        assert.equal(sub.body.epoch, epoch, sub.raw);
        assert.deepEqual(JSON.parse(sub.id), [[channel, epoch, 1]], `the id stays at the resumed offset, with the real epoch: ${sub.id}`);
        const pubs = await events.waitFor((e) => e.kind === 'pub', 2, 'the two missed publications');
        assert.deepEqual(pubs.map((p) => [p.body.offset, p.body.data]), [[2, { n: 2 }], [3, { n: 3 }]]);
        assert.deepEqual(JSON.parse(pubs[1].id), [[channel, epoch, 3]]);
      } finally {
        es.close();
      }
    });

    it('loses nothing when a resumed stream drops right after its subscribe event', TEST, async () => {
      // A browser keeps the id of the last event it dispatched. If the connection drops
      // after the subscribe event of a resumed stream and before the publications that
      // follow it, the next reconnect resumes from the subscribe event's id: that id must
      // not be past the publications not yet delivered.
      const channel = uniqueChannel('uni-midrecovery');
      const url = `${hub.url}/connection/uni_sse?channel=${encodeURIComponent(channel)}`;
      const first = await publish(hub.apiUrl, channel, { n: 1 });
      for (let n = 2; n <= 5; n++) await publish(hub.apiUrl, channel, { n });
      const resumeFrom = JSON.stringify([[channel, first.epoch, 1]]);

      const stream = await rawStream(url, { headers: { 'Last-Event-ID': resumeFrom, Accept: 'text/event-stream' } });
      let events;
      try {
        await stream.waitFor((t) => parseSse(t).filter((e) => JSON.parse(e.data).pub).length >= 4, 'the subscribe event and the four missed publications');
        events = parseSse(stream.text());
      } finally {
        stream.close();
      }
      const subIndex = events.findIndex((e) => JSON.parse(e.data).subscribe);
      assert.ok(subIndex >= 0, `a subscribe event: ${JSON.stringify(events)}`);
      const sub = events[subIndex];
      assert.equal(JSON.parse(sub.data).subscribe.recovered, true, sub.data);
      const pubsAfter = events.slice(subIndex + 1).filter((e) => JSON.parse(e.data).pub).map((e) => JSON.parse(e.data).pub.offset);
      assert.deepEqual(pubsAfter, [2, 3, 4, 5], 'the missed publications follow the subscribe event');

      // The connection "drops" right after the subscribe event: reconnect with its id.
      const stream2 = await rawStream(url, { headers: { 'Last-Event-ID': sub.id, Accept: 'text/event-stream' } });
      try {
        const text = await stream2.waitFor((t) => /"subscribe"/.test(t), 'the subscribe event of the second resume');
        await new Promise((r) => setTimeout(r, 300));
        const offsets = parseSse(stream2.text()).map((e) => JSON.parse(e.data).pub?.offset).filter((o) => o !== undefined);
        assert.deepEqual(
          offsets,
          [2, 3, 4, 5],
          `resuming from the subscribe event's id ${sub.id} (the stream was resumed from ${resumeFrom}) must still deliver ` +
            `offsets 2..5, none of which the client has seen; stream: ${JSON.stringify(text)}`,
        );
      } finally {
        stream2.close();
      }
    });

    it('starts the stream with `retry:` and the SSE headers', TEST, async () => {
      const channel = uniqueChannel('uni-raw');
      const stream = await rawStream(`${hub.url}/connection/uni_sse?channel=${encodeURIComponent(channel)}`);
      try {
        assert.equal(stream.status, 200);
        assert.match(stream.headers.get('content-type') ?? '', /^text\/event-stream/);
        assert.equal(stream.headers.get('cache-control'), 'no-cache');
        assert.equal(stream.headers.get('x-accel-buffering'), 'no');
        const text = await stream.waitFor((t) => t.includes('"subscribe"'), 'the subscribe event');
        assert.match(text, /^retry: 1000\n/, 'the stream begins with a retry line');
        assert.match(text, /\ndata: \{"connect":/, 'then the connect event');
        assert.match(text, /\nid: \[\[.*\]\]\ndata: \{"channel":/, 'the subscribe event carries an id');
      } finally {
        stream.close();
      }
    });
  });

  describe('the raw SSE and HTTP-stream endpoints', () => {
    const connectCommand = JSON.stringify({ id: 1, connect: {} });
    const firstSseReply = async (stream) => {
      const text = await stream.waitFor((t) => parseSse(t).length >= 1, 'the first event');
      return JSON.parse(parseSse(text)[0].data);
    };

    it('GET /connection/sse?cf_connect=…: an event stream whose first event is the connect reply with session and node', TEST, async () => {
      const stream = await rawStream(`${hub.url}/connection/sse?cf_connect=${encodeURIComponent(connectCommand)}`);
      try {
        assert.equal(stream.status, 200);
        assert.match(stream.headers.get('content-type') ?? '', /^text\/event-stream/);
        assert.equal(stream.headers.get('cache-control'), 'no-cache');
        assert.equal(stream.headers.get('x-accel-buffering'), 'no');
        const reply = await firstSseReply(stream);
        assert.equal(reply.id, 1);
        assert.ok(reply.connect?.client && reply.connect.session && reply.connect.node, `connect reply: ${JSON.stringify(reply)}`);
      } finally {
        stream.close();
      }
    });

    it('POST /connection/sse with the command as body works too', TEST, async () => {
      const stream = await rawStream(`${hub.url}/connection/sse`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: connectCommand,
      });
      try {
        assert.equal(stream.status, 200);
        assert.match(stream.headers.get('content-type') ?? '', /^text\/event-stream/);
        const reply = await firstSseReply(stream);
        assert.ok(reply.connect?.session && reply.connect.node, `connect reply: ${JSON.stringify(reply)}`);
      } finally {
        stream.close();
      }
    });

    it('refuses a missing or wrong first command with 400 and a JSON error', TEST, async () => {
      assertJsonError(await request(`${hub.url}/connection/sse`), 400, 'GET /connection/sse without cf_connect');
      const notConnect = encodeURIComponent(JSON.stringify({ id: 1, presence: { channel: 'news' } }));
      assertJsonError(await request(`${hub.url}/connection/sse?cf_connect=${notConnect}`), 400, 'GET /connection/sse with a presence command');
      assertJsonError(
        await request(`${hub.url}/connection/http_stream`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: 'not json' }),
        400,
        'POST /connection/http_stream with a body that is not JSON',
      );
    });
  });

  describe('/emulation', () => {
    it('takes the commands of a session (204) and answers its replies on the stream', TEST, async () => {
      const stream = await rawStream(`${hub.url}/connection/http_stream`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ id: 1, connect: {} }),
      });
      try {
        assert.equal(stream.status, 200);
        const first = await stream.waitFor((t) => t.includes('\n'), 'the connect reply');
        const reply = JSON.parse(first.split('\n')[0]);
        assert.equal(reply.id, 1);
        const { session, node } = reply.connect ?? {};
        assert.ok(session && node, `the connect reply carries session and node: ${first}`);
        assert.notEqual(session, reply.connect.client, 'the session id is not the client id presence shows');

        const channel = uniqueChannel('emulated');
        const r = await request(`${hub.url}/emulation`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ node, session, data: JSON.stringify({ id: 2, subscribe: { channel } }) }),
        });
        assert.equal(r.status, 204, `POST /emulation with a subscribe -> ${r.status} ${r.text}`);
        await stream.waitFor((t) => t.split('\n').some((l) => l.startsWith('{') && JSON.parse(l).id === 2), 'the reply to the emulated subscribe');
        const line = stream.text().split('\n').find((l) => l.startsWith('{') && JSON.parse(l).id === 2);
        assert.ok(JSON.parse(line).subscribe, `a subscribe reply: ${line}`);
      } finally {
        stream.close();
      }
    });

    it('answers an unknown session 404, a bad body 400, another node 404, all with JSON errors', TEST, async () => {
      const { name } = await nodeInfo(hub);
      const post = (body, headers = { 'Content-Type': 'application/json' }) =>
        request(`${hub.url}/emulation`, { method: 'POST', headers, body });
      const command = JSON.stringify({ id: 2, presence: { channel: 'news' } });

      let body = JSON.stringify({ node: name, session: 'no-such-session', data: command });
      assertJsonError(await post(body), 404, `POST /emulation ${body}`);

      for (const bad of ['not json', '{"node": "x"}', JSON.stringify({ node: name, session: 's', data: 'not a command' }), '']) {
        assertJsonError(await post(bad), 400, `POST /emulation ${JSON.stringify(bad)}`);
      }

      // A live session, but addressed to a node that is not this one (and there is no cluster).
      const stream = await rawStream(`${hub.url}/connection/http_stream`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ id: 1, connect: {} }),
      });
      try {
        const first = await stream.waitFor((t) => t.includes('\n'), 'the connect reply');
        const { session, node } = JSON.parse(first.split('\n')[0]).connect;
        assert.equal(node, name, 'the connect reply names this node');
        body = JSON.stringify({ node: `not-${name}`, session, data: command });
        assertJsonError(await post(body), 404, `POST /emulation ${body}`);
      } finally {
        stream.close();
      }
    });

    it('bounds the bodies of the POST endpoints', TEST, async () => {
      const big = 'x'.repeat(2 * 1024 * 1024);
      for (const p of ['/emulation', '/connection/http_stream', '/connection/sse']) {
        const r = await request(`${hub.url}${p}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: big }, `POST ${p} with 2 MiB`);
        assert.equal(r.status, 413, `POST ${p} with a 2 MiB body -> ${r.status} ${r.text.slice(0, 200)}`);
        assert.match(r.headers.get('content-type') ?? '', /^application\/json/, `POST ${p}: a JSON refusal`);
        assert.deepEqual(JSON.parse(r.text), { error: { code: 106, message: 'limit exceeded: request body larger than 65536 bytes' } });
      }
    });
  });
});

describe('uni_sse with a connection token', () => {
  const SECRET = 's3cret';
  let hub;
  let network;
  before(async () => {
    hub = await startHub(['--dev', '--token-hmac-secret', SECRET], { name: 'uni-sse-token' });
  });
  after(async () => {
    if (hub) await hub.stop();
  });
  beforeEach(async () => {
    network = await new HttpNetwork().start();
  });
  afterEach(async () => {
    await network.close();
  });

  it('delivers the publications of the channels of the token', TEST, async () => {
    const channel = uniqueChannel('uni-token');
    const other = uniqueChannel('uni-token-other');
    const token = jwt({ sub: 'alice', channels: [channel], exp: Math.floor(Date.now() / 1000) + 3600 }, SECRET);
    const es = new network.EventSource(`${hub.url}/connection/uni_sse?token=${encodeURIComponent(token)}`);
    const events = uniEvents(es);
    try {
      const [subscribed] = await events.waitFor((e) => e.kind === 'subscribe', 1, 'the subscribe event of the token channel');
      assert.equal(subscribed.channel, channel, `subscribed to the token's channel: ${subscribed.raw}`);
      assert.equal(events.items[0].kind, 'connect', `the first event is connect: ${events.items[0].raw}`);

      await publish(hub.apiUrl, other, { not: 'for alice' });
      await publish(hub.apiUrl, channel, { for: 'alice' });
      const [pub] = await events.waitFor((e) => e.kind === 'pub', 1, `a publication on "${channel}"`);
      assert.equal(pub.channel, channel);
      assert.deepEqual(pub.body.data, { for: 'alice' });
      assert.deepEqual(JSON.parse(pub.id), [[channel, subscribed.body.epoch, 1]]);

      const presence = await api(hub.apiUrl, 'presence', { channel });
      const users = Object.values(presence.presence).map((i) => i.user);
      assert.deepEqual(users, ['alice'], `the uni_sse connection is alice's: ${JSON.stringify(presence)}`);
      assert.equal(events.of((e) => e.kind === 'pub' && e.channel === other).length, 0, 'nothing from a channel not in the token');
    } finally {
      es.close();
    }
  });

  it('refuses a token with a bad signature with 401 before any stream starts', TEST, async () => {
    const token = jwt({ sub: 'mallory', channels: ['news'] }, 'not-the-secret');
    const response = await withTimeout(
      fetch(`${hub.url}/connection/uni_sse?token=${encodeURIComponent(token)}`),
      'the uni_sse answer to a bad token',
    );
    // A status other than 200 makes a browser EventSource stop instead of retrying forever.
    assert.equal(response.status, 401);
    assert.match(response.headers.get('content-type') ?? '', /application\/json/);
    const body = await response.json();
    assert.equal(body.error.code, 101, `error body: ${JSON.stringify(body)}`);
    assert.match(body.error.message, /^unauthorized: invalid token/);
  });
});

describe('CORS with allowed_origins = ["https://app.example"]', () => {
  const ALLOWED = 'https://app.example';
  const EVIL = 'https://evil.example';
  let hub;
  let dir;
  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'hub-cors-'));
    const file = path.join(dir, 'hub.toml');
    writeFileSync(file, `allowed_origins = ["${ALLOWED}"]\napi_key = "cors-key"\nallow_anonymous = true\n`);
    hub = await startHub(['--config', file], { name: 'cors' });
  });
  after(async () => {
    if (hub) await hub.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const emulationBody = JSON.stringify({ node: 'n', session: 'no-such-session', data: '{"id":1,"presence":{"channel":"x"}}' });

  it('echoes an allowed origin on a POST /emulation', TEST, async () => {
    const r = await request(`${hub.url}/emulation`, {
      method: 'POST',
      headers: { Origin: ALLOWED, 'Content-Type': 'application/json' },
      body: emulationBody,
    });
    assert.notEqual(r.status, 403, `the allowed origin is not refused: ${r.status} ${r.text}`);
    assert.equal(r.headers.get('access-control-allow-origin'), ALLOWED, `headers: ${JSON.stringify([...r.headers])}`);
    assert.match(r.headers.get('vary') ?? '', /origin/i, 'Vary: Origin');
  });

  it('answers a preflight from the allowed origin with 204 and the allow headers', TEST, async () => {
    for (const p of ['/connection/http_stream', '/emulation', '/connection/sse']) {
      const r = await request(`${hub.url}${p}`, {
        method: 'OPTIONS',
        headers: { Origin: ALLOWED, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type' },
      });
      const shown = `preflight OPTIONS ${p} -> ${r.status} ${JSON.stringify([...r.headers])}`;
      assert.equal(r.status, 204, shown);
      assert.equal(r.headers.get('access-control-allow-origin'), ALLOWED, shown);
      assert.match(r.headers.get('access-control-allow-methods') ?? '', /\bPOST\b/, shown);
      assert.match(r.headers.get('access-control-allow-headers') ?? '', /content-type/i, shown);
    }
  });

  it('refuses another origin with 403 and a JSON body: preflight, POST and GET', TEST, async () => {
    let r = await request(`${hub.url}/connection/http_stream`, {
      method: 'OPTIONS',
      headers: { Origin: EVIL, 'Access-Control-Request-Method': 'POST' },
    });
    assertJsonError(r, 403, `preflight OPTIONS /connection/http_stream from ${EVIL}`);
    assert.equal(r.headers.get('access-control-allow-origin'), null, 'no allow-origin header for a refused origin');

    r = await request(`${hub.url}/emulation`, {
      method: 'POST',
      headers: { Origin: EVIL, 'Content-Type': 'application/json' },
      body: emulationBody,
    });
    assertJsonError(r, 403, `POST /emulation from ${EVIL}`);
    assert.equal(r.headers.get('access-control-allow-origin'), null);

    r = await request(`${hub.url}/connection/http_stream`, {
      method: 'POST',
      headers: { Origin: EVIL, 'Content-Type': 'application/json' },
      body: JSON.stringify({ id: 1, connect: {} }),
    });
    assertJsonError(r, 403, `POST /connection/http_stream from ${EVIL}`);

    const cf = encodeURIComponent(JSON.stringify({ id: 1, connect: {} }));
    r = await request(`${hub.url}/connection/sse?cf_connect=${cf}`, { headers: { Origin: EVIL } });
    assertJsonError(r, 403, `GET /connection/sse from ${EVIL}`);
    r = await request(`${hub.url}/connection/uni_sse?channel=news`, { headers: { Origin: EVIL } });
    assertJsonError(r, 403, `GET /connection/uni_sse from ${EVIL}`);
  });

  it('a request without Origin passes', TEST, async () => {
    const r = await request(`${hub.url}/emulation`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: emulationBody });
    assertJsonError(r, 404, 'POST /emulation without Origin (an unknown node)');
  });

  for (const [origin, allowed] of [[EVIL, false], [ALLOWED, true]]) {
    it(`the WebSocket handshake from ${origin} is ${allowed ? 'accepted' : 'refused with 403'}`, TEST, async () => {
      const ws = new WebSocket(hub.wsUrl, { origin });
      try {
        const outcome = await withTimeout(
          new Promise((resolve) => {
            ws.on('open', () => resolve({ open: true }));
            ws.on('unexpected-response', (_req, res) => resolve({ status: res.statusCode }));
            ws.on('error', (e) => resolve({ error: e.message }));
          }),
          `the WebSocket handshake from ${origin}`,
        );
        if (allowed) {
          assert.deepEqual(outcome, { open: true }, `handshake from ${origin}: ${JSON.stringify(outcome)}`);
        } else {
          assert.deepEqual(outcome, { status: 403 }, `handshake from ${origin}: ${JSON.stringify(outcome)}`);
        }
      } finally {
        ws.terminate();
      }
    });
  }
});

describe('clients gone mid-stream', () => {
  let hub;
  let network;
  let created;
  before(async () => {
    hub = await startHub(['--dev', '--ping-interval', '1s', '--pong-timeout', '1s'], { name: 'http-gone' });
  });
  after(async () => {
    if (hub) await hub.stop();
  });
  beforeEach(async () => {
    network = await new HttpNetwork().start();
    created = [];
  });
  afterEach(async () => {
    for (const c of created) {
      c.disconnect();
      c.removeAllListeners();
    }
    await network.close();
  });

  it('SDK clients over sse and http_stream stay connected across several 1 s heartbeats', TEST, async () => {
    const channel = uniqueChannel('heartbeat');
    const clients = [];
    for (const variant of VARIANTS) {
      const c = httpClient(hub, network, variant);
      created.push(c);
      await connect(c, `the ${variant.name} client`);
      const drops = record(c, 'connecting');
      const { sub } = await subscribe(c, channel, {}, variant.name);
      clients.push({ c, sub, drops, variant });
    }
    // Pings every second, pongs due within a second: each client answers through /emulation.
    await new Promise((r) => setTimeout(r, 4500));
    await publish(hub.apiUrl, channel, { after: 'heartbeats' });
    for (const { c, sub, drops, variant } of clients) {
      assert.equal(c.state, 'connected', `${variant.name} client still connected`);
      assert.deepEqual(drops.items, [], `${variant.name} client never went back to connecting: ${JSON.stringify(drops.items)}`);
      const [pub] = await sub.pubs.waitFor(1, `the publication at the ${variant.name} client after the heartbeats`);
      assert.deepEqual(variant.P.decode(pub.data), { after: 'heartbeats' });
    }
    assert.equal((await nodeInfo(hub)).num_clients, VARIANTS.length);
    for (const { c } of clients) c.disconnect();
    await eventually(async () => assert.equal((await nodeInfo(hub)).num_clients, 0), 'the sessions of the disconnected clients to end', 10000);
  });

  it('5 SSE and 5 HTTP-stream SDK clients cut abruptly: the session count returns to 0', TEST, async () => {
    await eventually(async () => assert.equal((await nodeInfo(hub)).num_clients, 0), 'no sessions left from earlier tests', 10000);
    const channel = uniqueChannel('gone', 'chat:');
    const subs = [];
    for (const transport of ['sse', 'http_stream']) {
      for (let i = 0; i < 5; i++) {
        const c = httpClient(hub, network, { transport, P: JSON_P });
        created.push(c);
        await connect(c, `${transport} client ${i}`);
        subs.push((await subscribe(c, channel, {}, `${transport} client ${i}`)).sub);
      }
    }
    assert.equal((await nodeInfo(hub)).num_clients, 10, 'ten clients connected');
    const stats = await api(hub.apiUrl, 'presence_stats', { channel });
    assert.equal(stats.num_clients, 10, `presence of "${channel}": ${JSON.stringify(stats)}`);

    // Destroy every stream without a goodbye, and keep the clients from coming back.
    assert.equal(network.sockets.size, 5, 'five EventSource sockets open');
    assert.equal(network.streams.size, 5, 'five http_stream requests open');
    network.cut();

    const started = Date.now();
    await eventually(
      async () => {
        const info = await nodeInfo(hub);
        assert.equal(info.num_clients, 0, `num_clients ${JSON.stringify(info)}`);
      },
      'the session count to return to 0 after the streams were cut',
      10000,
    );
    const presence = await api(hub.apiUrl, 'presence_stats', { channel });
    assert.deepEqual(presence, { num_clients: 0, num_users: 0 }, `presence of "${channel}" after the cut`);
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 10000, `cleaned up in ${elapsed} ms`);
  });

  it('plain uni_sse EventSources cut abruptly: the session count returns to 0', TEST, async () => {
    await eventually(async () => assert.equal((await nodeInfo(hub)).num_clients, 0), 'no sessions left from earlier tests', 10000);
    const channel = uniqueChannel('gone-uni');
    const sources = [];
    for (let i = 0; i < 3; i++) {
      const es = new network.EventSource(`${hub.url}/connection/uni_sse?channel=${encodeURIComponent(channel)}`);
      sources.push(es);
      await uniEvents(es).waitFor((e) => e.kind === 'subscribe', 1, `uni_sse stream ${i} to be subscribed`);
    }
    await eventually(async () => assert.equal((await nodeInfo(hub)).num_clients, 3), 'three uni_sse clients counted');
    network.cut();
    await eventually(
      async () => assert.equal((await nodeInfo(hub)).num_clients, 0, 'num_clients'),
      'the session count to return to 0 after the uni_sse streams were cut',
      10000,
    );
  });
});

// With the default 25 s heartbeat, nothing but the closed stream can tell the hub that an
// SSE or HTTP-stream client is gone: Centrifugo ends such a session when the request
// context is cancelled, and so must the hub, or the client lingers in presence (and
// others get its leave) until the next ping finds no pong.
describe('clients gone, at the default heartbeat (hub --dev)', () => {
  let hub;
  before(async () => {
    hub = await startHub(['--dev'], { name: 'http-gone-default-ping' });
  });
  after(async () => {
    if (hub) await hub.stop();
  });

  for (const variant of VARIANTS) {
    for (const how of ['disconnect()', 'a cut connection']) {
      it(`a ${variant.name} client gone by ${how} leaves presence within 3 s; others get its leave`, TEST, async () => {
        const network = await new HttpNetwork().start();
        const watchers = new Clients(variant.P, hub.wsUrl);
        try {
          const channel = uniqueChannel(`gone-${variant.transport}-${variant.P.name}`, 'chat:');
          const { client: watcher, id: watcherId } = await watchers.connected({}, 'the watching WebSocket client');
          const { sub: watching } = await subscribe(watcher, channel, {}, 'the watcher');
          const leaves = record(watching, 'leave');

          const client = httpClient(hub, network, variant);
          const { client: goneId } = await connect(client, `the ${variant.name} client`);
          await subscribe(client, channel, {}, `the ${variant.name} subscription`);
          const before = await api(hub.apiUrl, 'presence', { channel });
          assert.deepEqual(Object.keys(before.presence).sort(), [goneId, watcherId].sort());

          const started = Date.now();
          if (how === 'disconnect()') {
            client.disconnect();
          } else {
            client.removeAllListeners();
            network.cut();
          }
          const [leave] = await leaves.waitFor(1, `the leave of the ${variant.name} client`, 3000);
          assert.equal(leave.info.client, goneId, 'the leave names the departed client');
          const after = await api(hub.apiUrl, 'presence', { channel });
          assert.deepEqual(Object.keys(after.presence), [watcherId], `presence after ${Date.now() - started} ms`);
          assert.deepEqual(await api(hub.apiUrl, 'presence_stats', { channel }), { num_clients: 1, num_users: 1 });
          client.disconnect();
        } finally {
          watchers.disconnectAll();
          await network.close();
        }
      });
    }
  }
});
