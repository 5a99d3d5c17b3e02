// The baseline: a plain Node `ws` server with channels and nothing else.
// Client -> server: "S<channel>" subscribes (answer "OK"), "P<channel> <payload>"
// sends <payload> to every subscriber of <channel>, one WebSocket message each.
const { WebSocketServer } = require('ws');
const port = Number(process.env.PORT || 8101);
const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false });
const channels = new Map();
wss.on('connection', (ws) => {
  ws.subs = [];
  ws.on('message', (data) => {
    const text = data.toString();
    if (text[0] === 'S') {
      const name = text.slice(1);
      if (!channels.has(name)) channels.set(name, new Set());
      channels.get(name).add(ws);
      ws.subs.push(name);
      ws.send('OK');
    } else if (text[0] === 'P') {
      const space = text.indexOf(' ');
      const subscribers = channels.get(text.slice(1, space));
      if (!subscribers) return;
      const payload = text.slice(space + 1);
      for (const client of subscribers) client.send(payload);
    }
  });
  ws.on('close', () => { for (const name of ws.subs) channels.get(name)?.delete(ws); });
});
console.log(`ws baseline on ws://127.0.0.1:${port}/`);
