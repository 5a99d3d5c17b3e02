// The official `centrifuge` SDK against `hub --dev`, once over JSON and once over
// Protobuf: connect, publications from the server API, client publish, presence,
// join/leave, history and recovery after a cut connection.

import { describe, it, before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';

import {
  PROTOCOLS,
  Clients,
  Network,
  api,
  nextEvent,
  publish,
  record,
  startHub,
  subscribe,
  uniqueChannel,
  withTimeout,
} from './helpers.mjs';

// `hub --dev` keeps this many publications per channel.
const DEV_HISTORY_SIZE = 100;
const TEST = { timeout: 30000 };

describe('hub --dev with the centrifuge SDK', () => {
  let hub;
  before(async () => {
    hub = await startHub(['--dev'], { name: 'sdk' });
  });
  after(async () => {
    if (hub) await hub.stop();
  });

  for (const P of PROTOCOLS) {
    describe(`over ${P.name}`, () => {
      let clients;
      let networks;
      beforeEach(() => {
        clients = new Clients(P, hub.wsUrl);
        networks = [];
      });
      afterEach(async () => {
        clients.disconnectAll();
        await Promise.all(networks.map((n) => n.close()));
      });

      async function cuttableClient(label) {
        const network = await new Network().start();
        networks.push(network);
        const { client, id } = await clients.connected(
          { websocket: network.WebSocket, minReconnectDelay: 100, maxReconnectDelay: 500 },
          label,
        );
        return { client, id, network };
      }

      /**
       * A cuttable client subscribed to `channel` that got publication 1, then cut off:
       * resolves once its subscription is back to `subscribing`.
       */
      async function subscribedThenCut(channel, a) {
        const { sub } = await subscribe(a.client, channel, {}, 'recovering subscription');
        await publish(hub.apiUrl, channel, { seq: 1 });
        await sub.pubs.waitFor(1, 'the publication made before the cut');
        const subscribing = nextEvent(sub, 'subscribing', 'the subscription to go back to subscribing after the cut');
        a.network.cut();
        await subscribing;
        return sub;
      }

      it('connects: state connected, a client id, the websocket transport', TEST, async () => {
        const c = clients.create();
        const states = record(c, 'state');
        const connected = nextEvent(c, 'connected', 'the connected event');
        c.connect();
        const ctx = await connected;
        assert.equal(c.state, 'connected');
        assert.equal(typeof ctx.client, 'string');
        assert.ok(ctx.client.length > 0, 'connected context carries a non-empty client id');
        assert.equal(ctx.transport, 'websocket');
        assert.deepEqual(
          states.items.map((s) => s.newState),
          ['connecting', 'connected'],
        );

        const other = await clients.connected({}, 'second client');
        assert.notEqual(other.id, ctx.client, 'two connections get different client ids');
      });

      it('receives server API publications with exact data and increasing offsets', TEST, async () => {
        const channel = uniqueChannel(`news-${P.name}`);
        const { client } = await clients.connected();
        const { sub } = await subscribe(client, channel);

        const sent = [
          { text: 'hello', n: 1 },
          { nested: { list: [1, 2.5, 'three', null, true], empty: {} }, unicode: 'héllo ✓ 日本' },
          ['an', 'array', { at: 'top level' }],
        ];
        const results = [];
        for (const data of sent) {
          results.push(await publish(hub.apiUrl, channel, data));
        }
        const pubs = await sub.pubs.waitFor(sent.length, `${sent.length} publications on "${channel}"`);

        assert.equal(pubs.length, sent.length);
        pubs.forEach((pub, i) => {
          assert.equal(pub.channel, channel);
          assert.deepEqual(P.decode(pub.data), sent[i], `data of publication ${i}`);
          assert.equal(pub.offset, results[i].offset, `offset of publication ${i} matches the API result`);
          assert.equal(pub.info, undefined, 'a server API publication carries no client info');
        });
        assert.equal(typeof results[0].epoch, 'string');
        assert.ok(results[0].epoch.length > 0, 'publish result has an epoch');
        for (let i = 1; i < results.length; i++) {
          assert.equal(results[i].offset, results[i - 1].offset + 1, 'offsets increase by one');
          assert.equal(results[i].epoch, results[0].epoch, 'the epoch stays the same');
        }
      });

      it('receives the tags of a server API publication', TEST, async () => {
        const channel = uniqueChannel(`tags-${P.name}`);
        const { client } = await clients.connected();
        const { sub } = await subscribe(client, channel);
        await api(hub.apiUrl, 'publish', { channel, data: { x: 1 }, tags: { kind: 'test', lang: 'js' } });
        const [pub] = await sub.pubs.waitFor(1, `a tagged publication on "${channel}"`);
        assert.deepEqual(P.decode(pub.data), { x: 1 });
        assert.deepEqual(pub.tags, { kind: 'test', lang: 'js' });
      });

      it('delivers a client publish to the other subscribers, with the publisher info', TEST, async () => {
        const channel = uniqueChannel(`room-${P.name}`, 'chat:');
        const a = await clients.connected({}, 'publisher');
        const b = await clients.connected({}, 'reader');
        const { sub: subA } = await subscribe(a.client, channel, {}, 'publisher subscription');
        const { sub: subB } = await subscribe(b.client, channel, {}, 'reader subscription');

        const data = { text: 'from a client', at: 42 };
        await withTimeout(subA.publish(P.encode(data)), `the reply to the publish on "${channel}"`);

        const [seenByB] = await subB.pubs.waitFor(1, `the client publication at the reader on "${channel}"`);
        assert.deepEqual(P.decode(seenByB.data), data);
        assert.equal(seenByB.channel, channel);
        assert.ok(seenByB.info, 'a client publication carries the publisher info');
        assert.equal(seenByB.info.client, a.id, 'info.client is the publisher client id');
        assert.equal(seenByB.info.user, '', `publication info ${JSON.stringify(seenByB.info)}: an anonymous publisher has user ""`);
        assert.equal(seenByB.offset, 1, 'first publication of a fresh channel has offset 1');

        const [seenByA] = await subA.pubs.waitFor(1, `the publisher's own publication on "${channel}"`);
        assert.deepEqual(P.decode(seenByA.data), data);
        assert.equal(seenByA.offset, seenByB.offset);
      });

      it('presence lists both subscribers and presenceStats counts them', TEST, async () => {
        const channel = uniqueChannel(`presence-${P.name}`, 'chat:');
        const a = await clients.connected({}, 'client A');
        const b = await clients.connected({}, 'client B');
        const { sub: subA } = await subscribe(a.client, channel, {}, 'A');
        const { sub: subB } = await subscribe(b.client, channel, {}, 'B');

        const presence = await withTimeout(subA.presence(), `presence of "${channel}"`);
        assert.deepEqual(Object.keys(presence.clients).sort(), [a.id, b.id].sort());
        for (const id of [a.id, b.id]) {
          const info = JSON.stringify(presence.clients[id]);
          assert.equal(presence.clients[id].client, id, `presence entry ${info}: client`);
          assert.equal(presence.clients[id].user, '', `presence entry ${info}: user of an anonymous client is ""`);
        }
        const stats = await withTimeout(subB.presenceStats(), `presence stats of "${channel}"`);
        // Two anonymous connections: two clients, one (empty) user id.
        assert.deepEqual(stats, { numClients: 2, numUsers: 1 });

        const viaApi = await api(hub.apiUrl, 'presence', { channel });
        assert.deepEqual(Object.keys(viaApi.presence).sort(), [a.id, b.id].sort());
        const statsViaApi = await api(hub.apiUrl, 'presence_stats', { channel });
        assert.deepEqual(statsViaApi, { num_clients: 2, num_users: 1 });

        const unsubscribed = nextEvent(subB, 'unsubscribed', 'B to be unsubscribed');
        subB.unsubscribe();
        await unsubscribed;
        // The unsubscribe command has no reply the SDK waits for: ask until presence follows.
        const remaining = await eventually(async () => {
          const p = await subA.presence();
          assert.deepEqual(Object.keys(p.clients), [a.id]);
          return p;
        }, `presence of "${channel}" to drop B after it unsubscribed`);
        assert.equal(remaining.clients[a.id].client, a.id);
      });

      it('presenceStats of a channel nobody is in counts zero', TEST, async () => {
        const channel = uniqueChannel(`empty-${P.name}`, 'chat:');
        const { client } = await clients.connected();
        const stats = await withTimeout(client.presenceStats(channel), `presence stats of "${channel}"`);
        assert.deepEqual(stats, { numClients: 0, numUsers: 0 });
      });

      it('join and leave events reach another subscriber', TEST, async () => {
        const channel = uniqueChannel(`joinleave-${P.name}`, 'chat:');
        const observer = await clients.connected({}, 'observer');
        const { sub: obs } = await subscribe(observer.client, channel, { joinLeave: true }, 'observer');

        const other = await cuttableClient('joining client');
        const isOther = (ctx) => ctx.info && ctx.info.client === other.id;

        let join = nextEvent(obs, 'join', `a join of ${other.id} on "${channel}"`, { filter: isOther });
        const { sub } = await subscribe(other.client, channel, {}, 'joining client');
        let ctx = await join;
        assert.equal(ctx.channel, channel);
        assert.equal(ctx.info.user, '', `join info ${JSON.stringify(ctx.info)}: user of an anonymous client is ""`);

        let leave = nextEvent(obs, 'leave', `a leave of ${other.id} after it unsubscribed`, { filter: isOther });
        sub.unsubscribe();
        ctx = await leave;
        assert.equal(ctx.channel, channel);
        assert.equal(ctx.info.client, other.id);

        join = nextEvent(obs, 'join', `a second join of ${other.id}`, { filter: isOther });
        sub.subscribe();
        await join;

        leave = nextEvent(obs, 'leave', `a leave of ${other.id} after its connection was cut`, { filter: isOther });
        other.network.cut();
        ctx = await leave;
        assert.equal(ctx.info.client, other.id);
      });

      it('history returns the published items in order, reversed, since a position and limited', TEST, async () => {
        const channel = uniqueChannel(`history-${P.name}`);
        // Published before anyone subscribes: history does not depend on subscribers.
        const sent = [1, 2, 3, 4, 5].map((n) => ({ n, text: `message ${n}` }));
        const results = [];
        for (const data of sent) results.push(await publish(hub.apiUrl, channel, data));
        const epoch = results[0].epoch;
        assert.deepEqual(results.map((r) => r.offset), [1, 2, 3, 4, 5]);

        const { client } = await clients.connected();
        const { sub } = await subscribe(client, channel);
        const history = (opts) => withTimeout(sub.history(opts), `history ${JSON.stringify(opts)} of "${channel}"`);
        const view = (res) => res.publications.map((p) => ({ offset: p.offset, data: P.decode(p.data) }));
        const expect = (...offsets) => offsets.map((o) => ({ offset: o, data: sent[o - 1] }));

        let res = await history({ limit: 10 });
        assert.deepEqual(view(res), expect(1, 2, 3, 4, 5), 'history in order');
        assert.equal(res.offset, 5);
        assert.equal(res.epoch, epoch);

        res = await history({ limit: 10, reverse: true });
        assert.deepEqual(view(res), expect(5, 4, 3, 2, 1), 'history reversed');

        res = await history({ limit: 2 });
        assert.deepEqual(view(res), expect(1, 2), 'limit 2 gives the oldest two');

        res = await history({ limit: 2, reverse: true });
        assert.deepEqual(view(res), expect(5, 4), 'limit 2 reversed gives the newest two');

        res = await history({ limit: 10, since: { offset: 2, epoch } });
        assert.deepEqual(view(res), expect(3, 4, 5), 'since offset 2 gives what came after it');

        res = await history({ limit: 2, since: { offset: 2, epoch } });
        assert.deepEqual(view(res), expect(3, 4), 'since offset 2, limit 2');

        res = await history({ limit: 10, since: { offset: 4, epoch }, reverse: true });
        assert.deepEqual(view(res), expect(3, 2, 1), 'since offset 4 reversed gives what came before it');

        res = await history({ limit: 0 });
        assert.deepEqual(res.publications, [], 'limit 0 gives only the stream position');
        assert.equal(res.offset, 5);
        assert.equal(res.epoch, epoch);

        await assert.rejects(
          history({ limit: 10, since: { offset: 2, epoch: `not-${epoch}` } }),
          (err) => {
            assert.equal(err.code, 112, `unrecoverable position, got ${JSON.stringify(err)}`);
            return true;
          },
          'history since a position in another epoch fails with 112',
        );
      });

      it('recovers exactly the publications missed while the connection was cut', TEST, async () => {
        const channel = uniqueChannel(`recovery-${P.name}`);
        const a = await cuttableClient('recovering client');
        const { sub, ctx: first } = await subscribe(a.client, channel, {}, 'recovering subscription');
        assert.equal(first.recoverable, true, 'dev forces recovery: the subscription is recoverable');
        assert.equal(first.wasRecovering, false);
        assert.ok(first.streamPosition, 'a recoverable subscription reports its stream position');
        const epoch = first.streamPosition.epoch;
        assert.ok(epoch, 'the stream position has an epoch');

        const earlier = [{ seq: 1 }, { seq: 2 }];
        for (const data of earlier) await publish(hub.apiUrl, channel, data);
        await sub.pubs.waitFor(2, 'the two publications made before the cut');

        const subscribing = nextEvent(sub, 'subscribing', 'the subscription to go back to subscribing after the cut');
        a.network.cut();
        await subscribing;

        const missed = [3, 4, 5, 6, 7].map((seq) => ({ seq, missed: true }));
        const results = [];
        for (const data of missed) results.push(await publish(hub.apiUrl, channel, data));
        assert.deepEqual(results.map((r) => r.offset), [3, 4, 5, 6, 7]);
        assert.ok(results.every((r) => r.epoch === epoch), 'the epoch did not change during the cut');

        const resubscribed = nextEvent(sub, 'subscribed', 'the subscription to be recovered after reconnecting', {
          ms: 15000,
        });
        a.network.restore();
        const ctx = await resubscribed;
        assert.equal(ctx.wasRecovering, true, 'the SDK asked for recovery');
        assert.equal(ctx.recovered, true, 'the hub recovered the missed publications');
        assert.equal(ctx.streamPosition?.epoch, epoch);
        assert.equal(a.client.state, 'connected');

        await sub.pubs.waitFor(7, 'the five missed publications after recovery');
        // A live one after them: anything duplicated would come before it.
        await publish(hub.apiUrl, channel, { seq: 8 });
        const pubs = await sub.pubs.waitFor(8, 'a live publication after recovery');
        assert.deepEqual(
          pubs.map((p) => ({ offset: p.offset, data: P.decode(p.data) })),
          [...earlier, ...missed, { seq: 8 }].map((data, i) => ({ offset: i + 1, data })),
          'every publication exactly once, in order',
        );
        assert.equal(pubs.length, 8);
      });

      it("recovers from the start with since: { offset: 0, epoch: '' } (the current epoch)", TEST, async () => {
        // Issue 16, fault 3: an empty epoch is the stream's current one, as in Centrifugo.
        const channel = uniqueChannel(`since-start-${P.name}`);
        const sent = [1, 2, 3].map((n) => ({ n }));
        let epoch;
        for (const data of sent) ({ epoch } = await publish(hub.apiUrl, channel, data));
        const { client } = await clients.connected();
        const { sub, ctx } = await subscribe(client, channel, { since: { offset: 0, epoch: '' } }, 'from the start');
        assert.equal(ctx.wasRecovering, true, 'the SDK asked for recovery');
        assert.equal(ctx.recovered, true, 'an empty epoch is the current one');
        assert.equal(ctx.streamPosition?.epoch, epoch);
        const pubs = await sub.pubs.waitFor(3, 'the three retained publications');
        assert.deepEqual(pubs.map((p) => ({ offset: p.offset, data: P.decode(p.data) })), sent.map((data, i) => ({ offset: i + 1, data })));

        const res = await withTimeout(sub.history({ limit: 10, since: { offset: 1, epoch: '' } }), 'history since an empty epoch');
        assert.deepEqual(res.publications.map((p) => p.offset), [2, 3]);
        assert.equal(res.epoch, epoch);
      });

      it('reports recovered: false when the missed publications are no longer in history', TEST, async () => {
        const channel = uniqueChannel(`lost-${P.name}`);
        const a = await cuttableClient('recovering client');
        const sub = await subscribedThenCut(channel, a);
        // More than history keeps: publication 2 is gone when the client comes back.
        for (let seq = 2; seq <= DEV_HISTORY_SIZE + 6; seq++) {
          await publish(hub.apiUrl, channel, { seq });
        }

        const resubscribed = nextEvent(sub, 'subscribed', 'the subscription to come back after reconnecting', {
          ms: 15000,
        });
        a.network.restore();
        const ctx = await resubscribed;
        assert.equal(ctx.wasRecovering, true, 'the SDK asked for recovery');
        assert.equal(ctx.recovered, false, 'the hub must not claim recovery when publications were lost');

        // The subscription is live again.
        const live = nextEvent(sub, 'publication', 'a live publication after the failed recovery', {
          filter: (p) => P.decode(p.data).live === true,
        });
        await publish(hub.apiUrl, channel, { live: true });
        const pub = await live;
        assert.equal(pub.offset, DEV_HISTORY_SIZE + 7);
      });

      it('subscribes with recovered: false, never a 3008 loop, when what it missed exceeds the outbox', TEST, async () => {
        const channel = uniqueChannel(`bulky-${P.name}`);
        const a = await cuttableClient('recovering client');
        const disconnects = record(a.client, 'disconnected');
        const connecting = record(a.client, 'connecting');
        const sub = await subscribedThenCut(channel, a);
        // 30 publications of 60 KB, each legal: 1.8 MB, more than the 1 MiB outbox.
        for (let seq = 2; seq <= 31; seq++) {
          await publish(hub.apiUrl, channel, { seq, pad: 'x'.repeat(60000) });
        }
        const reconnectsBefore = connecting.items.length;
        const resubscribed = nextEvent(sub, 'subscribed', 'the subscription to come back after reconnecting', {
          ms: 15000,
        });
        a.network.restore();
        const ctx = await resubscribed;
        assert.equal(ctx.wasRecovering, true, 'the SDK asked for recovery');
        assert.equal(ctx.recovered, false, 'too much to recover in one reply: recovered false');
        assert.equal(ctx.streamPosition.offset, 31, 'the subscription starts at the top of the stream');

        const live = nextEvent(sub, 'publication', 'a live publication after the refused recovery', {
          filter: (p) => P.decode(p.data).live === true,
        });
        await publish(hub.apiUrl, channel, { live: true });
        assert.equal((await live).offset, 32);
        assert.deepEqual(
          disconnects.items.filter((d) => d.code === 3008),
          [],
          'the client that reads is never closed as slow',
        );

        // What it missed is in history, a page at a time (each page fits the outbox).
        const page = await sub.history({ limit: 100 });
        assert.ok(page.publications.length > 1 && page.publications.length < 32, `a page: ${page.publications.length}`);
        assert.deepEqual(
          page.publications.map((p) => p.offset),
          page.publications.map((_, i) => i + 1),
          'the first page holds the oldest publications, in order',
        );
        assert.equal(connecting.items.length, reconnectsBefore, 'no reconnect after the subscription came back: no loop');
      });

      it('delivers null and 0-byte publications', TEST, async () => {
        const channel = uniqueChannel(`empty-${P.name}`);
        const { client } = await clients.connected({}, 'subscriber');
        const { sub } = await subscribe(client, channel, {}, 'subscription');
        await api(hub.apiUrl, 'publish', { channel, data: null });
        await api(hub.apiUrl, 'publish', { channel, b64data: '' });
        const [nullPub, emptyPub] = await sub.pubs.waitFor(2, 'the null and the empty publication');
        if (P.name === 'json') {
          assert.equal(nullPub.data, null, 'null arrives as null');
          assert.equal(emptyPub.data, undefined, '0 bytes arrive without data, as Centrifugo sends them');
        } else {
          assert.deepEqual(new TextDecoder().decode(nullPub.data), 'null', 'null arrives as its JSON text');
          assert.equal(emptyPub.data.length, 0, '0 bytes arrive as 0 bytes');
        }
        assert.deepEqual([nullPub.offset, emptyPub.offset], [1, 2]);
      });
    });
  }

  describe('JSON and Protobuf clients on one channel', () => {
    let json;
    let proto;
    beforeEach(() => {
      json = new Clients(PROTOCOLS[0], hub.wsUrl);
      proto = new Clients(PROTOCOLS[1], hub.wsUrl);
    });
    afterEach(() => {
      json.disconnectAll();
      proto.disconnectAll();
    });

    it('both receive the same publications, whoever publishes', TEST, async () => {
      const channel = uniqueChannel('mixed', 'chat:');
      const j = await json.connected({}, 'JSON client');
      const p = await proto.connected({}, 'Protobuf client');
      const { sub: subJ } = await subscribe(j.client, channel, {}, 'JSON');
      const { sub: subP } = await subscribe(p.client, channel, {}, 'Protobuf');

      const fromApi = { from: 'api', list: [1, 2, 3] };
      const fromJson = { from: 'json client', ok: true };
      const fromProto = { from: 'protobuf client', nested: { deep: 'yes' } };
      await publish(hub.apiUrl, channel, fromApi);
      await withTimeout(subJ.publish(PROTOCOLS[0].encode(fromJson)), 'the JSON client publish reply');
      await withTimeout(subP.publish(PROTOCOLS[1].encode(fromProto)), 'the Protobuf client publish reply');

      const expected = [fromApi, fromJson, fromProto].map((data, i) => ({ offset: i + 1, data }));
      const seenJ = await subJ.pubs.waitFor(3, 'three publications at the JSON client');
      const seenP = await subP.pubs.waitFor(3, 'three publications at the Protobuf client');
      assert.deepEqual(seenJ.map((x) => ({ offset: x.offset, data: PROTOCOLS[0].decode(x.data) })), expected);
      assert.deepEqual(seenP.map((x) => ({ offset: x.offset, data: PROTOCOLS[1].decode(x.data) })), expected);
      assert.equal(seenJ[2].info?.client, p.id, 'the JSON client sees the Protobuf publisher');
      assert.equal(seenP[1].info?.client, j.id, 'the Protobuf client sees the JSON publisher');
    });
  });
});

/** Retries `fn` until it stops throwing, for at most `ms`; then rethrows with `what`. */
async function eventually(fn, what, ms = 5000) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (Date.now() > deadline) {
        e.message = `${what}: still failing after ${ms} ms: ${e.message}`;
        throw e;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
