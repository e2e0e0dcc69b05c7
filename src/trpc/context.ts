// What every procedure call runs with. Its type is part of AppRouter, which the published client
// types are built from, so it names nothing heavier than these small interfaces: the core is
// opaque here and typed for procedures by the base procedure in init.ts. (Naming the services
// would pull Prisma's, better-sqlite3's and pino's types into every client's compilation.)

/** Receives the outcome of delivering one call's answer (src/delivery/delivery.ts). */
export interface DeliverySink {
  delivered(): void;
  undelivered(): void;
}

/** A live stream's hold on its WebSocket: backpressure and closing. */
export interface StreamSocket {
  /** Bytes queued on the socket, not yet sent. */
  backlog(): number;
  close(code: number, reason: string): void;
  /** Counts one more live stream on the socket; throws LIMIT_EXCEEDED past the server's maxSubscriptionsPerSocket. Returns its release (idempotent). */
  admitStream(): () => void;
}

/** How answers reach one client (src/delivery/transports.ts). */
export interface Transport {
  /** Aborts when the client is gone: a long-poll ends at once and takes nothing for it. */
  readonly clientGone: AbortSignal | undefined;
  /** Whether the client is gone now; a look that makes no signal (clientGone makes one on first use over HTTP). */
  gone(): boolean;
  /** Decides `delivery` once the call's answer was handed over or dropped. Call after the procedure returned. */
  confirm(delivery: DeliverySink): void;
  /** The call parked to wait (a long-poll): its time is not slowness (HTTP only). */
  waiting?(): void;
  /** WebSocket only: what a live stream needs of its socket. */
  readonly stream?: StreamSocket;
  /**
   * WebSocket only: counts a query or mutation in progress on the socket until the function it
   * returns is called. A socket closed for a revoked credential waits for them: their answers
   * go out first (create-server.ts). Throws LIMIT_EXCEEDED for a query or mutation past the
   * socket's bounds (calls in progress, answers unread: SocketCalls).
   */
  callStarted?(type: "query" | "mutation" | "subscription"): () => void;
}

/** A role a credential carries (src/auth/access.ts says what each may call). */
export type Role = "admin" | "agent" | "read";

/**
 * Who is calling, as the transport established it (src/auth/):
 *  - trusted: an in-process caller (the program itself); nothing is checked;
 *  - open: a network caller while no credentials are configured (the server is open, as on
 *    loopback by default); nothing is checked until credentials exist, then it is refused (a
 *    WebSocket opened before keeps no rights);
 *  - anonymous: credentials are enforced and the request carried none, or one the server does not
 *    know: only open procedures (health) answer, the rest is 401;
 *  - token: a valid credential, with its role and, for role agent, the agent it speaks for.
 */
export type Caller =
  | { readonly kind: "trusted" }
  | { readonly kind: "open" }
  | { readonly kind: "anonymous" }
  | {
      readonly kind: "token";
      readonly tokenId: string;
      readonly role: Role;
      readonly agentId: string | null;
      /** The shared state's keys this credential may write: those starting with one of these; null: any key. */
      readonly kvPrefixes: readonly string[] | null;
    };

export interface Context {
  /** The coordination core (src/services.ts) the call runs against. */
  readonly core: object;
  readonly transport: Transport;
  readonly caller: Caller;
  /**
   * Where the call's W3C trace context is (its HTTP request's headers, an MCP request's _meta):
   * what an enqueue without a traceparent of its own reads (src/tasks/trace-context.ts), no other
   * call. Never a WebSocket's, nor a batch's of several calls: those headers are no one call's.
   */
  readonly traceCarrier?: Readonly<Record<string, string | string[] | undefined>> | undefined;
  /**
   * The agent an MCP session acts as when its credential names none (an open server's session,
   * or an admin credential's, named by X-Agent-Id): what the session enqueues is that agent's
   * (the task's enqueuedBy, and its idempotencyKey's scope), as an agent credential's would be.
   * What the call may do stays its credential's; but what it enqueues is then that agent's: the
   * agent's own credential may cancel it (tasks.cancel, cancelMany's enqueuedBy), and the session
   * and that credential share one space of idempotency keys.
   */
  readonly actingAgent?: string | undefined;
}
