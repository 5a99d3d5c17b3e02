/**
 * End-to-end support: the hub binary serving dist/, the system Chromium through
 * playwright-core (never a downloaded browser), bounded waits, screenshots.
 *
 * Every wait has a timeout and fails with a message naming what it waited for; hub logs and
 * screenshots go to test-output/ (git-ignored).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium, type Browser, type Page } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const DEMO_DIR = path.resolve(here, '..');
const REPO = path.resolve(DEMO_DIR, '../..');
export const OUTPUT_DIR = path.join(DEMO_DIR, 'test-output');
export const SCREENSHOT_DIR = path.join(OUTPUT_DIR, 'screenshots');
const HUB_BIN = process.env.HUB_BIN ? path.resolve(process.env.HUB_BIN) : path.join(REPO, 'target/debug/hub');
const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';

export interface HubProcess {
  url: string;
  logFile: string;
  api: <R = any>(method: string, body: unknown) => Promise<R>;
  stop: () => Promise<void>;
}

export async function startHub(name: string): Promise<HubProcess> {
  const dist = path.join(DEMO_DIR, 'dist');
  if (!existsSync(path.join(dist, 'index.html'))) throw new Error(`${dist}/index.html missing: run npm run build first`);
  mkdirSync(OUTPUT_DIR, { recursive: true });
  const logFile = path.join(OUTPUT_DIR, `${name}.hub.log`);
  const log = createWriteStream(logFile);
  // `--dev` serves the demo compiled into the binary; HUB_STATIC_DIR serves this dist/ instead,
  // so the tests run on the build clients/test.sh just made even if the binary predates it.
  const args = ['--dev', '--listen', '127.0.0.1:0', '--ping-interval', '1s', '--pong-timeout', '1s'];
  log.write(`$ HUB_STATIC_DIR=${dist} ${HUB_BIN} ${args.join(' ')}\n`);
  const child: ChildProcess = spawn(HUB_BIN, args, {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1', HUB_STATIC_DIR: dist },
  });
  let text = '';
  const addr = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`hub did not print "listening on" within 20 s; log: ${logFile}`)), 20_000);
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
    api: async (method, body) => {
      const res = await fetch(`${url}/api/${method}`, {
        method: 'POST',
        headers: { 'X-API-Key': 'dev', 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(5_000),
      });
      const json = (await res.json()) as { result?: any; error?: unknown };
      if (!res.ok || json.error) throw new Error(`api ${method} -> ${res.status} ${JSON.stringify(json)}; hub log: ${logFile}`);
      return json.result;
    },
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          child.kill('SIGKILL');
          resolve();
        }, 10_000);
      });
      await Promise.race([exited, timeout]);
      clearTimeout(timer);
      log.end();
    },
  };
}

export interface BrowserHandle {
  browser: Browser;
  close: () => Promise<void>;
}

/**
 * The OS Chromium, headless. playwright-core gives every launch a fresh temporary profile
 * (its own --user-data-dir, removed on close), so no profile is passed here.
 */
export async function launchBrowser(): Promise<BrowserHandle> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} missing: apt-get install chromium (clients/test.sh does)`);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30_000,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
    ],
  });
  return {
    browser,
    close: async () => {
      await browser.close();
    },
  };
}

/** Polls `check` until truthy; fails after `timeout` ms with `message` (and the last error). */
export async function waitFor<T>(check: () => T | Promise<T>, message: string, timeout = 10_000): Promise<NonNullable<T>> {
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
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Text of the element with `data-testid`, or '' when it is not there. */
export async function testText(page: Page, id: string): Promise<string> {
  const el = page.getByTestId(id).first();
  return (await el.count()) > 0 ? ((await el.textContent({ timeout: 2_000 })) ?? '').trim() : '';
}

/** Waits until the status bar says connected; returns the transport in use. */
export async function waitConnected(page: Page, what: string, timeout = 15_000): Promise<string> {
  await waitFor(async () => (await testText(page, 'status-state')) === 'connected', `${what}: status bar says connected`, timeout);
  return testText(page, 'status-transport');
}

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const file = path.join(SCREENSHOT_DIR, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true, timeout: 10_000 });
  return file;
}

/** Offsets of the ticker's publications the page holds, in order. */
export async function tickOffsets(page: Page): Promise<number[]> {
  const text = await page.getByTestId('tick-offsets').textContent({ timeout: 2_000 });
  return (text ?? '')
    .split(',')
    .filter(Boolean)
    .map(Number);
}
