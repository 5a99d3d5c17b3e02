// Centrifugo 6 features the centrifuge SDK uses, over JSON and Protobuf:
// - subscribe flag 2 (reject unrecovered): a subscription with `getState` that
//   cannot recover after a reconnect gets error 112 "unrecoverable position",
//   and the SDK asks `getState` again instead of delivering `recovered: false`;
// - the personal channel (`[personal_channel]`): a user's connection is
//   subscribed server-side to `personal:#<user>` at connect, recovers it after a
//   reconnect, and other users are refused it with 103 (user-limited channel);
// - tags filters (`tagsFilter`): only the publications whose tags pass.

import { describe, it, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
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

[namespaces.tagged]
history_size = 10
history_ttl = "300s"
allow_subscribe = true
allow_tags_filter = true
`;

const SECRET = 'sdk-c6-secret';

// Tokens, and personal channels in the namespace `personal`.
const PERSONAL_CONFIG = `
[personal_channel]
enabled = true
namespace = "personal"

[namespaces.personal]
history_size = 10
history_ttl = "300s"
force_recovery = true
allow_user_limited_channels = true
`;

/** An HS256 connection JWT for `sub`, valid for an hour. */
function token(sub) {
  const b64 = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');
  const unsigned = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub, exp: Math.floor(Date.now() / 1000) + 3600 })}`;
  return `${unsigned}.${createHmac('sha256', SECRET).update(unsigned).digest('base64url')}`;
}

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

      it('tagsFilter: only the publications whose tags pass it', TEST, async () => {
        const clients = new Clients(P, hub.wsUrl);
        cleanups.push(() => clients.disconnectAll());
        const { client } = await clients.connected({}, 'filtering client');
        const channel = uniqueChannel(`tagged:prices-${P.name}`);
        const sub = client.newSubscription(channel, {
          tagsFilter: { op: 'or', nodes: [{ key: 'ticker', cmp: 'eq', val: 'BTC' }, { key: 'price', cmp: 'gt', val: '100' }] },
        });
        const received = [];
        sub.on('publication', (ctx) => received.push(P.decode(ctx.data)));
        const subscribed = nextEvent(sub, 'subscribed', 'the filtered subscription');
        sub.subscribe();
        await subscribed;
        const last = nextEvent(sub, 'publication', 'the last matching publication', { filter: (ctx) => P.decode(ctx.data).n === 4 });
        await api(hub.apiUrl, 'publish', { channel, data: { n: 1 }, tags: { ticker: 'ETH', price: '50' } });
        await api(hub.apiUrl, 'publish', { channel, data: { n: 2 }, tags: { ticker: 'BTC', price: '50' } });
        await api(hub.apiUrl, 'publish', { channel, data: { n: 3 } });
        await api(hub.apiUrl, 'publish', { channel, data: { n: 4 }, tags: { ticker: 'ETH', price: '100.5' } });
        await last;
        assert.deepEqual(received, [{ n: 2 }, { n: 4 }]);

        // A namespace without allow_tags_filter refuses it: 107, for good.
        const refused = client.newSubscription(uniqueChannel('smallhistory:nofilter'), {
          tagsFilter: { key: 'ticker', cmp: 'eq', val: 'BTC' },
        });
        const gone = nextEvent(refused, 'unsubscribed', 'the refused filter');
        refused.subscribe();
        const ctx = await gone;
        assert.deepEqual({ code: ctx.code, reason: ctx.reason }, { code: 107, reason: 'bad request' });
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

describe('the personal channel with the centrifuge SDK', () => {
  let hub;
  let dir;
  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'hub-c6-personal-'));
    const file = path.join(dir, 'hub.toml');
    writeFileSync(file, PERSONAL_CONFIG);
    hub = await startHub(['--dev', '--config', file, '--token-hmac-secret', SECRET], { name: 'personal' });
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

      it('a user is subscribed server-side to personal:#<user> and recovers it', TEST, async () => {
        const user = `${P.name}-${process.pid}-42`;
        const channel = `personal:#${user}`;
        const network = await new Network().start();
        cleanups.push(() => network.close());
        const clients = new Clients(P, hub.wsUrl);
        cleanups.push(() => clients.disconnectAll());
        const client = clients.create({
          token: token(user),
          websocket: network.WebSocket,
          minReconnectDelay: 100,
          maxReconnectDelay: 300,
        });
        const subscribed = nextEvent(client, 'subscribed', `the server-side subscription to ${channel}`, {
          filter: (ctx) => ctx.channel === channel,
        });
        client.connect();
        const ctx = await subscribed;
        assert.equal(ctx.recoverable, true, JSON.stringify(ctx));

        const live = nextEvent(client, 'publication', `a publication on ${channel}`, {
          filter: (p) => p.channel === channel,
        });
        await publish(hub.apiUrl, channel, { n: 1 });
        assert.deepEqual(P.decode((await live).data), { n: 1 });

        // Cut off: what is published meanwhile comes back with the reconnect.
        const down = nextEvent(client, 'connecting', 'the client to notice the cut');
        network.cut();
        await down;
        await publish(hub.apiUrl, channel, { n: 2 });
        const recovered = nextEvent(client, 'subscribed', 'the personal channel after the reconnect', {
          filter: (c) => c.channel === channel,
          ms: 10000,
        });
        const missed = nextEvent(client, 'publication', 'the missed publication', {
          filter: (p) => p.channel === channel,
          ms: 10000,
        });
        network.restore();
        const again = await recovered;
        assert.equal(again.streamPosition.offset, 2, JSON.stringify(again));
        if (P.name === 'json') {
          // The subscribe push's recovery outcome is a JSON extension of the hub
          // (the upstream Protobuf `Subscribe` has no such fields).
          assert.equal(again.recovered, true, JSON.stringify(again));
        }
        const pub = await missed;
        assert.equal(pub.offset, 2);
        assert.deepEqual(P.decode(pub.data), { n: 2 });
      });

      it("another user's personal channel is refused with 103", TEST, async () => {
        const owner = `${P.name}-${process.pid}-owner`;
        const clients = new Clients(P, hub.wsUrl);
        cleanups.push(() => clients.disconnectAll());
        const other = `${P.name}-${process.pid}-other`;
        const { client } = await clients.connected({ token: token(other) }, 'the other user');
        const sub = client.newSubscription(`personal:#${owner}`);
        const refused = nextEvent(sub, 'unsubscribed', "the refusal of another user's personal channel");
        sub.subscribe();
        const ctx = await refused;
        assert.deepEqual({ code: ctx.code, reason: ctx.reason }, { code: 103, reason: 'permission denied' });
        // A user-limited channel that lists the user is open to it.
        const shared = client.newSubscription(`personal:dialog#${owner},${other}`);
        const ok = nextEvent(shared, 'subscribed', 'a user-limited channel listing the user');
        shared.subscribe();
        await ok;
      });
    });
  }
});
