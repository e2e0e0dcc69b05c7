// Named locks on the event loop: bounds a call's lease and wait by the server's settings, parks an
// acquire that waits (keyed-waiters.ts), and gives back a grant whose answer never reached its
// caller (src/delivery/delivery.ts), so no agent is left holding a lock it was never told of.
import type { Config } from "../config.js";
import type { Database } from "../db/thread/database.js";
import { clientGone, refuseIfRevoked, type ConsumingCall } from "../delivery/delivery.js";
import { shuttingDown } from "../errors.js";
import type { PerKeyLimit } from "../per-key-limit.js";
import { linkSignals, safetyRelookMs, type SignalFanout } from "../wakeup.js";
import type { AcquireRequest, Acquired, ForceReleased, ForceReleaseRequest, ListLocksRequest, Lock, LockPage, Released, ReleaseRequest, RenewRequest } from "./lock-schemas.js";
import type { KeyedWaiters } from "../keyed-waiters.js";

export interface LockServiceDeps {
  config: Config;
  db: Database;
  waiters: KeyedWaiters;
  shutdown: SignalFanout;
  /** Long-polls waiting per agent, bounded (maxParkedPerAgent): its claims, polls and acquires together. */
  parked: PerKeyLimit;
}

export class LockService {
  constructor(private readonly d: LockServiceDeps) {}

  /**
   * Acquires lock `name` for `agentId` (see locks.acquire), waiting up to `waitMs` (cut to
   * maxWaitMs) while another acquire holds it. A grant whose answer does not reach the caller
   * (`call.delivery`) is released again, unless another answer handed it out too (an acquire
   * sent again with its key: that one may have arrived). LIMIT_EXCEEDED: maxLocksPerAgent, or
   * maxParkedPerAgent for a wait.
   */
  async acquire(request: AcquireRequest, call: ConsumingCall = {}): Promise<Acquired> {
    const leaseMs = this.leaseLength(request.leaseMs);
    const waitMs = Math.min(request.waitMs ?? 0, this.d.config.maxWaitMs);
    const attempt = async (): Promise<Acquired> => {
      const { acquired, lock } = await this.d.db.write("locks.acquire", { name: request.name, agentId: request.agentId, leaseMs, idempotencyKey: request.idempotencyKey });
      // Every answer that hands the grant out counts: only the last one's loss gives it back.
      if (acquired) call.delivery?.onUndelivered(() => this.giveBack({ name: request.name, agentId: request.agentId, fencingToken: lock.fencingToken! }));
      return { acquired, lock };
    };
    if (waitMs <= 0) return attempt();
    const unpark = this.d.parked.acquire(request.agentId);
    const deadline = Date.now() + waitMs;
    const shutdown = this.d.shutdown.child();
    const stop = linkSignals([...(call.signals?.() ?? []), shutdown.signal]);
    try {
      for (;;) {
        // Waiting starts before the attempt: a release committed meanwhile wakes it at once.
        if (shutdown.signal.aborted) throw shuttingDown();
        const ticket = this.d.waiters.ticket([request.name]);
        try {
          if (clientGone(call)) {
            refuseIfRevoked(call);
            // Gone before it took anything: what it would have been told is what the lock is.
            return { acquired: false, lock: await this.get(request.name) };
          }
          const answer = await attempt();
          if (answer.acquired) return answer;
          // Not a refusal: that reads as "held by another", and the caller would ask this server again.
          if (shutdown.signal.aborted) throw shuttingDown();
          refuseIfRevoked(call);
          const now = Date.now();
          if (now >= deadline || stop.signal.aborted) return answer;
          call.waiting?.();
          // Its holder's lease running out frees it with no event until a write meets it: look then.
          const leaseEnd = answer.lock.expiresAt === null ? now : answer.lock.expiresAt.getTime() + 1;
          const wakeAt = Math.min(deadline, leaseEnd, now + safetyRelookMs(this.d.config.crossProcessPollMs));
          await ticket.wait(wakeAt - now, stop.signal);
          // At the end of the wait, one last attempt: the holder's lease may have run out with it.
          if (!ticket.isWoken && Date.now() >= deadline && !stop.signal.aborted) return await attempt();
        } finally {
          ticket.cancel();
        }
      }
    } finally {
      stop.dispose();
      shutdown.dispose();
      unpark();
    }
  }

  /**
   * Gives back a grant an answer handed out that did not reach its caller (an MCP call cancelled
   * after its answer, or delivery confirmation), unless another answer handed it out too. Whether
   * it was released.
   */
  giveBack(grant: { name: string; agentId: string; fencingToken: number }): Promise<boolean> {
    return this.d.db.write("locks.giveBackUndelivered", grant);
  }

  /** Renews the agent's grant of `name` (see locks.renew); its lease is cut to maxLeaseMs. LEASE_CONFLICT when it holds none. */
  renew(request: RenewRequest): Promise<Lock> {
    const leaseMs = request.leaseMs && request.leaseMs > 0 ? Math.min(request.leaseMs, this.d.config.maxLeaseMs) : null;
    return this.d.db.write("locks.renew", { name: request.name, agentId: request.agentId, fencingToken: request.fencingToken, leaseMs });
  }

  /** Ends the agent's grant of `name` (see locks.release). */
  release(request: ReleaseRequest): Promise<Released> {
    return this.d.db.write("locks.release", request);
  }

  /** An operator ends whichever grant holds `name`; `holder` and `fencingToken`: the grant it ended (null: it was free). */
  forceRelease(request: ForceReleaseRequest, releasedBy: string | null): Promise<ForceReleased> {
    return this.d.db.write("locks.forceRelease", { name: request.name, reason: request.reason, releasedBy });
  }

  /** Lock `name` as it is now (free: `held` false). */
  get(name: string): Promise<Lock> {
    return this.d.db.read("locks.get", { name, now: Date.now() });
  }

  /** The locks held now, by name, a page (see locks.list). */
  list(request: ListLocksRequest): Promise<LockPage> {
    return this.d.db.read("locks.page", { holder: request.holder, prefix: request.prefix, after: request.after, limit: request.limit, now: Date.now() });
  }

  /**
   * Takes away the grants whose lease ran out, a bounded number a write, each with its
   * lock.expired (the acquires waiting for them wake): looked for on the reader first, so a server
   * whose locks are all held writes nothing. How many.
   */
  async expire(): Promise<number> {
    let expired = 0;
    while (await this.d.db.read("locks.anyRunOut", Date.now())) {
      const done = await this.d.db.write("locks.expire", EXPIRY_BATCH);
      expired += done;
      if (done < EXPIRY_BATCH) break;
    }
    return expired;
  }

  private leaseLength(requested: number | undefined): number {
    return Math.min(requested && requested > 0 ? requested : this.d.config.leaseMs, this.d.config.maxLeaseMs);
  }
}

/** Grants the expiry job takes away per write. */
const EXPIRY_BATCH = 500;
