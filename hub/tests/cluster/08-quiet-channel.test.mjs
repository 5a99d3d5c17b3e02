// A channel that clients subscribe to but nobody publishes in for a while keeps its
// stream: the owner must not forget (and re-create with a new epoch) a stream that
// replicas synced, or every subscriber would be dropped (2500) at the first publication.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startCluster, Clients, subscribe, apiResult, sleep } from './helpers.mjs';

let cluster;
const clients = new Clients();

before(async () => {
  cluster = await startCluster();
});

after(async () => {
  clients.closeAll();
  if (cluster) await cluster.close();
});

test('a channel quiet for longer than the owner prune interval keeps its epoch and delivers', { timeout: 60000 }, async () => {
  const { n1, n2, n3 } = cluster.byName;
  const channel = 'quiet-room';
  const { client: c1 } = await clients.connected(n1, {}, 'client on n1');
  const { client: c2 } = await clients.connected(n2, {}, 'client on n2');
  const { sub: s1 } = await subscribe(c1, channel, {}, 'client on n1');
  const { sub: s2 } = await subscribe(c2, channel, {}, 'client on n2');
  const epoch = s1.subscribedEvents.items[0].streamPosition.epoch;
  assert.ok(epoch, 'the subscription is positioned');
  assert.equal(s2.subscribedEvents.items[0].streamPosition.epoch, epoch, 'both nodes see the same epoch');

  // Owners prune idle streams every 10 s: wait past one pass with no publication.
  await sleep(12000);

  const result = await apiResult(n3, 'publish', { channel, data: { first: true } });
  assert.equal(result.epoch, epoch, 'the first publication is in the epoch the subscribers hold');
  assert.equal(result.offset, 1);
  for (const [label, sub] of [['client on n1', s1], ['client on n2', s2]]) {
    const got = await sub.pubs.until((xs) => xs.length >= 1, `${label} to receive the first publication`);
    assert.deepEqual(got.map((p) => ({ offset: p.offset, data: p.data })), [{ offset: 1, data: { first: true } }], label);
    assert.equal(sub.subscribedEvents.items.length, 1, `${label} was never resubscribed`);
  }
});
