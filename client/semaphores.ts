// Holding a semaphore's permit for the length of some work: withPermit acquires one (waiting for
// one to free as long as asked, in long-polls the server bounds by its maxWaitMs), renews its
// lease while the work runs, and releases it after, whatever the work did (held-lease.ts). Should
// the lease be lost meanwhile, the work's signal aborts with PermitLost and withPermit rejects
// with it: more agents than the limit may be at work from then on.
import { randomUUID } from "node:crypto";
import { holdLease, type LeaseCalls } from "./held-lease.js";
import type { CoordinationApi, RouterOutputs } from "./types.js";
import { sentOnce } from "./send-once.js";

/** A semaphore's permit as the server answers it. */
export type Permit = RouterOutputs["semaphores"]["renew"];
/** What a semaphore is now, in few fields (acquire's and release's answers). */
export type SemaphoreState = RouterOutputs["semaphores"]["acquire"]["semaphore"];

/** The semaphore stayed full for all of withPermit's waitMs: `semaphore` says how many hold it, and when the first lease ends. */
export class SemaphoreFull extends Error {
  constructor(readonly semaphore: SemaphoreState) {
    super(`semaphore ${JSON.stringify(semaphore.name)} is full: ${semaphore.held} permit${semaphore.held === 1 ? "" : "s"} held (limit ${semaphore.limit}), the first lease ending ${semaphore.nextExpiresAt?.toISOString()}`);
    this.name = "SemaphoreFull";
  }
}

/** The lease of a permit held by withPermit ended before the work did: another agent may hold it now. */
export class PermitLost extends Error {
  constructor(
    readonly semaphoreName: string,
    readonly fencingToken: number,
    override readonly cause: unknown,
  ) {
    super(`lost the permit of semaphore ${JSON.stringify(semaphoreName)} (fencing token ${fencingToken}): ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = "PermitLost";
  }
}

export interface WithPermitOptions {
  /** The semaphore's name. */
  name: string;
  /** The agent that holds the permit (an agent credential's own). */
  agentId: string;
  /** How many agents may hold it at once (1 to 10,000): every holder should ask for the same. */
  limit: number;
  /** The lease's length in ms (left out: the server's leaseMs); renewed every third of it while the work runs. */
  leaseMs?: number;
  /** How long to wait for a permit while the semaphore is full, in ms (left out or 0: not at all). */
  waitMs?: number;
  /** Stops waiting for a permit, and aborts the work's signal. */
  signal?: AbortSignal;
}

/** What the work is given: the permit, and a signal that aborts when its lease is lost (reason: PermitLost) or `options.signal` aborts. */
export interface HeldPermit {
  name: string;
  /** This permit's token: pass it to what the semaphore guards when that must tell its holders apart. */
  fencingToken: number;
  signal: AbortSignal;
  /** The permit as acquired. */
  permit: Permit;
}

/**
 * Runs `work` while `options.agentId` holds a permit of semaphore `options.name` (at most
 * `options.limit` holders at once), and releases it after. Each call acquires a permit of its own
 * (under a key of its own: an acquire sent again after a lost answer gets the same permit), so one
 * agent's calls count as several holders. Resolves with what the work resolves with. Rejects with
 * SemaphoreFull when no permit freed within `waitMs`, with PermitLost when its lease was lost before
 * the work finished, and with the work's own error otherwise.
 */
export async function withPermit<T>(api: CoordinationApi, options: WithPermitOptions, work: (held: HeldPermit) => Promise<T> | T): Promise<T> {
  const { name, agentId, limit } = options;
  const idempotencyKey = `withPermit:${randomUUID()}`;
  const calls: LeaseCalls<RouterOutputs["semaphores"]["acquire"], Permit> = {
    acquire: (waitMs, signal) =>
      api.semaphores.acquire.mutate({ name, agentId, limit, idempotencyKey, ...(options.leaseMs === undefined ? {} : { leaseMs: options.leaseMs }), ...(waitMs > 0 ? { waitMs } : {}) }, sentOnce(signal)),
    granted: (answer) => answer.permit,
    renew: (permit, leaseMs, signal) => api.semaphores.renew.mutate({ name, agentId, fencingToken: permit.fencingToken, leaseMs }, sentOnce(signal)),
    release: (permit, signal) => api.semaphores.release.mutate({ name, agentId, fencingToken: permit.fencingToken }, sentOnce(signal)),
    busy: (answer) => new SemaphoreFull(answer.semaphore),
    lost: (permit, cause) => new PermitLost(name, permit.fencingToken, cause),
  };
  return holdLease(calls, options, (permit, signal) => work({ name, fencingToken: permit.fencingToken, signal, permit }));
}
