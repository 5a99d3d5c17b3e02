// createHub against a real hub: state transitions, transport, fallback, reconnects, tokens.
import { execFileSync } from 'node:child_process';

import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { watch } from 'vue';

import type { Hub } from '../src/index.js';
import { HUB_BIN, nodeHub, startHub, waitFor, type HubProcess } from './support.js';

let server: HubProcess;
const hubs: Hub[] = [];
const track = (hub: Hub): Hub => {
  hubs.push(hub);
  return hub;
};

beforeAll(async () => {
  server = await startHub(['--dev', '--token-hmac-secret', 'test-secret'], 'hub-test');
});
afterAll(async () => {
  await server?.stop();
});
afterEach(() => {
  for (const hub of hubs.splice(0)) hub.dispose();
});

describe('createHub', () => {
  test('goes disconnected → connecting → connected over websocket by default', async () => {
    const hub = track(nodeHub(server.url, { immediate: false }));
    const seen: string[] = [hub.state.value];
    watch(hub.state, (s) => seen.push(s), { flush: 'sync' });
    expect(hub.state.value).toBe('disconnected');
    hub.connect();
    await waitFor(() => hub.state.value === 'connected', 'hub connected');
    expect(seen).toEqual(['disconnected', 'connecting', 'connected']);
    expect(hub.transport.value).toBe('websocket');
    expect(hub.clientId.value).toMatch(/.+/);
    expect(hub.lastDisconnect.value).toBeNull();
  });

  test('disconnect() records the reason and leaves the hub disconnected', async () => {
    const hub = track(nodeHub(server.url));
    await waitFor(() => hub.state.value === 'connected', 'hub connected');
    hub.disconnect();
    expect(hub.state.value).toBe('disconnected');
    expect(hub.lastDisconnect.value).toMatchObject({ code: 0, reconnect: false });
    expect(hub.clientId.value).toBeNull();
  });

  test('a server-side disconnect with a reconnect code counts a reconnect and connects again', async () => {
    const hub = track(nodeHub(server.url));
    const first = await waitFor(() => hub.state.value === 'connected' && hub.clientId.value, 'first connect');
    await server.api('disconnect', { user: '', client: first, disconnect: { code: 3011 } });
    await waitFor(() => hub.reconnects.value === 1, 'reconnects to become 1');
    expect(hub.lastDisconnect.value).toMatchObject({ code: 3011, reconnect: true });
    const second = await waitFor(() => hub.state.value === 'connected' && hub.clientId.value, 'reconnect');
    expect(second).not.toBe(first);
  });

  test('falls back to http_stream when the WebSocket endpoint fails, and counts the failed attempt', async () => {
    const hub = track(
      nodeHub(server.url, {
        transports: [
          // A path the hub does not serve: the WebSocket handshake fails.
          { transport: 'websocket', endpoint: `${server.url.replace('http', 'ws')}/blocked/websocket` },
          'http_stream',
        ],
      }),
    );
    await waitFor(() => hub.state.value === 'connected', 'connected over the fallback', 10_000);
    expect(hub.transport.value).toBe('http_stream');
    // The failed WebSocket attempt was reported, then cleared by the successful connect.
    expect(hub.reconnectAttempts.value).toBe(0);
    // Commands after connect travel over /emulation: a subscribe and a publication prove it.
    const sub = hub.client.newSubscription('news');
    const got: unknown[] = [];
    sub.on('publication', (ctx) => got.push(ctx.data));
    sub.subscribe();
    await waitFor(() => sub.state === 'subscribed', 'subscribed over http_stream');
    await server.api('publish', { channel: 'news', data: { over: 'http_stream' } });
    await waitFor(() => got.length === 1, 'publication over http_stream');
    expect(got[0]).toEqual({ over: 'http_stream' });
  });

  test('counts failed attempts while the hub cannot be reached', async () => {
    const hub = track(nodeHub('http://127.0.0.1:9', { transports: ['websocket'] }));
    await waitFor(() => hub.reconnectAttempts.value >= 2, 'two failed attempts');
    expect(hub.state.value).toBe('connecting');
    expect(hub.error.value?.type).toBe('transport');
  });

  test('getToken supplies the connection token; the hub sees its user', async () => {
    let calls = 0;
    const token = execFileSync(HUB_BIN, ['gentoken', '--token-hmac-secret', 'test-secret', '--user', 'alice', '--ttl', '1h'], {
      encoding: 'utf8',
    }).trim();
    const hub = track(
      nodeHub(server.url, {
        getToken: async () => {
          calls += 1;
          return token;
        },
      }),
    );
    await waitFor(() => hub.state.value === 'connected', 'connected with a token');
    expect(calls).toBe(1);
    const sub = hub.client.newSubscription('chat:token-test');
    sub.subscribe();
    await waitFor(() => sub.state === 'subscribed', 'subscribed');
    const presence = await sub.presence();
    expect(Object.values(presence.clients).map((c) => c.user)).toContain('alice');
  });

  test('an expired token is refreshed through getToken and the connection stays up', async () => {
    const mint = (): string =>
      execFileSync(HUB_BIN, ['gentoken', '--token-hmac-secret', 'test-secret', '--user', 'bob', '--ttl', '2s'], {
        encoding: 'utf8',
      }).trim();
    let calls = 0;
    const hub = track(
      nodeHub(server.url, {
        getToken: async () => {
          calls += 1;
          return mint();
        },
      }),
    );
    await waitFor(() => hub.state.value === 'connected', 'connected');
    await waitFor(() => calls >= 2, 'getToken called again to refresh the token', 8_000);
    await waitFor(() => hub.state.value === 'connected', 'still connected after the refresh');
  });

  test('dispose() disconnects for good', async () => {
    const hub = track(nodeHub(server.url));
    await waitFor(() => hub.state.value === 'connected', 'connected');
    hub.dispose();
    expect(hub.disposed.value).toBe(true);
    expect(hub.state.value).toBe('disconnected');
    expect(() => hub.connect()).toThrow(/dispose/);
  });
});
