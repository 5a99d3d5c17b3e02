// Publications from the three paths (a plain AMQP client, /api/publish on another node, a
// client on another node) reach subscribers on every node, in one order per channel.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startCluster, Clients, subscribe, apiResult, amqpPublisher } from './helpers.mjs';

let cluster;
const clients = new Clients();
let publisher;

before(async () => {
  cluster = await startCluster();
});

after(async () => {
  clients.closeAll();
  if (publisher) await publisher.close();
  if (cluster) await cluster.close();
});

test('AMQP, API and client publications reach clients on n1 and n2 in one order', { timeout: 120000 }, async () => {
  const { n1, n2, n3 } = cluster.byName;
  const { client: c1 } = await clients.connected(n1);
  const { client: c2 } = await clients.connected(n2);
  const { client: c3 } = await clients.connected(n3);
  const { sub: s1 } = await subscribe(c1, 'news', {}, 'client on n1');
  const { sub: s2 } = await subscribe(c2, 'news', {}, 'client on n2');
  const { sub: s3 } = await subscribe(c3, 'news', {}, 'client on n3');
  publisher = await amqpPublisher(cluster.prefix);

  const receivers = [
    ['client on n1', s1],
    ['client on n2', s2],
  ];
  const expectData = async (n, data, path) => {
    for (const [label, sub] of receivers) {
      const items = await sub.pubs.waitFor(n, `${label} to receive publication #${n} (${path})`);
      assert.deepEqual(items[n - 1].data, data, `${label}: publication #${n} (${path}) has the published data`);
    }
  };

  // (a) a backend service over plain AMQP
  await publisher.publish('news', { path: 'amqp', text: 'hello from amqplib' });
  await expectData(1, { path: 'amqp', text: 'hello from amqplib' }, 'plain AMQP to the publish exchange');

  // (b) the server API of a third node
  const viaApi = await apiResult(n3, 'publish', { channel: 'news', data: { path: 'api', text: 'hello from n3 API' } });
  assert.equal(viaApi.offset, 2, `/api/publish on n3 answers offset 2 (after the AMQP one): ${JSON.stringify(viaApi)}`);
  assert.ok(viaApi.epoch, 'the answer carries the epoch');
  await expectData(2, { path: 'api', text: 'hello from n3 API' }, '/api/publish on n3');

  // (c) a client of a third node
  await s3.publish({ path: 'client', text: 'hello from a client of n3' });
  await expectData(3, { path: 'client', text: 'hello from a client of n3' }, 'sub.publish of a client on n3');

  // The three publications carry offsets 1, 2, 3 of one epoch, the same on both nodes.
  for (const [label, sub] of receivers) {
    assert.deepEqual(
      sub.pubs.items.map((p) => p.offset),
      [1, 2, 3],
      `${label}: offsets of the first three publications`,
    );
  }

  // 200 more, alternating over the three paths, each one awaited (accepted by RabbitMQ or
  // answered by the hub) before the next: the order of sending is the order of the channel.
  const N = 200;
  const sent = [];
  const started = Date.now();
  for (let i = 0; i < N; i++) {
    const data = { i, path: ['amqp', 'api', 'client'][i % 3] };
    if (i % 3 === 0) {
      await publisher.publish('news', data);
    } else if (i % 3 === 1) {
      await apiResult(n3, 'publish', { channel: 'news', data });
    } else {
      await s3.publish(data);
    }
    sent.push(data);
  }
  const sendMs = Date.now() - started;
  for (const [label, sub] of receivers) {
    const items = await sub.pubs.waitFor(3 + N, `${label} to receive all ${3 + N} publications`, 30000);
    const got = items.slice(3);
    const offsets = items.map((p) => p.offset);
    for (let k = 1; k < offsets.length; k++) {
      assert.equal(offsets[k], offsets[k - 1] + 1, `${label}: offsets increase by 1 at index ${k}: ${offsets.slice(Math.max(0, k - 3), k + 3)}`);
    }
    assert.deepEqual(
      got.map((p) => p.data),
      sent,
      `${label}: the ${N} publications arrive once each, in the order they were made`,
    );
  }
  // Nothing more arrives (no duplicates trailing behind).
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(s1.pubs.items.length, 3 + N, 'client on n1: no extra publications');
  assert.equal(s2.pubs.items.length, 3 + N, 'client on n2: no extra publications');
  assert.deepEqual(
    s1.pubs.items.map((p) => [p.offset, p.data]),
    s2.pubs.items.map((p) => [p.offset, p.data]),
    'both clients saw the same stream',
  );
  console.log(`# 200 publications over 3 paths sent in ${sendMs} ms`);
});

test('every node of a running cluster is ready: GET /ready answers 200', { timeout: 30000 }, async () => {
  for (const node of cluster.nodes) {
    const res = await fetch(`${node.url}/ready`);
    assert.equal(res.status, 200, `${node.name} /ready once the cluster runs`);
    assert.deepEqual(await res.json(), { status: 'ready' }, `${node.name} /ready body`);
  }
});
