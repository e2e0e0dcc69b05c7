// Several servers on one database file are one service: a client given their URLs uses one at a
// time and moves to the next when it stops answering. What moves a call:
//  - HTTP: a call whose connection could not be made (refused, unreachable, timed out
//    connecting) never reached a server, so it is sent again to the next one, whatever it does.
//    A connection that broke during a call may have been served: the call fails as it would
//    with one server (a claim comes back with its lease, an auto-ack batch is given back, an
//    enqueue with an idempotencyKey can be sent again), and the next calls go to the next server.
//  - WebSocket: a connection that could not be made, or one cut without a close frame (the
//    server died, or went silent and missed a ping: hung-server-socket.ts), moves the next
//    attempt to the next server; one the server closed itself (a restart) tries it again first.
//    Tracked subscriptions resume there from their last event id (the log is the file's).
//  - Back: while not on the first server, the client looks whether a server earlier in the list
//    answers /health again, and moves its next calls there (returnToPreferred): without it,
//    routine restarts (each server's turn) leave every client on the last server of the list.
import type { TrpcFetch } from "./keep-alive-fetch.js";

/**
 * Error codes only a connection never made has: refused, a name not resolved, undici's connect
 * timeout. Others (ETIMEDOUT, EHOSTUNREACH…) also end requests already sent on an established
 * connection, which may have been served: those count only when the failing call was connect().
 */
const NEVER_SENT = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "UND_ERR_CONNECT_TIMEOUT"]);

/** The servers a client may use, in order of preference: calls go to the current one. */
/** A WebSocket's close code when no close frame came: the connection was cut or the server went silent. */
const ABNORMAL_CLOSE = 1006;

export class ServerList {
  private index = 0;

  /** `bases`: server base URLs, no trailing slash; at least one. */
  constructor(readonly bases: readonly string[]) {
    if (bases.length === 0) throw new Error("createCoordinationClient: url names no server");
  }

  get current(): string {
    return this.bases[this.index]!;
  }

  /** The servers before the current one in the list: preferred to it, and left after a failure. */
  get preferred(): readonly string[] {
    return this.bases.slice(0, this.index);
  }

  /** Calls go to `base` from now on (a preferred server answers again: returnToPreferred). */
  moveTo(base: string): void {
    const index = this.bases.indexOf(base);
    if (index >= 0) this.index = index;
  }

  /** The server at `base` failed a call: the next calls go to the next server (unless one moved on already). */
  failed(base: string): void {
    if (this.current === base) this.index = (this.index + 1) % this.bases.length;
  }

  /** The server the WebSocket last tried to connect to. */
  private socketBase: string | undefined;

  /** The WebSocket URL of the current server, for the socket's next attempt. */
  socketUrl(): string {
    this.socketBase = this.current;
    return `${this.current.replace(/^http/, "ws")}/trpc`;
  }

  /** Whether the WebSocket opened since it last closed. */
  private socketOpened = false;

  /** Call when the WebSocket opens. */
  socketOpen(): void {
    this.socketOpened = true;
  }

  /**
   * Call when the WebSocket closes, with its close code: one that never opened could not connect,
   * and one cut without a close frame (1006: the server died, or hangs and missed a ping or a
   * handshake) failed; the next attempt goes to the next server. One the server closed itself
   * (a restart's 1001 or 1012) tries its server again first: a server that answers keeps its clients.
   */
  socketClosed(code?: number): void {
    // The server it tried, not the current one: an HTTP call may have moved on meanwhile.
    if ((!this.socketOpened || code === ABNORMAL_CLOSE) && this.socketBase !== undefined) this.failed(this.socketBase);
    this.socketOpened = false;
  }
}

/** Whether `error` (undici's, or fetch's TypeError with its cause) is a connection never made. */
export function neverSent(error: unknown): boolean {
  for (let cause = error, depth = 0; cause !== null && typeof cause === "object" && depth < 4; depth++) {
    const { code, syscall } = cause as { code?: unknown; syscall?: unknown };
    if ((typeof code === "string" && NEVER_SENT.has(code)) || syscall === "connect") return true;
    cause = (cause as { cause?: unknown }).cause;
  }
  return false;
}

/**
 * `fetch` for tRPC's HTTP links over `servers`: the links are given the first server's URL; each
 * call goes to the current server instead, and to the next while connections cannot be made.
 */
export function failoverFetch(servers: ServerList, fetch: TrpcFetch): TrpcFetch {
  if (servers.bases.length === 1) return fetch;
  const placeholder = servers.bases[0]!;
  return async (input, init) => {
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    const path = url.startsWith(placeholder) ? url.slice(placeholder.length) : url;
    for (let tried = 1; ; tried++) {
      const base = servers.current;
      try {
        return await fetch(`${base}${path}`, init);
      } catch (error) {
        if (init?.signal?.aborted) throw error;
        servers.failed(base);
        if (!neverSent(error) || tried >= servers.bases.length) throw error;
      }
    }
  };
}

/** How long a look at a preferred server's /health may take, in ms: one that hangs is not taken back. */
const PROBE_TIMEOUT_MS = 2000;

/**
 * Every `everyMs` while calls go to a server other than the first, asks each server before it in
 * the list for GET /health (open, no credential) and moves the calls to the first that answers
 * 200 within PROBE_TIMEOUT_MS. An open WebSocket stays where it is; its next connection goes to
 * the current server. `stop()` ends the looking (the client's close()).
 */
export function returnToPreferred(servers: ServerList, fetch: TrpcFetch, everyMs: number): { stop(): void } {
  if (servers.bases.length === 1 || everyMs <= 0) return { stop: () => undefined };
  let looking = false;
  const look = async () => {
    if (looking || servers.preferred.length === 0) return;
    looking = true;
    try {
      for (const base of servers.preferred) {
        const answer = await fetch(`${base}/health`, { method: "GET", signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) }).catch(() => undefined);
        if (answer?.ok) return servers.moveTo(base);
      }
    } finally {
      looking = false;
    }
  };
  const timer = setInterval(() => void look(), everyMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
