/**
 * A network between SDK clients and a hub that a test can cut, shared by the
 * Node test packages (hub/tests/sdk, hub/tests/cluster). It imports nothing
 * outside Node itself: each package passes its own `ws` WebSocket class.
 *
 * Pass `network.WebSocket` as the SDK's `websocket` option.
 * - `cut()`: destroys every open socket without a WebSocket close (the hub sees
 *   the TCP connection drop, as when a phone loses coverage), and makes new
 *   connection attempts fail (they go to a port that drops them) until `restore()`.
 * - `restore()`: new attempts reach the hub again.
 * - `attempts`: connection attempts made through this network.
 */
import net from 'node:net';

export function networkClass(WebSocket) {
  return class Network {
    constructor() {
      this.sockets = new Set();
      this.down = false;
      this.attempts = 0;
      // Accepts TCP connections and drops them at once: where attempts go while cut.
      this.blackhole = net.createServer((sock) => sock.destroy());
      const network = this;
      this.WebSocket = class CuttableWebSocket extends WebSocket {
        constructor(address, protocols, options) {
          network.attempts += 1;
          super(network.down ? network.blackholeUrl : address, protocols, options);
          network.sockets.add(this);
          this.on('close', () => network.sockets.delete(this));
        }
      };
    }

    async start() {
      await new Promise((resolve) => this.blackhole.listen(0, '127.0.0.1', resolve));
      this.blackholeUrl = `ws://127.0.0.1:${this.blackhole.address().port}/connection/websocket`;
      return this;
    }

    cut() {
      this.down = true;
      for (const s of this.sockets) s.terminate();
    }

    restore() {
      this.down = false;
    }

    close() {
      for (const s of this.sockets) s.terminate();
      return new Promise((resolve) => this.blackhole.close(() => resolve()));
    }
  };
}
