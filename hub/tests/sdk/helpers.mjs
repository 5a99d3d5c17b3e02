// Helpers for driving the hub with the official `centrifuge` SDK from `node --test`.
//
// What they guarantee:
// - `startHub()` runs the real hub binary on a free port (port 0), waits for its
//   "listening on http://ADDR" log line, and `stop()` sends SIGTERM and fails unless the
//   hub exits with code 0 (graceful shutdown is a feature under test).
// - Every wait has a timeout, and its error names what was awaited, so a test never hangs.
// - Every hub writes its full log to a file; error messages carry that file's path.

import { mkdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import WebSocket from 'ws';
import { networkClass } from '../common/network.mjs';
import { spawnHub, tail, backgroundSleep } from '../common/hub-process.mjs';

export { tail };
import { Centrifuge as CentrifugeJson } from 'centrifuge';
import { Centrifuge as CentrifugeProtobuf } from 'centrifuge/build/protobuf';

const here = path.dirname(fileURLToPath(import.meta.url));

/** Path of the hub binary: $HUB_BIN, or the workspace's debug build. */
export const HUB_BIN = process.env.HUB_BIN
  ? path.resolve(process.env.HUB_BIN)
  : path.resolve(here, '../../../target/debug/hub');

/** Where hub logs go: $HUB_TEST_LOG_DIR, or target/sdk-test-logs of the workspace. */
const LOG_DIR = process.env.HUB_TEST_LOG_DIR
  ? path.resolve(process.env.HUB_TEST_LOG_DIR)
  : path.resolve(here, '../../../target/sdk-test-logs');

/** Default time a single wait may take, in milliseconds. */
export const WAIT_MS = 5000;

const STARTUP_MS = 20000;
const SHUTDOWN_MS = 10000;

let hubCounter = 0;

/**
 * Starts `hub --listen 127.0.0.1:0 ...args` (args default to `--dev`).
 * Resolves to { url, wsUrl, apiUrl, logFile, log(), stop() } once the hub listens.
 */
export async function startHub(args = ['--dev'], { name = 'hub' } = {}) {
  mkdirSync(LOG_DIR, { recursive: true });
  hubCounter += 1;
  const safeName = name.replace(/[^A-Za-z0-9_.-]+/g, '_');
  const logFile = path.join(LOG_DIR, `${safeName}-${process.pid}-${hubCounter}.log`);
  const fullArgs = [...args, '--listen', '127.0.0.1:0'];
  const { child, addr, exited, log, logClosed } = await spawnHub({
    bin: HUB_BIN,
    args: fullArgs,
    logFile,
    startupMs: STARTUP_MS,
  });
  let stopped = null;
  exited.then(({ code, signal }) => {
    if (!stopped) {
      console.error(
        `hub ${addr} exited unexpectedly (code ${code}, signal ${signal}); log: ${logFile}\n${tail(log())}`,
      );
    }
  });
  const hub = {
    addr,
    url: `http://${addr}`,
    wsUrl: `ws://${addr}/connection/websocket`,
    apiUrl: `http://${addr}/api`,
    logFile,
    log,
    /** SIGTERM, then require exit code 0 within the shutdown budget. */
    stop() {
      if (stopped) return stopped;
      stopped = (async () => {
        child.kill('SIGTERM');
        const res = await Promise.race([exited, backgroundSleep(SHUTDOWN_MS).then(() => null)]);
        if (res === null) {
          child.kill('SIGKILL');
          await exited;
          throw new Error(`hub did not exit within ${SHUTDOWN_MS} ms after SIGTERM; log: ${logFile}\n${tail(log())}`);
        }
        await logClosed;
        if (res.code !== 0) {
          throw new Error(
            `hub exited with code ${res.code} (signal ${res.signal}) after SIGTERM; expected 0 (graceful shutdown); log: ${logFile}\n${tail(log())}`,
          );
        }
        return res;
      })();
      return stopped;
    },
  };
  return hub;
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Awaits a promise for at most `ms`; the rejection names `what` was awaited.
 */
export async function withTimeout(promise, what, ms = WAIT_MS) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Resolves with the first `event` emitted by `emitter` whose context passes `filter`.
 * Register it before triggering the action that emits the event.
 */
export function nextEvent(emitter, event, what, { filter = () => true, ms = WAIT_MS } = {}) {
  let listener;
  const p = new Promise((resolve) => {
    listener = (ctx) => {
      if (filter(ctx)) {
        emitter.off(event, listener);
        resolve(ctx);
      }
    };
    emitter.on(event, listener);
  });
  return withTimeout(p, what, ms).finally(() => emitter.off(event, listener));
}

/**
 * Records every `event` of `emitter` from now on: `.items`, and `.waitFor(n, what)`
 * resolving once at least n were recorded.
 */
export function record(emitter, event) {
  const items = [];
  const waiters = [];
  emitter.on(event, (ctx) => {
    items.push(ctx);
    for (const w of [...waiters]) {
      if (items.length >= w.n) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(items);
      }
    }
  });
  return {
    items,
    waitFor(n, what, ms = WAIT_MS) {
      if (items.length >= n) return Promise.resolve(items);
      const p = new Promise((resolve) => waiters.push({ n, resolve }));
      return withTimeout(p, `${what} (got ${items.length} of ${n} so far)`, ms).catch((e) => {
        e.message += `; received so far: ${JSON.stringify(items.map(summarize))}`;
        throw e;
      });
    },
  };
}

function summarize(ctx) {
  const s = {};
  for (const k of ['channel', 'offset', 'data', 'info']) {
    if (ctx && ctx[k] !== undefined) {
      s[k] = ctx[k] instanceof Uint8Array ? new TextDecoder().decode(ctx[k]) : ctx[k];
    }
  }
  return s;
}

/**
 * The two wire formats the SDK speaks. `encode` turns a JSON value into what the SDK
 * takes as publication data, `decode` turns received data back into a JSON value.
 * With Protobuf, data is bytes: we send and expect UTF-8 JSON bytes, which is what the
 * server API's JSON `data` becomes on the wire.
 */
export const PROTOCOLS = [
  {
    name: 'json',
    Centrifuge: CentrifugeJson,
    encode: (value) => value,
    decode: (data) => data,
  },
  {
    name: 'protobuf',
    Centrifuge: CentrifugeProtobuf,
    encode: (value) => new TextEncoder().encode(JSON.stringify(value)),
    decode: (data) => {
      if (!(data instanceof Uint8Array)) {
        throw new Error(`protobuf client got non-binary data: ${JSON.stringify(data)}`);
      }
      return JSON.parse(new TextDecoder().decode(data));
    },
  },
];

/**
 * Keeps every client a test creates, so the test's cleanup disconnects them all.
 */
export class Clients {
  constructor(protocol, wsUrl) {
    this.protocol = protocol;
    this.wsUrl = wsUrl;
    this.all = [];
  }

  /** A new, not yet connected client; `options` are passed to the SDK. */
  create(options = {}) {
    const client = new this.protocol.Centrifuge(this.wsUrl, {
      websocket: WebSocket,
      ...options,
    });
    this.all.push(client);
    return client;
  }

  /** A new client, connected: resolves with { client, id }. */
  async connected(options = {}, label = 'client') {
    const client = this.create(options);
    const ctx = nextEvent(client, 'connected', `${label} (${this.protocol.name}) to connect to ${this.wsUrl}`);
    client.connect();
    const { client: id } = await ctx;
    return { client, id };
  }

  disconnectAll() {
    for (const c of this.all) {
      c.disconnect();
      c.removeAllListeners();
    }
    this.all = [];
  }
}

/**
 * Subscribes `client` to `channel` and resolves with { sub, ctx } once subscribed.
 * Publications are recorded from before the subscribe command: `sub.pubs`.
 */
export async function subscribe(client, channel, options = {}, label = 'subscription') {
  const sub = client.newSubscription(channel, options);
  sub.pubs = record(sub, 'publication');
  const errors = [];
  sub.on('error', (e) => errors.push(e));
  let onSubscribed;
  let onUnsubscribed;
  const outcome = new Promise((resolve, reject) => {
    onSubscribed = (ctx) => resolve(ctx);
    onUnsubscribed = (u) =>
      reject(new Error(`${label} to "${channel}" was unsubscribed (code ${u.code}, "${u.reason}") instead of subscribed`));
    sub.once('subscribed', onSubscribed);
    sub.once('unsubscribed', onUnsubscribed);
  });
  sub.subscribe();
  try {
    return { sub, ctx: await withTimeout(outcome, `${label} to "${channel}" to be subscribed`) };
  } catch (e) {
    if (errors.length) e.message += `; subscription errors: ${JSON.stringify(errors)}`;
    throw e;
  } finally {
    sub.off('subscribed', onSubscribed);
    sub.off('unsubscribed', onUnsubscribed);
  }
}

/**
 * Calls the server API: POST {apiUrl}/{method} with X-API-Key. Resolves with `result`,
 * rejects with an error naming what was sent and what came back.
 */
export async function api(apiUrl, method, params, key = 'dev') {
  const url = `${apiUrl}/${method}`;
  const body = JSON.stringify(params);
  let res;
  try {
    res = await withTimeout(
      fetch(url, { method: 'POST', headers: { 'X-API-Key': key, 'Content-Type': 'application/json' }, body }),
      `the response to POST ${url} ${body}`,
    );
  } catch (e) {
    const cause = e.cause ? ` (${e.cause.code || e.cause.message})` : '';
    throw new Error(`POST ${url} ${body} failed: ${e.message}${cause}`);
  }
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error(`POST ${url} ${body} -> HTTP ${res.status}, body is not JSON: ${text}`);
  }
  if (res.status !== 200 || json.error) {
    throw new Error(`POST ${url} ${body} -> HTTP ${res.status} ${text}`);
  }
  return json.result ?? {};
}

/** Publishes `data` to `channel` through the server API; resolves with { offset, epoch }. */
export function publish(apiUrl, channel, data) {
  return api(apiUrl, 'publish', { channel, data });
}

/** A network a test can cut: see ../common/network.mjs. */
export const Network = networkClass(WebSocket);

let channelCounter = 0;

/** A channel name no other test uses: `${prefix}${base}-${n}`. */
export function uniqueChannel(base, prefix = '') {
  channelCounter += 1;
  return `${prefix}${base}-${process.pid}-${channelCounter}`;
}

/**
 * Counts the empty messages on the wire: server pings (an empty reply) coming in and the
 * client's pongs (an empty command) going out. JSON frames hold `\n`-separated messages,
 * Protobuf frames varint-length-prefixed ones; an empty message is `{}` or length 0.
 * Pass `tap.WebSocket` as the SDK's `websocket` option.
 */
export class WireTap {
  constructor(protocolName) {
    this.pingsIn = 0;
    this.pongsOut = 0;
    const tap = this;
    const countEmpty = (data) => (protocolName === 'json' ? countEmptyJson(data) : countEmptyProtobuf(data));
    this.WebSocket = class TappedWebSocket extends WebSocket {
      constructor(...args) {
        super(...args);
        this.on('message', (data) => {
          tap.pingsIn += countEmpty(data);
        });
      }

      send(data, ...rest) {
        tap.pongsOut += countEmpty(data);
        return super.send(data, ...rest);
      }
    };
  }
}

function countEmptyJson(data) {
  const text = typeof data === 'string' ? data : Buffer.from(data).toString('utf8');
  return text.split('\n').filter((line) => line.trim() === '{}').length;
}

function countEmptyProtobuf(data) {
  const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer ?? data, data.byteOffset ?? 0, data.byteLength ?? data.length);
  let count = 0;
  let i = 0;
  while (i < bytes.length) {
    let len = 0;
    let shift = 0;
    for (;;) {
      const b = bytes[i++];
      len += (b & 0x7f) * 2 ** shift;
      shift += 7;
      if (b < 0x80 || i >= bytes.length) break;
    }
    if (len === 0) count += 1;
    i += len;
  }
  return count;
}

// ---------------------------------------------------------------------------------------
// HTTP transports (SSE, HTTP-streaming, uni_sse): a network a test can cut, and raw
// streamed responses read with a deadline.

import EventSource from 'eventsource';

/**
 * A network between HTTP clients (the SDK's `sse` and `http_stream` transports, or a plain
 * `EventSource`) and the hub, that a test can cut. Pass `network.EventSource` as the SDK's
 * `eventsource` option (or construct it directly) and `network.fetch` as its `fetch`.
 * - Every EventSource opens its TCP connections through the network (the `eventsource`
 *   package's `createConnection` option), and every fetch of `/connection/http_stream`
 *   gets an AbortController of the network's besides the caller's signal.
 * - `cut()`: destroys every open EventSource socket and aborts every http_stream request
 *   (the hub sees the TCP connection drop), and makes new attempts fail until `restore()`:
 *   EventSource connections go to a server that drops them at once, fetches reject.
 * - `restore()`: new attempts reach the hub again.
 * - `eventSources`: every EventSource created through the network, in order.
 */
export class HttpNetwork {
  constructor() {
    this.down = false;
    this.sockets = new Set();
    this.streams = new Set();
    this.eventSources = [];
    this.streamRequests = 0;
    this.blackhole = net.createServer((sock) => sock.destroy());
    const network = this;
    this.EventSource = class CuttableEventSource extends EventSource {
      constructor(url, init = {}) {
        super(url, { ...init, createConnection: (opts) => network._connect(opts) });
        network.eventSources.push(this);
      }
    };
    this.fetch = (input, init = {}) => network._fetch(input, init);
  }

  async start() {
    await new Promise((resolve) => this.blackhole.listen(0, '127.0.0.1', resolve));
    this.blackholePort = this.blackhole.address().port;
    return this;
  }

  _connect(opts) {
    const target = this.down ? { host: '127.0.0.1', port: this.blackholePort } : { host: opts.host, port: opts.port };
    const sock = net.createConnection(target);
    this.sockets.add(sock);
    sock.on('close', () => this.sockets.delete(sock));
    return sock;
  }

  _fetch(input, init) {
    if (this.down) {
      return Promise.reject(new TypeError('fetch failed: the test cut the network'));
    }
    const url = typeof input === 'string' ? input : input.url ?? String(input);
    if (!url.includes('/connection/http_stream')) {
      return fetch(input, init);
    }
    this.streamRequests += 1;
    const controller = new AbortController();
    const signal = init.signal ? AbortSignal.any([init.signal, controller.signal]) : controller.signal;
    this.streams.add(controller);
    signal.addEventListener('abort', () => this.streams.delete(controller));
    return fetch(input, { ...init, signal });
  }

  /** Aborts the open http_stream requests only, without cutting anything else. */
  abortStreams() {
    const n = this.streams.size;
    for (const c of [...this.streams]) c.abort(new Error('stream aborted by the test'));
    return n;
  }

  /** Destroys the open EventSource sockets only, without cutting anything else. */
  destroySockets() {
    const n = this.sockets.size;
    for (const s of [...this.sockets]) s.destroy();
    return n;
  }

  cut() {
    this.down = true;
    this.destroySockets();
    this.abortStreams();
  }

  restore() {
    this.down = false;
  }

  close() {
    this.cut();
    for (const es of this.eventSources) es.close();
    return new Promise((resolve) => this.blackhole.close(() => resolve()));
  }
}

/**
 * Fetches `url` and reads its streamed body as text, with deadlines: resolves with
 * { res, status, headers, text(), waitFor(predicate, what, ms), close() } once the headers
 * are in. `waitFor` resolves with the text read so far once `predicate(text)` holds, and
 * its error carries the text read so far. `close()` aborts the request.
 */
export async function rawStream(url, init = {}, what = `the response to ${init.method ?? 'GET'} ${url}`) {
  const controller = new AbortController();
  const res = await withTimeout(fetch(url, { ...init, signal: controller.signal }), what);
  let text = '';
  let ended = false;
  let failure = null;
  const waiters = new Set();
  const check = () => {
    for (const w of [...waiters]) {
      if (w.predicate(text)) {
        waiters.delete(w);
        w.resolve(text);
      } else if (ended) {
        waiters.delete(w);
        w.reject(new Error(`the stream of ${url} ended (${failure ? failure.message : 'cleanly'}) before ${w.what}; read: ${JSON.stringify(text)}`));
      }
    }
  };
  (async () => {
    try {
      if (res.body) {
        const decoder = new TextDecoder();
        for await (const chunk of res.body) {
          text += decoder.decode(chunk, { stream: true });
          check();
        }
      }
    } catch (e) {
      failure = e;
    }
    ended = true;
    check();
  })();
  return {
    res,
    status: res.status,
    headers: res.headers,
    text: () => text,
    ended: () => ended,
    waitFor(predicate, whatFor, ms = WAIT_MS) {
      if (predicate(text)) return Promise.resolve(text);
      const p = new Promise((resolve, reject) => {
        const w = { predicate, resolve, reject, what: whatFor };
        waiters.add(w);
        check();
      });
      return withTimeout(p, `${whatFor} on ${url}`, ms).catch((e) => {
        if (!e.message.includes('; read: ')) e.message += `; read so far: ${JSON.stringify(text)}`;
        throw e;
      });
    },
    close() {
      controller.abort();
    },
  };
}
