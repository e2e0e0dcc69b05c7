// The WebSocket the client's live streams use: ws's, bounded against a server that hangs with its
// port open (paused, a frozen VM). tRPC's keepAlive pings after silence and calls close() when no
// pong comes; ws's close() then waits for the server's close frame (30 s), and a reconnection's
// handshake to the same frozen server would wait for ever. Here a handshake gives up after
// `SOCKET_DEAD_MS`, and the close of a socket whose server has gone silent is cut after
// CLOSE_WAIT_MS (code 1006, which the server list takes as that server's failure: failover.ts).
import WebSocket from "ws";

/** How long a handshake, or a ping, may go unanswered before the server counts as dead (ms): generous, a busy server answers late. */
export const SOCKET_DEAD_MS = 10_000;
/** Silence on the socket after which the client pings the server (ms). */
export const SOCKET_PING_MS = 5_000;
/** How long a close waits for the server's close frame before the socket is cut (ms). */
const CLOSE_WAIT_MS = 1_000;

export class HungServerSocket extends WebSocket {
  /** When the server was last heard from (Unix ms): a message, a pong, the opening. */
  private lastHeard = Date.now();

  constructor(url: string | URL, protocols?: string | string[]) {
    super(url, protocols, { handshakeTimeout: SOCKET_DEAD_MS });
    const heard = () => void (this.lastHeard = Date.now());
    this.on("open", heard);
    this.on("message", heard);
  }

  /**
   * Closes as ws does; cut after CLOSE_WAIT_MS only when the server has been silent for
   * SOCKET_DEAD_MS (its pings unanswered: the keepAlive's close). A close the client chose on a
   * server that answers (the last stream ended, close()) waits for its close frame as usual,
   * however busy the server is for a moment, and is no failure of that server.
   */
  override close(code?: number, reason?: string | Buffer): void {
    super.close(code, reason);
    if (Date.now() - this.lastHeard < SOCKET_DEAD_MS) return;
    const cut = setTimeout(() => this.terminate(), CLOSE_WAIT_MS);
    cut.unref();
    this.once("close", () => clearTimeout(cut));
  }
}
