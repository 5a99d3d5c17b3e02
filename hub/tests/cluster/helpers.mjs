// Helpers for the cluster tests: three (or more) hub nodes joined through RabbitMQ.
//
// What they guarantee:
// - `startCluster()` runs the real hub binary as nodes n1, n2, n3 (in that order, each one
//   listening before the next starts, so n1 registers its shard consumers first and is the
//   active consumer, i.e. the owner, of every shard), on free ports, with `--dev` and
//   `--amqp-url`, under a prefix (`HUB_AMQP_PREFIX`) no other test file uses; it resolves
//   once every node's `/api/info` lists all of them.
// - `cluster.close()` kills every node still running and deletes the prefix's queues and
//   exchanges; call it in `after()` so that it runs even when a test fails.
// - Every wait has a timeout and its error names what was awaited; hub logs go to files
//   whose paths appear in error messages.
//
// The plain-AMQP side (a backend service publishing, topology clean-up) uses amqplib;
// RabbitMQ's own view (consumers, bindings) comes from `rabbitmqctl`.

import { execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';

import WebSocket from 'ws';
import { networkClass } from '../common/network.mjs';
import { spawnHub, tail, backgroundSleep } from '../common/hub-process.mjs';

export { tail };
import amqplib from 'amqplib';
import { Centrifuge } from 'centrifuge';

const here = path.dirname(fileURLToPath(import.meta.url));

/** Path of the hub binary: $HUB_BIN, or the workspace's debug build. */
export const HUB_BIN = process.env.HUB_BIN
  ? path.resolve(process.env.HUB_BIN)
  : path.resolve(here, '../../../target/debug/hub');

/**
 * Where hub logs go: $HUB_CLUSTER_LOG_DIR, else $HUB_TEST_LOG_DIR/cluster, else
 * target/cluster-test-logs of the workspace.
 */
const LOG_DIR = process.env.HUB_CLUSTER_LOG_DIR
  ? path.resolve(process.env.HUB_CLUSTER_LOG_DIR)
  : process.env.HUB_TEST_LOG_DIR
    ? path.resolve(process.env.HUB_TEST_LOG_DIR, 'cluster')
    : path.resolve(here, '../../../target/cluster-test-logs');

/** RabbitMQ the nodes join. */
export const AMQP_URL = process.env.AMQP_URL || 'amqp://guest:guest@127.0.0.1:5672/%2f';

/** Shards per prefix (the hub's default `amqp_shards`). */
export const SHARDS = 16;

/** Default time a single wait may take, in milliseconds. */
export const WAIT_MS = 10000;

const STARTUP_MS = 30000;
// The hub's own budget is shutdown_timeout (10 s) for sessions plus as much for the HTTP
// server; a node with no clients left should take far less.
const SHUTDOWN_MS = 25000;

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A fresh AMQP prefix: `t<hex>` (letters and digits only, as `amqp_prefix` allows). */
export function newPrefix(tag = '') {
  return `t${tag}${randomBytes(4).toString('hex')}`;
}

/** Awaits a promise for at most `ms`; the rejection names what was awaited. */
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
 * Calls `probe` every `interval` ms until it returns a truthy value (resolved with it) or
 * `ms` pass; then rejects naming `what` and the last value or error of the probe.
 */
export async function poll(probe, what, { ms = WAIT_MS, interval = 200 } = {}) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() >= deadline) {
      const detail = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timed out after ${ms} ms waiting for ${what}; last probe: ${detail}`);
    }
    await sleep(interval);
  }
}

/** Resolves with the first `event` of `emitter` whose context passes `filter`. */
export function nextEvent(emitter, event, what, { filter = () => true, ms = WAIT_MS } = {}) {
  let listener;
  const p = new Promise((resolve) => {
    listener = (ctx) => {
      if (filter(ctx)) resolve(ctx);
    };
    emitter.on(event, listener);
  });
  return withTimeout(p, what, ms).finally(() => emitter.off(event, listener));
}

/**
 * Records every `event` of `emitter` from now on: `.items`, and `.waitFor(n, what)`
 * resolving once at least n were recorded (or `.until(pred, what)`).
 */
export function record(emitter, event) {
  const items = [];
  const waiters = [];
  emitter.on(event, (ctx) => {
    items.push(ctx);
    for (const w of [...waiters]) {
      if (w.pred(items)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(items);
      }
    }
  });
  const until = (pred, what, ms = WAIT_MS) => {
    if (pred(items)) return Promise.resolve(items);
    const p = new Promise((resolve) => waiters.push({ pred, resolve }));
    return withTimeout(p, `${what} (recorded ${items.length} so far)`, ms).catch((e) => {
      e.message += `; recorded: ${JSON.stringify(items.slice(-30).map(summarize))}`;
      throw e;
    });
  };
  return {
    items,
    until,
    waitFor: (n, what, ms = WAIT_MS) => until((xs) => xs.length >= n, what, ms),
  };
}

function summarize(ctx) {
  const s = {};
  for (const k of ['channel', 'offset', 'data', 'wasRecovering', 'recovered', 'streamPosition', 'code', 'reason']) {
    if (ctx && ctx[k] !== undefined) s[k] = ctx[k];
  }
  return s;
}

// ---- hub nodes ------------------------------------------------------------------------

let nodeCounter = 0;

/**
 * Starts one hub node joined to RabbitMQ under `prefix`. Resolves to
 * { name, url, wsUrl, sseUrl, apiUrl, emulationUrl, logFile, log(), kill(sig), stop(), exited }
 * once it logs "listening on http://ADDR".
 */
export async function startNode({ name, prefix, args = [], env = {}, amqpUrl = AMQP_URL }) {
  mkdirSync(LOG_DIR, { recursive: true });
  nodeCounter += 1;
  const logFile = path.join(LOG_DIR, `${prefix}-${name}-${process.pid}-${nodeCounter}.log`);
  const fullArgs = ['--dev', '--node-name', name, '--amqp-url', amqpUrl, '--listen', '127.0.0.1:0', ...args];
  const { child, addr, exited, exitInfo, log } = await spawnHub({
    bin: HUB_BIN,
    args: fullArgs,
    env: { HUB_AMQP_PREFIX: prefix, ...env },
    logFile,
    logHeader: `$ HUB_AMQP_PREFIX=${prefix} ${HUB_BIN} ${fullArgs.join(' ')}`,
    label: `node ${name}`,
    startupMs: STARTUP_MS,
  });
  let expectedExit = false;
  exited.then(({ code, signal }) => {
    if (!expectedExit) {
      console.error(`node ${name} (${addr}) exited unexpectedly (code ${code}, signal ${signal}); log: ${logFile}\n${tail(log())}`);
    }
  });
  const node = {
    name,
    addr,
    pid: child.pid,
    url: `http://${addr}`,
    wsUrl: `ws://${addr}/connection/websocket`,
    sseUrl: `http://${addr}/connection/sse`,
    emulationUrl: `http://${addr}/emulation`,
    apiUrl: `http://${addr}/api`,
    logFile,
    exited,
    log,
    get running() {
      return exitInfo() === null;
    },
    /** Sends `signal` (SIGKILL by default) and waits for the exit. */
    async kill(signal = 'SIGKILL') {
      expectedExit = true;
      if (exitInfo()) return exitInfo();
      child.kill(signal);
      return withTimeout(exited, `node ${name} to exit after ${signal}`, SHUTDOWN_MS);
    },
    /** SIGTERM; resolves with the exit { code, signal } (SIGKILL after the budget). */
    async stop() {
      expectedExit = true;
      if (exitInfo()) return exitInfo();
      child.kill('SIGTERM');
      const res = await Promise.race([exited, backgroundSleep(SHUTDOWN_MS).then(() => null)]);
      if (res === null) {
        child.kill('SIGKILL');
        await exited;
        throw new Error(`node ${name} did not exit within ${SHUTDOWN_MS} ms after SIGTERM; log: ${logFile}\n${tail(log())}`);
      }
      return res;
    },
  };
  return node;
}

/**
 * Starts nodes `names` (default n1, n2, n3) one after the other under a fresh prefix and
 * waits until each node's /api/info lists all of them. Resolves to
 * { prefix, nodes: [...], byName: {n1, ...}, close() }.
 */
export async function startCluster({ names = ['n1', 'n2', 'n3'], prefix = newPrefix(), args = [] } = {}) {
  const cluster = {
    prefix,
    nodes: [],
    byName: {},
    async close() {
      const errors = [];
      await Promise.all(
        cluster.nodes.map((n) =>
          n.stop().then(
            (res) => {
              if (res.code !== 0 && res.signal !== 'SIGKILL') {
                errors.push(`node ${n.name} exited with code ${res.code} (signal ${res.signal}) after SIGTERM; log: ${n.logFile}`);
              }
            },
            (e) => errors.push(e.message),
          ),
        ),
      );
      try {
        await deleteTopology(prefix);
      } catch (e) {
        errors.push(`clean-up of prefix ${prefix}: ${e.message}`);
      }
      if (errors.length) throw new Error(errors.join('\n'));
    },
  };
  try {
    for (const name of names) {
      const node = await startNode({ name, prefix, args });
      cluster.nodes.push(node);
      cluster.byName[name] = node;
    }
    for (const node of cluster.nodes) {
      await poll(
        async () => {
          const info = await apiResult(node, 'info', {});
          const seen = info.nodes.map((n) => n.name).sort();
          return names.every((n) => seen.includes(n)) ? info : false;
        },
        `/api/info of ${node.name} to list nodes ${names.join(', ')} (heartbeats)`,
        { ms: 15000 },
      );
    }
  } catch (e) {
    await cluster.close().catch(() => {});
    throw e;
  }
  return cluster;
}

// ---- server API ---------------------------------------------------------------------------

/**
 * POST {node.apiUrl}/{method}: resolves with { status, json, text, ms } whatever the answer
 * (rejects only when no HTTP answer comes within `ms`).
 */
export async function apiRaw(node, method, params, { key = 'dev', ms = WAIT_MS } = {}) {
  const url = `${node.apiUrl}/${method}`;
  const body = JSON.stringify(params);
  const started = Date.now();
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), ms);
  let res;
  let text;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'X-API-Key': key, 'Content-Type': 'application/json' },
      body,
      signal: controller.signal,
    });
    text = await res.text();
  } catch (e) {
    const cause = e.cause ? ` (${e.cause.code || e.cause.message})` : '';
    const why = controller.signal.aborted ? `no answer within ${ms} ms` : `${e.message}${cause}`;
    throw new Error(`POST ${url} ${body} failed: ${why}`);
  } finally {
    clearTimeout(timer);
  }
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    // left null: callers report the text
  }
  return { status: res.status, json, text, ms: Date.now() - started, url, body };
}

/** Like apiRaw, but resolves with `result` and rejects on any HTTP or protocol error. */
export async function apiResult(node, method, params, opts) {
  const r = await apiRaw(node, method, params, opts);
  if (r.status !== 200 || !r.json || r.json.error) {
    throw new Error(`POST ${r.url} ${r.body} -> HTTP ${r.status} ${r.text}`);
  }
  return r.json.result ?? {};
}

// ---- clients -----------------------------------------------------------------------------

/** Keeps every SDK client a test creates, so its clean-up disconnects them all. */
export class Clients {
  constructor() {
    this.all = [];
  }

  /** A new, not yet connected client of `endpoint` (a ws URL or a transports list). */
  create(endpoint, options = {}) {
    const client = new Centrifuge(endpoint, { websocket: WebSocket, ...options });
    this.all.push(client);
    return client;
  }

  /** A connected client of `node` (its WebSocket endpoint): resolves with { client, id, node }. */
  async connected(node, options = {}, label = `client of ${node.name}`) {
    const client = this.create(node.wsUrl, options);
    const ctx = nextEvent(client, 'connected', `${label} to connect to ${node.wsUrl}`);
    client.connect();
    const c = await ctx;
    return { client, id: c.client, ctx: c };
  }

  closeAll() {
    for (const c of this.all) {
      try {
        c.disconnect();
      } catch {
        // already gone
      }
      c.removeAllListeners();
    }
    this.all = [];
  }
}

/**
 * Subscribes `client` to `channel` and resolves with { sub, ctx } once subscribed.
 * Publications are recorded from before the subscribe command (`sub.pubs`), and so are
 * every `subscribed` and `unsubscribed`/`subscribing` event (`sub.subscribedEvents`, ...).
 */
export async function subscribe(client, channel, options = {}, label = 'subscription') {
  const sub = client.newSubscription(channel, options);
  sub.pubs = record(sub, 'publication');
  sub.subscribedEvents = record(sub, 'subscribed');
  sub.subscribingEvents = record(sub, 'subscribing');
  sub.errors = record(sub, 'error');
  let onUnsubscribed;
  const outcome = new Promise((resolve, reject) => {
    onUnsubscribed = (u) =>
      reject(new Error(`${label} to "${channel}" was unsubscribed (code ${u.code}, "${u.reason}") instead of subscribed`));
    sub.once('unsubscribed', onUnsubscribed);
  });
  sub.subscribe();
  try {
    await withTimeout(Promise.race([sub.subscribedEvents.waitFor(1, 'subscribed', WAIT_MS * 2), outcome]), `${label} to "${channel}" to be subscribed`);
    return { sub, ctx: sub.subscribedEvents.items[0] };
  } catch (e) {
    if (sub.errors.items.length) e.message += `; subscription errors: ${JSON.stringify(sub.errors.items)}`;
    throw e;
  } finally {
    sub.off('unsubscribed', onUnsubscribed);
  }
}

/** A network a test can cut: see ../common/network.mjs. */
export const Network = networkClass(WebSocket);

// ---- RabbitMQ ------------------------------------------------------------------------------

/** Runs `rabbitmqctl args...` and resolves with its stdout (rejects with its stderr). */
export function rabbitmqctl(args, { ms = 60000 } = {}) {
  return new Promise((resolve, reject) => {
    execFile('rabbitmqctl', args, { timeout: ms, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/usr/local/sbin` } }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`rabbitmqctl ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      } else {
        resolve(stdout);
      }
    });
  });
}

/** Tab-separated rows of a `rabbitmqctl list_* -q` output (header line dropped if any). */
function rows(stdout, columns) {
  return stdout
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => l.split('\t'))
    .filter((cols) => cols.join('\t') !== columns.join('\t'));
}

/** Consumers of the prefix's shard queues: [{ queue, tag, active }]. */
export async function shardConsumers(prefix) {
  const columns = ['queue_name', 'consumer_tag', 'active'];
  const out = await rabbitmqctl(['list_consumers', '-q', ...columns]);
  return rows(out, columns)
    .filter(([q]) => q.startsWith(`${prefix}.shard.`))
    .map(([queue, tag, active]) => ({ queue, tag, active: active === 'true' }));
}

/**
 * Which node uid is the active consumer of each shard: { 'p.shard.0': uid, ... }.
 * Consumer tags are `owner-<uid>-<k>`.
 */
export async function shardOwners(prefix) {
  const owners = {};
  for (const c of await shardConsumers(prefix)) {
    if (!c.active) continue;
    const m = /^owner-(.+)-(\d+)$/.exec(c.tag);
    owners[c.queue] = m ? m[1] : c.tag;
  }
  return owners;
}

/** Bindings whose destination is a queue of the prefix: [{ source, destination, key }]. */
export async function prefixBindings(prefix) {
  const columns = ['source_name', 'destination_name', 'routing_key'];
  const out = await rabbitmqctl(['list_bindings', '-q', ...columns]);
  return rows(out, columns)
    .filter(([, dest]) => dest && dest.startsWith(`${prefix}.`))
    .map(([source, destination, key]) => ({ source, destination, key: key ?? '' }));
}

/** Publishes like a backend service: exchange `<prefix>.publish`, routing key = channel. */
export async function amqpPublish(prefix, channel, data, { headers, messageId } = {}) {
  const conn = await withTimeout(amqplib.connect(AMQP_URL), `a connection to RabbitMQ at ${AMQP_URL}`);
  try {
    const ch = await conn.createConfirmChannel();
    ch.publish(`${prefix}.publish`, channel, Buffer.from(JSON.stringify(data)), {
      contentType: 'application/json',
      headers,
      messageId,
    });
    await withTimeout(ch.waitForConfirms(), `RabbitMQ's confirm of a publication to ${prefix}.publish`);
    await ch.close();
  } finally {
    await conn.close().catch(() => {});
  }
}

/** A long-lived AMQP publisher (one connection, one confirm channel). */
export async function amqpPublisher(prefix) {
  const conn = await withTimeout(amqplib.connect(AMQP_URL), `a connection to RabbitMQ at ${AMQP_URL}`);
  const ch = await conn.createConfirmChannel();
  return {
    async publish(channel, data, options = {}) {
      ch.publish(`${prefix}.publish`, channel, Buffer.from(JSON.stringify(data)), { contentType: 'application/json', ...options });
      await withTimeout(ch.waitForConfirms(), `RabbitMQ's confirm of a publication to ${prefix}.publish`);
    },
    async close() {
      await ch.close().catch(() => {});
      await conn.close().catch(() => {});
    },
  };
}

/**
 * Deletes the prefix's shard queues and exchanges (node queues are exclusive and go with
 * their nodes). Safe to call when some do not exist.
 */
export async function deleteTopology(prefix, shards = SHARDS) {
  const conn = await withTimeout(amqplib.connect(AMQP_URL), `a connection to RabbitMQ at ${AMQP_URL} (clean-up)`, 30000);
  conn.on('error', () => {});
  try {
    // A failed operation closes its channel: one channel per operation.
    const attempt = async (op) => {
      const ch = await conn.createChannel();
      ch.on('error', () => {});
      try {
        await op(ch);
      } catch {
        // absent already
      }
      await ch.close().catch(() => {});
    };
    for (let k = 0; k < shards; k++) await attempt((ch) => ch.deleteQueue(`${prefix}.shard.${k}`));
    for (const x of ['publish', 'deliver', 'broadcast', 'direct']) await attempt((ch) => ch.deleteExchange(`${prefix}.${x}`));
  } finally {
    await conn.close().catch(() => {});
  }
}

/** Node info by name from a node's /api/info. */
export async function infoByName(node) {
  const info = await apiResult(node, 'info', {});
  return Object.fromEntries(info.nodes.map((n) => [n.name, n]));
}

/**
 * RabbitMQ's view of the prefix, for failure messages: its queues with their consumer and
 * message counts, and the number of bindings to them.
 */
export async function describePrefix(prefix) {
  try {
    const queues = (await rabbitmqctl(['list_queues', '-q', 'name', 'consumers', 'messages']))
      .split('\n')
      .filter((l) => l.startsWith(`${prefix}.`))
      .map((l) => l.replace(/\t/g, ' '));
    const bindings = await prefixBindings(prefix);
    return `RabbitMQ has ${queues.length} queues of ${prefix} (name consumers messages): ${JSON.stringify(queues)}; ${bindings.length} bindings to them`;
  } catch (e) {
    return `(could not ask rabbitmqctl: ${e.message})`;
  }
}
