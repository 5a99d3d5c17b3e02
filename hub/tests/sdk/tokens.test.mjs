// Connection tokens through the centrifuge SDK's `token` option, over JSON and Protobuf:
// the JWT's `sub` becomes the user and its `info` the connection info that other clients
// see; a token with a bad signature ends the connection with 3500 "invalid token" and no
// reconnect. Issue 16: a subscription token is not a connection token (3500); a bad
// subscription token refuses that subscription only (103); a slow getToken refreshes
// within the grace after `exp` (client_expired_close_delay, 25 s by default); an `rpc`
// without a handler answers 108.

import { describe, it, before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';

import { PROTOCOLS, Clients, nextEvent, publish, record, sleep, startHub, subscribe, uniqueChannel, withTimeout } from './helpers.mjs';

const SECRET = 'sdk-test-secret';
const TEST = { timeout: 30000 };

/** An HS256 JWT with `claims`, signed with `secret`. */
function jwt(claims, secret = SECRET) {
  const b64 = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');
  const unsigned = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  const sig = createHmac('sha256', secret).update(unsigned).digest('base64url');
  return `${unsigned}.${sig}`;
}

const inAnHour = () => Math.floor(Date.now() / 1000) + 3600;

describe('connection tokens with the centrifuge SDK', () => {
  let hub;
  before(async () => {
    hub = await startHub(['--dev', '--token-hmac-secret', SECRET], { name: 'tokens' });
  });
  after(async () => {
    if (hub) await hub.stop();
  });

  for (const P of PROTOCOLS) {
    describe(`over ${P.name}`, () => {
      let clients;
      beforeEach(() => {
        clients = new Clients(P, hub.wsUrl);
      });
      afterEach(() => clients.disconnectAll());

      it('the token sub and info are the user and connection info others see', TEST, async () => {
        const channel = uniqueChannel(`tokens-${P.name}`, 'chat:');
        const info = { name: 'Alice', role: 'tester' };
        const alice = await clients.connected({ token: jwt({ sub: 'alice', exp: inAnHour(), info }) }, 'alice');
        const bob = await clients.connected({ token: jwt({ sub: 'bob', exp: inAnHour() }) }, 'bob');
        const { sub: subAlice } = await subscribe(alice.client, channel, {}, 'alice');
        const { sub: subBob } = await subscribe(bob.client, channel, {}, 'bob');

        const presence = await withTimeout(subBob.presence(), `presence of "${channel}"`);
        const entry = presence.clients[alice.id];
        assert.ok(entry, `alice (${alice.id}) in presence ${JSON.stringify(presence.clients)}`);
        assert.equal(entry.user, 'alice');
        assert.deepEqual(P.decode(entry.connInfo), info, 'connInfo is the token info');
        assert.equal(presence.clients[bob.id]?.user, 'bob');

        const stats = await withTimeout(subBob.presenceStats(), `presence stats of "${channel}"`);
        assert.deepEqual(stats, { numClients: 2, numUsers: 2 });

        await withTimeout(subAlice.publish(P.encode({ hi: 'bob' })), 'the reply to alice publish');
        const [pub] = await subBob.pubs.waitFor(1, `alice's publication at bob on "${channel}"`);
        assert.equal(pub.info?.user, 'alice');
        assert.equal(pub.info?.client, alice.id);
        assert.deepEqual(P.decode(pub.info.connInfo), info);
      });

      it('a token with a bad signature: disconnected with 3500, no reconnect', TEST, async () => {
        const client = clients.create({ token: jwt({ sub: 'mallory', exp: inAnHour() }, 'not-the-secret') });
        const disconnected = nextEvent(client, 'disconnected', 'the client to be disconnected for its bad token');
        const connected = [];
        client.on('connected', (ctx) => connected.push(ctx));
        client.connect();
        const ctx = await disconnected;
        assert.equal(ctx.code, 3500, `disconnect code, got ${JSON.stringify(ctx)}`);
        assert.equal(ctx.reason, 'invalid token');
        assert.equal(client.state, 'disconnected');
        assert.deepEqual(connected, [], 'the client never got connected');
      });

      it('a subscription token is not a connection token: disconnected with 3500, no reconnect', TEST, async () => {
        // No `exp`: accepted as a connection token it would connect as alice forever.
        const client = clients.create({ token: jwt({ sub: 'alice', channel: 'chat:a' }) });
        const disconnected = nextEvent(client, 'disconnected', 'the client to be disconnected for its subscription token');
        const connected = [];
        client.on('connected', (ctx) => connected.push(ctx));
        client.connect();
        const ctx = await disconnected;
        assert.deepEqual([ctx.code, ctx.reason], [3500, 'invalid token'], JSON.stringify(ctx));
        assert.equal(client.state, 'disconnected');
        assert.deepEqual(connected, [], 'the client never got connected');
      });

      it('a bad subscription token refuses that subscription only (103); the others go on', TEST, async () => {
        const keep = uniqueChannel(`keep-${P.name}`, 'chat:');
        const guarded = uniqueChannel(`guarded-${P.name}`, 'chat:');
        const { client } = await clients.connected({ token: jwt({ sub: 'alice', exp: inAnHour() }) }, 'alice');
        const disconnects = record(client, 'disconnected');
        const { sub: kept } = await subscribe(client, keep, {}, 'the good subscription');
        for (const [what, token] of [
          ['a bad signature', jwt({ sub: 'alice', channel: guarded, exp: inAnHour() }, 'not-the-secret')],
          ['a connection token', jwt({ sub: 'alice', exp: inAnHour() })],
        ]) {
          const sub = client.newSubscription(guarded, { token });
          const unsubscribed = nextEvent(sub, 'unsubscribed', `the subscription with ${what} to be refused`);
          sub.subscribe();
          const ctx = await unsubscribed;
          assert.deepEqual([ctx.code, ctx.reason], [103, 'permission denied'], `${what}: ${JSON.stringify(ctx)}`);
          client.removeSubscription(sub);
        }
        assert.equal(client.state, 'connected');
        assert.deepEqual(disconnects.items, [], 'the connection never dropped');
        await publish(hub.apiUrl, keep, { still: 'here' });
        const [pub] = await kept.pubs.waitFor(1, 'a publication on the other subscription');
        assert.deepEqual(P.decode(pub.data), { still: 'here' });
      });

      it('a getToken slower than the time left keeps the connection and the subscription (grace after exp)', TEST, async () => {
        const channel = uniqueChannel(`grace-${P.name}`, 'chat:');
        const soon = () => Math.floor(Date.now() / 1000) + 1;
        const fetches = { connection: 0, subscription: 0 };
        const { client } = await clients.connected(
          {
            token: jwt({ sub: 'alice', exp: soon() }),
            getToken: async () => {
              fetches.connection += 1;
              await sleep(1500);
              return jwt({ sub: 'alice', exp: inAnHour() });
            },
          },
          'alice',
        );
        const disconnects = record(client, 'disconnected');
        const { sub } = await subscribe(
          client,
          channel,
          {
            token: jwt({ sub: 'alice', channel, exp: soon() }),
            getToken: async () => {
              fetches.subscription += 1;
              await sleep(1500);
              return jwt({ sub: 'alice', channel, exp: inAnHour() });
            },
          },
          'the subscription with a token',
        );
        const unsubscribes = record(sub, 'unsubscribed');
        const resubscribes = record(sub, 'subscribing');
        // exp + 1.5 s of getToken, and then some: the hub used to close one second after exp.
        await sleep(4000);
        assert.deepEqual(fetches, { connection: 1, subscription: 1 }, 'each token was refreshed once');
        assert.deepEqual(disconnects.items, [], 'the connection was never closed');
        assert.deepEqual(unsubscribes.items, [], 'the subscription never ended');
        assert.deepEqual(resubscribes.items, [], 'the subscription never had to resubscribe');
        assert.equal(client.state, 'connected');
        await publish(hub.apiUrl, channel, { after: 'refresh' });
        const [pub] = await sub.pubs.waitFor(1, 'a publication after both refreshes');
        assert.deepEqual(P.decode(pub.data), { after: 'refresh' });
      });

      it('rpc without an RPC handler answers 108 "not available" (as Centrifugo)', TEST, async () => {
        const { client } = await clients.connected({ token: jwt({ sub: 'alice', exp: inAnHour() }) }, 'alice');
        await assert.rejects(withTimeout(client.rpc('sum', P.encode({ a: 1 })), 'the rpc reply'), (err) => {
          assert.deepEqual([err.code, err.message], [108, 'not available'], JSON.stringify(err));
          return true;
        });
        assert.equal(client.state, 'connected');
      });
    });
  }
});
