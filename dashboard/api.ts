// The dashboard's connection to the server: the typed tRPC client, over HTTP (batched) for
// queries and mutations and over one WebSocket for live events, on the page's own origin, with
// the bearer token the operator gave (kept in this browser's localStorage). The WebSocket
// reconnects by itself after a server restart, and tracked streams resume from their last id.
import { createTRPCClient, createWSClient, httpBatchLink, splitLink, wsLink, TRPCClientError, type TRPCClient } from "@trpc/client";
import superjson from "superjson";
import type { AppRouter } from "../src/trpc/app-router.js";
import { streamStartLink } from "../client/stream-start.js";

export type Api = TRPCClient<AppRouter>;

const TOKEN_KEY = "coordination.token";

export const savedToken = (): string | null => localStorage.getItem(TOKEN_KEY);
export const saveToken = (token: string | null): void => (token ? localStorage.setItem(TOKEN_KEY, token) : localStorage.removeItem(TOKEN_KEY));

export interface Connection {
  api: Api;
  close(): void;
}

export function connect(token: string | null, onSocket: (open: boolean, code?: number) => void): Connection {
  const wsUrl = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/trpc`;
  // Once closed, this connection says nothing more: the socket it had opening or closing when the
  // page moved on (a token given, another token) tells its open or close later, and would say
  // "reconnecting…" over the live socket of the connection that replaced it.
  let closed = false;
  const ws = createWSClient({
    url: wsUrl,
    retryDelayMs: (attempt) => Math.min(250 * 2 ** attempt, 3000),
    onOpen: () => closed || onSocket(true),
    // Any socket's close is told, a replaced one's too: after a restart behind a load balancer
    // (the old server asks for a reconnect, the new socket reaches another server and opens),
    // the old socket's close may come after its successor opened. Down only when the socket
    // the client now uses is not open.
    onClose: (cause) => closed || onSocket(ws.connection?.state === "open", cause?.code),
    ...(token ? { connectionParams: { token } } : {}),
  });
  const api = createTRPCClient<AppRouter>({
    links: [
      // A live tail that has read nothing yet resumes after a restart from where it opened.
      streamStartLink(),
      splitLink({
        condition: (op) => op.type === "subscription",
        true: wsLink({ client: ws, transformer: superjson }),
        false: httpBatchLink({ url: "/trpc", transformer: superjson, methodOverride: "POST", headers: () => (token ? { authorization: `Bearer ${token}` } : {}) }),
      }),
    ],
  });
  return {
    api,
    close: () => {
      closed = true;
      void ws.close();
    },
  };
}

/** The API's error code of a failed call ("UNAUTHORIZED", "FORBIDDEN", …), or "NETWORK" when the server could not be reached. */
export function errorCode(error: unknown): string {
  if (error instanceof TRPCClientError) return (error.data as { code?: string } | undefined)?.code ?? "NETWORK";
  return "NETWORK";
}

/**
 * Whether a live stream's resume was refused for a `lastEventId` past the server's newest event:
 * its database was restored from a backup, whose log ends earlier and gives those seqs again. A
 * stream refused so reads the restored log anew (the README's restore: subscribers resume from it).
 */
export function isAheadOfLog(error: unknown): boolean {
  if (!(error instanceof TRPCClientError) || errorCode(error) !== "INVALID_INPUT") return false;
  const details = (error.data as { details?: { issues?: Array<{ path?: unknown }> } } | undefined)?.details;
  return details?.issues?.some((issue) => issue.path === "lastEventId") ?? false;
}

/** How many agents fit in one answer, when the server refused a list for its size (client/answer-fits.ts). */
export { fitsInAnswer } from "../client/answer-fits.js";
export { rateWindowText } from "../client/rate-window.js";
export { backoffText } from "../client/backoff-text.js";
export { webhookStateText } from "../client/webhook-state-text.js";
export { runLimitText } from "../client/run-limit-text.js";
export { dedupeText } from "../client/dedupe-text.js";
export { orderingKeyText } from "../client/ordering-key-text.js";
export { traceText } from "../client/trace-text.js";

export const errorText = (error: unknown): string => (error instanceof Error ? error.message : String(error));
