// Cluster-wide channel state: presence from any node lists the clients of every node,
// /api/channels sums every node's subscribers, history is the same from every node, and a
// client moving from n1 to n2 recovers exactly what it missed.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startCluster, Clients, Network, subscribe, apiResult, nextEvent, poll, sleep } from './helpers.mjs';

let cluster;
const clients = new Clients();
let network;

before(async () => {
  cluster = await startCluster();
});

after(async () => {
  clients.closeAll();
  if (network) await network.close();
  if (cluster) await cluster.close();
});

test('presence lists the clients of all nodes, from a client and from the API', { timeout: 60000 }, async () => {
  const { n1, n2, n3 } = cluster.byName;
  const channel = 'room-presence';
  const ids = {};
  const subs = {};
  for (const node of [n1, n2, n3]) {
    const { client, id } = await clients.connected(node);
    ids[node.name] = id;
    subs[node.name] = (await subscribe(client, channel, {}, `client on ${node.name}`)).sub;
  }
  const expected = Object.values(ids).sort();

  // A client on n1 asks (command through n1).
  const fromClient = await poll(
    async () => {
      const p = await subs.n1.presence();
      const got = Object.keys(p.clients).sort();
      return JSON.stringify(got) === JSON.stringify(expected) ? p : false;
    },
    `presence from the client on n1 to list ${expected.join(', ')}`,
  );
  for (const [name, id] of Object.entries(ids)) {
    assert.equal(fromClient.clients[id].client, id, `presence (client on n1) holds the client of ${name} with its id`);
  }

  // The server API of n3.
  const fromApi = await apiResult(n3, 'presence', { channel });
  assert.deepEqual(Object.keys(fromApi.presence).sort(), expected, `/api/presence on n3: ${JSON.stringify(fromApi)}`);
  const stats = await apiResult(n2, 'presence_stats', { channel });
  assert.equal(stats.num_clients, 3, `/api/presence_stats on n2 counts 3 clients: ${JSON.stringify(stats)}`);

  // A client leaving n2 disappears from the presence seen on n1.
  subs.n2.unsubscribe();
  await poll(
    async () => {
      const p = await subs.n1.presence();
      return !(ids.n2 in p.clients) && Object.keys(p.clients).length === 2;
    },
    'presence on n1 to drop the client of n2 after its unsubscribe',
  );
});

test('/api/channels on any node lists the channels of every node with summed counts', { timeout: 60000 }, async () => {
  const { n1, n2, n3 } = cluster.byName;
  // Two clients on n1 and one on n2 in `chan-a`; one client on n2 in `chan-b`; nothing on n3.
  for (const [node, channel] of [[n1, 'chan-a'], [n1, 'chan-a'], [n2, 'chan-a'], [n2, 'chan-b']]) {
    const { client } = await clients.connected(node);
    await subscribe(client, channel, {}, `client on ${node.name} in ${channel}`);
  }
  const want = { 'chan-a': { num_clients: 3 }, 'chan-b': { num_clients: 1 } };
  for (const node of [n3, n1]) {
    const got = await apiResult(node, 'channels', { pattern: 'chan-*' });
    assert.deepEqual(got.channels, want, `/api/channels on ${node.name}: ${JSON.stringify(got)}`);
  }
  const onlyB = await apiResult(n2, 'channels', { pattern: '*-b' });
  assert.deepEqual(onlyB.channels, { 'chan-b': { num_clients: 1 } }, `/api/channels on n2 with a pattern: ${JSON.stringify(onlyB)}`);
});

test('history is identical from n1, n2 and n3', { timeout: 60000 }, async () => {
  const { n1, n2, n3 } = cluster.byName;
  const channel = 'history-same';
  const positions = [];
  for (let i = 0; i < 10; i++) {
    const node = [n1, n2, n3][i % 3];
    positions.push(await apiResult(node, 'publish', { channel, data: { i, via: node.name } }));
  }
  assert.deepEqual(
    positions.map((p) => p.offset),
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    'publications through the API of the three nodes get consecutive offsets',
  );
  assert.equal(new Set(positions.map((p) => p.epoch)).size, 1, 'one epoch for the channel whatever the node published through');

  const pages = {};
  for (const node of [n1, n2, n3]) {
    pages[node.name] = await apiResult(node, 'history', { channel, limit: -1 });
  }
  assert.equal(pages.n1.publications.length, 10, `n1 returns all 10 publications: ${JSON.stringify(pages.n1)}`);
  assert.deepEqual(pages.n1.publications.map((p) => p.data.i), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'history in publication order');
  assert.equal(pages.n1.offset, 10, 'history reports the top offset 10');
  assert.equal(pages.n1.epoch, positions[0].epoch, 'history reports the epoch publishing answered');
  assert.deepEqual(pages.n2, pages.n1, '/api/history on n2 equals the one on n1');
  assert.deepEqual(pages.n3, pages.n1, '/api/history on n3 equals the one on n1');

  // A part of it, with since and reverse, is the same too.
  const since = { offset: 4, epoch: positions[0].epoch };
  const partial = await Promise.all([n1, n2, n3].map((n) => apiResult(n, 'history', { channel, limit: 3, since })));
  assert.deepEqual(partial[0].publications.map((p) => p.offset), [5, 6, 7], 'history since offset 4, limit 3');
  assert.deepEqual(partial[1], partial[0], 'history since: n2 equals n1');
  assert.deepEqual(partial[2], partial[0], 'history since: n3 equals n1');

  // n2 is not the owner: each of its publish and history calls was a round
  // trip to n1 over RabbitMQ, timed in hub_broker_round_trip_duration_seconds.
  const metrics = await (await fetch(`${n2.url}/metrics`)).text();
  const count = (operation) => {
    const line = metrics
      .split('\n')
      .find((l) => l.startsWith(`hub_broker_round_trip_duration_seconds_count{operation="${operation}"} `));
    return line === undefined ? undefined : Number(line.split(' ')[1]);
  };
  assert.ok(count('publish') >= 3, `n2 timed its 3 publishes through the owner: ${count('publish')}`);
  assert.ok(count('history') >= 2, `n2 timed its 2 history calls through the owner: ${count('history')}`);
});

test('a client cut from n1 recovers on n2 exactly the publications it missed', { timeout: 60000 }, async () => {
  const { n1, n2, n3 } = cluster.byName;
  const channel = 'news';
  network = await new Network().start();
  const { client: first } = await clients.connected(n1, { websocket: network.WebSocket }, 'first client (n1)');
  const { sub: firstSub, ctx } = await subscribe(first, channel, {}, 'first client (n1)');
  assert.equal(ctx.recoverable, true, 'the dev preset makes "news" recoverable');
  const epoch = ctx.streamPosition.epoch;
  assert.ok(epoch, `subscribed carries an epoch: ${JSON.stringify(ctx)}`);

  for (let i = 0; i < 5; i++) await apiResult(n3, 'publish', { channel, data: { before: i } });
  const seen = await firstSub.pubs.waitFor(5, 'the first client to receive 5 publications');
  const last = seen[seen.length - 1];
  const position = { offset: last.offset, epoch };

  // Cut: the socket dies without a close frame, and reconnection attempts go nowhere.
  const disconnected = nextEvent(first, 'connecting', 'the first client to notice the cut');
  network.cut();
  await disconnected;
  const missed = [];
  for (let i = 0; i < 7; i++) {
    const r = await apiResult([n1, n2, n3][i % 3], 'publish', { channel, data: { missed: i } });
    missed.push({ offset: r.offset, data: { missed: i } });
  }
  first.disconnect();
  await sleep(100);
  assert.equal(firstSub.pubs.items.length, 5, 'the cut client received nothing after the cut');

  // It comes back on n2, from the position it had.
  const { client: second } = await clients.connected(n2, {}, 'the same user back on n2');
  const { sub: secondSub, ctx: recovered } = await subscribe(second, channel, { since: position }, 'resubscription on n2 with since');
  assert.equal(recovered.wasRecovering, true, `wasRecovering: ${JSON.stringify(recovered)}`);
  assert.equal(recovered.recovered, true, `recovered: ${JSON.stringify(recovered)}`);
  assert.equal(recovered.streamPosition.epoch, epoch, 'the epoch did not change');
  const got = await secondSub.pubs.waitFor(missed.length, 'the missed publications on n2');
  assert.deepEqual(
    got.map((p) => ({ offset: p.offset, data: p.data })),
    missed,
    'exactly the missed publications, in order',
  );
  // And it stays live on n2.
  await apiResult(n1, 'publish', { channel, data: { after: true } });
  const live = await secondSub.pubs.waitFor(missed.length + 1, 'a live publication after the recovery');
  assert.deepEqual(live[missed.length].data, { after: true });
  assert.equal(live[missed.length].offset, missed[missed.length - 1].offset + 1, 'the live one follows the recovered ones');
  await sleep(300);
  assert.equal(secondSub.pubs.items.length, missed.length + 1, 'no duplicates after the recovery');
});
