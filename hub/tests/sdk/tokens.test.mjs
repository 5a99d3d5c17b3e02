// Connection tokens through the centrifuge SDK's `token` option, over JSON and Protobuf:
// the JWT's `sub` becomes the user and its `info` the connection info that other clients
// see; a token with a bad signature ends the connection with 3500 "invalid token" and no
// reconnect.

import { describe, it, before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';

import { PROTOCOLS, Clients, nextEvent, startHub, subscribe, uniqueChannel, withTimeout } from './helpers.mjs';

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
    });
  }
});
