// The typed client for TypeScript agents. Types come from the server's router (a type-only
// import: no server code is bundled); superjson on the wire, so Dates stay Dates.
// Queries and mutations go over HTTP (batched), subscriptions over one WebSocket that opens
// on first use and reconnects by itself, resuming tracked streams from their last event id.
import { createTRPCClient, createWSClient, httpBatchLink, httpLink, isTRPCClientError as isAnyTRPCClientError, splitLink, wsLink, type Operation, type TRPCClientError } from "@trpc/client";
import superjson from "superjson";
import { abortableCallLink } from "./abortable-call.js";
import { bearerToken } from "./bearer-token.js";
import { LongPolls } from "./closing-link.js";
import { callTimeoutLink } from "./call-timeout.js";
import { encodedBytesUpTo } from "./encoded-size.js";
import { failoverFetch, returnToPreferred, ServerList } from "./failover.js";
import { CallBoundedSocket } from "./call-bounded-socket.js";
import { SOCKET_DEAD_MS, SOCKET_PING_MS } from "./hung-server-socket.js";
import { keepAliveFetch, type TrpcFetch } from "./keep-alive-fetch.js";
import { mayLongPoll } from "./long-polling.js";
import { httpTransformer, inputJson, serializeInputLink } from "./serialize-input.js";
import { servedLink } from "./served.js";
import { ServerWaits } from "./server-wait.js";
import { socketRefusal } from "./socket-refusal.js";
import { streamStartLink } from "./stream-start.js";
import { traceContextLink, traceHeadersOf, type TraceCarrier } from "./trace-context-link.js";
import type { AppRouter, CoordinationApi } from "./types.js";
import { serverAddress } from "./server-address.js";

export type { TraceCarrier } from "./trace-context-link.js";
export type { AppRouter, ClaimedTask, CoordinationApi, ErrorCode, JsonObject, JsonValue, RouterInputs, RouterOutputs } from "./types.js";

/**
 * Batches are bounded in count and in size. Queries go as POST like mutations (methodOverride),
 * so no URL limit applies (a recall query of 1,000 Cyrillic characters is 18 KB encoded). A
 * batch travels as one body, which the server refuses past its maxBodyBytes (1 MiB by default):
 * a call whose input takes more bytes than its share of a batch goes alone, so every call the
 * server accepts alone is accepted batched too.
 */
const MAX_BATCH_ITEMS = 50;
/** A client of several servers leaves one that has not answered a call in this long (beyond its waitMs). */
const DEFAULT_CALL_TIMEOUT_MS = 30_000;
/** How often a client of several servers looks whether a preferred one answers again, in ms. */
const DEFAULT_RETURN_AFTER_MS = 30_000;
const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
/** How long a call waits for a server that cannot take it (a restart), in ms. */
const DEFAULT_WAIT_FOR_SERVER_MS = 30_000;

/** How to reach the server (or servers) and authenticate: createCoordinationClient's one argument. */
export interface CoordinationClientOptions {
  /**
   * The server's base URL, e.g. http://127.0.0.1:8000; or the base URLs of several servers on one
   * database file, in order of preference: calls go to one and move to the next when it stops
   * answering (failover.ts says which calls are sent again). One that is no http:// or https://
   * address ("127.0.0.1:8000", without its scheme) throws a TypeError here, naming it.
   */
  url: string | readonly string[];
  /**
   * A bearer token (`coordination tokens create`, or the admin token): sent as
   * `Authorization: Bearer` on HTTP and in the WebSocket's connectionParams, checked before any
   * subscription starts. An agent token acts as its agent: agentId may then be left out.
   * The whitespace around it (a token file's newline) is dropped, and an empty one is none; one
   * with a space, a control or a non-ASCII character inside throws a TypeError here.
   */
  token?: string;
  /** Extra HTTP headers on every request (e.g. for a proxy). */
  headers?: Record<string, string>;
  /**
   * Called when the WebSocket closes. Codes: 1013, the server dropped a subscriber that fell
   * behind (it resumes by itself); 4401, no valid credential (missing, wrong or revoked): every
   * live subscription then ends with an UNAUTHORIZED error (onError), and none reconnects; 1012,
   * the server is restarting.
   */
  onSocketClose?: (code: number | undefined) => void;
  /**
   * How long a query or mutation may wait for its answer, in ms, beyond the long-poll wait it
   * asks for (waitMs): past it the call fails (it may have been served) and, with several URLs,
   * the next calls go to the next server. Left out: 30,000 with several URLs (a server that hangs
   * with its port open is left), none with one.
   */
  callTimeoutMs?: number;
  /**
   * How long a query or mutation waits for a server that cannot take it, in ms, sending it again
   * (100 ms apart, doubling to 1 s) while that is safe: its connection could not be made (the
   * server restarting, or not started yet), or it was answered 503 `SHUTTING_DOWN` or
   * `DATABASE_LOCKED` (nothing was stored); and a query, not a long-poll, whose connection broke
   * before its answer. A mutation whose connection broke mid-call is not sent again (it may have
   * been served: send it again with its idempotencyKey). Past it, the call fails with its last
   * error. Counted from the call's first failure; each try has its own callTimeoutMs. Default
   * 30,000 (a restart's drain and start-up); Infinity: as long as it takes; 0: each call is sent
   * once (the client's own helpers send theirs once whatever it is: they retry in rounds of their
   * own). With several URLs each try goes through the list first. Live streams reconnect by
   * themselves.
   */
  waitForServerMs?: number;
  /** The server's maxBodyBytes, if changed from its default (1 MiB): batches stay below it. */
  maxBodyBytes?: number;
  /**
   * With several URLs: while calls go to a server other than the first, how often (ms) to look
   * whether one earlier in the list answers GET /health again and move the calls back to it
   * (default 30,000; 0 stays where failover led). Routine restarts would otherwise leave every
   * client on the last server of the list.
   */
  returnAfterMs?: number;
  /**
   * The HTTP client for queries and mutations, in place of the client's own (undici's request()
   * on a keep-alive pool): `fetch`, say, to go through the global dispatcher (a proxy agent set
   * with undici's setGlobalDispatcher) or a test's interceptor.
   */
  fetch?: TrpcFetch;
  /**
   * The caller's W3C trace context, asked for at each `tasks.enqueue` and `tasks.enqueueMany` as
   * the call is made: a `traceparent` it answers goes with that call as its
   * `coordination-traceparent` and `coordination-tracestate` headers (not `traceparent`, which an
   * HTTP instrumentation adds its own to), in an HTTP request of its own (not batched), so the tasks it enqueues
   * carry the caller's trace even when calls made together would share one batch (the server
   * takes no batch's headers). Its `baggage` (W3C Baggage, which a composite propagator such as
   * NodeSDK's default writes beside the trace) goes likewise, as `coordination-baggage`, with or
   * without a traceparent. A task given its own `traceparent` or `baggage` keeps it. With OpenTelemetry:
   * `() => { const carrier = {}; propagation.inject(context.active(), carrier); return carrier; }`.
   * Answering undefined, or neither, or throwing: the enqueue goes as without it.
   */
  traceContext?: () => TraceCarrier | undefined;
}

/** What createCoordinationClient returns: the typed procedures, and close() for when the caller is done. */
export interface CoordinationClient {
  /** Every procedure, typed: api.tasks.enqueue.mutate({...}), api.events.onEvent.subscribe(...). */
  api: CoordinationApi;
  /**
   * Closes the WebSocket and the HTTP connections kept open: a long-poll under way (a claim's or a
   * task's wait, a key watch, a log follow) is given up at once, rejecting; other calls in flight
   * finish first.
   */
  close(): Promise<void>;
}

/**
 * A typed client of a running server: `api.<router>.<procedure>.query/mutate/subscribe`, the
 * types inferred from the server's router (inputs checked by the compiler, answers typed; Dates
 * are Dates). Queries and mutations go over HTTP, batched (a long-poll on a request of its own);
 * subscriptions over one WebSocket, opened on first use and reconnected by itself. A call that
 * fails rejects with a TRPCClientError whose `data.code` is an ErrorCode (`data.httpStatus` its
 * status); `isUnsendable(error)` tells an input the client could not send, `mayHaveBeenServed(error)`
 * whether a failed call may have done its work (its answer lost) or certainly did nothing. Nothing connects
 * until the first call; call `close()` when done, or the process keeps its connections open.
 */
export function createCoordinationClient(given: CoordinationClientOptions): CoordinationClient {
  // The token as it can be sent (bearer-token.ts): refused here, not on every call.
  const token = given.token === undefined ? undefined : bearerToken(given.token);
  const { token: _given, ...rest } = given;
  const options: CoordinationClientOptions = token === undefined ? rest : { ...rest, token };
  // Checked here, not on every call: text that is no server's address can never be reached (server-address.ts).
  const servers = new ServerList(typeof options.url === "string" ? [serverAddress(options.url, "url")] : options.url.map((url, i) => serverAddress(url, `url[${i}]`)));
  const refusal = socketRefusal();
  const wsClient = createWSClient({
    // Asked at every (re)connection: after a close the server did not choose, the next server.
    url: () => servers.socketUrl(),
    WebSocket: CallBoundedSocket as unknown as typeof globalThis.WebSocket,
    lazy: { enabled: true, closeMs: 0 },
    retryDelayMs: (attempt) => Math.min(100 * 2 ** attempt, 5000),
    // A server that hangs with its port open (paused, a frozen VM) keeps its sockets: without a
    // ping a live stream would wait out the whole freeze in silence. After SOCKET_PING_MS with
    // nothing received, a ping; no pong within SOCKET_DEAD_MS cuts the socket (hung-server-socket.ts),
    // and the client reconnects to the next server, resuming its streams from their last event id.
    keepAlive: { enabled: true, intervalMs: SOCKET_PING_MS, pongTimeoutMs: SOCKET_DEAD_MS },
    onOpen: () => {
      refusal.opened();
      servers.socketOpen();
    },
    onClose: (cause) => {
      options.onSocketClose?.(cause?.code);
      refusal.closed(cause?.code);
      servers.socketClosed(cause?.code);
    },
    ...(options.token === undefined ? {} : { connectionParams: { token: options.token } }),
  });
  const headers = { ...options.headers, ...(options.token === undefined ? {} : { authorization: `Bearer ${options.token}` }) };
  const pool = options.fetch === undefined ? keepAliveFetch() : undefined;
  // A long-poll holds its connection while it waits (a claim, a task wait, a key watch): on the
  // calls' pool, 64 of them parked (a worker's idle loops, a wait for each of many tasks) left
  // every other call of the client (a heartbeat, a settle) waiting behind them for up to their
  // waitMs, and leases ran out. They have a pool of their own; the server bounds how many one
  // credential parks (maxParkedPerAgent).
  const longPollPool = options.fetch === undefined ? keepAliveFetch(null) : undefined;
  const http = { url: `${servers.bases[0]}/trpc`, transformer: httpTransformer, headers, methodOverride: "POST" as const, fetch: failoverFetch(servers, options.fetch ?? pool!.fetch) };
  const returning = returnToPreferred(servers, options.fetch ?? pool!.fetch, options.returnAfterMs ?? DEFAULT_RETURN_AFTER_MS);
  // Each batched call's input stays under its share of the body, with room for the envelope.
  const batchShare = Math.floor(((options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES) * 0.9) / MAX_BATCH_ITEMS);
  const callTimeoutMs = options.callTimeoutMs ?? (servers.bases.length > 1 ? DEFAULT_CALL_TIMEOUT_MS : undefined);
  // close() ends the long-polls under way (closing-link.ts).
  const longPolls = new LongPolls();
  // close() ends the waits for a server too (server-wait.ts).
  const serverWaits = new ServerWaits(options.waitForServerMs ?? DEFAULT_WAIT_FOR_SERVER_MS);
  // A call the trace link marked goes alone, its trace context in its headers.
  const single = { ...http, headers: ({ op }: { op: Operation }) => ({ ...headers, ...traceHeadersOf(op) }) };
  const longPoll = { ...single, fetch: failoverFetch(servers, options.fetch ?? longPollPool!.fetch) };
  const api = createTRPCClient<AppRouter>({
    links: [
      // Outermost: it sees the error each caller gets (served.ts).
      servedLink(),
      ...(options.traceContext === undefined ? [] : [traceContextLink(options.traceContext)]),
      streamStartLink(),
      // Above the call timeout: each try has its own (server-wait.ts).
      serverWaits.link(),
      ...(callTimeoutMs === undefined ? [] : [callTimeoutLink(servers, callTimeoutMs)]),
      serializeInputLink(),
      longPolls.link(),
      abortableCallLink(),
      splitLink({
        condition: (op) => op.type === "subscription",
        true: [refusal.link, wsLink({ client: wsClient, transformer: superjson })],
        false: splitLink({
          condition: (op) => mayLongPoll(op.path, inputJson(op.input)),
          true: httpLink(longPoll),
          false: splitLink({
            condition: (op) => traceHeadersOf(op) !== undefined || encodedBytesUpTo(op.input, batchShare) > batchShare,
            true: httpLink(single),
            false: httpBatchLink({ ...http, maxItems: MAX_BATCH_ITEMS }),
          }),
        }),
      }),
    ],
  });
  return {
    api,
    close: async () => {
      returning.stop();
      longPolls.close();
      serverWaits.close();
      await Promise.all([wsClient.close(), pool?.close(), longPollPool?.close()]);
    },
  };
}

export { runWorker, RetryLater, DeadLetter, type WorkerOptions, type Worker, type TaskHandler, type TaskRun, type WorkerTask } from "./worker.js";
export { RunTimeLimitReached, TaskCancelled } from "./lease-calls.js";
export { withLock, LockBusy, LockLost, type Lock, type HeldLock, type WithLockOptions } from "./locks.js";
export { followLog, type FollowLogOptions, type LogLine } from "./follow-log.js";
export { ClientClosedError, isClientClosed } from "./closing-link.js";
export { LOG_FLUSH_MS, type LogLevel, type LogOptions } from "./run-log.js";
export { updateKey, watchKey, KeyContended, KeyWriteUnknown, type KvEntry, type UpdateKeyOptions, type WatchKeyOptions } from "./kv.js";
export { watchKeys, type KeyChange, type WatchKeysOptions } from "./watch-keys.js";
export { withPermit, SemaphoreFull, PermitLost, type Permit, type SemaphoreState, type HeldPermit, type WithPermitOptions } from "./semaphores.js";
export { isSystemEvent, SYSTEM_EVENT_TYPES, type SystemEvent, type SystemEventPayloads, type SystemEventType } from "./system-events.js";
export { TRPCClientError } from "@trpc/client";
/**
 * True when `error` is a failed call's TRPCClientError, narrowed to this server's errors:
 * `error.data?.code` an ErrorCode, `data.httpStatus` its status. tRPC's own guard narrows to
 * TRPCClientError<any>, whose `data` is any: a misspelt code compared against it compiled.
 */
export const isTRPCClientError = (error: unknown): error is TRPCClientError<AppRouter> => isAnyTRPCClientError(error);
export { UnsendableInputError, isUnsendable } from "./serialize-input.js";
export { mayHaveBeenServed } from "./served.js";
export { fitsInAnswer } from "./answer-fits.js";
export { verifyWebhook, WebhookVerificationError, type VerifiedWebhook, type VerifyWebhookOptions, type WebhookEvent, type WebhookHeaders } from "./webhooks.js";
