// How each transport tells whether a call's answer reached its client (see delivery.ts).
//  - HTTP (tRPC and REST): the answer is delivered when the response finished, that is, was
//    handed whole to the connection, with a status below 500. A connection that closes first, or
//    a 5xx in its place, means the client never got it.
//  - WebSocket: tRPC's adapter sends a query or mutation answer a few microtasks after the
//    procedure returns, and only while the socket is open; one macrotask later it has either been
//    handed to the socket or dropped.
//  - In-process callers get the return value itself: always delivered.
// Past that point no server can know more (the bytes may sit unread in the client's kernel when
// it dies); the lease covers that case, as in every at-least-once queue.
import type { WebSocket } from "ws";
import type { PerKeyLimit } from "../per-key-limit.js";
import type { DeliverySink, Transport } from "../trpc/context.js";

export type { Transport };

/** What httpTransport needs of a response (node's ServerResponse, or what tRPC's adapters hand over). */
export interface ObservableResponse {
  readonly statusCode: number;
  /** True once the connection under the response is gone. */
  readonly destroyed?: boolean;
  /** True once the response was handed whole to the connection. */
  readonly writableFinished?: boolean;
  once(event: "finish" | "close", listener: () => void): unknown;
}

/** Responses of calls that parked to wait (long-polls): the server's slow-request log leaves them out. */
export const longPolls = new WeakSet<object>();

/**
 * Watches the response only once a call asks (a claim, a steal, a poll: what takes something for
 * its client): most requests never do, and an AbortController and two listeners a request were
 * 2% of the event loop under load. Asked late, it reads where the response already is.
 */
export function httpTransport(res: ObservableResponse): Transport {
  let watch: { gone: AbortController; state: () => "open" | "finished" | "closed"; waiting: DeliverySink[] } | undefined;
  const watched = () => {
    if (watch) return watch;
    const gone = new AbortController();
    let state: "open" | "finished" | "closed" = res.writableFinished ? "finished" : res.destroyed ? "closed" : "open";
    // The client left before the call began (while its body was read): nothing can reach it.
    if (state === "closed") gone.abort();
    const waiting: DeliverySink[] = [];
    if (state === "open") {
      res.once("finish", () => {
        state = "finished";
        for (const delivery of waiting.splice(0)) decideFinished(delivery);
      });
      res.once("close", () => {
        if (state === "finished") return;
        state = "closed";
        gone.abort();
        for (const delivery of waiting.splice(0)) delivery.undelivered();
      });
    }
    watch = { gone, state: () => state, waiting };
    return watch;
  };
  const decideFinished = (delivery: DeliverySink) => (res.statusCode < 500 ? delivery.delivered() : delivery.undelivered());
  return {
    get clientGone() {
      return watched().gone.signal;
    },
    waiting: () => longPolls.add(res),
    confirm(delivery) {
      const { state, waiting } = watched();
      const now = state();
      if (now === "open") waiting.push(delivery);
      else if (now === "finished") decideFinished(delivery);
      else delivery.undelivered();
    },
  };
}

/** `streams`: the live streams open on this socket, bounded (src/per-key-limit.ts); one per socket. */
export function webSocketTransport(socket: WebSocket, streams: PerKeyLimit): Transport {
  const gone = new AbortController();
  socket.once("close", () => gone.abort());
  return {
    clientGone: gone.signal,
    confirm(delivery) {
      setImmediate(() => (socket.readyState === socket.OPEN ? delivery.delivered() : delivery.undelivered()));
    },
    stream: {
      backlog: () => socket.bufferedAmount,
      close: (code, reason) => socket.close(code, reason),
      admitStream: () => streams.acquire("socket"),
    },
  };
}

export const inProcessTransport: Transport = {
  clientGone: undefined,
  confirm: (delivery) => delivery.delivered(),
};
