// @vitest-environment happy-dom
//
// Shared subscriptions of a private channel (namespace without allow_subscribe: a
// subscription token is needed) whose consumers bring different options, against a real hub.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { createApp, defineComponent, effectScope, h, nextTick, ref, type App, type Component } from 'vue';

import { useChannel, usePresence, type Hub, type UseChannelReturn, type UsePresenceReturn } from '../src/index.js';
import { HUB_BIN, nodeHub, startHub, uniqueChannel, waitFor, type HubProcess } from './support.js';

const SECRET = 'private-test-secret';
let server: HubProcess;
const apps: App[] = [];

beforeAll(async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'hub-vue-private-'));
  const config = path.join(dir, 'hub.toml');
  // `priv:` channels: presence and join/leave, but no allow_subscribe (a token is needed).
  writeFileSync(config, '[namespaces.priv]\npresence = true\njoin_leave = true\nhistory_size = 10\nhistory_ttl = "1m"\n');
  server = await startHub(['--dev', '--config', config, '--token-hmac-secret', SECRET], 'private-test');
});
afterAll(async () => {
  await server?.stop();
});
afterEach(() => {
  for (const app of apps.splice(0)) app.unmount();
});

const mint = (args: string[]): string =>
  execFileSync(HUB_BIN, ['gentoken', '--token-hmac-secret', SECRET, ...args], { encoding: 'utf8' }).trim();

/** A hub connected as `user`, and a getToken for subscription tokens of that user. */
function aliceHub(): { hub: Hub; getToken: (ctx: { channel: string }) => Promise<string>; calls: () => number } {
  const connToken = mint(['--user', 'alice', '--ttl', '1h']);
  let calls = 0;
  return {
    hub: nodeHub(server.url, { token: connToken }),
    getToken: async ({ channel }) => {
      calls += 1;
      return mint(['--user', 'alice', '--ttl', '1h', '--channel', channel]);
    },
    calls: () => calls,
  };
}

function mount(root: Component, hub: Hub): App {
  const app = createApp(root);
  app.use(hub);
  app.mount(document.createElement('div'));
  apps.push(app);
  return app;
}

describe('shared private channels', () => {
  test('usePresence first, then useChannel with getToken: the channel gets its token, both are served', async () => {
    const channel = uniqueChannel('priv:x');
    const { hub, getToken, calls } = aliceHub();
    const showChannel = ref(false);
    let presence!: UsePresenceReturn;
    let chan: UseChannelReturn<{ n: number }> | undefined;
    const Presence = defineComponent({
      setup() {
        presence = usePresence(channel);
        return () => h('div');
      },
    });
    const Channel = defineComponent({
      setup() {
        chan = useChannel<{ n: number }>(channel, { subscription: { getToken } });
        return () => h('div');
      },
    });
    mount(defineComponent({ setup: () => () => h('div', [h(Presence), showChannel.value ? h(Channel) : null]) }), hub);

    // Alone, the presence consumer has no token: the hub refuses the subscription.
    await waitFor(() => presence.error.value, 'presence refused without a token');
    expect(presence.error.value?.code).toBe(103);
    expect(presence.state.value).toBe('unsubscribed');

    showChannel.value = true;
    await nextTick();
    await waitFor(() => chan?.state.value === 'subscribed', 'the channel subscribed with its token');
    expect(calls()).toBe(1);
    expect(chan?.error.value).toBeNull();
    await waitFor(() => presence.state.value === 'subscribed', 'presence subscribed on the shared subscription');
    await waitFor(() => presence.count.value === 1, 'presence lists alice');
    expect(presence.users.value).toEqual(['alice']);
    expect(presence.error.value).toBeNull();
    expect(hub.registry.snapshot()).toEqual({ [channel]: 2 });
    expect(Object.keys(hub.client.subscriptions())).toEqual([channel]);

    await server.api('publish', { channel, data: { n: 1 } });
    await waitFor(() => chan?.last.value?.data.n === 1, 'the publication through the tokened subscription');
    expect(chan?.messages.value.map((m) => m.data)).toEqual([{ n: 1 }]);
  });

  test('usePresence mounting while the tokenless subscribe is in flight ends subscribed too', async () => {
    const channel = uniqueChannel('priv:y');
    const { hub, getToken } = aliceHub();
    await waitFor(() => hub.state.value === 'connected', 'connected');
    let presence!: UsePresenceReturn;
    let chan!: UseChannelReturn<unknown>;
    // Same tick: presence creates the subscription, the channel brings getToken right after.
    mount(
      defineComponent({
        setup() {
          presence = usePresence(channel);
          chan = useChannel(channel, { subscription: { getToken } });
          return () => h('div');
        },
      }),
      hub,
    );
    await waitFor(() => chan.state.value === 'subscribed' && presence.count.value === 1, 'both served');
    expect(chan.error.value).toBeNull();
    expect(presence.error.value).toBeNull();
    expect(presence.users.value).toEqual(['alice']);
  });

  test('a conflicting option is an error naming it, not a silent first-one-wins', async () => {
    const channel = uniqueChannel('chat:conflict');
    const { hub } = aliceHub();
    const scope = effectScope();
    try {
      scope.run(() => useChannel(channel, { hub, subscription: { recoverable: true } }));
      expect(() => scope.run(() => useChannel(channel, { hub, subscription: { recoverable: false } }))).toThrow(
        /conflicting subscription option "recoverable" for channel chat:conflict/,
      );
      // The same value is no conflict.
      scope.run(() => useChannel(channel, { hub, subscription: { recoverable: true } }));
      expect(hub.registry.snapshot()).toEqual({ [channel]: 2 });
    } finally {
      scope.stop();
      hub.dispose();
    }
  });
});
