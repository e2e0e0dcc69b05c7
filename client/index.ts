// The typed client for TypeScript agents. Types come from the server's router (a type-only
// import: no server code is bundled); superjson on the wire, so Dates stay Dates.
// Queries and mutations go over HTTP (batched), subscriptions over one WebSocket that opens
// on first use and reconnects by itself, resuming tracked streams from their last event id.
import { createTRPCClient, createWSClient, httpBatchLink, httpLink, splitLink, wsLink } from "@trpc/client";
import superjson from "superjson";
import WebSocket from "ws";
import type { AppRouter, CoordinationApi } from "./types.js";

export type { AppRouter, ClaimedTask, CoordinationApi, RouterInputs, RouterOutputs } from "./types.js";

/** Procedures that may long-poll: sent on their own HTTP request so they never hold up a batch. */
const LONG_POLLING = new Set(["tasks.claim", "tasks.claimMany", "tasks.claimNext", "events.poll"]);

/**
 * Batch limits: a batch of queries travels in the URL (Node answers 431 past ~16 KB of headers),
 * a batch of mutations in one body (413 past the server's maxBodyBytes, 1 MB by default).
 * Without them, a few hundred concurrent calls become one request the server refuses.
 */
const MAX_URL_LENGTH = 4000;
const MAX_BATCH_ITEMS = 50;

export interface CoordinationClientOptions {
  /** The server's base URL, e.g. http://127.0.0.1:8000 */
  url: string;
  /** Extra HTTP headers on every request (e.g. for a proxy). */
  headers?: Record<string, string>;
  /** Called when the WebSocket closes (code 1013: the server dropped a subscriber that fell behind). */
  onSocketClose?: (code: number | undefined) => void;
}

export interface CoordinationClient {
  /** Every procedure, typed: api.tasks.enqueue.mutate({...}), api.events.onEvent.subscribe(...). */
  api: CoordinationApi;
  /** Closes the WebSocket (HTTP needs no cleanup). */
  close(): Promise<void>;
}

export function createCoordinationClient(options: CoordinationClientOptions): CoordinationClient {
  const base = options.url.replace(/\/+$/, "");
  const wsClient = createWSClient({
    url: `${base.replace(/^http/, "ws")}/trpc`,
    WebSocket: WebSocket as unknown as typeof globalThis.WebSocket,
    lazy: { enabled: true, closeMs: 0 },
    retryDelayMs: (attempt) => Math.min(100 * 2 ** attempt, 5000),
    onClose: (cause) => options.onSocketClose?.(cause?.code),
  });
  const http = { url: `${base}/trpc`, transformer: superjson, headers: options.headers ?? {} };
  const api = createTRPCClient<AppRouter>({
    links: [
      splitLink({
        condition: (op) => op.type === "subscription",
        true: wsLink({ client: wsClient, transformer: superjson }),
        false: splitLink({
          condition: (op) => LONG_POLLING.has(op.path),
          true: httpLink(http),
          false: httpBatchLink({ ...http, maxURLLength: MAX_URL_LENGTH, maxItems: MAX_BATCH_ITEMS }),
        }),
      }),
    ],
  });
  return { api, close: () => wsClient.close() };
}

export { runWorker, type WorkerOptions, type Worker, type TaskHandler } from "./worker.js";
export { TRPCClientError, isTRPCClientError } from "@trpc/client";
