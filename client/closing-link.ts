// The client's close() ends the long-polls under way (a claim's wait, a task wait, a key watch, a
// log follow): the keep-alive pool's close waits for every request in flight, and a long-poll
// answers only when its wait runs out (the server's maxWaitMs, 30 s by default), so a program
// that closed its client with one parked waited that long to exit. Other calls are left to finish:
// a write in flight should get its answer. A long-poll cut short is safe to lose: the server gives
// back what an unanswered claim or acquire took.
import { TRPCClientError, type TRPCLink } from "@trpc/client";
import { observable } from "@trpc/server/observable";
import { mayLongPoll } from "./long-polling.js";
import { inputJson } from "./serialize-input.js";
import { givenUpUnsent } from "./served.js";
import type { AppRouter } from "./types.js";

/** Why a call of a closed client failed: close() gave it up, or it was made after. No resend mends it. */
export class ClientClosedError extends Error {
  /** `message`: what close() ended (by default a long-poll's wait). */
  constructor(message = "the client was closed while this call waited (a long-poll): it was given up") {
    super(message);
    this.name = "ClientClosedError";
  }
}

/** Whether `error` (a call's) is its client's close: close() gave a long-poll up, or the pool was closed when it was sent. */
export function isClientClosed(error: unknown): boolean {
  for (let cause: unknown = error, depth = 0; cause instanceof Error && depth < 5; cause = cause.cause, depth++) {
    if (cause instanceof ClientClosedError || ["UND_ERR_CLOSED", "UND_ERR_DESTROYED"].includes(String((cause as { code?: unknown }).code))) return true;
  }
  return false;
}

/**
 * The long-polls under way, each with a signal of its own that close() aborts (and that also
 * aborts with the call's own signal). Kept in a set, not as listeners of one shared signal: a
 * program parking dozens of long-polls at once got a MaxListenersExceededWarning.
 */
export class LongPolls {
  private readonly open = new Set<AbortController>();
  private closed: ClientClosedError | undefined;

  /** Gives each long-poll its signal (placed after serializeInputLink: it reads the serialized input). */
  link(): TRPCLink<AppRouter> {
    return () =>
      ({ op, next }) =>
        observable((observer) => {
          // A call made after close() is refused here, whatever carries it. A stream: tRPC's lazy
          // WebSocket would open a new socket for it, deliver events to a closed client and, once
          // its server went, try to reconnect for ever, a timer that kept the process from
          // exiting. A query or mutation: with a `fetch` of the caller's (no pool of ours to close)
          // it was sent and answered as if the client were open.
          if (this.closed !== undefined) {
            observer.error(givenUpUnsent(TRPCClientError.from(new ClientClosedError("the client was closed: a call made after close() is refused"))));
            return () => undefined;
          }
          if (op.type === "subscription" || !mayLongPoll(op.path, inputJson(op.input))) return next(op).subscribe(observer);
          const own = op.signal;
          const linked = new AbortController();
          const onOwn = () => linked.abort(own!.reason);
          if (this.closed !== undefined) linked.abort(this.closed);
          else this.open.add(linked);
          if (own?.aborted) onOwn();
          else own?.addEventListener("abort", onOwn, { once: true });
          const detach = () => {
            this.open.delete(linked);
            own?.removeEventListener("abort", onOwn);
          };
          const subscription = next({ ...op, signal: linked.signal }).subscribe({
            next: (value) => observer.next(value),
            error: (error) => {
              detach();
              observer.error(error);
            },
            complete: () => {
              detach();
              observer.complete();
            },
          });
          return () => {
            detach();
            subscription.unsubscribe();
          };
        });
  }

  /** Gives up every long-poll under way, and any sent from now on (ClientClosedError). */
  close(): void {
    this.closed ??= new ClientClosedError();
    for (const controller of this.open) controller.abort(this.closed);
    this.open.clear();
  }
}
