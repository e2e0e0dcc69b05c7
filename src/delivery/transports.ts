// How each transport tells whether a call's answer reached its client (see delivery.ts).
//  - HTTP (tRPC and REST): the answer is delivered when the response finished, that is, was
//    handed whole to the connection, with a status below 500. A connection that closes first, or
//    a 5xx in its place, means the client never got it. Node also finishes a response whose
//    connection failed under it (the client reset it mid-body: the rest of the body is dropped
//    unsent), so a finish on a connection that failed is a close. A call asks (confirm, gone)
//    before its answer is written: the answer goes out after the procedure returned. So a
//    response no longer open when it asks (ended, finished or closed) cannot carry that answer,
//    whatever else it carried: it is gone. Node's own fields cannot tell the order apart: the MCP
//    SDK ends the response of a POST whose client left, and Node then reads it destroyed and
//    writableFinished both (writableFinished only asks whether end() was called with nothing
//    left to write, and nothing is left on a detached socket).
//  - WebSocket: tRPC's adapter sends a query or mutation answer a few microtasks after the
//    procedure returns, and only while the socket is open; one macrotask later it has either been
//    queued on the socket or dropped. Queued, it is delivered once it was handed to the
//    connection: a ping sent after it is written after it (ws writes frames in order), and the
//    ping's callback says when that happened, with the socket still open (Node calls a write that
//    its socket's destruction cut short done, without an error).
//  - MCP: a tool's answer travels in the HTTP response of the POST that carried its request, and
//    is delivered as that response is (above); a request its client cancelled
//    (notifications/cancelled) is never answered by the SDK, so it is undelivered at once.
//  - In-process callers get the return value itself: always delivered.
// Past that point no server can know more (the bytes may sit unread in the client's kernel when
// it dies); the lease covers that case, as in every at-least-once queue.
import type { WebSocket } from "ws";
import { CoordinationError } from "../errors.js";
import type { PerKeyLimit } from "../per-key-limit.js";
import type { DeliverySink, Transport } from "../trpc/context.js";

export type { Transport };

/** What httpTransport needs of a response (node's ServerResponse, or what tRPC's adapters hand over). */
export interface ObservableResponse {
  readonly statusCode: number;
  /** True once the connection under the response is gone. */
  readonly destroyed?: boolean;
  /** True once the response was handed whole to the connection (or that connection failed: see socket), or ended on one that closed. */
  readonly writableFinished?: boolean;
  /** True once end() was called: nothing more can be written to it. */
  readonly writableEnded?: boolean;
  /** The connection: `errored` once it failed (reset, broken pipe). Node detaches it from the response when the response finishes. */
  readonly socket?: { readonly errored?: unknown } | null;
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
  return new HttpTransport(res);
}

/**
 * A class, not an object literal with a `get clientGone()`: V8 builds a literal with an accessor
 * in its old generation, where it held on to the response (and the whole request: headers,
 * parser state, closures) through every young collection until the next full one. Every HTTP
 * request creates one: under load the event loop promoted 2-3 KB a request, its scavenges took
 * 10-20 ms, and V8's helper threads spent 0.75 ms of CPU a task (bench/RESULTS.md, 2026-11-30).
 */
class HttpTransport implements Transport {
  private watch: { gone: AbortController; state: "open" | "finished" | "closed"; waiting: DeliverySink[] } | undefined;
  /** Read when the request comes: by the time the response finishes, Node has detached it. */
  private readonly socket: ObservableResponse["socket"];

  constructor(private readonly res: ObservableResponse) {
    this.socket = res.socket;
  }

  get clientGone(): AbortSignal {
    return this.watched().gone.signal;
  }

  gone(): boolean {
    // As watched() would find it, without making its AbortController and listeners.
    return (this.watch?.state ?? this.stateNow()) !== "open";
  }

  /**
   * Whether the response can still carry the asking call's answer: not ended (end() called),
   * finished, destroyed, nor on a connection that failed. Anything else is closed for that call
   * (see above): read by a call before its answer goes out, a finished response is one that
   * ended without it.
   */
  private stateNow(): "open" | "closed" {
    const { res, socket } = this;
    return res.writableEnded || res.writableFinished || res.destroyed || socket?.errored ? "closed" : "open";
  }

  waiting(): void {
    longPolls.add(this.res);
  }

  confirm(delivery: DeliverySink): void {
    const watch = this.watched();
    // Confirmed before its answer went out (see above): a response that finished already did so without it.
    if (watch.state === "open") watch.waiting.push(delivery);
    else delivery.undelivered();
  }

  private watched() {
    if (this.watch) return this.watch;
    const { res, socket } = this;
    const watch: NonNullable<HttpTransport["watch"]> = { gone: new AbortController(), state: this.stateNow(), waiting: [] };
    // The client left before the call began (while its body was read): nothing can reach it.
    if (watch.state === "closed") watch.gone.abort();
    if (watch.state === "open") {
      const closed = () => {
        watch.state = "closed";
        watch.gone.abort();
        for (const delivery of watch.waiting.splice(0)) delivery.undelivered();
      };
      res.once("finish", () => {
        // Closed first, then ended by whoever wrote it (the MCP SDK): the outcome is known already.
        if (watch.state !== "open") return;
        if (socket?.errored) return closed();
        watch.state = "finished";
        for (const delivery of watch.waiting.splice(0)) this.decideFinished(delivery);
      });
      res.once("close", () => {
        if (watch.state !== "open") return;
        closed();
      });
    }
    this.watch = watch;
    return watch;
  }

  private decideFinished(delivery: DeliverySink): void {
    if (this.res.statusCode < 500) delivery.delivered();
    else delivery.undelivered();
  }
}

/**
 * The queries and mutations in progress on one WebSocket. Closing a socket drops the answers not
 * yet sent on it: a socket whose credential was revoked (or an open caller's, once credentials
 * are required) is closed once those calls were answered. New calls on it are refused meanwhile
 * (init.ts checks the credential on every call), and its live streams end at once
 * (event-router.ts). The very call that issued the server's first token is one of them: closed
 * at once, its caller lost the new admin secret and every caller was locked out.
 */
export class SocketCalls {
  private inProgress = 0;
  private closing: { code: number; reason: string } | undefined;

  /**
   * `limits`: the most calls in progress on the socket at once (a batch's worth, as one HTTP
   * connection runs at most one batch at a time), and the most bytes of answers queued for a
   * client that does not read them. Past either, a new call is refused LIMIT_EXCEEDED before it
   * runs (nothing taken): a socket took 200 calls of 8 MB answers at once and the server grew to
   * 5.7 GB, /health unanswered throughout, reading client or not (a trial).
   */
  constructor(
    private readonly socket: WebSocket,
    private readonly limits: { maxCalls: number; maxQueuedBytes: number },
  ) {}

  /**
   * Counts a call in progress; returns its end (idempotent). Throws LIMIT_EXCEEDED past the limits
   * when `limited`: not for a subscription, which is in progress only until its stream opens (150
   * opened at once on one socket must all start) and whose streams are bounded on their own
   * (maxSubscriptionsPerSocket, and subscriptionBufferBytes for what they send).
   */
  started(limited = true): () => void {
    if (limited && this.inProgress >= this.limits.maxCalls) {
      throw new CoordinationError("LIMIT_EXCEEDED", `too many calls in progress on this WebSocket: the limit is ${this.limits.maxCalls} (setting maxBatchCalls)`, { limit: this.limits.maxCalls });
    }
    if (limited && this.socket.bufferedAmount > this.limits.maxQueuedBytes) {
      throw new CoordinationError(
        "LIMIT_EXCEEDED",
        `this WebSocket's client has not read ${this.socket.bufferedAmount} bytes of answers: the limit is ${this.limits.maxQueuedBytes} (setting subscriptionBufferBytes); read them, then call again`,
        { limit: this.limits.maxQueuedBytes },
      );
    }
    this.inProgress++;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.inProgress--;
      this.closeIfAnswered();
    };
  }

  /** Closes the socket with `code` once no call is in progress on it, or after `atMostMs` whatever runs. */
  closeWhenAnswered(code: number, reason: string, atMostMs: number): void {
    if (this.closing !== undefined) return;
    this.closing = { code, reason };
    setTimeout(() => this.socket.close(code, reason), atMostMs).unref();
    this.closeIfAnswered();
  }

  private closeIfAnswered(): void {
    if (this.closing === undefined || this.inProgress > 0) return;
    const { code, reason } = this.closing;
    // The adapter sends an answer a few microtasks after its procedure returns: a macrotask
    // later it is queued on the socket, and ws sends the close frame after what is queued.
    setImmediate(() => this.socket.close(code, reason));
  }
}

/** `streams`: the live streams open on this socket, bounded (src/per-key-limit.ts); one per socket. `calls`: its calls in progress. */
/**
 * A WebSocket call's. `streams` counts the socket's live streams (maxSubscriptionsPerSocket);
 * `admitForCredential` counts one more under the socket's credential (maxSubscriptionsPerCredential)
 * and returns its release, or throws LIMIT_EXCEEDED.
 */
export function webSocketTransport(socket: WebSocket, streams: PerKeyLimit, calls: SocketCalls, admitForCredential: () => () => void = () => () => undefined): Transport {
  const gone = new AbortController();
  socket.once("close", () => gone.abort());
  return {
    clientGone: gone.signal,
    gone: () => gone.signal.aborted,
    callStarted: (type) => calls.started(type !== "subscription"),
    confirm(delivery) {
      setImmediate(() => {
        if (socket.readyState !== socket.OPEN) return delivery.undelivered();
        // Not open by then: the connection went while the write was under way. Node reports a write
        // that was in progress when its socket was destroyed as done, with no error, and writes
        // queued behind a large one go out together: the ping's callback alone cannot tell.
        socket.ping(undefined, undefined, (error) => (error || socket.readyState !== socket.OPEN ? delivery.undelivered() : delivery.delivered()));
      });
    },
    stream: {
      backlog: () => socket.bufferedAmount,
      close: (code, reason) => socket.close(code, reason),
      admitStream: () => {
        const releaseOnSocket = streams.acquire("socket");
        try {
          const releaseForCredential = admitForCredential();
          return () => {
            releaseOnSocket();
            releaseForCredential();
          };
        } catch (error) {
          releaseOnSocket();
          throw error;
        }
      },
    },
  };
}

/**
 * An MCP tool call's: `cancelled` is the SDK's signal for the request (aborted by the client's
 * notifications/cancelled, or when the session closes); `res` is the HTTP response its answer
 * goes out in, when known.
 */
/** `onDelivered`: told once an answer of the call's is known delivered (its session's late cancels give back only such answers' takes). */
export function mcpCallTransport(cancelled: AbortSignal, res: ObservableResponse | undefined, onDelivered?: () => void): Transport {
  return new McpCallTransport(cancelled, res === undefined ? undefined : httpTransport(res), onDelivered);
}

/** A class for the reason HttpTransport is one: an object literal with an accessor is built in the old generation. */
class McpCallTransport implements Transport {
  private goneSignal: AbortSignal | undefined;

  constructor(
    private readonly cancelled: AbortSignal,
    private readonly http: Transport | undefined,
    private readonly onDelivered: (() => void) | undefined,
  ) {}

  get clientGone(): AbortSignal {
    this.goneSignal ??= this.http === undefined ? this.cancelled : AbortSignal.any([this.cancelled, this.http.clientGone!]);
    return this.goneSignal;
  }

  gone(): boolean {
    return this.cancelled.aborted || (this.http?.gone() ?? false);
  }

  waiting(): void {
    this.http?.waiting?.();
  }

  confirm(delivery: DeliverySink): void {
    // The SDK sends no answer to a cancelled request: one cancelled now, or before its response
    // finished, never arrives.
    if (this.cancelled.aborted) return delivery.undelivered();
    // The first outcome decides: a cancel after the answer arrived is the session's late cancel's
    // to handle, and one after the answer was lost (its give-back done) must not give back again.
    let decided = false;
    const sink: DeliverySink = {
      delivered: () => {
        if (decided) return;
        decided = true;
        delivery.delivered();
        this.onDelivered?.();
      },
      undelivered: () => {
        if (decided) return;
        decided = true;
        delivery.undelivered();
      },
    };
    this.cancelled.addEventListener("abort", () => sink.undelivered(), { once: true });
    if (this.http === undefined) sink.delivered();
    else this.http.confirm(sink);
  }
}

export const inProcessTransport: Transport = {
  clientGone: undefined,
  gone: () => false,
  confirm: (delivery) => delivery.delivered(),
};
