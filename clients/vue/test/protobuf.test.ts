// createHub({ protocol: 'protobuf' }) against a real hub: the SDK's Protobuf build over
// WebSocket and HTTP streaming, payloads decoded so components see typed values, and
// JSON and Protobuf clients sharing a channel.
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { effectScope, type EffectScope } from 'vue';

import { useChannel, usePresence, type Hub, type HubOptions } from '../src/index.js';
import { nodeHub, startHub, uniqueChannel, waitFor, type HubProcess } from './support.js';

let server: HubProcess;
const hubs: Hub[] = [];
const scopes: EffectScope[] = [];

beforeAll(async () => {
  server = await startHub(['--dev'], 'protobuf-test');
});
afterAll(async () => {
  await server?.stop();
});
afterEach(() => {
  for (const s of scopes.splice(0)) s.stop();
  for (const h of hubs.splice(0)) h.dispose();
});

async function client(options: HubOptions = {}): Promise<{ hub: Hub; scope: EffectScope }> {
  const hub = nodeHub(server.url, options);
  hubs.push(hub);
  const scope = effectScope();
  scopes.push(scope);
  await waitFor(() => hub.state.value === 'connected', `connected (${options.protocol ?? 'json'})`);
  return { hub, scope };
}

describe.each(['websocket', 'http_stream'] as const)('protocol: protobuf over %s', (transport) => {
  test('connects with the Protobuf build and receives typed publications', async () => {
    const channel = uniqueChannel();
    const { hub, scope } = await client({ protocol: 'protobuf', transports: [transport] });
    expect(hub.protocol).toBe('protobuf');
    expect(hub.transport.value).toBe(transport);
    const r = scope.run(() => useChannel<{ text: string }>(channel, { hub, history: 5 }))!;
    await server.api('publish', { channel, data: { text: 'before' } });
    await waitFor(() => r.state.value === 'subscribed', 'subscribed');
    await waitFor(() => r.messages.value.length === 1, 'the publication from history');
    await server.api('publish', { channel, data: { text: 'live' } });
    await waitFor(() => r.messages.value.length === 2, 'the live publication');
    expect(r.messages.value.map((m) => m.data)).toEqual([{ text: 'before' }, { text: 'live' }]);
    expect(r.messages.value.map((m) => m.offset)).toEqual([1, 2]);
  });
});

describe('protocol: protobuf', () => {
  test('JSON and Protobuf clients share a channel both ways; presence works over Protobuf', async () => {
    const channel = uniqueChannel();
    const pb = await client({ protocol: 'protobuf' });
    const js = await client({ protocol: 'json' });
    const onPb = pb.scope.run(() => useChannel<{ from: string }>(channel, { hub: pb.hub }))!;
    const onJs = js.scope.run(() => useChannel<{ from: string }>(channel, { hub: js.hub }))!;
    const presence = pb.scope.run(() => usePresence(channel, { hub: pb.hub }))!;
    await waitFor(() => onPb.state.value === 'subscribed' && onJs.state.value === 'subscribed', 'both subscribed');
    await waitFor(() => presence.count.value === 2, 'presence over protobuf lists both');

    await onPb.publish({ from: 'protobuf' });
    await waitFor(() => onJs.last.value?.data.from === 'protobuf', 'the JSON client got the Protobuf publication');
    await onJs.publish({ from: 'json' });
    await waitFor(() => onPb.last.value?.data.from === 'json', 'the Protobuf client got the JSON publication');
    expect(onPb.messages.value.map((m) => m.data)).toEqual([{ from: 'protobuf' }, { from: 'json' }]);
    expect(onPb.last.value?.info?.client).toBe(js.hub.clientId.value);
  });

  test('a codec of your own sees the bytes; parse then types them', async () => {
    const channel = uniqueChannel();
    const { hub, scope } = await client({
      protocol: 'protobuf',
      // Raw bytes in and out, e.g. for payloads that are Protobuf messages of your schema.
      codec: { encode: (d) => d, decode: (d) => d },
    });
    const r = scope.run(() =>
      useChannel<number[]>(channel, {
        hub,
        parse: (data) => {
          if (!(data instanceof Uint8Array)) throw new Error('expected bytes');
          return [...data];
        },
      }),
    )!;
    await waitFor(() => r.state.value === 'subscribed', 'subscribed');
    await r.publish(new Uint8Array([1, 2, 250]) as unknown as number[]);
    await waitFor(() => r.last.value, 'the publication back');
    expect(r.last.value?.data).toEqual([1, 2, 250]);
    expect(r.error.value).toBeNull();
  });
});
