// Centrifugo 6 features the centrifuge SDK uses, over JSON and Protobuf:
// - subscribe flag 2 (reject unrecovered): a subscription with `getState` that
//   cannot recover after a reconnect gets error 112 "unrecoverable position",
//   and the SDK asks `getState` again instead of delivering `recovered: false`.

import { describe, it, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { PROTOCOLS, Clients, Network, api, nextEvent, publish, startHub, uniqueChannel } from './helpers.mjs';

const TEST = { timeout: 30000 };

// `--dev` plus a namespace that keeps only two publications.
const CONFIG = `
[namespaces.smallhistory]
history_size = 2
history_ttl = "300s"
allow_subscribe = true
force_recovery = true
`;

/** A WebSocket that keeps every JSON message the hub sends (JSON protocol only). */
function recordingWebSocket(Base, received) {
  return class RecordingWebSocket extends Base {
    constructor(...args) {
      super(...args);
      this.on('message', (data, isBinary) => {
        if (isBinary) return;
        for (const line of data.toString().split('\n')) {
          if (line.trim()) received.push(JSON.parse(line));
        }
      });
    }
  };
}

describe('Centrifugo 6 features with the centrifuge SDK', () => {
  let hub;
  let dir;
  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'hub-c6-'));
    const file = path.join(dir, 'hub.toml');
    writeFileSync(file, CONFIG);
    hub = await startHub(['--dev', '--config', file], { name: 'centrifugo6' });
  });
  after(async () => {
    if (hub) await hub.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const P of PROTOCOLS) {
    describe(`over ${P.name}`, () => {
      const cleanups = [];
      afterEach(async () => {
        while (cleanups.length) await cleanups.pop()();
      });

      it('getState: an unrecoverable position is error 112, then getState again', TEST, async () => {
        const network = await new Network().start();
        cleanups.push(() => network.close());
        const received = [];
        const Socket = P.name === 'json' ? recordingWebSocket(network.WebSocket, received) : network.WebSocket;
        const clients = new Clients(P, hub.wsUrl);
        cleanups.push(() => clients.disconnectAll());
        const { client } = await clients.connected(
          { websocket: Socket, minReconnectDelay: 100, maxReconnectDelay: 300 },
          'getState client',
        );
        const channel = uniqueChannel(`smallhistory:getstate-${P.name}`);
        let calls = 0;
        const sub = client.newSubscription(channel, {
          minResubscribeDelay: 100,
          maxResubscribeDelay: 100,
          getState: async () => {
            calls += 1;
            const state = await api(hub.apiUrl, 'history', { channel, limit: 0 });
            return { offset: state.offset ?? 0, epoch: state.epoch ?? '' };
          },
        });
        const errors = [];
        sub.on('error', (e) => errors.push(e));
        const first = nextEvent(sub, 'subscribed', 'the first subscription');
        sub.subscribe();
        await first;
        assert.equal(calls, 1, 'getState is asked once for the first subscribe');

        // Cut off; five publications evict the position (history_size 2).
        const down = nextEvent(client, 'connecting', 'the client to notice the cut');
        network.cut();
        await down;
        for (let i = 1; i <= 5; i += 1) await publish(hub.apiUrl, channel, { i });
        const again = nextEvent(sub, 'subscribed', 'the subscription after getState again', { ms: 10000 });
        network.restore();
        const ctx = await again;
        assert.equal(calls, 2, `the 112 made the SDK ask getState again: ${JSON.stringify(received)}`);
        assert.equal(ctx.streamPosition.offset, 5, 'subscribed at the position getState gave');
        assert.deepEqual(errors, [], 'a 112 with getState is no subscription error');

        // Live publications go on.
        const live = nextEvent(sub, 'publication', 'a live publication');
        await publish(hub.apiUrl, channel, { i: 6 });
        assert.deepEqual(P.decode((await live).data), { i: 6 });

        if (P.name === 'json') {
          const refusals = received.filter((m) => m.error);
          assert.deepEqual(
            refusals.map((m) => m.error),
            [{ code: 112, message: 'unrecoverable position' }],
            `one 112 on the wire: ${JSON.stringify(received)}`,
          );
        }
      });

      it('without getState the same lost position is recovered: false', TEST, async () => {
        const network = await new Network().start();
        cleanups.push(() => network.close());
        const clients = new Clients(P, hub.wsUrl);
        cleanups.push(() => clients.disconnectAll());
        const { client } = await clients.connected(
          { websocket: network.WebSocket, minReconnectDelay: 100, maxReconnectDelay: 300 },
          'plain client',
        );
        const channel = uniqueChannel(`smallhistory:plain-${P.name}`);
        const sub = client.newSubscription(channel);
        const first = nextEvent(sub, 'subscribed', 'the first subscription');
        sub.subscribe();
        await first;
        const down = nextEvent(client, 'connecting', 'the client to notice the cut');
        network.cut();
        await down;
        for (let i = 1; i <= 5; i += 1) await publish(hub.apiUrl, channel, { i });
        const again = nextEvent(sub, 'subscribed', 'the resubscription', { ms: 10000 });
        network.restore();
        const ctx = await again;
        assert.equal(ctx.wasRecovering, true);
        assert.equal(ctx.recovered, false);
      });
    });
  }
});
