// Subscribe round trip on one WebSocket: N subscribes to new channels, one at a time,
// each timed from the command's write to its reply. With presence and join/leave on
// (`hub --dev`, namespace `chat`), each subscribe is answered by two small writes (the
// reply, then the client's own join), which is where Nagle's algorithm shows.
//
//   node loadtest/bench/subscribe-latency.mjs [ws://127.0.0.1:8000/connection/websocket] [N=1000]
//
// Uses the `ws` package of hub/tests/sdk (npm ci there first). Loopback only, bounded by N
// and a 60 s deadline; prints one JSON line: {n, p50_ms, p90_ms, p99_ms, max_ms}.
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '../../hub/tests/sdk/package.json'));
const WebSocket = require('ws');

const url = process.argv[2] ?? 'ws://127.0.0.1:8000/connection/websocket';
const n = Number(process.argv[3] ?? 1000);
const deadline = setTimeout(() => {
  console.error('subscribe-latency: no result within 60 s');
  process.exit(1);
}, 60000);

const ws = new WebSocket(url);
const waiting = new Map();
ws.on('message', (data) => {
  for (const line of data.toString().split('\n')) {
    if (!line) continue;
    const reply = JSON.parse(line);
    const done = waiting.get(reply.id);
    if (done) {
      waiting.delete(reply.id);
      done(reply);
    }
  }
});
const call = (id, command) =>
  new Promise((resolve) => {
    waiting.set(id, resolve);
    ws.send(JSON.stringify({ id, ...command }));
  });
await new Promise((resolve, reject) => {
  ws.once('open', resolve);
  ws.once('error', reject);
});
await call(1, { connect: {} });
const run = `${process.pid}-${Date.now()}`;
const times = [];
for (let i = 0; i < n; i++) {
  const started = process.hrtime.bigint();
  const channel = `chat:latency-${run}-${i}`;
  const reply = await call(2 * i + 2, { subscribe: { channel } });
  if (reply.error) throw new Error(`subscribe ${i}: ${JSON.stringify(reply.error)}`);
  times.push(Number(process.hrtime.bigint() - started) / 1e6);
  // Untimed: stay under max_channels_per_client.
  await call(2 * i + 3, { unsubscribe: { channel } });
}
ws.close();
clearTimeout(deadline);
times.sort((a, b) => a - b);
const at = (q) => times[Math.min(times.length - 1, Math.floor(q * times.length))].toFixed(2);
console.log(JSON.stringify({ n, p50_ms: at(0.5), p90_ms: at(0.9), p99_ms: at(0.99), max_ms: times[times.length - 1].toFixed(2) }));
