// Holding a named lock for the length of some work: withLock acquires it (waiting for it as long
// as asked, in long-polls the server bounds by its maxWaitMs), renews its lease while the work
// runs, and releases it after, whatever the work did (held-lease.ts). Should the lease be lost meanwhile (a renewal
// refused, or none answered before the lease's end), the work's signal aborts with LockLost and
// withLock rejects with it: what the lock guarded may have been changed by the next holder.
import { randomUUID } from "node:crypto";
import { holdLease, type LeaseCalls } from "./held-lease.js";
import type { CoordinationApi, RouterOutputs } from "./types.js";
import { sentOnce } from "./send-once.js";

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
  // This call's own: another withLock of the same agent (a worker's other handler) waits for it.
  const idempotencyKey = `withLock:${randomUUID()}`;
  type Grant = { fencingToken: number; leaseMs: number; lock: Lock };
  const calls: LeaseCalls<RouterOutputs["locks"]["acquire"], Grant> = {
    acquire: (waitMs, signal) =>
      api.locks.acquire.mutate({ name, agentId, idempotencyKey, ...(options.leaseMs === undefined ? {} : { leaseMs: options.leaseMs }), ...(waitMs > 0 ? { waitMs } : {}) }, sentOnce(signal)),
    granted: (answer) => (answer.acquired ? { fencingToken: answer.lock.fencingToken!, leaseMs: answer.lock.leaseMs!, lock: answer.lock } : null),
    renew: (grant, leaseMs, signal) => api.locks.renew.mutate({ name, agentId, fencingToken: grant.fencingToken, leaseMs }, sentOnce(signal)),
    release: (grant, signal) => api.locks.release.mutate({ name, agentId, fencingToken: grant.fencingToken }, sentOnce(signal)),
    busy: (answer) => new LockBusy(answer.lock),
    lost: (grant, cause) => new LockLost(name, grant.fencingToken, cause),
  };
  return holdLease(calls, options, (grant, signal) => work({ name, fencingToken: grant.fencingToken, signal, lock: grant.lock }));
}
