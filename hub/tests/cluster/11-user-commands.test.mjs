// Centrifugo 6 user features across nodes: the personal channel with
// single_connection (a new connection on n2 closes the user's connection on n1
// with 3504 "connection limit"), the server API's disconnect whitelist and
// refresh called on a third node, and a tags filter on a replica.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { startCluster, Clients, subscribe, apiResult, nextEvent, sleep } from './helpers.mjs';

const SECRET = 'cluster-user-commands';
const CONFIG = `
[personal_channel]
enabled = true
namespace = "personal"
single_connection = true

[namespaces.personal]
history_size = 10
history_ttl = "300s"
force_recovery = true
allow_user_limited_channels = true
`;

function token(sub) {
  const b64 = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');
  const unsigned = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub, exp: Math.floor(Date.now() / 1000) + 3600 })}`;
  return `${unsigned}.${createHmac('sha256', SECRET).update(unsigned).digest('base64url')}`;
}

/** The first `disconnected` or `connecting` event of `client` with `code`. */
function closedWith(client, code, what) {
  return Promise.race([
    nextEvent(client, 'disconnected', what, { filter: (ctx) => ctx.code === code }),
    nextEvent(client, 'connecting', what, { filter: (ctx) => ctx.code === code }),
  ]);
}

let cluster;
let dir;
const clients = new Clients();

before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'hub-cluster-user-'));
  const file = path.join(dir, 'hub.toml');
  writeFileSync(file, CONFIG);
  cluster = await startCluster({ args: ['--config', file, '--token-hmac-secret', SECRET] });
});

after(async () => {
  clients.closeAll();
  if (cluster) await cluster.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('single_connection: a connection on n2 closes the same user on n1', { timeout: 60000 }, async () => {
  const { n1, n2, n3 } = cluster.byName;
  const user = `solo-${process.pid}`;
  const channel = `personal:#${user}`;
  const first = clients.create(n1.wsUrl, { token: token(user) });
  const firstSubscribed = nextEvent(first, 'subscribed', `${channel} on n1`, { filter: (c) => c.channel === channel });
  first.connect();
  await firstSubscribed;
  const closed = closedWith(first, 3504, 'the n1 connection to be closed with 3504');
  const second = clients.create(n2.wsUrl, { token: token(user) });
  const secondSubscribed = nextEvent(second, 'subscribed', `${channel} on n2`, { filter: (c) => c.channel === channel });
  second.connect();
  await secondSubscribed;
  const ctx = await closed;
  assert.equal(ctx.reason, 'connection limit');
  const pub = nextEvent(second, 'publication', 'the personal publication on n2', { filter: (p) => p.channel === channel });
  await apiResult(n3, 'publish', { channel, data: { to: 'you' } });
  assert.deepEqual((await pub).data, { to: 'you' });
});

test('disconnect with a whitelist and refresh, called on n3, reach n1 and n2', { timeout: 60000 }, async () => {
  const { n1, n2, n3 } = cluster.byName;
  // Anonymous clients (user ""): no personal channel, so no single_connection.
  const { client: onN1 } = await clients.connected(n1, {}, 'anonymous client on n1');
  const { client: onN2, id: keptId } = await clients.connected(n2, {}, 'anonymous client on n2');
  const closed = closedWith(onN1, 3503, 'the client on n1 to be disconnected');
  await apiResult(n3, 'disconnect', { user: '', whitelist: [keptId] });
  assert.equal((await closed).reason, 'force disconnect');
  await sleep(500); // n2 had the command too
  assert.equal(onN2.state, 'connected', 'the whitelisted client on n2 stays');

  const expired = closedWith(onN2, 3005, 'the client on n2 to be closed as expired');
  await apiResult(n3, 'refresh', { user: '', client: keptId, expired: true });
  assert.equal((await expired).reason, 'connection expired');
});

test('a tags filter holds on a replica node', { timeout: 60000 }, async () => {
  const { n1, n2 } = cluster.byName;
  const { client } = await clients.connected(n2, {}, 'anonymous client on n2');
  const channel = `chat:tags-${process.pid}`;
  const { sub } = await subscribe(client, channel, { tagsFilter: { key: 'kind', cmp: 'eq', val: 'keep' } }, 'filtered');
  await apiResult(n1, 'publish', { channel, data: { n: 1 }, tags: { kind: 'drop' } });
  await apiResult(n1, 'publish', { channel, data: { n: 2 }, tags: { kind: 'keep' } });
  const items = await sub.pubs.waitFor(1, 'the kept publication');
  assert.deepEqual(items.map((p) => [p.offset, p.data]), [[2, { n: 2 }]]);
});
