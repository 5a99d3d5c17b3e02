// Connection lifecycle with the centrifuge SDK, over JSON and Protobuf: the SDK answers
// the hub's pings so short heartbeat intervals keep it connected, and a hub stopped with
// SIGTERM tells its clients 3001 "shutdown" (reconnect elsewhere) and exits with code 0.

import { describe, it, afterEach } from 'node:test';
import assert from 'node:assert/strict';

import {
  PROTOCOLS,
  Clients,
  WireTap,
  nextEvent,
  publish,
  record,
  sleep,
  startHub,
  subscribe,
  uniqueChannel,
} from './helpers.mjs';

const TEST = { timeout: 30000 };

for (const P of PROTOCOLS) {
  describe(`lifecycle over ${P.name}`, () => {
    const cleanups = [];
    afterEach(async () => {
      while (cleanups.length) await cleanups.pop()();
    });

    it('stays connected across several short heartbeats', TEST, async () => {
      const hub = await startHub(['--dev', '--ping-interval', '1s', '--pong-timeout', '500ms'], {
        name: `heartbeat-${P.name}`,
      });
      cleanups.push(() => hub.stop());
      const clients = new Clients(P, hub.wsUrl);
      cleanups.push(() => clients.disconnectAll());

      const tap = new WireTap(P.name);
      const { client } = await clients.connected({ websocket: tap.WebSocket }, 'heartbeat client');
      const drops = record(client, 'connecting');
      const channel = uniqueChannel(`heartbeat-${P.name}`);
      const { sub } = await subscribe(client, channel);

      // Three and a half ping intervals: each ping needs a pong within 500 ms.
      await sleep(3500);
      assert.deepEqual(
        drops.items,
        [],
        `the client must not have been disconnected (hub log: ${hub.logFile})`,
      );
      assert.equal(client.state, 'connected');
      assert.ok(tap.pingsIn >= 2, `at least 2 pings (empty replies) in 3.5 s at a 1 s interval, got ${tap.pingsIn}`);
      assert.ok(tap.pongsOut >= 2, `the SDK answered with pongs (empty commands), sent ${tap.pongsOut}`);

      await publish(hub.apiUrl, channel, { still: 'here' });
      const [pub] = await sub.pubs.waitFor(1, 'a publication after the heartbeats');
      assert.deepEqual(P.decode(pub.data), { still: 'here' });
    });

    it('SIGTERM: clients get 3001 "shutdown" and the hub exits with code 0', TEST, async () => {
      const hub = await startHub(['--dev'], { name: `shutdown-${P.name}` });
      let stopped = false;
      cleanups.push(async () => {
        if (!stopped) await hub.stop().catch(() => {});
      });
      const clients = new Clients(P, hub.wsUrl);
      cleanups.push(() => clients.disconnectAll());

      const { client } = await clients.connected({}, 'client at shutdown');
      await subscribe(client, uniqueChannel(`shutdown-${P.name}`));

      const told = nextEvent(client, 'connecting', 'the client to be told about the shutdown', { ms: 10000 });
      const exit = hub.stop();
      stopped = true;
      const ctx = await told;
      assert.equal(ctx.code, 3001, `disconnect code, got ${JSON.stringify(ctx)}`);
      assert.equal(ctx.reason, 'shutdown');
      const res = await exit;
      assert.equal(res.code, 0);
    });
  });
}
