// The demo in headless Chromium against `hub --dev` serving dist/: chat and presence between
// two people, server API publications, transport fallbacks, recovery after a cut.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';

import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';

import {
  DEMO_DIR,
  launchBrowser,
  screenshot,
  startHub,
  testText,
  tickOffsets,
  waitConnected,
  waitFor,
  type BrowserHandle,
  type HubProcess,
} from './support';

const run = promisify(execFile);

let hub: HubProcess;
let chrome: BrowserHandle;
const contexts: BrowserContext[] = [];

beforeAll(async () => {
  hub = await startHub('demo-e2e');
  chrome = await launchBrowser();
});
afterAll(async () => {
  await chrome?.close();
  await hub?.stop();
});
afterEach(async (ctx) => {
  if (ctx.task.result?.state === 'fail') {
    const name = `FAILED-${ctx.task.name.replace(/[^a-z0-9]+/gi, '-').slice(0, 60)}`;
    for (const [i, c] of contexts.entries()) {
      for (const p of c.pages()) await screenshot(p, `${name}-${i}`).catch(() => undefined);
    }
  }
  for (const c of contexts.splice(0)) await c.close();
});

/** A fresh browser context (a separate person) with its page; console errors are kept. */
async function openPerson(): Promise<{ context: BrowserContext; page: Page; errors: string[] }> {
  const context = await chrome.browser.newContext({ viewport: { width: 1200, height: 800 } });
  contexts.push(context);
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  return { context, page, errors };
}

/**
 * Makes every WebSocket to the hub fail before it opens (the page sees a close event, never
 * an open one, as when a proxy refuses the upgrade), and, with `httpStream`, aborts the
 * HTTP-streaming POSTs too.
 */
async function blockTransports(page: Page, { httpStream = false } = {}): Promise<{ wsAttempts: () => number }> {
  let attempts = 0;
  await page.routeWebSocket(/\/connection\/websocket/, (ws) => {
    attempts += 1;
    ws.close({ code: 1006, reason: 'blocked by the test' });
  });
  if (httpStream) await page.route('**/connection/http_stream*', (route) => route.abort('blockedbyclient'));
  return { wsAttempts: () => attempts };
}

async function setNickname(page: Page, name: string): Promise<void> {
  const input = page.getByTestId('nickname');
  await input.fill(name, { timeout: 5_000 });
  await input.press('Enter', { timeout: 5_000 });
}

async function say(page: Page, text: string): Promise<void> {
  await page.getByTestId('chat-input').fill(text, { timeout: 5_000 });
  await page.getByTestId('chat-send').click({ timeout: 5_000 });
}

const chatTexts = (page: Page): Promise<string[]> =>
  page.locator('[data-testid="chat-message"]').allTextContents();
const presenceNames = (page: Page): Promise<string[]> => page.getByTestId('presence-item').allTextContents();

/** Offset of the newest publication of `channel` (0 when none), from the server API. */
async function streamTop(channel = 'ticker'): Promise<number> {
  const r = await hub.api<{ offset?: number }>('history', { channel, limit: 0 });
  return r.offset ?? 0;
}

/** Waits until the page holds the ticker offsets from+1 ..= from+count. */
async function waitTicks(page: Page, from: number, count: number, what: string, timeout = 10_000): Promise<number[]> {
  const want = Array.from({ length: count }, (_, i) => from + 1 + i);
  return waitFor(async () => {
    const held = await tickOffsets(page);
    return want.every((o) => held.includes(o)) ? held : null;
  }, `${what}: ticker offsets ${want.join(',')} on the page`, timeout);
}

/** Publishes ticks through the demo's own publisher script (the server API). */
async function runTicker(count: number, channel = 'ticker'): Promise<void> {
  await run(process.execPath, [path.join(DEMO_DIR, 'scripts/ticker.mjs'), '--count', String(count), '--interval', '20'], {
    env: { ...process.env, HUB_URL: hub.url, HUB_API_KEY: 'dev', TICKER_CHANNEL: channel },
    timeout: 20_000,
  });
}

describe('demo', () => {
  test.each(['json', 'protobuf'] as const)('two people chat and see each other in presence (%s)', async (protocol) => {
    const room = `/?room=e2e-${protocol}-${Date.now().toString(36)}&protocol=${protocol}`;
    const alice = await openPerson();
    const bob = await openPerson();
    await alice.page.goto(hub.url + room, { timeout: 15_000 });
    expect(await waitConnected(alice.page, 'alice')).toBe('websocket');
    expect(await testText(alice.page, 'status-encoding')).toBe(protocol);
    await setNickname(alice.page, 'alice');
    await bob.page.goto(hub.url + room, { timeout: 15_000 });
    await waitConnected(bob.page, 'bob');
    expect(await testText(bob.page, 'status-encoding')).toBe(protocol);
    await setNickname(bob.page, 'bob');

    for (const [who, p] of [['alice', alice.page], ['bob', bob.page]] as const) {
      await waitFor(async () => (await testText(p, 'presence-count')) === '2', `${who} sees two people present`);
      await waitFor(async () => {
        const names = (await presenceNames(p)).join('|');
        return names.includes('alice') && names.includes('bob');
      }, `${who} sees alice and bob by name in presence`);
    }

    await say(alice.page, 'hi bob');
    await waitFor(async () => (await chatTexts(bob.page)).some((t) => t.includes('alice') && t.includes('hi bob')), 'bob receives "hi bob"');
    await say(bob.page, 'hello alice');
    await waitFor(async () => (await chatTexts(alice.page)).some((t) => t.includes('bob') && t.includes('hello alice')), 'alice receives "hello alice"');
    await screenshot(alice.page, `chat-alice-${protocol}`);
    await screenshot(bob.page, `chat-bob-${protocol}`);

    // Bob closes his tab: alice sees him leave.
    await bob.context.close();
    contexts.splice(contexts.indexOf(bob.context), 1);
    await waitFor(async () => (await testText(alice.page, 'presence-count')) === '1', 'alice sees bob leave');
    expect(alice.errors).toEqual([]);
  });

  test('publications of the backend publisher (server API) appear on the ticker', async () => {
    const person = await openPerson();
    await person.page.goto(hub.url + '/', { timeout: 15_000 });
    await waitConnected(person.page, 'page');
    await waitFor(async () => (await testText(person.page, 'ticker-state')).startsWith('subscribed'), 'ticker subscribed');
    const top = await streamTop();
    await runTicker(4);
    await waitTicks(person.page, top, 4, 'four new ticks');
    await waitFor(async () => (await person.page.getByTestId('quote').count()) === 4, 'four symbols quoted');
    await screenshot(person.page, 'ticker');
    expect(person.errors).toEqual([]);
  });

  test.each(['json', 'protobuf'] as const)('with WebSocket blocked the page falls back to HTTP streaming and still works (%s)', async (protocol) => {
    const person = await openPerson();
    const blocked = await blockTransports(person.page);
    await person.page.goto(hub.url + `/?room=fallback-${protocol}-${Date.now().toString(36)}&protocol=${protocol}`, { timeout: 15_000 });
    expect(await waitConnected(person.page, 'page with WebSocket blocked')).toBe('http_stream');
    expect(await testText(person.page, 'status-encoding')).toBe(protocol);
    expect(blocked.wsAttempts()).toBeGreaterThanOrEqual(1);
    await waitFor(async () => (await testText(person.page, 'ticker-state')).startsWith('subscribed'), 'ticker subscribed over http_stream');
    const top = await streamTop();
    await runTicker(2);
    await waitTicks(person.page, top, 2, 'two ticks over http_stream');
    // Commands after connect go through /emulation: sending a chat message proves that path.
    await say(person.page, `over http_stream in ${protocol}`);
    await waitFor(async () => (await chatTexts(person.page)).some((t) => t.includes(`over http_stream in ${protocol}`)), 'own message echoed');
    await screenshot(person.page, `fallback-http-stream-${protocol}`);
    expect(person.errors).toEqual([]);
  });

  test('with WebSocket and HTTP streaming blocked the page falls back to SSE', async () => {
    const person = await openPerson();
    await blockTransports(person.page, { httpStream: true });
    await person.page.goto(hub.url + `/?room=sse-${Date.now().toString(36)}`, { timeout: 15_000 });
    expect(await waitConnected(person.page, 'page with WebSocket and HTTP streaming blocked')).toBe('sse');
    await waitFor(async () => (await testText(person.page, 'ticker-state')).startsWith('subscribed'), 'ticker subscribed over sse');
    const top = await streamTop();
    await runTicker(2);
    await waitTicks(person.page, top, 2, 'two ticks over sse');
    await say(person.page, 'over sse');
    await waitFor(async () => (await chatTexts(person.page)).some((t) => t.includes('over sse')), 'own message echoed');
    await screenshot(person.page, 'fallback-sse');
    expect(person.errors).toEqual([]);
  });

  test('after the connection is cut, everything published meanwhile appears with no gap', async () => {
    const person = await openPerson();
    await person.page.goto(hub.url + '/', { timeout: 15_000 });
    await waitConnected(person.page, 'page');
    await waitFor(async () => (await testText(person.page, 'ticker-state')).startsWith('subscribed'), 'ticker subscribed');
    const first = await streamTop();
    await runTicker(2);
    await waitTicks(person.page, first, 2, 'ticks before the cut');
    const last = first + 2;
    const reconnectsBefore = Number(await testText(person.page, 'status-reconnects'));

    await person.context.setOffline(true);
    await waitFor(async () => (await testText(person.page, 'status-state')) === 'connecting', 'the page notices the cut');
    await runTicker(5); // published while the page is cut off
    await screenshot(person.page, 'cut-offline');
    await person.context.setOffline(false);

    await waitConnected(person.page, 'page after the cut', 20_000);
    const after = await waitTicks(person.page, last, 5, 'the five ticks published during the cut', 20_000);
    // No gap and no duplicate: the offsets held are consecutive.
    for (let i = 1; i < after.length; i += 1) expect(after[i], `offsets ${after.join(',')}`).toBe(after[i - 1]! + 1);
    expect(after.slice(-5)).toEqual([last + 1, last + 2, last + 3, last + 4, last + 5]);
    expect(await testText(person.page, 'ticker-state')).toBe('subscribed · recovered true');
    expect(Number(await testText(person.page, 'status-reconnects'))).toBeGreaterThan(reconnectsBefore);
    await screenshot(person.page, 'cut-recovered');
    expect(person.errors).toEqual([]);
  });
});
