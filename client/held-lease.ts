// Holding a lease-backed grant (a named lock, a semaphore permit) for the length of some work:
// acquire it (waiting as long as asked, in long-polls the server bounds by its maxWaitMs), renew its
// lease while the work runs, release it after, whatever the work did. Should the lease be lost
// meanwhile (a renewal refused, or none answered before the lease's end), the work's signal aborts
// with the caller's "lost" error, and the hold rejects with it: what the grant guarded may have
// been changed by the next holder. withLock and withPermit (locks.ts, semaphores.ts) are this,
// over their own calls.
import { setTimeout as sleep } from "node:timers/promises";
import { isTRPCClientError } from "@trpc/client";
import { isUnanswered, RETRY_MAX_MS, RETRY_START_MS } from "./lease-calls.js";

/** Refusals of a renewal that no retry changes: the lease is lost at once. */
const FOR_GOOD: ReadonlySet<string> = new Set(["LEASE_CONFLICT", "UNAUTHORIZED", "FORBIDDEN"]);

/** Renewal never comes sooner than this after the last, whatever the lease. */
const MIN_RENEW_MS = 5;
/** The shortest round of a wait: acquires are not sent closer together than this. */
const MIN_ROUND_MS = 250;
/** How long the release after the work may take before it is left to the lease's end. */
const RELEASE_TIMEOUT_MS = 10_000;

/** Milliseconds on a clock that never steps: a wall clock set back cannot stretch the lease as the holder counts it. */
const monotonic = (): number => performance.now();

/** One kind of grant's calls, and what its errors are. */
export interface LeaseCalls<A, G extends { fencingToken: number; leaseMs: number }> {
  /** One acquire, waiting up to `waitMs` on the server (0: not at all); sent again after a transient error, so under a key of the hold's own. */
  acquire(waitMs: number, signal: AbortSignal | undefined): Promise<A>;
  /** The grant an answer handed out; null: not acquired. */
  granted(answer: A): G | null;
  /** Renews the grant by `leaseMs` from now; rejects when it cannot. */
  renew(grant: G, leaseMs: number, signal: AbortSignal): Promise<unknown>;
  /** Releases the grant (under its own token: safe after a loss too). */
  release(grant: G, signal: AbortSignal): Promise<unknown>;
  /** The error of a wait that ran out, from the last refusal. */
  busy(answer: A): Error;
  /** The error of a lease lost before the work returned. */
  lost(grant: G, cause: unknown): Error;
}

/** `signal`: stops waiting for the grant, and aborts the work's signal. */
export interface HoldOptions {
  waitMs?: number | undefined;
  signal?: AbortSignal | undefined;
}

/**
 * Runs `work` while the grant `calls` acquire is held, and releases it after. Resolves with what
 * the work resolves with. Rejects with `calls.busy` when the wait ran out, with `calls.lost` when
 * the lease was lost before the work finished (whatever the work returned: the hold did not last),
 * and with the work's own error otherwise. The lease is counted from before each call was sent, so
 * the work is told of a loss no later than the server frees the grant.
 */
export async function holdLease<A, G extends { fencingToken: number; leaseMs: number }, T>(
  calls: LeaseCalls<A, G>,
  options: HoldOptions,
  work: (grant: G, signal: AbortSignal, answer: A) => Promise<T> | T,
): Promise<T> {
  const waitUntil = monotonic() + (options.waitMs ?? 0);
  let sentAt: number;
  let answer: A;
  let grant: G | null;
  let retryMs = RETRY_START_MS;
  // After a failed acquire once the wait was over: its one resend.
  let lastResend = false;
  // The server bounds one wait by its maxWaitMs: longer waits are several.
  for (;;) {
    options.signal?.throwIfAborted();
    sentAt = monotonic();
    try {
      answer = await calls.acquire(lastResend ? 0 : Math.max(0, Math.round(waitUntil - sentAt)), options.signal);
    } catch (error) {
      // Stopped by the caller's signal: its reason, not the transport's account of it.
      options.signal?.throwIfAborted();
      // A restart (503 SHUTTING_DOWN, then refused connections), a dropped connection, a 5xx of
      // the moment: the wait goes on while it has time left. Sent again, an acquire served whose
      // answer was lost gets its grant again (the hold's calls carry a key of their own). Once
      // the wait is over it is sent once more, not waiting: a grant the server handed out whose
      // answer was lost on the way (a proxy's reset) is then held, worked under and released,
      // not left to its lease's end with nobody holding it.
      if (!isUnanswered(error) || lastResend) throw error;
      lastResend = monotonic() + retryMs >= waitUntil;
      await sleep(lastResend ? Math.min(retryMs, RETRY_START_MS) : retryMs, undefined, { signal: options.signal }).catch(() => options.signal?.throwIfAborted());
      retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
      continue;
    }
    retryMs = RETRY_START_MS;
    grant = calls.granted(answer);
    if (grant !== null || lastResend || monotonic() >= waitUntil) break;
    // A server that answers at once (its maxWaitMs 0, or cut short) is not asked again at once.
    const pause = Math.min(sentAt + MIN_ROUND_MS, waitUntil) - monotonic();
    if (pause > 0) await sleep(pause, undefined, { signal: options.signal }).catch(() => options.signal?.throwIfAborted());
  }
  if (grant === null) throw calls.busy(answer);
  const held = grant;
  const { leaseMs } = held;
  // Best effort, bounded: one that does not arrive leaves the grant to its lease's end.
  const release = () => calls.release(held, AbortSignal.timeout(RELEASE_TIMEOUT_MS)).catch(() => undefined);
  // The lease is counted from before the call that granted it was sent: when, in a long wait, the
  // server granted it is not known. A grant that came late in a wait is renewed once before the
  // work starts, and counted from that renewal.
  let leaseFrom = sentAt;
  if (monotonic() - sentAt > leaseMs / 3) {
    const renewSentAt = monotonic();
    try {
      await calls.renew(held, leaseMs, AbortSignal.timeout(Math.max(1, Math.ceil(leaseMs))));
      leaseFrom = renewSentAt;
    } catch (error) {
      await release();
      throw calls.lost(held, error);
    }
  }
  // Stopped while the grant was being taken: the work does not start.
  if (options.signal?.aborted) {
    await release();
    throw options.signal.reason;
  }
  const controller = new AbortController();
  const onAbort = () => controller.abort(options.signal?.reason);
  options.signal?.addEventListener("abort", onAbort, { once: true });
  // Aborted between the acquire's answer and the line above: no event comes for it.
  if (options.signal?.aborted) onAbort();
  let lost: Error | undefined;
  const lose = (cause: unknown) => {
    if (lost !== undefined) return;
    lost = calls.lost(held, cause);
    if (!controller.signal.aborted) controller.abort(lost);
  };
  const done = new AbortController();
  // Renews until the work returns, whatever its signal says: work stopped by the caller often
  // still cleans up under the grant, and a loss meanwhile is still reported.
  const keeper = (async () => {
    let leaseEnd = leaseFrom + leaseMs;
    let retryMs = RETRY_START_MS;
    let nextAt = leaseFrom + Math.max(MIN_RENEW_MS, leaseMs / 3);
    while (!done.signal.aborted) {
      await sleep(Math.max(0, Math.min(nextAt, leaseEnd) - monotonic()), undefined, { signal: done.signal }).catch(() => undefined);
      if (done.signal.aborted) return;
      if (monotonic() >= leaseEnd) return lose(new Error(`no renewal answered within its lease (${leaseMs} ms)`));
      const renewSentAt = monotonic();
      try {
        // Cut short when the work returns: the release goes next, and need not wait for it.
        const signal = AbortSignal.any([done.signal, AbortSignal.timeout(Math.max(1, Math.ceil(leaseEnd - renewSentAt)))]);
        // Its own length, named: the lease it counts is the one it asks for.
        await calls.renew(held, leaseMs, signal);
        leaseEnd = renewSentAt + leaseMs;
        retryMs = RETRY_START_MS;
        nextAt = renewSentAt + Math.max(MIN_RENEW_MS, leaseMs / 3);
      } catch (error) {
        if (done.signal.aborted) return;
        // The grant is gone, or this credential may renew it no more (revoked): no retry brings it back.
        if (isTRPCClientError(error) && FOR_GOOD.has(String(error.data?.code))) return lose(error);
        // A dropped connection, a restart, a 503: the lease outlives them until leaseEnd.
        nextAt = monotonic() + retryMs;
        retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
      }
    }
  })();
  try {
    const result = await work(held, controller.signal, answer);
    if (lost !== undefined) throw lost;
    return result;
  } catch (error) {
    throw lost ?? error;
  } finally {
    done.abort();
    await keeper;
    options.signal?.removeEventListener("abort", onAbort);
    await release();
  }
}
