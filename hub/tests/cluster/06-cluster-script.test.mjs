// deploy/local/cluster.sh: starts three nodes on consecutive ports, prints their URLs, n1
// owns every shard, and Ctrl-C (SIGINT) stops them all.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';

import { HUB_BIN, AMQP_URL, SHARDS, newPrefix, deleteTopology, shardOwners, apiResult, poll, withTimeout, sleep } from './helpers.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const SCRIPT = path.resolve(here, '../../../deploy/local/cluster.sh');
const prefix = newPrefix('s');
const logDir = mkdtempSync(path.join(os.tmpdir(), 'hub-cluster-sh-'));
let child;

after(async () => {
  if (child && child.exitCode === null && child.signalCode === null) {
    child.kill('SIGTERM');
    await withTimeout(new Promise((r) => child.once('exit', r)), 'cluster.sh to exit after SIGTERM (clean-up)', 30000).catch(() => {});
  }
  await deleteTopology(prefix);
  rmSync(logDir, { recursive: true, force: true });
});

function portFree(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

async function freeBase() {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20000 + Math.floor(Math.random() * 20000);
    const free = await Promise.all([1, 2, 3].map((k) => portFree(base + k)));
    if (free.every(Boolean)) return base;
  }
  throw new Error('no three consecutive free ports found');
}

test('cluster.sh starts n1..n3, prints their URLs and stops them all on Ctrl-C', { timeout: 120000 }, async () => {
  const base = await freeBase();
  child = spawn(SCRIPT, [], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, HUB_BIN, AMQP_URL, BASE_PORT: String(base), HUB_AMQP_PREFIX: prefix, LOG_DIR: logDir },
  });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));

  const ready = await Promise.race([
    poll(() => output.includes('Ctrl-C stops them all'), 'cluster.sh to report its nodes up', { ms: 90000, interval: 100 }).then(() => true),
    exited.then((e) => e),
  ]);
  assert.equal(ready, true, `cluster.sh exited before the nodes were up: ${JSON.stringify(ready)}\n${output}`);

  const nodes = [1, 2, 3].map((k) => ({ name: `n${k}`, url: `http://127.0.0.1:${base + k}`, apiUrl: `http://127.0.0.1:${base + k}/api` }));
  for (const n of nodes) {
    assert.ok(output.includes(`${n.name}  ${n.url}`), `cluster.sh prints ${n.name}'s URL ${n.url}:\n${output}`);
  }
  for (const n of nodes) {
    await poll(
      async () => {
        const info = await apiResult(n, 'info', {});
        const names = info.nodes.map((x) => x.name).sort();
        return JSON.stringify(names) === JSON.stringify(['n1', 'n2', 'n3']);
      },
      `/api/info of ${n.name} to list n1, n2, n3`,
      { ms: 15000 },
    );
  }
  // n1 started first: it owns every shard.
  const info = await apiResult(nodes[0], 'info', {});
  const n1uid = info.nodes.find((x) => x.name === 'n1').uid;
  const owners = await poll(
    async () => {
      const o = await shardOwners(prefix);
      return Object.keys(o).length === SHARDS ? o : false;
    },
    'an active consumer on every shard',
  );
  assert.ok(Object.values(owners).every((uid) => uid === n1uid), `n1 (${n1uid}) owns every shard: ${JSON.stringify(owners)}`);
  const pub = await apiResult(nodes[2], 'publish', { channel: 'news', data: { via: 'cluster.sh' } });
  assert.equal(pub.offset, 1, 'publishing through n3 works');

  // Ctrl-C.
  child.kill('SIGINT');
  const res = await withTimeout(exited, `cluster.sh to exit after SIGINT; output:\n${output}`, 30000);
  assert.ok(output.includes('stopped.'), `cluster.sh says it stopped the nodes:\n${output}`);
  assert.notEqual(res.code, null, `cluster.sh exited by itself (code ${res.code}, signal ${res.signal})`);
  await sleep(200);
  for (const n of nodes) {
    const stillThere = await fetch(`${n.url}/health`).then(
      () => true,
      () => false,
    );
    assert.equal(stillThere, false, `${n.name} no longer answers on ${n.url} after Ctrl-C`);
  }
});
