// RabbitMQ restarts under three running nodes (`rabbitmqctl stop_app` / `start_app`):
// while it is down the server API answers an error at once (no hang, no silent drop); once
// it is back the nodes reconnect by themselves and publications reach clients again.
//
// This test stops the broker's application: it disrupts anything else using the same
// RabbitMQ at the time (the cluster tests run one file at a time).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import {
  startCluster,
  Clients,
  subscribe,
  apiRaw,
  apiResult,
  amqpPublish,
  infoByName,
  rabbitmqctl,
  describePrefix,
  poll,
  sleep,
} from './helpers.mjs';

let cluster;
const clients = new Clients();
let brokerStopped = false;

before(async () => {
  if (process.env.HUB_TEST_NO_BROKER_RESTART !== '1') cluster = await startCluster();
});

after(async () => {
  clients.closeAll();
  if (brokerStopped) {
    // Never leave RabbitMQ stopped, whatever happened.
    await rabbitmqctl(['start_app']).catch((e) => console.error(e.message));
    await rabbitmqctl(['await_startup', '--timeout', '120']).catch((e) => console.error(e.message));
  }
  if (cluster) await cluster.close();
});

/** Once RabbitMQ is up again, how long the nodes may take to publish and deliver again. */
const RECOVERY_BOUND_MS = 30000;

const skip = process.env.HUB_TEST_NO_BROKER_RESTART === '1' ? 'HUB_TEST_NO_BROKER_RESTART=1' : false;

test('nodes ride out a RabbitMQ restart without restarting', { timeout: 180000, skip }, async () => {
  const { n1, n2, n3 } = cluster.byName;
  const channel = 'news';
  const pids = cluster.nodes.map((n) => n.pid);
  const { client: c1 } = await clients.connected(n1, {}, 'client on n1');
  const { client: c2 } = await clients.connected(n2, {}, 'client on n2');
  const { sub: s1 } = await subscribe(c1, channel, {}, 'client on n1');
  const { sub: s2 } = await subscribe(c2, channel, {}, 'client on n2');
  const waitMarker = (sub, marker, label, ms) =>
    sub.pubs.until((xs) => xs.some((p) => p.data && p.data.marker === marker), `${label} to receive publication "${marker}"`, ms);

  await apiResult(n3, 'publish', { channel, data: { marker: 'before' } });
  await waitMarker(s1, 'before', 'client on n1');
  await waitMarker(s2, 'before', 'client on n2');

  // --- RabbitMQ down ---
  const stopStarted = Date.now();
  brokerStopped = true;
  await rabbitmqctl(['stop_app']);
  console.log(`# rabbitmqctl stop_app took ${Date.now() - stopStarted} ms`);
  await sleep(500);

  // The server API answers, with an error, and does not hang.
  const whileDown = [];
  for (let i = 0; i < 3; i++) {
    const node = [n3, n1, n2][i];
    let r;
    try {
      r = await apiRaw(node, 'publish', { channel, data: { marker: `down-${i}` } }, { ms: 15000 });
      whileDown.push({ node: node.name, status: r.status, body: r.text, ms: r.ms });
    } catch (e) {
      whileDown.push({ node: node.name, error: e.message });
    }
    await sleep(300);
  }
  console.log(`# /api/publish while RabbitMQ is down: ${JSON.stringify(whileDown)}`);
  for (const w of whileDown) {
    assert.ok(!w.error, `/api/publish on ${w.node} answered while RabbitMQ was down (no hang): ${JSON.stringify(w)}`);
    const json = JSON.parse(w.body);
    assert.ok(json.error, `/api/publish on ${w.node} answers an error while RabbitMQ is down, not a result (that would be a silent drop): ${JSON.stringify(w)}`);
    assert.ok(w.ms < 10000, `/api/publish on ${w.node} answered within 10 s: ${JSON.stringify(w)}`);
  }

  // A client command while the broker is down gets an error too.
  let clientPublish;
  try {
    await s1.publish({ marker: 'client-down' });
    clientPublish = 'accepted';
  } catch (e) {
    clientPublish = e;
  }
  console.log(`# client sub.publish on n1 while RabbitMQ is down: ${JSON.stringify(clientPublish)}`);
  assert.notEqual(clientPublish, 'accepted', 'a client publish while RabbitMQ is down is refused, not dropped silently');

  // The nodes keep serving (alive), but say they are not ready.
  for (const node of cluster.nodes) {
    const res = await fetch(`${node.url}/health`);
    assert.equal(res.status, 200, `${node.name} /health while RabbitMQ is down`);
    assert.ok(node.running, `${node.name} still runs while RabbitMQ is down`);
    const ready = await poll(
      async () => {
        const r = await fetch(`${node.url}/ready`);
        return r.status === 503 ? r.json() : false;
      },
      `${node.name} /ready to answer 503 while RabbitMQ is down`,
      { ms: 10000, interval: 200 },
    );
    assert.deepEqual(ready, { error: { code: 108, message: 'broker not connected' } }, `${node.name} /ready body`);
  }

  // --- RabbitMQ back ---
  const startStarted = Date.now();
  await rabbitmqctl(['start_app']);
  await rabbitmqctl(['await_startup', '--timeout', '120']);
  brokerStopped = false;
  const upAt = Date.now();
  console.log(`# rabbitmqctl start_app + await_startup took ${upAt - startStarted} ms; down for ${upAt - stopStarted} ms`);

  // /api/publish on n3 works again within the bound.
  const attempts = [];
  const ok = await poll(
    async () => {
      const r = await apiRaw(n3, 'publish', { channel, data: { marker: `probe-${attempts.length}` } }, { ms: 8000 });
      attempts.push({ status: r.status, body: r.text, ms: r.ms, at: Date.now() - upAt });
      return r.status === 200 && r.json && r.json.result ? r.json.result : false;
    },
    `/api/publish on n3 to succeed after RabbitMQ came back (logs: ${cluster.nodes.map((n) => n.logFile).join(' ')})`,
    { ms: RECOVERY_BOUND_MS, interval: 500 },
  ).catch(async (e) => {
    e.message += `; attempts: ${JSON.stringify(attempts)}; ${await describePrefix(cluster.prefix)}`;
    throw e;
  });
  const publishOkAfter = Date.now() - upAt;
  console.log(`# /api/publish on n3 works again ${publishOkAfter} ms after RabbitMQ was up (${attempts.length} attempts, first answers: ${JSON.stringify(attempts.slice(0, 3))}): ${JSON.stringify(ok)}`);

  // Every node is ready again.
  for (const node of cluster.nodes) {
    await poll(async () => (await fetch(`${node.url}/ready`)).status === 200, `${node.name} /ready 200 again`, {
      ms: RECOVERY_BOUND_MS,
      interval: 500,
    });
  }

  // And publications reach the clients on n1 and n2 again (maybe after a resubscription).
  await apiResult(n3, 'publish', { channel, data: { marker: 'after-api' } });
  await waitMarker(s1, 'after-api', 'client on n1', RECOVERY_BOUND_MS);
  await waitMarker(s2, 'after-api', 'client on n2', RECOVERY_BOUND_MS);
  console.log(`# clients on n1 and n2 receive again ${Date.now() - upAt} ms after RabbitMQ was up`);

  // Every path works: a plain AMQP publisher and a client.
  await amqpPublish(cluster.prefix, channel, { marker: 'after-amqp' });
  await waitMarker(s1, 'after-amqp', 'client on n1');
  await waitMarker(s2, 'after-amqp', 'client on n2');
  await s2.publish({ marker: 'after-client' });
  await waitMarker(s1, 'after-client', 'client on n1');

  // Order holds after the restart: 20 publications through alternating nodes.
  const later = [];
  for (let i = 0; i < 20; i++) {
    const r = await apiResult([n1, n2, n3][i % 3], 'publish', { channel, data: { marker: `seq-${i}` } });
    later.push({ offset: r.offset, marker: `seq-${i}` });
  }
  for (const [label, sub] of [['client on n1', s1], ['client on n2', s2]]) {
    await waitMarker(sub, 'seq-19', label);
    const seq = sub.pubs.items.filter((p) => String(p.data.marker).startsWith('seq-'));
    assert.deepEqual(seq.map((p) => ({ offset: p.offset, marker: p.data.marker })), later, `${label}: in order after the restart`);
  }

  // No node restarted: same processes, all three still in the cluster.
  assert.deepEqual(cluster.nodes.map((n) => n.pid), pids, 'same processes');
  for (const node of cluster.nodes) assert.ok(node.running, `${node.name} still runs`);
  await poll(
    async () => {
      const names = Object.keys(await infoByName(n1));
      return ['n1', 'n2', 'n3'].every((n) => names.includes(n));
    },
    '/api/info on n1 to list n1, n2, n3 after the restart',
  );
});
