// SIGTERM while RabbitMQ does not answer (its TCP link stalls, as behind a hung broker or a
// dead network path): the node still exits, within its shutdown budget
// (shutdown_timeout, 10 s by default, plus the HTTP server's own drain).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';

import { startNode, newPrefix, deleteTopology, apiResult, withTimeout } from './helpers.mjs';

const prefix = newPrefix('z');
const pairs = [];
let proxy;
let node;

after(async () => {
  if (node && node.running) await node.kill('SIGKILL');
  for (const [a, b] of pairs) {
    a.destroy();
    b.destroy();
  }
  if (proxy) await new Promise((r) => proxy.close(() => r()));
  await deleteTopology(prefix);
});

/** The bound asserted: shutdown_timeout (10 s) for sessions + up to 10 s for the server + margin. */
const EXIT_BOUND_MS = 25000;

test('SIGTERM with RabbitMQ not answering: the node exits within its shutdown budget', { timeout: 90000 }, async () => {
  // A TCP relay to RabbitMQ that can stall: it keeps the connections open and stops
  // forwarding bytes either way.
  let stalled = false;
  proxy = net.createServer((client) => {
    const upstream = net.connect(5672, '127.0.0.1');
    pairs.push([client, upstream]);
    client.on('data', (d) => stalled || upstream.write(d));
    upstream.on('data', (d) => stalled || client.write(d));
    client.on('error', () => {});
    upstream.on('error', () => {});
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const amqpUrl = `amqp://guest:guest@127.0.0.1:${proxy.address().port}/%2f`;

  node = await startNode({ name: 'n1', prefix, amqpUrl });
  const r = await apiResult(node, 'publish', { channel: 'news', data: { ok: true } });
  assert.equal(r.offset, 1, 'the node works through the relay');

  stalled = true;
  const started = Date.now();
  const exit = await withTimeout(
    node.stop().catch((e) => ({ error: e.message })),
    'stop() to return',
    EXIT_BOUND_MS + 20000,
  );
  const ms = Date.now() - started;
  console.log(`# SIGTERM with a stalled AMQP link: ${JSON.stringify(exit)} after ${ms} ms`);
  assert.ok(!exit.error, `the node exits after SIGTERM although RabbitMQ does not answer: ${exit.error}`);
  assert.ok(ms <= EXIT_BOUND_MS, `exit within ${EXIT_BOUND_MS} ms (took ${ms} ms); log: ${node.logFile}`);
  assert.equal(exit.code, 0, `exit code 0 after SIGTERM (got ${JSON.stringify(exit)}); log: ${node.logFile}`);
});
