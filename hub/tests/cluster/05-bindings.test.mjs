// Bindings stay bounded: what the hub binds in RabbitMQ depends on the nodes and shards,
// never on connections or subscriptions. 1,000 clients spread over three nodes connect,
// subscribe to 1,000 different channels, disconnect and reconnect, while the number of
// bindings to the prefix's queues is sampled again and again.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import WebSocket from 'ws';

import { startCluster, prefixBindings, apiResult, infoByName, poll, withTimeout, SHARDS } from './helpers.mjs';

let cluster;
const sockets = new Set();

before(async () => {
  cluster = await startCluster();
});

after(async () => {
  for (const ws of sockets) ws.terminate();
  if (cluster) await cluster.close();
});

const CLIENTS = 1000;
/** Clients connecting at the same time. */
const CONCURRENCY = 100;

/**
 * A bare client over the JSON protocol: connects, subscribes to `channel`, resolves with
 * the open socket once the subscribe reply came.
 */
function connectAndSubscribe(node, channel) {
  return withTimeout(
    new Promise((resolve, reject) => {
      const ws = new WebSocket(node.wsUrl);
      sockets.add(ws);
      ws.on('close', () => sockets.delete(ws));
      ws.on('error', reject);
      ws.on('open', () => {
        ws.send(`${JSON.stringify({ id: 1, connect: { name: 'storm' } })}\n${JSON.stringify({ id: 2, subscribe: { channel } })}`);
      });
      let connected = false;
      ws.on('message', (data) => {
        for (const line of data.toString().split('\n')) {
          if (!line.trim()) continue;
          const reply = JSON.parse(line);
          if (reply.error) {
            reject(new Error(`${node.name} ${channel}: ${line}`));
            ws.terminate();
            return;
          }
          if (reply.id === 1) connected = true;
          if (reply.id === 2 && connected) resolve(ws);
        }
      });
      ws.on('close', (code, reason) => reject(new Error(`${node.name} ${channel}: closed ${code} ${reason}`)));
    }),
    `a ws client of ${node.name} to connect and subscribe to ${channel}`,
    30000,
  );
}

function closeSocket(ws) {
  return new Promise((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) return resolve();
    ws.once('close', resolve);
    ws.close();
    setTimeout(() => {
      ws.terminate();
      resolve();
    }, 5000).unref();
  });
}

/** Runs `fn(i)` for i in [0, n) with at most `limit` at once. */
async function pool(n, limit, fn) {
  const results = new Array(n);
  let next = 0;
  const workers = Array.from({ length: limit }, async () => {
    while (next < n) {
      const i = next++;
      results[i] = await fn(i);
    }
  });
  await Promise.all(workers);
  return results;
}

function describeBindings(list) {
  const bySource = {};
  for (const b of list) {
    const source = b.source || '(default exchange)';
    bySource[source] = (bySource[source] || 0) + 1;
  }
  return bySource;
}

test('binding count does not move while 1,000 clients connect, subscribe, disconnect and reconnect', { timeout: 300000 }, async () => {
  const nodes = cluster.nodes;
  const baselineList = await prefixBindings(cluster.prefix);
  const baseline = baselineList.length;
  console.log(`# bindings to ${cluster.prefix}.* queues with 3 nodes and no clients: ${baseline} ${JSON.stringify(describeBindings(baselineList))}`);
  // The topology's own bound: per shard, the publish binding (+ the default exchange's);
  // per node, deliver + broadcast + direct (+ the default exchange's).
  const explicit = baselineList.filter((b) => b.source !== '').length;
  assert.equal(explicit, SHARDS + 3 * nodes.length, `bindings from the hub's exchanges: ${SHARDS} shards + 3 per node: ${JSON.stringify(baselineList)}`);

  // Sample the count in the background for the whole storm.
  const samples = [];
  const phase = { name: 'connect' };
  let storming = true;
  const sampler = (async () => {
    while (storming) {
      const list = await prefixBindings(cluster.prefix);
      samples.push({ at: Date.now(), count: list.length, phase: phase.name, list });
    }
  })();
  const started = Date.now();
  const channelOf = (i) => `storm-${i}`;
  const nodeOf = (i) => nodes[i % nodes.length];

  try {
    // Round 1: connect + subscribe.
    let open = await pool(CLIENTS, CONCURRENCY, (i) => connectAndSubscribe(nodeOf(i), channelOf(i)));
    phase.name = 'connected';
    const counts = await Promise.all(nodes.map((n) => infoByName(n).then((info) => info[n.name])));
    const totalClients = counts.reduce((s, c) => s + c.num_clients, 0);
    const totalChannels = counts.reduce((s, c) => s + c.num_channels, 0);
    console.log(`# ${CLIENTS} clients connected and subscribed in ${Date.now() - started} ms: ${JSON.stringify(counts.map((c) => [c.name, c.num_clients, c.num_channels]))}`);
    assert.equal(totalClients, CLIENTS, `/api/info counts ${CLIENTS} clients over the nodes`);
    assert.equal(totalChannels, CLIENTS, `/api/info counts ${CLIENTS} channels over the nodes`);
    const mid = await prefixBindings(cluster.prefix);
    samples.push({ at: Date.now(), count: mid.length, phase: 'all connected', list: mid });

    // Round 2: everyone disconnects, then reconnects (the channels on another node now),
    // twice over.
    for (let round = 1; round <= 2; round++) {
      phase.name = `disconnect ${round}`;
      await pool(CLIENTS, CONCURRENCY * 2, (i) => closeSocket(open[i]));
      phase.name = `reconnect ${round}`;
      open = await pool(CLIENTS, CONCURRENCY, (i) => connectAndSubscribe(nodeOf(i + round), channelOf(i)));
      const now = await prefixBindings(cluster.prefix);
      samples.push({ at: Date.now(), count: now.length, phase: `reconnected ${round}`, list: now });
    }
    phase.name = 'final disconnect';
    await pool(CLIENTS, CONCURRENCY * 2, (i) => closeSocket(open[i]));
  } finally {
    storming = false;
    await sampler;
  }
  const after = await prefixBindings(cluster.prefix);
  samples.push({ at: Date.now(), count: after.length, phase: 'after', list: after });
  console.log(`# storm took ${Date.now() - started} ms; binding samples: ${JSON.stringify(samples.map((s) => [s.phase, s.count]))}`);

  assert.ok(samples.length >= 6, `sampled the bindings at least 6 times during the storm (got ${samples.length})`);
  for (const s of samples) {
    assert.equal(
      s.count,
      baseline,
      `binding count during "${s.phase}" equals the baseline ${baseline}; changed: ${JSON.stringify(describeBindings(s.list))}`,
    );
  }
  // Same bindings, not only the same number.
  const key = (l) => l.map((b) => `${b.source}|${b.destination}|${b.key}`).sort();
  assert.deepEqual(key(after), key(baselineList), 'the very same bindings after the storm');

  // The nodes work after the storm.
  await poll(async () => {
    const counts = await Promise.all(nodes.map((n) => infoByName(n).then((info) => info[n.name].num_clients)));
    return counts.every((c) => c === 0);
  }, 'every node to count 0 clients after the storm');
  const r = await apiResult(nodes[2], 'publish', { channel: 'storm-0', data: { after: 'storm' } });
  assert.ok(r.offset >= 1, `publish after the storm: ${JSON.stringify(r)}`);
});
