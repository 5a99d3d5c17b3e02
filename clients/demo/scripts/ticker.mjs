#!/usr/bin/env node
// The demo's backend publisher: made-up prices published into the `ticker` channel through
// the hub's server API (POST /api/publish with X-API-Key), as any backend service would.
//
//   node scripts/ticker.mjs                       # every second, until Ctrl-C
//   node scripts/ticker.mjs --count 5 --interval 100
//
// Environment: HUB_URL (default http://127.0.0.1:8000), HUB_API_KEY (default "dev", the
// key of `hub --dev`), TICKER_CHANNEL (default "ticker").
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '0' },
    interval: { type: 'string', default: '1000' },
  },
});
const count = Number(values.count); // 0: run until stopped
const interval = Number(values.interval);
const hubUrl = (process.env.HUB_URL ?? 'http://127.0.0.1:8000').replace(/\/$/, '');
const apiKey = process.env.HUB_API_KEY ?? 'dev';
const channel = process.env.TICKER_CHANNEL ?? 'ticker';

const prices = { ACME: 120, GLOBEX: 48.5, INITECH: 12.25, UMBRELLA: 310 };
const symbols = Object.keys(prices);

async function publish(data) {
  const res = await fetch(`${hubUrl}/api/publish`, {
    method: 'POST',
    headers: { 'X-API-Key': apiKey, 'Content-Type': 'application/json' },
    body: JSON.stringify({ channel, data }),
    signal: AbortSignal.timeout(5000),
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok || body.error) throw new Error(`publish answered ${res.status} ${JSON.stringify(body)}`);
  return body.result;
}

let stopped = false;
process.on('SIGINT', () => (stopped = true));
process.on('SIGTERM', () => (stopped = true));

console.log(`ticker: publishing to ${channel} at ${hubUrl} every ${interval} ms${count ? `, ${count} times` : ''}`);
let failures = 0;
for (let seq = 1; !stopped && (count === 0 || seq <= count); seq += 1) {
  const symbol = symbols[(seq - 1) % symbols.length];
  const change = Math.round((Math.random() - 0.5) * prices[symbol] * 2) / 100;
  prices[symbol] = Math.max(0.01, Math.round((prices[symbol] + change) * 100) / 100);
  const tick = { seq, symbol, price: prices[symbol], change, at: new Date().toISOString() };
  try {
    const { offset } = await publish(tick);
    failures = 0;
    console.log(`#${offset} ${symbol} ${tick.price.toFixed(2)}`);
  } catch (e) {
    failures += 1;
    console.error(`ticker: ${e.message}${failures === 1 ? ' (is the hub running? cargo run --release -p hub -- --dev)' : ''}`);
    if (count > 0) process.exitCode = 1;
  }
  if (count === 0 || seq < count) await new Promise((r) => setTimeout(r, interval));
}
