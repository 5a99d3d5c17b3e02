// OpenTelemetry across nodes: a trace that enters on one node (the server API's
// `traceparent`, or a backend's AMQP message header) continues on the channel's owner
// (`sequence` span) and on every node that fans the publication out (`deliver` span),
// through the `traceparent` headers of the hub's AMQP messages. The spans are caught by
// a small OTLP/HTTP collector written here (protobuf bodies, decoded field by field).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';

import { startCluster, Clients, subscribe, amqpPublish, poll } from './helpers.mjs';

// Export every 100 ms instead of every 5 s (the SDK's standard variable, read by every node).
process.env.OTEL_BSP_SCHEDULE_DELAY = '100';

// ---- a minimal OTLP/HTTP collector ---------------------------------------------------------

/** The fields of one protobuf message: [number, value] (varints as BigInt, the rest as bytes). */
function fields(buf) {
  const out = [];
  let i = 0;
  const varint = () => {
    let x = 0n;
    let shift = 0n;
    for (;;) {
      const b = buf[i++];
      x |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return x;
      shift += 7n;
    }
  };
  while (i < buf.length) {
    const key = Number(varint());
    const [no, wire] = [key >> 3, key & 7];
    if (wire === 0) out.push([no, varint()]);
    else if (wire === 1 || wire === 5) {
      const n = wire === 1 ? 8 : 4;
      out.push([no, buf.subarray(i, i + n)]);
      i += n;
    } else if (wire === 2) {
      const len = Number(varint());
      out.push([no, buf.subarray(i, i + len)]);
      i += len;
    } else throw new Error(`protobuf wire type ${wire} not expected in OTLP traces`);
  }
  return out;
}

const text = (bytes) => Buffer.from(bytes).toString('utf8');
const hex = (bytes) => Buffer.from(bytes).toString('hex');

/** KeyValue list (field `no` of `msg`) as an object of strings (string, int and bool values). */
function attributes(msg, no) {
  const out = {};
  for (const [n, kv] of fields(msg)) {
    if (n !== no) continue;
    let key = '';
    let value = '';
    for (const [k, v] of fields(kv)) {
      if (k === 1) key = text(v);
      if (k === 2) {
        for (const [t, x] of fields(v)) value = t === 1 ? text(x) : String(x);
      }
    }
    out[key] = value;
  }
  return out;
}

/** ExportTraceServiceRequest → [{ name, traceId, spanId, parentSpanId, attributes, resource }]. */
function spansOf(body) {
  const spans = [];
  for (const [n, resourceSpans] of fields(body)) {
    if (n !== 1) continue;
    let resource = {};
    for (const [m, part] of fields(resourceSpans)) {
      if (m === 1) resource = attributes(part, 1);
      if (m !== 2) continue;
      for (const [s, span] of fields(part)) {
        if (s !== 2) continue;
        const f = Object.fromEntries(fields(span).filter(([k]) => [1, 2, 4, 5].includes(k)));
        spans.push({
          name: text(f[5] ?? []),
          traceId: hex(f[1] ?? []),
          spanId: hex(f[2] ?? []),
          parentSpanId: hex(f[4] ?? []),
          attributes: attributes(span, 9),
          resource,
        });
      }
    }
  }
  return spans;
}

const received = [];
const collector = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    if (req.method === 'POST' && req.url === '/v1/traces') {
      received.push(...spansOf(Buffer.concat(chunks)));
      res.writeHead(200, { 'Content-Type': 'application/x-protobuf' }).end();
    } else {
      res.writeHead(404).end();
    }
  });
});

/** The first span received that `matches` (within the default wait). */
function spanWhere(what, matches) {
  return poll(() => received.find(matches) ?? false, `a span ${what}; received: ${JSON.stringify(received.map((s) => `${s.name}@${s.resource['service.instance.id']}`))}`);
}

// ---- the tests ----------------------------------------------------------------------------

let cluster;
const clients = new Clients();

before(async () => {
  await new Promise((resolve) => collector.listen(0, '127.0.0.1', resolve));
  const endpoint = `http://127.0.0.1:${collector.address().port}`;
  // n1 starts first: it owns every shard, so a publication on n2 crosses nodes twice.
  cluster = await startCluster({ names: ['n1', 'n2'], args: ['--otel-endpoint', endpoint] });
});

after(async () => {
  clients.closeAll();
  if (cluster) await cluster.close();
  collector.close();
});

test('an API publish on one node is one trace: request → owner sequence → deliver on the subscriber node', { timeout: 60000 }, async () => {
  const { n2 } = cluster.byName;
  const channel = 'traced-api';
  const { client } = await clients.connected(n2, {}, 'client on n2');
  const { sub } = await subscribe(client, channel, {}, 'client on n2');

  const traceId = '5b8efff798038103d269b633813fc60c';
  const parentId = 'eee19b7ec3c1b174';
  const res = await fetch(`${n2.apiUrl}/publish`, {
    method: 'POST',
    headers: { 'X-API-Key': 'dev', 'Content-Type': 'application/json', traceparent: `00-${traceId}-${parentId}-01` },
    body: JSON.stringify({ channel, data: { traced: true } }),
  });
  assert.equal(res.status, 200, await res.text());
  await sub.pubs.until((xs) => xs.length >= 1, 'the client on n2 to receive the publication');

  const inTrace = (name) => (s) => s.name === name && s.traceId === traceId;
  const request = await spanWhere('request on n2', inTrace('request'));
  assert.equal(request.parentSpanId, parentId, 'the request span continues the caller');
  assert.equal(request.resource['service.instance.id'], 'n2');
  assert.equal(request.resource['service.name'], 'hub');

  const sequence = await spanWhere('sequence on the owner', inTrace('sequence'));
  assert.equal(sequence.resource['service.instance.id'], 'n1', 'n1 owns every shard');
  assert.equal(sequence.parentSpanId, request.spanId, "the owner's span is the child of n2's request span");
  assert.equal(sequence.attributes.channel, channel);
  assert.equal(sequence.attributes.offset, '1');

  const deliver = await spanWhere('deliver on n2', (s) => inTrace('deliver')(s) && s.resource['service.instance.id'] === 'n2');
  assert.equal(deliver.parentSpanId, sequence.spanId, "n2's fan-out is the child of the owner's span");
  assert.equal(deliver.attributes.subscribers, '1');
});

test("a backend's AMQP message with traceparent continues its trace on the owner and the subscriber node", { timeout: 60000 }, async () => {
  const { n2 } = cluster.byName;
  const channel = 'traced-amqp';
  const { client } = await clients.connected(n2, {}, 'client on n2');
  const { sub } = await subscribe(client, channel, {}, 'client on n2');

  const traceId = '0123456789abcdef0123456789abcdef';
  const parentId = '0123456789abcdef';
  await amqpPublish(cluster.prefix, channel, { from: 'backend' }, { headers: { traceparent: `00-${traceId}-${parentId}-01` } });
  await sub.pubs.until((xs) => xs.length >= 1, 'the client on n2 to receive the publication');

  const sequence = await spanWhere('sequence', (s) => s.name === 'sequence' && s.traceId === traceId);
  assert.equal(sequence.parentSpanId, parentId, "the owner's span continues the message's traceparent");
  const deliver = await spanWhere('deliver on n2', (s) => s.name === 'deliver' && s.traceId === traceId && s.resource['service.instance.id'] === 'n2');
  assert.equal(deliver.parentSpanId, sequence.spanId);
});
