// @vitest-environment happy-dom
//
// useChannel in mounted components against a real hub: lifetime, sharing, bounded lists,
// state transitions, history, recovery, publish, errors, remounts (as in hot reload).
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { createApp, defineComponent, h, nextTick, ref, shallowRef, watch, type App, type Component } from 'vue';

import {
  PARSE_ERROR,
  useChannel,
  useHub,
  type Hub,
  type Message,
  type UseChannelOptions,
  type UseChannelReturn,
} from '../src/index.js';
import { nodeHub, startHub, uniqueChannel, waitFor, type HubProcess } from './support.js';

let server: HubProcess;
const apps: App[] = [];

beforeAll(async () => {
  server = await startHub(['--dev'], 'channel-test');
});
afterAll(async () => {
  await server?.stop();
});
afterEach(() => {
  for (const app of apps.splice(0)) app.unmount();
});

/** Mounts `root` in an app that owns a new hub; returns the hub and the app. */
function mountWithHub(root: Component, hub: Hub = nodeHub(server.url)): { hub: Hub; app: App } {
  const app = createApp(root);
  app.use(hub);
  app.mount(document.createElement('div'));
  apps.push(app);
  return { hub, app };
}

/** A component calling useChannel and handing the result out. */
function channelProbe<T>(name: string, options: UseChannelOptions<T>, out: (r: UseChannelReturn<T>) => void): Component {
  return defineComponent({
    setup() {
      out(useChannel<T>(name, options));
      return () => h('div');
    },
  });
}

const numClients = async (channel: string): Promise<number> =>
  (await server.api<{ num_clients: number }>('presence_stats', { channel })).num_clients;

describe('useChannel', () => {
  test('subscribes for the component lifetime and unsubscribes on unmount', async () => {
    const channel = uniqueChannel();
    const show = ref(true);
    let result!: UseChannelReturn<unknown>;
    const Child = channelProbe(channel, {}, (r) => (result = r));
    const { hub } = mountWithHub(defineComponent({ setup: () => () => (show.value ? h(Child) : null) }));

    await waitFor(() => result.state.value === 'subscribed', 'subscribed');
    expect(await numClients(channel)).toBe(1);
    expect(hub.registry.snapshot()).toEqual({ [channel]: 1 });

    show.value = false;
    await nextTick();
    expect(result.state.value).toBe('unsubscribed');
    expect(hub.registry.snapshot()).toEqual({});
    expect(hub.client.getSubscription(channel)).toBeNull();
    await waitFor(async () => (await numClients(channel)) === 0, 'the hub to see the unsubscribe');
  });

  test('goes unsubscribed → subscribing → subscribed', async () => {
    const channel = uniqueChannel();
    const states: string[] = [];
    mountWithHub(
      defineComponent({
        setup() {
          const { state } = useChannel(channel);
          states.push(state.value);
          watch(state, (s) => states.push(s), { flush: 'sync' });
          return () => h('div');
        },
      }),
    );
    await waitFor(() => states.includes('subscribed'), 'subscribed');
    // The SDK moves to subscribing synchronously on subscribe(), before the first read.
    expect(states[0]).toBe('subscribing');
    expect(states.at(-1)).toBe('subscribed');
  });

  test('two components share one subscription until both unmount', async () => {
    const channel = uniqueChannel();
    const showA = ref(true);
    const showB = ref(true);
    let a!: UseChannelReturn<{ n: number }>;
    let b!: UseChannelReturn<{ n: number }>;
    const A = channelProbe<{ n: number }>(channel, {}, (r) => (a = r));
    const B = channelProbe<{ n: number }>(channel, {}, (r) => (b = r));
    const { hub } = mountWithHub(
      defineComponent({ setup: () => () => h('div', [showA.value ? h(A) : null, showB.value ? h(B) : null]) }),
    );
    await waitFor(() => a.state.value === 'subscribed' && b.state.value === 'subscribed', 'both subscribed');
    expect(hub.registry.snapshot()).toEqual({ [channel]: 2 });
    expect(Object.keys(hub.client.subscriptions())).toEqual([channel]);
    expect(await numClients(channel)).toBe(1);

    await server.api('publish', { channel, data: { n: 1 } });
    await waitFor(() => a.last.value?.data.n === 1 && b.last.value?.data.n === 1, 'both to get n=1');

    showA.value = false;
    await nextTick();
    expect(hub.registry.snapshot()).toEqual({ [channel]: 1 });
    expect(b.state.value).toBe('subscribed');
    await server.api('publish', { channel, data: { n: 2 } });
    await waitFor(() => b.last.value?.data.n === 2, 'B still receiving after A unmounted');
    expect(a.last.value?.data.n).toBe(1);

    showB.value = false;
    await nextTick();
    expect(hub.registry.snapshot()).toEqual({});
    await waitFor(async () => (await numClients(channel)) === 0, 'the hub to see the unsubscribe');
  });

  test('a late component sees the shared state at once', async () => {
    const channel = uniqueChannel();
    const showB = ref(false);
    let a!: UseChannelReturn<number>;
    let b: UseChannelReturn<number> | undefined;
    const A = channelProbe<number>(channel, {}, (r) => (a = r));
    const B = channelProbe<number>(channel, {}, (r) => (b = r));
    mountWithHub(defineComponent({ setup: () => () => h('div', [h(A), showB.value ? h(B) : null]) }));
    await waitFor(() => a.state.value === 'subscribed', 'A subscribed');
    await server.api('publish', { channel, data: 7 });
    await waitFor(() => a.last.value?.data === 7, 'A got 7');
    showB.value = true;
    await nextTick();
    expect(b?.state.value).toBe('subscribed');
    expect(b?.last.value?.data).toBe(7);
    expect(b?.messages.value).toEqual([]); // its own list starts when it arrives
  });

  test('messages keep at most `max`, oldest dropped first', async () => {
    const channel = uniqueChannel();
    let r!: UseChannelReturn<number>;
    mountWithHub(channelProbe<number>(channel, { max: 3 }, (x) => (r = x)));
    await waitFor(() => r.state.value === 'subscribed', 'subscribed');
    for (let i = 1; i <= 5; i += 1) await server.api('publish', { channel, data: i });
    await waitFor(() => r.last.value?.data === 5, 'the fifth publication');
    expect(r.messages.value.map((m) => m.data)).toEqual([3, 4, 5]);
    expect(r.messages.value.map((m) => m.offset)).toEqual([3, 4, 5]);
    r.clear();
    expect(r.messages.value).toEqual([]);
    expect(r.last.value?.data).toBe(5);
  });

  test('max: 0 keeps only `last`', async () => {
    const channel = uniqueChannel();
    let r!: UseChannelReturn<number>;
    mountWithHub(channelProbe<number>(channel, { max: 0 }, (x) => (r = x)));
    await waitFor(() => r.state.value === 'subscribed', 'subscribed');
    await server.api('publish', { channel, data: 1 });
    await waitFor(() => r.last.value?.data === 1, 'last = 1');
    expect(r.messages.value).toEqual([]);
  });

  test('history loads recent publications on subscribe, merged with live ones by offset', async () => {
    const channel = uniqueChannel();
    for (let i = 1; i <= 4; i += 1) await server.api('publish', { channel, data: i });
    let r!: UseChannelReturn<number>;
    mountWithHub(channelProbe<number>(channel, { history: 3, max: 10 }, (x) => (r = x)));
    await waitFor(() => r.messages.value.length === 3, 'three publications from history');
    expect(r.messages.value.map((m) => m.offset)).toEqual([2, 3, 4]);
    await server.api('publish', { channel, data: 5 });
    await waitFor(() => r.messages.value.length === 4, 'the live publication appended');
    expect(r.messages.value.map((m) => m.data)).toEqual([2, 3, 4, 5]);
  });

  test('publish() sends as this client; others see who published', async () => {
    const channel = uniqueChannel();
    let a!: UseChannelReturn<{ text: string }>;
    let b!: UseChannelReturn<{ text: string }>;
    mountWithHub(channelProbe<{ text: string }>(channel, {}, (x) => (a = x)));
    const other = mountWithHub(channelProbe<{ text: string }>(channel, {}, (x) => (b = x)));
    await waitFor(() => a.state.value === 'subscribed' && b.state.value === 'subscribed', 'both subscribed');
    await a.publish({ text: 'hi' });
    await waitFor(() => b.last.value?.data.text === 'hi', 'B got the message');
    expect(b.last.value?.info?.client).toBeTruthy();
    expect(b.last.value?.info?.client).not.toBe(other.hub.clientId.value);
  });

  test('error: an unknown namespace is refused with code 102', async () => {
    let r!: UseChannelReturn<unknown>;
    mountWithHub(channelProbe('nope:x', {}, (x) => (r = x)));
    await waitFor(() => r.error.value, 'an error for nope:x');
    expect(r.error.value?.code).toBe(102);
    expect(r.state.value).toBe('unsubscribed');
    await expect(r.publish({})).rejects.toBeTruthy();
  });

  test('recovers what was published while disconnected, with no gap', async () => {
    const channel = uniqueChannel();
    let r!: UseChannelReturn<number>;
    const { hub } = mountWithHub(channelProbe<number>(channel, {}, (x) => (r = x)));
    await waitFor(() => r.state.value === 'subscribed', 'subscribed');
    await server.api('publish', { channel, data: 1 });
    await waitFor(() => r.last.value?.data === 1, 'first publication');

    hub.disconnect();
    for (let i = 2; i <= 6; i += 1) await server.api('publish', { channel, data: i });
    hub.connect();

    await waitFor(() => r.last.value?.data === 6, 'the publications missed while disconnected', 10_000);
    expect(r.recovered.value).toBe(true);
    expect(r.messages.value.map((m) => m.data)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(r.messages.value.map((m) => m.offset)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  test('a reactive name switches channels and starts the list over', async () => {
    const first = uniqueChannel();
    const second = uniqueChannel();
    const name = ref(first);
    let r!: UseChannelReturn<string>;
    const { hub } = mountWithHub(
      defineComponent({
        setup() {
          r = useChannel<string>(name);
          return () => h('div');
        },
      }),
    );
    await waitFor(() => r.state.value === 'subscribed', 'first channel subscribed');
    await server.api('publish', { channel: first, data: 'a' });
    await waitFor(() => r.messages.value.length === 1, 'a from the first channel');

    name.value = second;
    expect(r.messages.value).toEqual([]);
    expect(hub.registry.snapshot()).toEqual({ [second]: 1 });
    await waitFor(() => r.state.value === 'subscribed', 'second channel subscribed');
    await server.api('publish', { channel: second, data: 'b' });
    await waitFor(() => r.last.value?.data === 'b', 'b from the second channel');
    expect(r.messages.value.map((m) => m.channel)).toEqual([second]);
    await waitFor(async () => (await numClients(first)) === 0, 'the first channel released');
  });

  test('immediate: false waits for subscribe(); unsubscribe() lets go', async () => {
    const channel = uniqueChannel();
    let r!: UseChannelReturn<unknown>;
    const { hub } = mountWithHub(channelProbe(channel, { immediate: false }, (x) => (r = x)));
    expect(r.state.value).toBe('unsubscribed');
    expect(hub.registry.snapshot()).toEqual({});
    r.subscribe();
    await waitFor(() => r.state.value === 'subscribed', 'subscribed after subscribe()');
    r.unsubscribe();
    expect(r.state.value).toBe('unsubscribed');
    expect(hub.registry.snapshot()).toEqual({});
  });

  test('remounting (as hot reload does) leaves one subscription; unmounting the app leaves none', async () => {
    const channel = uniqueChannel();
    const version = shallowRef(0);
    const received: Message[] = [];
    const make = (v: number): Component =>
      defineComponent({
        name: `Hot${v}`,
        setup() {
          useChannel(channel, { onMessage: (m) => received.push(m) });
          return () => h('div');
        },
      });
    const { hub, app } = mountWithHub(
      defineComponent({
        setup: () => () => h(make(version.value)),
      }),
    );
    for (let v = 1; v <= 5; v += 1) {
      version.value = v; // a new component definition replaces the old instance
      await nextTick();
      expect(hub.registry.snapshot()).toEqual({ [channel]: 1 });
    }
    await waitFor(() => hub.client.getSubscription(channel)?.state === 'subscribed', 'subscribed after remounts');
    expect(Object.keys(hub.client.subscriptions())).toEqual([channel]);
    await server.api('publish', { channel, data: 'once' });
    await waitFor(() => received.length === 1, 'one delivery');
    await new Promise((r) => setTimeout(r, 200));
    expect(received).toHaveLength(1); // no leftover listener from an old instance

    apps.splice(apps.indexOf(app), 1);
    app.unmount();
    expect(hub.disposed.value).toBe(true);
    expect(hub.state.value).toBe('disconnected');
    expect(Object.keys(hub.client.subscriptions())).toEqual([]);
    await waitFor(async () => (await numClients(channel)) === 0, 'the hub to drop the client');
  });

  test('a null or undefined name holds no channel; name → null unsubscribes, null → name subscribes', async () => {
    const channel = uniqueChannel();
    const name = ref<string | null | undefined>(null);
    let r!: UseChannelReturn<number>;
    const { hub } = mountWithHub(
      defineComponent({
        setup() {
          r = useChannel<number>(name);
          return () => h('div');
        },
      }),
    );
    expect(r.state.value).toBe('unsubscribed');
    expect(hub.registry.snapshot()).toEqual({});
    expect(hub.client.subscriptions()).toEqual({});

    name.value = channel;
    await waitFor(() => r.state.value === 'subscribed', 'subscribed once named');
    await server.api('publish', { channel, data: 1 });
    await waitFor(() => r.last.value?.data === 1, 'a publication');

    name.value = undefined;
    expect(r.state.value).toBe('unsubscribed');
    expect(r.messages.value).toEqual([]);
    expect(r.last.value).toBeUndefined();
    expect(hub.registry.snapshot()).toEqual({});
    await waitFor(async () => (await numClients(channel)) === 0, 'the hub to see the unsubscribe');
    await expect(r.publish(2)).rejects.toThrow(/not subscribed/);
  });

  test('a getter name works the same (a route param that may be missing)', async () => {
    const room = ref<string | undefined>(undefined);
    const channel = uniqueChannel();
    let r!: UseChannelReturn<unknown>;
    const { hub } = mountWithHub(
      defineComponent({
        setup() {
          r = useChannel(() => (room.value ? channel : null));
          return () => h('div');
        },
      }),
    );
    expect(hub.registry.snapshot()).toEqual({});
    room.value = 'x';
    await waitFor(() => r.state.value === 'subscribed', 'subscribed when the getter names a channel');
    expect(hub.registry.snapshot()).toEqual({ [channel]: 1 });
  });

  test('max may be a ref: lowering it drops the oldest at once, raising it keeps more', async () => {
    const channel = uniqueChannel();
    const max = ref(5);
    let r!: UseChannelReturn<number>;
    mountWithHub(channelProbe<number>(channel, { max }, (x) => (r = x)));
    await waitFor(() => r.state.value === 'subscribed', 'subscribed');
    for (let i = 1; i <= 5; i += 1) await server.api('publish', { channel, data: i });
    await waitFor(() => r.last.value?.data === 5, 'five publications');
    expect(r.messages.value.map((m) => m.data)).toEqual([1, 2, 3, 4, 5]);
    max.value = 2;
    await nextTick();
    expect(r.messages.value.map((m) => m.data)).toEqual([4, 5]);
    max.value = 4;
    await nextTick();
    for (let i = 6; i <= 8; i += 1) await server.api('publish', { channel, data: i });
    await waitFor(() => r.last.value?.data === 8, 'three more');
    expect(r.messages.value.map((m) => m.data)).toEqual([5, 6, 7, 8]);
  });

  test('a burst larger than max keeps the newest max in order, and one render shows it', async () => {
    const channel = uniqueChannel();
    let r!: UseChannelReturn<number>;
    let renders = 0;
    const seen: number[][] = [];
    mountWithHub(
      defineComponent({
        setup() {
          r = useChannel<number>(channel, { max: 7 });
          return () => {
            renders += 1;
            seen.push(r.messages.value.map((m) => m.data));
            return h('div');
          };
        },
      }),
    );
    await waitFor(() => r.state.value === 'subscribed', 'subscribed');
    await nextTick();
    const before = renders;
    // The server API's batch method: 30 publications arrive together.
    const commands = Array.from({ length: 30 }, (_, i) => ({ publish: { channel, data: i + 1 } }));
    await server.api('batch', { commands });
    await waitFor(() => r.last.value?.data === 30, 'the thirtieth publication', 10_000);
    await waitFor(() => seen.at(-1)?.length === 7 && seen.at(-1)?.[6] === 30, 'a render showing the thirtieth');
    const expected = [24, 25, 26, 27, 28, 29, 30];
    expect(r.messages.value.map((m) => m.data)).toEqual(expected);
    expect(r.messages.value.map((m) => m.offset)).toEqual(expected);
    expect(seen.at(-1)).toEqual(expected);
    // Renders are batched per tick, never one per publication.
    expect(renders - before).toBeLessThan(30);
    // Reading twice without a change gives the same array (built once per change).
    expect(r.messages.value).toBe(r.messages.value);
  });

  test('parse types each payload; what it throws goes to error (PARSE_ERROR) and is skipped', async () => {
    const channel = uniqueChannel();
    // A zod/valibot-style parser: returns the typed value or throws.
    const parse = (data: unknown): { n: number } => {
      const n = (data as { n?: unknown } | null)?.n;
      if (typeof n !== 'number') throw new Error('n must be a number');
      return { n };
    };
    let r!: UseChannelReturn<{ n: number }>;
    mountWithHub(channelProbe<{ n: number }>(channel, { parse, history: 5 }, (x) => (r = x)));
    await waitFor(() => r.state.value === 'subscribed', 'subscribed');
    await server.api('publish', { channel, data: { n: 1, extra: 'dropped by parse' } });
    await waitFor(() => r.last.value?.data.n === 1, 'n = 1');
    expect(r.last.value?.data).toEqual({ n: 1 });
    expect(r.error.value).toBeNull();

    await server.api('publish', { channel, data: { n: 'two' } });
    await waitFor(() => r.error.value, 'a parse error');
    expect(r.error.value?.code).toBe(PARSE_ERROR);
    expect(r.error.value?.message).toBe('parse: n must be a number');
    expect(r.error.value?.cause).toBeInstanceOf(Error);

    await server.api('publish', { channel, data: { n: 3 } });
    await waitFor(() => r.last.value?.data.n === 3, 'n = 3');
    expect(r.messages.value.map((m) => m.data)).toEqual([{ n: 1 }, { n: 3 }]);
  });

  test('useHub() without a provided hub says how to provide one', () => {
    const app = createApp(
      defineComponent({
        setup() {
          useHub();
          return () => null;
        },
      }),
    );
    let caught: unknown;
    app.config.errorHandler = (e) => {
      caught = e;
    };
    app.config.warnHandler = () => {};
    app.mount(document.createElement('div'));
    app.unmount();
    expect(String(caught)).toMatch(/no hub provided/);
  });
});
