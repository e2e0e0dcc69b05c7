// A call made while its server restarts (or before it started) waits for it, rather than failing
// at once: a program calling api.tasks.get.query() during a routine restart got a connection error
// and had to guess whether sending it again was safe. Here the client sends again only what is
// safe to send again:
//  - any call whose connection could not be made (refused, a name not resolved): it never reached
//    a server (failover.ts's neverSent);
//  - any call answered 503 SHUTTING_DOWN (the server stopping: it took nothing) or DATABASE_LOCKED
//    (another process held the write lock: nothing was stored);
//  - a query that got no answer (its connection broke, a proxy's error page): a read changes
//    nothing. Not a long-poll (its wait is the caller's to count: sent again, it would wait anew),
//    and not a mutation, which may have been served (idempotency keys and leases cover those).
// Between tries it waits 100 ms, doubling to 1 s, for up to waitMs from the first failure; then
// the call fails with its last error. Placed above callTimeoutLink: each try has its own
// callTimeoutMs, and one that times out (it may have been served) is sent again only if a query.
// tRPC's retryLink counts tries, not time, and close() could not end its wait: a call waiting
// here fails at once with ClientClosedError when the client closes, never sent again.
import { TRPCClientError, type TRPCLink } from "@trpc/client";
import { observable } from "@trpc/server/observable";
import { abortedCallError, callAbortedError } from "./abortable-call.js";
import { ClientClosedError, isClientClosed } from "./closing-link.js";
import { neverSent } from "./failover.js";
import { RETRY_MAX_MS, RETRY_START_MS } from "./lease-calls.js";
import { mayLongPoll } from "./long-polling.js";
import { SEND_ONCE } from "./send-once.js";
import { givenUpUnsent } from "./served.js";
import { inputJson, isUnsendable } from "./serialize-input.js";
import type { AppRouter, ErrorCode } from "./types.js";

/** Answers that say the server took nothing, and that another try may pass (README: Errors, and whether to retry). */
const TOOK_NOTHING: ReadonlySet<ErrorCode> = new Set<ErrorCode>(["SHUTTING_DOWN", "DATABASE_LOCKED"]);

/** What a call of `type` to `path` with `input` failed with allows sending it again: it stored nothing, or it only reads. */
export function safeToSendAgain(error: unknown, op: { type: string; path: string; input: unknown }): boolean {
  if (isClientClosed(error) || isUnsendable(error)) return false;
  if (neverSent(error)) return true;
  if (!(error instanceof TRPCClientError)) return false;
  const code = (error.data as { code?: ErrorCode } | undefined)?.code;
  if (code !== undefined) return TOOK_NOTHING.has(code);
  // No answer the server made: a read that is not a long-poll is as good sent again.
  return op.type === "query" && !mayLongPoll(op.path, inputJson(op.input));
}

/** The client's calls that wait for a server, so that close() ends their wait. */
export class ServerWaits {
  private readonly waiting = new Set<(error: Error) => void>();
  private closed: ClientClosedError | undefined;

  /** `waitMs`: how long a call may go on being sent again, in ms (Infinity: for as long as it takes); 0 sends each once. */
  constructor(private readonly waitMs: number) {
    if (!(waitMs >= 0)) throw new RangeError(`createCoordinationClient: waitForServerMs must be a number of ms, 0 or more (got ${String(waitMs)})`);
  }

  /** Sends each query and mutation again while it failed in a way safeToSendAgain allows, for up to waitMs. Subscriptions pass (the WebSocket reconnects by itself). */
  link(): TRPCLink<AppRouter> {
    return () =>
      ({ op, next }) =>
        observable((observer) => {
          if (op.type === "subscription" || this.waitMs <= 0 || op.context.sendOnce === SEND_ONCE.sendOnce) return next(op).subscribe(observer);
          // Counted from the first failure: a long-poll parked longer than waitMs before its
          // server stopped still has the whole wait for the next one.
          let failedAt: number | undefined;
          let retryMs = RETRY_START_MS;
          let attempt: { unsubscribe(): void } | undefined;
          let timer: NodeJS.Timeout | undefined;
          let over = false;
          const { signal } = op;
          const stopWaiting = () => {
            over = true;
            clearTimeout(timer);
            this.waiting.delete(giveUp);
            signal?.removeEventListener("abort", onAbort);
          };
          // Every try before failed without reaching a server, or was answered that nothing was
          // stored, or only read: the call given up here did nothing (mayHaveBeenServed).
          const giveUp = (error: Error) => {
            stopWaiting();
            observer.error(givenUpUnsent(callAbortedError(error)));
          };
          // Between tries no link below holds the call: its signal is heard here.
          const onAbort = () => giveUp(abortedCallError(signal!));
          const send = () => {
            this.waiting.delete(giveUp);
            signal?.removeEventListener("abort", onAbort);
            attempt = next(op).subscribe({
              next: (value) => observer.next(value),
              complete: () => {
                over = true;
                observer.complete();
              },
              error: (error) => {
                if (over) return;
                const now = performance.now();
                failedAt ??= now;
                const leftMs = this.waitMs - (now - failedAt);
                if (signal?.aborted || leftMs <= 0 || !safeToSendAgain(error, op)) {
                  over = true;
                  return observer.error(error);
                }
                // Closed while this try was on its way: it ends as a call closed between tries
                // does, not with the refusal close() came before.
                if (this.closed !== undefined) return giveUp(this.closed);
                this.waiting.add(giveUp);
                signal?.addEventListener("abort", onAbort, { once: true });
                timer = setTimeout(send, Math.min(retryMs, leftMs));
                retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
              },
            });
          };
          send();
          return () => {
            stopWaiting();
            attempt?.unsubscribe();
          };
        });
  }

  /** Ends every call waiting to be sent again (ClientClosedError), and sends none again from now on. */
  close(): void {
    this.closed ??= new ClientClosedError("the client was closed while this call waited for its server to come back: it was not sent again");
    for (const giveUp of [...this.waiting]) giveUp(this.closed);
    this.waiting.clear();
  }
}
