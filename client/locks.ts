// Holding a named lock for the length of some work: withLock acquires it (waiting for it as long
// as asked, in long-polls the server bounds by its maxWaitMs), renews its lease while the work
// runs, and releases it after, whatever the work did. Should the lease be lost meanwhile (a renewal
// refused, or none answered before the lease's end), the work's signal aborts with LockLost and
// withLock rejects with it: what the lock guarded may have been changed by the next holder.
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { isTRPCClientError } from "@trpc/client";
import type { CoordinationApi, RouterOutputs } from "./types.js";

/** A lock as the server answers it (locks.get): `held` false when it is free. */
export type Lock = RouterOutputs["locks"]["get"];

/** The lock was held by another agent for all of withLock's waitMs: `lock` says by whom, until when. */
export class LockBusy extends Error {
  constructor(readonly lock: Lock) {
    super(`lock ${JSON.stringify(lock.name)} is held by agent ${JSON.stringify(lock.holder)} (fencing token ${lock.fencingToken}, until ${lock.expiresAt?.toISOString()})`);
    this.name = "LockBusy";
  }
}

/** The lease of a lock held by withLock ended before the work did: another agent may hold it now. */
export class LockLost extends Error {
  constructor(
    readonly lockName: string,
    readonly fencingToken: number,
    override readonly cause: unknown,
  ) {
    super(`lost lock ${JSON.stringify(lockName)} (fencing token ${fencingToken}): ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = "LockLost";
  }
}

export interface WithLockOptions {
  /** The lock's name. */
  name: string;
  /** The agent that holds it (an agent credential's own). */
  agentId: string;
  /** The lease's length in ms (left out: the server's leaseMs); renewed every third of it while the work runs. */
  leaseMs?: number;
  /** How long to wait for the lock while another agent holds it, in ms (left out or 0: not at all). */
  waitMs?: number;
  /** Stops waiting for the lock, and aborts the work's signal. */
  signal?: AbortSignal;
}

/** What the work is given: the grant, and a signal that aborts when the lease is lost (reason: LockLost) or `options.signal` aborts. */
export interface HeldLock {
  name: string;
  /** Pass it to what the lock guards, which should refuse a smaller token than the largest it saw. */
  fencingToken: number;
  signal: AbortSignal;
  /** The lock as acquired. */
  lock: Lock;
}

/** Refusals of a renewal that no retry changes: the lease is lost at once. */
const FOR_GOOD: ReadonlySet<string> = new Set(["LEASE_CONFLICT", "UNAUTHORIZED", "FORBIDDEN"]);

/** Renewal never comes sooner than this after the last, whatever the lease. */
const MIN_RENEW_MS = 5;
/** The shortest round of withLock's wait: acquires are not sent closer together than this. */
const MIN_ROUND_MS = 250;
/** How long withLock's release after the work may take before it is left to the lease's end. */
const RELEASE_TIMEOUT_MS = 10_000;
/** A failed renewal is tried again this soon at first, doubling to a second. */
const RETRY_START_MS = 100;

/** Milliseconds on a clock that never steps: a wall clock set back cannot stretch the lease as the worker counts it. */
const monotonic = (): number => performance.now();

/**
 * Runs `work` while `options.agentId` holds lock `options.name`, and releases the lock after.
 * Each call acquires under a key of its own: two calls of one agent (a worker's handlers) take
 * turns as two agents' do.
 * Resolves with what the work resolves with. Rejects with LockBusy when the lock stayed another
 * agent's for `waitMs`, with LockLost when its lease was lost before the work finished (whatever
 * the work returned: exclusivity did not last), and with the work's own error otherwise. The
 * lease is counted from before each call was sent, so the work is told of a loss no later than
 * the server frees the lock.
 */
export async function withLock<T>(api: CoordinationApi, options: WithLockOptions, work: (held: HeldLock) => Promise<T> | T): Promise<T> {
  const { name, agentId } = options;
  const waitUntil = monotonic() + (options.waitMs ?? 0);
  // This call's own: another withLock of the same agent (a worker's other handler) waits for it.
  const idempotencyKey = `withLock:${randomUUID()}`;
  let sentAt: number;
  let answer: RouterOutputs["locks"]["acquire"];
  // The server bounds one wait by its maxWaitMs: longer waits are several.
  for (;;) {
    options.signal?.throwIfAborted();
    sentAt = monotonic();
    const waitMs = Math.max(0, Math.round(waitUntil - sentAt));
    try {
      answer = await api.locks.acquire.mutate(
        { name, agentId, idempotencyKey, ...(options.leaseMs === undefined ? {} : { leaseMs: options.leaseMs }), ...(waitMs > 0 ? { waitMs } : {}) },
        { signal: options.signal },
      );
    } catch (error) {
      // Stopped by the caller's signal: its reason, not the transport's account of it.
      options.signal?.throwIfAborted();
      throw error;
    }
    if (answer.acquired || monotonic() >= waitUntil) break;
    // A server that answers at once (its maxWaitMs 0, or cut short) is not asked again at once.
    const pause = Math.min(sentAt + MIN_ROUND_MS, waitUntil) - monotonic();
    if (pause > 0) await sleep(pause, undefined, { signal: options.signal }).catch(() => options.signal?.throwIfAborted());
  }
  if (!answer.acquired) throw new LockBusy(answer.lock);
  const fencingToken = answer.lock.fencingToken!;
  const leaseMs = answer.lock.leaseMs!;
  // Best effort, bounded: one that does not arrive leaves the grant to its lease's end. Under the
  // grant's own token, so it is safe after a loss too (a grant the server still holds goes).
  const release = () => api.locks.release.mutate({ name, agentId, fencingToken }, { signal: AbortSignal.timeout(RELEASE_TIMEOUT_MS) }).catch(() => undefined);
  // The lease is counted from before the call that granted it was sent: when, in a long wait, the
  // server granted it is not known. A grant that came late in a wait is renewed once before the
  // work starts, and counted from that renewal.
  let leaseFrom = sentAt;
  if (monotonic() - sentAt > leaseMs / 3) {
    const renewSentAt = monotonic();
    try {
      await api.locks.renew.mutate({ name, agentId, fencingToken, leaseMs }, { signal: AbortSignal.timeout(Math.max(1, Math.ceil(leaseMs))) });
      leaseFrom = renewSentAt;
    } catch (error) {
      await release();
      throw new LockLost(name, fencingToken, error);
    }
  }
  // Stopped while the lock was being taken: the work does not start.
  if (options.signal?.aborted) {
    await release();
    throw options.signal.reason;
  }
  const controller = new AbortController();
  const onAbort = () => controller.abort(options.signal?.reason);
  options.signal?.addEventListener("abort", onAbort, { once: true });
  // Aborted between the acquire's answer and the line above: no event comes for it.
  if (options.signal?.aborted) onAbort();
  let lost: LockLost | undefined;
  const lose = (cause: unknown) => {
    if (lost !== undefined) return;
    lost = new LockLost(name, fencingToken, cause);
    if (!controller.signal.aborted) controller.abort(lost);
  };
  const done = new AbortController();
  // Renews until the work returns, whatever its signal says: work stopped by the caller often
  // still cleans up under the lock, and a loss meanwhile is still reported.
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
        await api.locks.renew.mutate({ name, agentId, fencingToken, leaseMs }, { signal });
        leaseEnd = renewSentAt + leaseMs;
        retryMs = RETRY_START_MS;
        nextAt = renewSentAt + Math.max(MIN_RENEW_MS, leaseMs / 3);
      } catch (error) {
        if (done.signal.aborted) return;
        // The grant is gone, or this credential may renew it no more (revoked): no retry brings it back.
        if (isTRPCClientError(error) && FOR_GOOD.has(String(error.data?.code))) return lose(error);
        // A dropped connection, a restart, a 503: the lease outlives them until leaseEnd.
        nextAt = monotonic() + retryMs;
        retryMs = Math.min(retryMs * 2, 1000);
      }
    }
  })();
  try {
    const result = await work({ name, fencingToken, signal: controller.signal, lock: answer.lock });
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
