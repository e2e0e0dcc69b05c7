// The HTTP client under the typed client's queries and mutations: undici's request() on a
// keep-alive pool of its own, answering the little tRPC reads of a response (ok, status, json()).
// Node's global fetch is undici too, but through the WHATWG Request/Response machinery: per call
// it took three times the CPU on the caller's side (112 µs against 37 once warm, 303 against 73
// in a fresh process; bench/RESULTS.md, notes of 2026-12-01 11:00), and an agent's process that
// runs many agents pays it on every claim, heartbeat and settle.
import { Agent, request } from "undici";
import type { httpLink } from "@trpc/client";

/** The `fetch` tRPC's HTTP links take. */
export type TrpcFetch = NonNullable<Parameters<typeof httpLink>[0]["fetch"]>;

/** Connections kept open per server for calls answered at once: the client's concurrent calls, as a browser or fetch would pool them. */
export const CALL_CONNECTIONS = 64;

export interface KeepAliveFetch {
  fetch: TrpcFetch;
  /** Closes the pool's connections (the client's close()); once, however often called. */
  close(): Promise<void>;
}

/**
 * A keep-alive pool of at most `connections` per server (null: as many as the calls under way,
 * for long-polls, each of which holds its connection while it waits: long-polling.ts); past the
 * bound, a call waits for a connection to come free.
 */
export function keepAliveFetch(connections: number | null = CALL_CONNECTIONS): KeepAliveFetch {
  const dispatcher = new Agent({ connections });
  const fetch: TrpcFetch = async (input, init) => {
    const { statusCode, body } = await request(typeof input === "string" || input instanceof URL ? input : input.url, {
      dispatcher,
      method: (init?.method ?? "GET") as "GET",
      headers: (init?.headers ?? {}) as Record<string, string>,
      body: (init?.body ?? null) as string | null,
      signal: init?.signal ?? undefined,
    });
    // Read whole before answering: the connection goes back to the pool once its body is consumed.
    const text = await body.text();
    return {
      ok: statusCode >= 200 && statusCode < 300,
      status: statusCode,
      json: async () => JSON.parse(text) as unknown,
    };
  };
  let closed: Promise<void> | undefined;
  // Idempotent, as the client's close() is: undici refuses to close a pool twice.
  return { fetch, close: () => (closed ??= dispatcher.close()) };
}
