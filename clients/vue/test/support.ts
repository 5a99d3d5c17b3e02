/**
 * Test support: a real hub process per test file, a bounded `waitFor`, the server API, and
 * hubs built with the Node transports (`ws`, fetch, ReadableStream).
 *
 * Every wait has a timeout and fails with a message naming what it waited for and, for the
 * hub process, where its log is.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import WebSocket from 'ws';

import { createHub, type Hub, type HubOptions } from '../src/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const HUB_BIN = process.env.HUB_BIN ? path.resolve(process.env.HUB_BIN) : path.resolve(here, '../../../target/debug/hub');
const LOG_DIR = path.resolve(here, '../test-output');

export interface HubProcess {
  url: string;
  logFile: string;
  /** POST /api/<method> with the dev key; resolves to the `result` (throws on `error`). */
  api: <R = any>(method: string, body: unknown) => Promise<R>;
  stop: () => Promise<void>;
}

let started = 0;

export async function startHub(args: string[] = ['--dev'], name = 'hub'): Promise<HubProcess> {
  mkdirSync(LOG_DIR, { recursive: true });
  started += 1;
  const logFile = path.join(LOG_DIR, `${name}-${process.pid}-${started}.log`);
  const log = createWriteStream(logFile);
  const fullArgs = [...args, '--listen', '127.0.0.1:0'];
  log.write(`$ ${HUB_BIN} ${fullArgs.join(' ')}\n`);
  const child: ChildProcess = spawn(HUB_BIN, fullArgs, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1' },
  });
  let text = '';
  const addr = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`hub did not print "listening on" within 20s; log: ${logFile}`)), 20_000);
    const onData = (chunk: Buffer): void => {
      log.write(chunk);
      text += chunk.toString('utf8');
      const m = /listening on http:\/\/(\S+)/.exec(text);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot start ${HUB_BIN}: ${e.message} (build it with cargo build -p hub)`));
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`hub exited with ${code} before listening; log: ${logFile}`));
    });
  });
  const url = `http://${addr}`;
  return {
    url,
    logFile,
    api: (method, body) => apiCall(url, method, body, logFile),
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const timeout = new Promise<void>((resolve) =>
        setTimeout(() => {
          child.kill('SIGKILL');
          resolve();
        }, 10_000),
      );
      await Promise.race([exited, timeout]);
      log.end();
    },
  };
}

/** Polls `check` until it returns a truthy value; fails after `timeout` ms with `message`. */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  message: string,
  timeout = 5_000,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeout;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as NonNullable<T>;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() > deadline) {
      const detail = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new Error(`timed out after ${timeout} ms waiting for: ${message}${detail}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A hub client for Node: `ws` for WebSocket, Node's fetch and ReadableStream for HTTP streaming. */
export function nodeHub(url: string, options: HubOptions = {}): Hub {
  return createHub({
    url,
    ...options,
    centrifuge: {
      websocket: WebSocket,
      fetch: globalThis.fetch.bind(globalThis),
      readableStream: ReadableStream,
      minReconnectDelay: 100,
      maxReconnectDelay: 1_000,
      ...options.centrifuge,
    },
  });
}

let channelCounter = 0;
/** A channel name no other test uses. */
export function uniqueChannel(prefix = 'chat:t'): string {
  channelCounter += 1;
  return `${prefix}${process.pid}-${Date.now().toString(36)}-${channelCounter}`;
}

/** POST /api/<method> over node:http (independent of the test environment's fetch). */
function apiCall<R>(url: string, method: string, body: unknown, logFile: string): Promise<R> {
  const payload = JSON.stringify(body);
  return new Promise<R>((resolve, reject) => {
    const req = http.request(
      `${url}/api/${method}`,
      { method: 'POST', headers: { 'X-API-Key': 'dev', 'Content-Type': 'application/json' }, timeout: 5_000 },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          try {
            const json = JSON.parse(text) as { result?: R; error?: unknown };
            if (res.statusCode !== 200 || json.error) {
              reject(new Error(`api ${method} -> ${res.statusCode} ${text}; hub log: ${logFile}`));
            } else {
              resolve(json.result as R);
            }
          } catch {
            reject(new Error(`api ${method} -> ${res.statusCode} ${text}; hub log: ${logFile}`));
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`api ${method} timed out after 5 s; hub log: ${logFile}`)));
    req.on('error', reject);
    req.end(payload);
  });
}
