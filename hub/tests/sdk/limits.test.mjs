// Connection and command limits as the centrifuge SDK sees them, over JSON and Protobuf:
// a user's connection past `client_user_connection_limit` ends in the `disconnected`
// state with 3504 "connection limit" and no reconnect; a publish over
// `client_command_rate` is rejected with error 111 "too many requests" (temporary),
// and a client that keeps going is closed with 3013 and reconnects by itself.

import { describe, it, before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { PROTOCOLS, Clients, nextEvent, sleep, startHub, subscribe, uniqueChannel, withTimeout } from './helpers.mjs';

const SECRET = 'sdk-limits-secret';
const TEST = { timeout: 30000 };

function jwt(claims) {
  const b64 = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');
  const unsigned = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${unsigned}.${createHmac('sha256', SECRET).update(unsigned).digest('base64url')}`;
}

describe('limits with the centrifuge SDK', () => {
  let hub;
  let dir;
  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'hub-limits-'));
    const file = path.join(dir, 'hub.toml');
    writeFileSync(
      file,
      [
        'client_user_connection_limit = 1',
        'client_command_rate = 1',
        'client_command_burst = 2',
        'client_command_rate_disconnect_after = 1',
      ].join('\n'),
    );
    hub = await startHub(['--dev', '--token-hmac-secret', SECRET, '--config', file], { name: 'limits' });
  });
  after(async () => {
    if (hub) await hub.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const P of PROTOCOLS) {
    describe(`over ${P.name}`, () => {
      let clients;
      beforeEach(() => {
        clients = new Clients(P, hub.wsUrl);
      });
      afterEach(() => clients.disconnectAll());

      it("a user's second connection is refused with 3504 and not retried", TEST, async () => {
        const user = `limited-${P.name}`;
        await clients.connected({ token: jwt({ sub: user }) }, 'first');
        const second = clients.create({ token: jwt({ sub: user }) });
        const disconnected = nextEvent(second, 'disconnected', 'the second connection to be refused');
        let reconnecting = 0;
        second.on('connecting', (ctx) => {
          if (ctx.code !== 0) reconnecting += 1;
        });
        second.connect();
        const ctx = await disconnected;
        assert.equal(ctx.code, 3504);
        assert.equal(ctx.reason, 'connection limit');
        await sleep(500);
        assert.equal(second.state, 'disconnected');
        assert.equal(reconnecting, 0, 'the SDK does not reconnect after 3504');
      });

      it('publishing over the rate is error 111, then 3013 and a reconnect', TEST, async () => {
        const { client } = await clients.connected({}, 'anonymous');
        const channel = uniqueChannel(`limits-${P.name}`, 'chat:');
        const { sub } = await subscribe(client, channel, {}, 'publisher'); // 1 of the burst of 2
        await withTimeout(sub.publish(P.encode({ n: 1 })), 'the first publish'); // 2 of 2
        await assert.rejects(sub.publish(P.encode({ n: 2 })), (error) => {
          assert.equal(error.code, 111);
          assert.equal(error.message, 'too many requests');
          return true;
        });
        const reconnecting = nextEvent(client, 'connecting', 'the SDK to reconnect after 3013', {
          filter: (ctx) => ctx.code === 3013,
        });
        sub.publish(P.encode({ n: 3 })).catch(() => {});
        const ctx = await reconnecting;
        assert.equal(ctx.reason, 'too many requests');
        await nextEvent(client, 'connected', 'the SDK to be connected again', { ms: 15000 });
      });
    });
  }
});
