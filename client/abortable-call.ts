// A call's own abort signal ends it at once, batched or not. tRPC's batch link aborts a batch's
// request only when every call in it was aborted: a settle or a heartbeat given a deadline
// (worker.ts) waited on for good when a call without one shared its batch with it. Here the
// aborted call fails by itself with the signal's reason; the batch's request goes on for the others.
import { TRPCClientError, type TRPCLink } from "@trpc/client";
import { observable } from "@trpc/server/observable";
import { cutInFlight, givenUpUnsent } from "./served.js";
import type { AppRouter } from "./types.js";

/** What a call whose `signal` aborted fails with: the signal's reason when it is an Error. */
export const abortedCallError = (signal: AbortSignal): Error => (signal.reason instanceof Error ? signal.reason : new Error("This operation was aborted", { cause: signal.reason }));

/**
 * The error a call given up for `reason` rejects with: a TRPCClientError of its own, the reason its
 * cause and its message. Not TRPCClientError.from(reason), which answers a reason that is a
 * TRPCClientError itself (another call's error, a program stopping the calls made with it): every
 * call stopped so would reject with that one object, its `data` (another call's answer) read as
 * theirs, and mayHaveBeenServed's mark of one (served.ts) taken as the others'.
 */
export const callAbortedError = (reason: Error): TRPCClientError<AppRouter> => new TRPCClientError(reason.message, { cause: reason });

/** Fails a query or mutation as soon as its signal aborts, whatever request it travels in. */
export function abortableCallLink(): TRPCLink<AppRouter> {
  return () =>
    ({ op, next }) =>
      observable((observer) => {
        const { signal } = op;
        if (op.type === "subscription" || !signal) return next(op).subscribe(observer);
        // Declared before fail, which a signal aborted already calls at once (after it, the name was
        // not yet initialized: a ReferenceError instead of the abort's reason).
        let subscription: { unsubscribe(): void } | undefined;
        const fail = () => {
          subscription?.unsubscribe();
          // Cut in flight: it may have been served, whatever the reason's own cause says.
          observer.error(cutInFlight(callAbortedError(abortedCallError(signal))));
        };
        if (signal.aborted) {
          // Aborted before it was made: nothing was sent (mayHaveBeenServed says so).
          observer.error(givenUpUnsent(callAbortedError(abortedCallError(signal))));
          return () => undefined;
        }
        signal.addEventListener("abort", fail, { once: true });
        subscription = next(op).subscribe({
          next: (value) => observer.next(value),
          error: (error) => {
            signal.removeEventListener("abort", fail);
            observer.error(error);
          },
          complete: () => {
            signal.removeEventListener("abort", fail);
            observer.complete();
          },
        });
        return () => {
          signal.removeEventListener("abort", fail);
          subscription?.unsubscribe();
        };
      });
}
