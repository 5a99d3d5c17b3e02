// The examples of the centrifuge SDK's own README (node_modules/centrifuge/README.md),
// run against `hub --dev` with their text unchanged except for the URL. The README's
// "Using with NodeJS" way is followed: `ws` defined as the global WebSocket.
// Each example runs in its own function scope, given `Centrifuge` and a `console` that
// records what the example prints; the harness appends a `return` to get its objects.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';

import WebSocket from 'ws';
import { Centrifuge } from 'centrifuge';

import { Clients, PROTOCOLS, nextEvent, publish, startHub, subscribe, withTimeout } from './helpers.mjs';

global.WebSocket = WebSocket;

const README_URL = 'ws://centrifuge.example.com/connection/websocket';
const TEST = { timeout: 30000 };

// "Quick start".
const QUICK_START = `
// Use WebSocket transport endpoint.
const centrifuge = new Centrifuge('ws://centrifuge.example.com/connection/websocket');

// Allocate Subscription to a channel.
const sub = centrifuge.newSubscription('news');

// React on \`news\` channel real-time publications.
sub.on('publication', function(ctx) {
    console.log(ctx.data);
});

// Trigger subscribe process.
sub.subscribe();

// Trigger actual connection establishement.
centrifuge.connect();
`;

// "connect method", "connected event", "publish method", "presence method",
// "presenceStats method", then the Subscription's "presence method", "presenceStats
// method" and "history method".
const CLIENT_METHODS = `
const centrifuge = new Centrifuge('ws://centrifuge.example.com/connection/websocket');
centrifuge.connect();

centrifuge.on('connected', function(ctx) {
    // now client connected to Centrifugo and authenticated.
});

centrifuge.publish("channel", {"input": "hello"}).then(function(res) {
    console.log('successfully published');
}, function(err) {
    console.log('publish error', err);
});

centrifuge.presence("channel").then(function(resp) {
    console.log(resp);
}, function(err) {
    console.log('presence error', err);
});

centrifuge.presenceStats("channel").then(function(resp) {
    console.log(resp);
}, function(err) {
    console.log('presence stats error', err);
});

const sub = centrifuge.newSubscription("news");
sub.subscribe()

sub.presence().then(function(ctx) {
    console.log(ctx.clients);
}, function(err) {
    // presence call failed with error
});

sub.presenceStats().then(function(ctx) {
    console.log(ctx.numClients);
}, function(err) {
    // presence stats call failed with error
});

sub.history({limit: 100}).then(function(ctx) {
    console.log(ctx.publications);
}, function(err) {
    // history call failed with error
});
`;

/** A console that records each console.log call's arguments. */
function recordingConsole() {
  const lines = [];
  const waiters = [];
  const check = () => {
    for (const w of [...waiters]) {
      const found = lines.find(w.match);
      if (found) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(found);
      }
    }
  };
  return {
    lines,
    console: {
      log: (...args) => {
        lines.push(args);
        check();
      },
    },
    waitFor(match, what) {
      const p = new Promise((resolve) => {
        waiters.push({ match, resolve });
        check();
      });
      return withTimeout(p, `the example to print ${what}`).catch((e) => {
        e.message += `; printed so far: ${JSON.stringify(lines)}`;
        throw e;
      });
    },
  };
}

/** Runs README text as written, with only the URL replaced; returns its named objects. */
function runExample(text, url, fakeConsole, names) {
  assert.ok(text.includes(README_URL));
  const body = `${text.replaceAll(README_URL, url)}\nreturn { ${names.join(', ')} };`;
  // eslint-disable-next-line no-new-func
  return new Function('Centrifuge', 'console', body)(Centrifuge, fakeConsole);
}

describe('the centrifuge README examples against hub --dev', () => {
  let hub;
  const started = [];
  before(async () => {
    hub = await startHub(['--dev'], { name: 'readme' });
  });
  after(async () => {
    for (const c of started) c.disconnect();
    if (hub) await hub.stop();
  });

  it('quick start: connect, subscribe to "news", print its publications', TEST, async () => {
    const out = recordingConsole();
    const { centrifuge, sub } = runExample(QUICK_START, hub.wsUrl, out.console, ['centrifuge', 'sub']);
    started.push(centrifuge);
    await withTimeout(sub.ready(), 'the quick start subscription to "news" to be ready');
    assert.equal(centrifuge.state, 'connected');

    const data = { text: 'hello from the server API' };
    await publish(hub.apiUrl, 'news', data);
    await out.waitFor((args) => isDeepStrictEqual(args, [data]), JSON.stringify(data));
  });

  it('client methods: publish, presence, presence stats, history', TEST, async () => {
    // A reader of "channel" sees what the example publishes there.
    const reader = new Clients(PROTOCOLS[0], hub.wsUrl);
    const { client } = await reader.connected({}, 'reader of "channel"');
    started.push(client);
    const { sub: readerSub } = await subscribe(client, 'channel', {}, 'reader');

    const out = recordingConsole();
    const { centrifuge, sub } = runExample(CLIENT_METHODS, hub.wsUrl, out.console, ['centrifuge', 'sub']);
    started.push(centrifuge);
    const { client: myId } = await nextEvent(centrifuge, 'connected', 'the example client to connect');

    await out.waitFor((args) => args[0] === 'successfully published', '"successfully published"');
    const [pub] = await readerSub.pubs.waitFor(1, 'the example publication on "channel"');
    assert.deepEqual(pub.data, { input: 'hello' });

    await withTimeout(sub.ready(), 'the example subscription to "news" to be ready');

    // centrifuge.presence("channel"): the reader is there (the example only published).
    await out.waitFor(
      (args) => args.length === 1 && args[0]?.clients && Object.keys(args[0].clients).length === 1,
      'the presence of "channel" with the reader in it',
    );
    await out.waitFor(
      (args) => args.length === 1 && args[0]?.numClients === 1 && args[0]?.numUsers === 1,
      'the presence stats of "channel"',
    );
    // sub.presence(): the example's own client is subscribed to "news".
    await out.waitFor(
      (args) => args.length === 1 && args[0] && typeof args[0] === 'object' && myId in args[0],
      `the presence of "news" listing the example client ${myId}`,
    );
    await out.waitFor((args) => args.length === 1 && typeof args[0] === 'number' && args[0] >= 1, 'numClients of "news"');
    await out.waitFor((args) => args.length === 1 && Array.isArray(args[0]), 'the history of "news"');

    const errors = out.lines.filter((args) => typeof args[0] === 'string' && args[0].includes('error'));
    assert.deepEqual(errors, [], 'no example printed an error');
  });
});
