// Delta compression with the centrifuge SDK (`delta: 'fossil'`), over JSON and
// Protobuf: every publication's `data` is what was published, while the hub
// sends the later ones as Fossil deltas that the SDK applies (its deltaStats
// count them; on JSON the frames themselves are checked for `delta: true`).
// A recovery after a cut gives the missed publications in full, and deltas
// go on after it.

import { describe, it, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import WebSocket from 'ws';
import { PROTOCOLS, Clients, Network, api, nextEvent, startHub, subscribe, uniqueChannel } from './helpers.mjs';

const TEST = { timeout: 30000 };

const CONFIG = `
[namespaces.delta]
history_size = 100
history_ttl = "300s"
allow_subscribe = true
force_recovery = true
allowed_delta_types = ["fossil"]

[namespaces.nodelta]
history_size = 100
history_ttl = "300s"
allow_subscribe = true
force_recovery = true
`;

/** A document whose versions differ in a few bytes. */
function doc(version) {
  return {
    version,
    items: Array.from({ length: 10 }, (_, i) => ({ id: i, label: `item number ${i}`, stock: i === version % 10 ? version : i })),
  };
}

/** A WebSocket class that keeps every publication push the hub sends (JSON protocol). */
function recording(Base, pubs) {
  return class RecordingWebSocket extends Base {
    constructor(...args) {
      super(...args);
      this.on('message', (data, isBinary) => {
        if (isBinary) return;
        for (const line of data.toString().split('\n')) {
          if (!line.trim()) continue;
          const message = JSON.parse(line);
          if (message.push?.pub) pubs.push(message.push.pub);
          for (const p of message.subscribe?.publications ?? []) pubs.push({ ...p, recovered: true });
        }
      });
    }
  };
}

describe('delta compression with the centrifuge SDK', () => {
  let hub;
  let dir;
  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'hub-delta-'));
    const file = path.join(dir, 'hub.toml');
    writeFileSync(file, CONFIG);
    hub = await startHub(['--dev', '--config', file], { name: 'delta' });
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

      it("delta: 'fossil' receives deltas and gives back the published data", TEST, async () => {
        const wire = [];
        const clients = new Clients(P, hub.wsUrl);
        cleanups.push(() => clients.disconnectAll());
        const { client } = await clients.connected({ websocket: recording(WebSocket, wire) }, 'delta client');
        const channel = uniqueChannel(`delta:doc-${P.name}`);
        const { sub } = await subscribe(client, channel, { delta: 'fossil' }, 'delta subscription');
        const last = nextEvent(sub, 'publication', 'the last version', { filter: (ctx) => P.decode(ctx.data).version === 6 });
        for (let v = 1; v <= 6; v += 1) await api(hub.apiUrl, 'publish', { channel, data: doc(v), delta: true });
        await last;
        assert.deepEqual(sub.pubs.items.map((ctx) => P.decode(ctx.data)), [1, 2, 3, 4, 5, 6].map(doc));
        const stats = sub.deltaStats();
        assert.deepEqual(
          { pubs: stats.numPublications, full: stats.numFullPayloads, deltas: stats.numDeltaPayloads },
          { pubs: 6, full: 1, deltas: 5 },
          `the SDK applied five deltas: ${JSON.stringify(stats)}`,
        );
        assert.ok(stats.bytesReceived < stats.bytesDecoded / 2, `deltas are small: ${JSON.stringify(stats)}`);
        if (P.name === 'json') {
          assert.deepEqual(wire.map((p) => Boolean(p.delta)), [false, true, true, true, true, true]);
          assert.ok(wire.every((p) => typeof p.data === 'string'), 'JSON data of a delta subscription is a string');
        }
      });

      it('publications that do not ask for delta, and namespaces without it, are full', TEST, async () => {
        const clients = new Clients(P, hub.wsUrl);
        cleanups.push(() => clients.disconnectAll());
        const { client } = await clients.connected({}, 'delta client');
        const asked = uniqueChannel(`delta:plain-${P.name}`);
        const refused = uniqueChannel(`nodelta:doc-${P.name}`);
        const { sub: noFlag } = await subscribe(client, asked, { delta: 'fossil' }, 'delta subscription');
        const { sub: notAllowed } = await subscribe(client, refused, { delta: 'fossil' }, 'subscription where delta is not allowed');
        const lastA = nextEvent(noFlag, 'publication', 'the last version', { filter: (ctx) => P.decode(ctx.data).version === 3 });
        const lastB = nextEvent(notAllowed, 'publication', 'the last version', { filter: (ctx) => P.decode(ctx.data).version === 3 });
        for (let v = 1; v <= 3; v += 1) {
          await api(hub.apiUrl, 'publish', { channel: asked, data: doc(v) });
          await api(hub.apiUrl, 'publish', { channel: refused, data: doc(v), delta: true });
        }
        await Promise.all([lastA, lastB]);
        assert.deepEqual(noFlag.pubs.items.map((ctx) => P.decode(ctx.data)), [1, 2, 3].map(doc));
        assert.deepEqual(notAllowed.pubs.items.map((ctx) => P.decode(ctx.data)), [1, 2, 3].map(doc));
        assert.equal(noFlag.deltaStats().numDeltaPayloads, 0, 'no delta without the publisher asking');
        assert.equal(notAllowed.deltaStats().numPublications, 0, 'delta not negotiated: the SDK does not decode');
      });

      it('after a cut, the recovered publications and the next deltas apply', TEST, async () => {
        const network = await new Network().start();
        cleanups.push(() => network.close());
        const clients = new Clients(P, hub.wsUrl);
        cleanups.push(() => clients.disconnectAll());
        const { client } = await clients.connected(
          { websocket: network.WebSocket, minReconnectDelay: 100, maxReconnectDelay: 300 },
          'delta client',
        );
        const channel = uniqueChannel(`delta:recover-${P.name}`);
        const { sub } = await subscribe(client, channel, { delta: 'fossil' }, 'delta subscription');
        const second = nextEvent(sub, 'publication', 'version 2', { filter: (ctx) => P.decode(ctx.data).version === 2 });
        for (let v = 1; v <= 2; v += 1) await api(hub.apiUrl, 'publish', { channel, data: doc(v), delta: true });
        await second;
        const down = nextEvent(client, 'connecting', 'the client to notice the cut');
        network.cut();
        await down;
        for (let v = 3; v <= 5; v += 1) await api(hub.apiUrl, 'publish', { channel, data: doc(v), delta: true });
        const again = nextEvent(sub, 'subscribed', 'the resubscription', { ms: 10000 });
        network.restore();
        const ctx = await again;
        assert.equal(ctx.recovered, true);
        const last = nextEvent(sub, 'publication', 'version 7', { filter: (c) => P.decode(c.data).version === 7 });
        for (let v = 6; v <= 7; v += 1) await api(hub.apiUrl, 'publish', { channel, data: doc(v), delta: true });
        await last;
        assert.deepEqual(sub.pubs.items.map((c) => P.decode(c.data)), [1, 2, 3, 4, 5, 6, 7].map(doc));
        const stats = sub.deltaStats();
        // 1 full; 2 delta; 3..5 recovered in full; 6, 7 deltas again.
        assert.deepEqual({ full: stats.numFullPayloads, deltas: stats.numDeltaPayloads }, { full: 4, deltas: 3 });
      });
    });
  }
});
