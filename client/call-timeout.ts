// A server that hangs with its port open (paused by SIGSTOP, a frozen VM) accepts connections and
// answers nothing: without a bound, a call waits for undici's header timeout (300 s) and a client
// of several servers never moves on. This link gives each query and mutation a time to answer,
// its long-poll wait on top; past it the call fails and the client's next calls go to the next
// server (failover.ts). The call may still have been served: it fails as a broken connection does.
import { TRPCClientError, type TRPCLink } from "@trpc/client";
import { observable } from "@trpc/server/observable";
import type { ServerList } from "./failover.js";
import { LONGEST_SERVER_WAIT_MS, waitsUnnamed } from "./long-polling.js";
import { cutInFlight } from "./served.js";
import type { AppRouter } from "./types.js";

/**
 * How long a call to `path` may wait on a live server, in ms: its input's waitMs, cut as any
 * server cuts it (LONGEST_SERVER_WAIT_MS); 0 when none, or the longest a server may wait for a
 * long-poll that waits without one (waitsUnnamed: tasks.wait, a kv.get watch).
 */
function waitOf(path: string, input: unknown): number {
  const waitMs = input !== null && typeof input === "object" ? (input as { waitMs?: unknown }).waitMs : undefined;
  if (waitMs === undefined) return waitsUnnamed(path, input) ? LONGEST_SERVER_WAIT_MS : 0;
  return typeof waitMs === "number" && Number.isFinite(waitMs) && waitMs > 0 ? Math.min(waitMs, LONGEST_SERVER_WAIT_MS) : 0;
}

/** Fails a query or mutation not answered within `timeoutMs` beyond its long-poll wait, and moves `servers` on. */
export function callTimeoutLink(servers: ServerList, timeoutMs: number): TRPCLink<AppRouter> {
  return () =>
    ({ op, next }) =>
      observable((observer) => {
        if (op.type === "subscription") return next(op).subscribe(observer);
        // The server the call goes to: the HTTP link sends it now or at the end of this turn.
        const base = servers.current;
        const limitMs = timeoutMs + waitOf(op.path, op.input);
        const timer = new AbortController();
        const handle = setTimeout(() => timer.abort(), limitMs);
        const signal = op.signal ? AbortSignal.any([op.signal, timer.signal]) : timer.signal;
        const subscription = next(Object.assign({}, op, { signal })).subscribe({
          next: (value) => observer.next(value),
          error: (error) => {
            clearTimeout(handle);
            if (!timer.signal.aborted || op.signal?.aborted) return observer.error(error);
            servers.failed(base);
            // Its cause is the abort the timer made, not what the call met: mayHaveBeenServed is told.
            observer.error(cutInFlight(new TRPCClientError(`${op.path}: no answer from ${base} within ${limitMs} ms (callTimeoutMs); it may have been served`, { cause: error })));
          },
          complete: () => {
            clearTimeout(handle);
            observer.complete();
          },
        });
        return () => {
          clearTimeout(handle);
          subscription.unsubscribe();
        };
      });
}
