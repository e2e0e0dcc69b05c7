// Named locks on the event loop: bounds a call's lease and wait by the server's settings, parks an
// acquire that waits (grant-wait.ts), and gives back a grant whose answer never reached its
// caller (src/delivery/delivery.ts), so no agent is left holding a lock it was never told of.
import type { Database } from "../db/thread/database.js";
import type { ConsumingCall } from "../delivery/delivery.js";
import { leaseLength, renewalLength } from "../config.js";
import { acquireWaiting, expireRunOut, type GrantWaitDeps } from "./grant-wait.js";
import type { AcquireRequest, Acquired, ForceReleased, ForceReleaseRequest, ListLocksRequest, Lock, LockPage, Released, ReleaseRequest, RenewRequest } from "./lock-schemas.js";
import { longPollMs } from "../wakeup.js";

export interface LockServiceDeps extends GrantWaitDeps {
  db: Database;
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
    const leaseMs = leaseLength(this.d.config, request.leaseMs);
    const waitMs = longPollMs(request.waitMs, this.d.config.maxWaitMs);
    const attempt = async (): Promise<Acquired> => {
      const { acquired, lock } = await this.d.db.write("locks.acquire", { name: request.name, agentId: request.agentId, leaseMs, idempotencyKey: request.idempotencyKey });
      // Every answer that hands the grant out counts: only the last one's loss gives it back.
      if (acquired) call.delivery?.onUndelivered(() => this.giveBack({ name: request.name, agentId: request.agentId, fencingToken: lock.fencingToken! }));
      return { acquired, lock };
    };
    return acquireWaiting(this.d, {
      name: request.name,
      agentId: request.agentId,
      waitMs,
      call,
      attempt,
      asItIs: async () => ({ acquired: false, lock: await this.get(request.name) }),
      freeAt: (answer) => answer.lock.expiresAt?.getTime() ?? null,
    });
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
    const leaseMs = renewalLength(this.d.config, request.leaseMs) ?? null;
    return this.d.db.write("locks.renew", { name: request.name, agentId: request.agentId, fencingToken: request.fencingToken, leaseMs, maxLeaseMs: this.d.config.maxLeaseMs });
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
  expire(): Promise<number> {
    return expireRunOut(
      (now) => this.d.db.read("locks.anyRunOut", now),
      (limit) => this.d.db.write("locks.expire", limit),
    );
  }
}
