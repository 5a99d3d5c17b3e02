// usePresence against a real hub: snapshot on subscribe, kept current from join and leave.
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { effectScope, type EffectScope } from 'vue';

import { useChannel, usePresence, type Hub } from '../src/index.js';
import { nodeHub, startHub, uniqueChannel, waitFor, type HubProcess } from './support.js';

let server: HubProcess;
const hubs: Hub[] = [];
const scopes: EffectScope[] = [];

beforeAll(async () => {
  server = await startHub(['--dev'], 'presence-test');
});
afterAll(async () => {
  await server?.stop();
});
afterEach(() => {
  for (const s of scopes.splice(0)) s.stop();
  for (const h of hubs.splice(0)) h.dispose();
});

/** A connected hub and a scope standing in for a component. */
async function client(): Promise<{ hub: Hub; scope: EffectScope }> {
  const hub = nodeHub(server.url);
  hubs.push(hub);
  const scope = effectScope();
  scopes.push(scope);
  await waitFor(() => hub.state.value === 'connected', 'client connected');
  return { hub, scope };
}

describe('usePresence', () => {
  test('lists the clients present and follows joins and leaves', async () => {
    const channel = uniqueChannel();
    const a = await client();
    const presence = a.scope.run(() => usePresence(channel, { hub: a.hub }))!;
    await waitFor(() => presence.count.value === 1, 'A sees itself');
    expect(presence.clients.value[0]?.client).toBe(a.hub.clientId.value);

    const b = await client();
    b.scope.run(() => useChannel(channel, { hub: b.hub }));
    await waitFor(() => presence.count.value === 2, 'A sees B join');

    const c = await client();
    c.scope.run(() => usePresence(channel, { hub: c.hub }));
    await waitFor(() => presence.count.value === 3, 'A sees C join');
    expect(new Set(presence.clients.value.map((x) => x.client))).toEqual(
      new Set([a.hub.clientId.value, b.hub.clientId.value, c.hub.clientId.value]),
    );
    expect(presence.users.value).toEqual(['']); // all anonymous

    b.scope.stop(); // B's component unmounts: it unsubscribes
    await waitFor(() => presence.count.value === 2, 'A sees B leave');
    c.hub.dispose(); // C's tab closes
    await waitFor(() => presence.count.value === 1, 'A sees C leave');
    expect(presence.clients.value[0]?.client).toBe(a.hub.clientId.value);
  });

  test('shares the subscription with useChannel and is empty once released', async () => {
    const channel = uniqueChannel();
    const a = await client();
    const { presence, chat } = a.scope.run(() => ({
      presence: usePresence(channel, { hub: a.hub }),
      chat: useChannel(channel, { hub: a.hub }),
    }))!;
    await waitFor(() => presence.count.value === 1 && chat.state.value === 'subscribed', 'subscribed, present');
    expect(a.hub.registry.snapshot()).toEqual({ [channel]: 2 });
    a.scope.stop();
    expect(a.hub.registry.snapshot()).toEqual({});
    expect(presence.clients.value).toEqual([]);
    expect(presence.state.value).toBe('unsubscribed');
  });

  test('refreshes the list after a reconnect (new client id)', async () => {
    const channel = uniqueChannel();
    const a = await client();
    const presence = a.scope.run(() => usePresence(channel, { hub: a.hub }))!;
    const firstId = a.hub.clientId.value;
    await waitFor(() => presence.clients.value[0]?.client === firstId, 'A present');
    await server.api('disconnect', { user: '', client: firstId, disconnect: { code: 3011 } });
    await waitFor(
      () => a.hub.clientId.value !== null && a.hub.clientId.value !== firstId,
      'A reconnected with a new client id',
    );
    await waitFor(
      () => presence.count.value === 1 && presence.clients.value[0]?.client === a.hub.clientId.value,
      'the list holds only the new connection',
    );
  });

  test('reports the error of a channel without presence', async () => {
    const a = await client();
    const presence = a.scope.run(() => usePresence('nope:x', { hub: a.hub }))!;
    await waitFor(() => presence.error.value, 'an error for nope:x');
    expect(presence.error.value?.code).toBe(102);
  });
});
