// Socket.IO v4, WebSocket transport only: "sub" joins a room (answered "subok"),
// "pub" emits "m" with the payload to the room.
const http = require('http');
const { Server } = require('socket.io');
const port = Number(process.env.PORT || 8102);
const server = http.createServer();
const io = new Server(server, { transports: ['websocket'], perMessageDeflate: false, serveClient: false });
io.on('connection', (socket) => {
  socket.on('sub', (channel) => { socket.join(channel); socket.emit('subok'); });
  socket.on('pub', (channel, payload) => { io.to(channel).emit('m', payload); });
});
server.listen(port, '127.0.0.1', () => console.log(`socket.io on ws://127.0.0.1:${port}/socket.io/`));
