// SIGKILL of the node that owns every shard (n1, the first to register its consumers):
// RabbitMQ activates another node's consumers, publications flow again within a bounded
// time, and a subscriber on n2 is told of the new epoch (recovered: false), no silent gap.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import {
  startCluster,
  Clients,
  subscribe,
  apiRaw,
  apiResult,
  shardOwners,
  infoByName,
  poll,
  sleep,
  SHARDS,
} from './helpers.mjs';

let cluster;
const clients = new Clients();

before(async () => {
  cluster = await startCluster();
});

after(async () => {
  clients.closeAll();
  if (cluster) await cluster.close();
});

/** Bound on the time from SIGKILL of the owner until /api/publish on n3 succeeds again. */
const FAILOVER_BOUND_MS = 20000;

test('SIGKILL of the owner: publications flow again, the resubscribed client gets recovered: false and a new epoch', { timeout: 120000 }, async () => {
  const { n1, n2, n3 } = cluster.byName;
  const channel = 'news';

  // n1 started first: it is the active consumer of every shard.
  const info = await infoByName(n3);
  const uidOf = Object.fromEntries(Object.entries(info).map(([name, n]) => [n.uid, name]));
  const owners = await poll(
    async () => {
      const o = await shardOwners(cluster.prefix);
      return Object.keys(o).length === SHARDS ? o : false;
    },
    `rabbitmqctl to show an active consumer on each of the ${SHARDS} shards`,
  );
  for (const [queue, uid] of Object.entries(owners)) {
    assert.equal(uidOf[uid], 'n1', `${queue} is owned by n1 (uid ${info.n1.uid}), not ${uidOf[uid] ?? uid}`);
  }

  // A subscriber on n2 (and one on n3), with some history before the kill.
  const { client: c2 } = await clients.connected(n2, {}, 'client on n2');
  const { sub: s2, ctx: first } = await subscribe(c2, channel, {}, 'client on n2');
  const { client: c3 } = await clients.connected(n3, {}, 'client on n3');
  const { sub: s3 } = await subscribe(c3, channel, {}, 'client on n3');
  const epochBefore = first.streamPosition.epoch;
  assert.ok(epochBefore, `an epoch before the kill: ${JSON.stringify(first)}`);
  for (let i = 0; i < 5; i++) await apiResult(n3, 'publish', { channel, data: { before: i } });
  await s2.pubs.waitFor(5, 'the client on n2 to receive the 5 publications before the kill');
  await s3.pubs.waitFor(5, 'the client on n3 to receive the 5 publications before the kill');

  // What the client on n2 sees from now on, in order.
  const timeline = [];
  s2.on('publication', (p) => timeline.push({ pub: p.data, offset: p.offset }));
  s2.on('subscribing', (x) => timeline.push({ subscribing: x.code, reason: x.reason }));
  s2.on('subscribed', (x) => timeline.push({ subscribed: x.streamPosition, recovered: x.recovered }));

  // Kill the owner.
  const killedAt = Date.now();
  const exit = await n1.kill('SIGKILL');
  assert.equal(exit.signal, 'SIGKILL', 'n1 died of SIGKILL');

  // Poll /api/publish on n3 until it succeeds (each attempt bounded: no hang).
  const attempts = [];
  let accepted = null;
  for (let i = 0; Date.now() - killedAt < FAILOVER_BOUND_MS; i++) {
    let r;
    try {
      r = await apiRaw(n3, 'publish', { channel, data: { probe: i } }, { ms: 8000 });
    } catch (e) {
      attempts.push({ i, error: e.message });
      continue;
    }
    attempts.push({ i, status: r.status, body: r.text, ms: r.ms });
    if (r.status === 200 && r.json && r.json.result) {
      accepted = { i, result: r.json.result, afterMs: Date.now() - killedAt };
      break;
    }
    await sleep(200);
  }
  assert.ok(
    accepted,
    `/api/publish on n3 succeeded within ${FAILOVER_BOUND_MS} ms of the SIGKILL; attempts: ${JSON.stringify(attempts)}\nn2 log: ${n2.logFile}\nn3 log: ${n3.logFile}`,
  );
  console.log(`# publish accepted again ${accepted.afterMs} ms after SIGKILL of n1 (attempt ${accepted.i}, ${attempts.length} attempts): ${JSON.stringify(accepted.result)}`);
  assert.notEqual(accepted.result.epoch, epochBefore, 'the new owner answers with a new epoch');

  // The shards moved off n1.
  const ownersAfter = await poll(
    async () => {
      const o = await shardOwners(cluster.prefix);
      return Object.keys(o).length === SHARDS && Object.values(o).every((uid) => uid !== info.n1.uid) ? o : false;
    },
    'every shard to have an active consumer other than n1',
  );
  const newOwners = new Set(Object.values(ownersAfter).map((uid) => uidOf[uid]));
  console.log(`# shards now owned by: ${[...newOwners].join(', ')}`);

  // The SDK resubscribes the client on n2; it learns the gap: recovered false, new epoch.
  const resub = await s2.subscribedEvents.until(
    (xs) => xs.length >= 2,
    'the client on n2 to be resubscribed after the failover',
    FAILOVER_BOUND_MS,
  );
  const again = resub[1];
  assert.equal(again.wasRecovering, true, `wasRecovering on the resubscription: ${JSON.stringify(again)}`);
  assert.equal(again.recovered, false, `recovered must be false after the owner died: ${JSON.stringify(again)}`);
  assert.ok(again.streamPosition && again.streamPosition.epoch, `the resubscription carries an epoch: ${JSON.stringify(again)}`);
  assert.notEqual(again.streamPosition.epoch, epochBefore, 'the epoch changed');
  assert.equal(again.streamPosition.epoch, accepted.result.epoch, 'the client is on the epoch the new owner answered with');

  // No publication of the new epoch reached the client before it was told of the new
  // epoch: it would look like a continuation of the old stream (a silent gap).
  const beforeResub = s2.pubs.items.length;
  const resubAt = timeline.findIndex((e) => e.subscribed);
  assert.ok(
    timeline.slice(0, resubAt).every((e) => !e.pub),
    `no publication between the kill and the resubscription: ${JSON.stringify(timeline)}`,
  );
  console.log(`# client on n2 after the kill: ${JSON.stringify(timeline.slice(0, resubAt + 2))}`);

  // Later publications arrive in order, at both surviving nodes' clients.
  const later = [];
  for (let i = 0; i < 30; i++) {
    const r = await apiResult([n2, n3][i % 2], 'publish', { channel, data: { after: i } });
    later.push({ offset: r.offset, data: { after: i } });
    assert.equal(r.epoch, accepted.result.epoch, 'one epoch after the failover');
  }
  for (let k = 1; k < later.length; k++) assert.equal(later[k].offset, later[k - 1].offset + 1, 'consecutive offsets after the failover');
  const is = (p) => p.data && p.data.after !== undefined;
  const got2 = await s2.pubs.until((xs) => xs.filter(is).length >= later.length, 'the client on n2 to receive the 30 later publications');
  assert.deepEqual(
    got2.filter(is).map((p) => ({ offset: p.offset, data: p.data })),
    later,
    'client on n2: later publications once each, in order',
  );
  assert.ok(s2.pubs.items.length >= beforeResub, 'sanity');
  const got3 = await s3.pubs.until((xs) => xs.filter(is).length >= later.length, 'the client on n3 to receive the 30 later publications');
  assert.deepEqual(
    got3.filter(is).map((p) => ({ offset: p.offset, data: p.data })),
    later,
    'client on n3: later publications once each, in order',
  );
  const s3Subscribed = s3.subscribedEvents.items;
  assert.ok(s3Subscribed.length >= 2, 'the client on n3 was resubscribed too');
  assert.equal(s3Subscribed[1].recovered, false, `client on n3: recovered false: ${JSON.stringify(s3Subscribed[1])}`);

  // History from the survivors agrees, and only holds the new epoch's publications.
  const h2 = await apiResult(n2, 'history', { channel, limit: -1 });
  const h3 = await apiResult(n3, 'history', { channel, limit: -1 });
  assert.deepEqual(h2, h3, 'history from n2 equals history from n3 after the failover');
  assert.equal(h2.epoch, accepted.result.epoch, 'history is of the new epoch');
  assert.ok(h2.publications.every((p) => p.data.before === undefined), 'no pre-kill publication in the new epoch history');

  // /api/info drops the dead node.
  await poll(
    async () => {
      const names = Object.keys(await infoByName(n2));
      return !names.includes('n1') && names.includes('n2') && names.includes('n3');
    },
    '/api/info on n2 to stop listing n1',
    { ms: 15000 },
  );
});
