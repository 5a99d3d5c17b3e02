// @vitest-environment node
//
// Server-side rendering with Vue's server renderer: the composables render their initial
// state and open no socket and no subscription on the server.
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { createSSRApp, defineComponent, h } from 'vue';
import { renderToString } from 'vue/server-renderer';

import { createHub, useChannel, useHub, usePresence, type Hub } from '../src/index.js';
import { startHub, uniqueChannel, waitFor, type HubProcess } from './support.js';

let server: HubProcess;
const hubs: Hub[] = [];

beforeAll(async () => {
  server = await startHub(['--dev'], 'ssr-test');
});
afterAll(async () => {
  await server?.stop();
});
afterEach(() => {
  for (const h of hubs.splice(0)) h.dispose();
});

/** Transports that count every socket and request the SDK would open. */
function countingTransports(): { opened: () => number; centrifuge: Record<string, unknown> } {
  let opened = 0;
  class CountingWebSocket {
    constructor() {
      opened += 1;
      throw new Error('no socket on the server');
    }
  }
  const fetch = (): Promise<never> => {
    opened += 1;
    return Promise.reject(new Error('no request on the server'));
  };
  return { opened: () => opened, centrifuge: { websocket: CountingWebSocket, fetch, readableStream: ReadableStream } };
}

const Page = (channel: string) =>
  defineComponent({
    setup() {
      const hub = useHub();
      const { state, messages } = useChannel<string>(channel, { history: 10 });
      const { count } = usePresence(channel);
      return () => h('p', `${hub.state.value} ${state.value} ${messages.value.length} ${count.value}`);
    },
  });

describe('SSR', () => {
  test('renderToString renders the initial state and opens no socket, no subscription', async () => {
    const channel = uniqueChannel();
    const counting = countingTransports();
    // What a universal (server + client) plugin does on the server: immediate: false.
    const hub = createHub({ url: server.url, immediate: false, centrifuge: counting.centrifuge });
    hubs.push(hub);
    const app = createSSRApp(Page(channel));
    app.use(hub);

    const html = await renderToString(app);
    expect(html).toBe('<p>disconnected unsubscribed 0 0</p>');
    await new Promise((r) => setTimeout(r, 200));
    expect(counting.opened()).toBe(0);
    expect(hub.registry.snapshot()).toEqual({});
    expect(hub.client.subscriptions()).toEqual({});
    expect(hub.state.value).toBe('disconnected');
    expect((await server.api<{ num_clients: number }>('presence_stats', { channel })).num_clients).toBe(0);
  });

  test('even a hub left connecting on the server gets no subscription from a render', async () => {
    const channel = uniqueChannel();
    const counting = countingTransports();
    const hub = createHub({ url: server.url, transports: ['websocket'], centrifuge: counting.centrifuge });
    hubs.push(hub);
    const app = createSSRApp(Page(channel));
    app.use(hub);
    await renderToString(app);
    expect(hub.registry.snapshot()).toEqual({});
    expect(hub.client.subscriptions()).toEqual({});
    await waitFor(() => counting.opened() > 0, 'the connect attempt of the hub itself');
  });
});
