// tRPC's WebSocket client sends every call queued in one tick as one frame, and on a reconnect
// every open subscription again in one frame. The server refuses a frame of more than its
// maxBatchCalls (100 by default) whole: 101 subscriptions opened together all failed, and 150
// opened one by one all died at the first reconnect, none retried (a trial). This socket sends
// such a frame as frames of at most MAX_FRAME_CALLS calls each, which the server takes one by
// one, as it does HTTP batches of the same bound (index.ts).
import { HungServerSocket } from "./hung-server-socket.js";

/** The most calls in one frame: as many as in one HTTP batch of the client, below the server's default 100. */
export const MAX_FRAME_CALLS = 50;

export class CallBoundedSocket extends HungServerSocket {
  // The options and callback of ws's send, passed on as given (tRPC sends text alone).
  override send(data: Parameters<HungServerSocket["send"]>[0], ...rest: never[]): void {
    // A batch is a JSON array (tRPC's encoder); a single call, a ping, anything else goes as it is.
    if (typeof data === "string" && data.startsWith("[")) {
      const calls = JSON.parse(data) as unknown[];
      if (calls.length > MAX_FRAME_CALLS) {
        for (let at = 0; at < calls.length; at += MAX_FRAME_CALLS) super.send(JSON.stringify(calls.slice(at, at + MAX_FRAME_CALLS)));
        return;
      }
    }
    (super.send as (data: unknown, ...rest: unknown[]) => void).call(this, data, ...rest);
  }
}
