// The WebSocket the client's live streams use: ws's, bounded against a server that hangs with its
// port open (paused, a frozen VM). tRPC's keepAlive pings after silence and calls close() when no
// pong comes; ws's close() then waits for the server's close frame (30 s), and a reconnection's
// handshake to the same frozen server would wait for ever. Here a handshake gives up after
// `SOCKET_DEAD_MS`, and a close the server does not answer within CLOSE_WAIT_MS is cut (code 1006,
// which the server list takes as that server's failure: failover.ts).
import WebSocket from "ws";

/** How long a handshake, or a ping, may go unanswered before the server counts as dead (ms): generous, a busy server answers late. */
export const SOCKET_DEAD_MS = 10_000;
/** Silence on the socket after which the client pings the server (ms). */
export const SOCKET_PING_MS = 5_000;
/** How long a close waits for the server's close frame before the socket is cut (ms). */
const CLOSE_WAIT_MS = 1_000;

export class HungServerSocket extends WebSocket {
  constructor(url: string | URL, protocols?: string | string[]) {
    super(url, protocols, { handshakeTimeout: SOCKET_DEAD_MS });
  }

  override close(code?: number, reason?: string | Buffer): void {
    super.close(code, reason);
    const cut = setTimeout(() => this.terminate(), CLOSE_WAIT_MS);
    cut.unref();
    this.once("close", () => clearTimeout(cut));
  }
}
