// Semaphores on the event loop: bounds a call's lease and wait by the server's settings, parks an
// acquire that waits (grant-wait.ts), and gives back a permit whose answer never reached its
// caller (src/delivery/delivery.ts), so no agent is left holding a permit it was never told of.
import type { Database } from "../db/thread/database.js";
import type { ConsumingCall } from "../delivery/delivery.js";
import { leaseLength, renewalLength } from "../config.js";
import { acquireWaiting, expireRunOut, type GrantWaitDeps } from "./grant-wait.js";
import { longPollMs } from "../wakeup.js";
import type {
  AcquirePermitRequest,
  ForceReleasePermitsRequest,
  ListPermitsRequest,
  Permit,
  PermitAcquired,
  PermitPage,
  PermitReleased,
  PermitsForceReleased,
  ReleasePermitRequest,
  RenewPermitRequest,
  Semaphore,
} from "./semaphore-schemas.js";

export interface SemaphoreServiceDeps extends GrantWaitDeps {
  db: Database;
}

export class SemaphoreService {
  constructor(private readonly d: SemaphoreServiceDeps) {}

  /**
   * Acquires a permit of semaphore `name` for `agentId` (see semaphores.acquire), waiting up to
   * `waitMs` (cut to maxWaitMs) while it is full. A permit whose answer does not reach the caller
   * (`call.delivery`) is released again, unless another answer handed it out too (an acquire sent
   * again with its key). LIMIT_EXCEEDED: maxLocksPerAgent, or maxParkedPerAgent for a wait.
   */
  acquire(request: AcquirePermitRequest, call: ConsumingCall = {}): Promise<PermitAcquired> {
    const { config } = this.d;
    const leaseMs = leaseLength(config, request.leaseMs);
    const attempt = async (): Promise<PermitAcquired> => {
      const answer = await this.d.db.write("semaphores.acquire", { name: request.name, agentId: request.agentId, limit: request.limit, leaseMs, idempotencyKey: request.idempotencyKey });
      const permit = answer.permit;
      // Every answer that hands the permit out counts: only the last one's loss gives it back.
      if (permit !== null) call.delivery?.onUndelivered(() => this.giveBack({ name: permit.name, agentId: permit.holder, fencingToken: permit.fencingToken }));
      return answer;
    };
    return acquireWaiting(this.d, {
      name: request.name,
      agentId: request.agentId,
      waitMs: longPollMs(request.waitMs, config.maxWaitMs),
      call,
      attempt,
      asItIs: async () => ({ acquired: false, permit: null, semaphore: await this.d.db.read("semaphores.state", { name: request.name, now: Date.now() }) }),
      freeAt: (answer) => answer.semaphore.nextExpiresAt?.getTime() ?? null,
    });
  }

  /** Gives back a permit an answer handed out that did not reach its caller, unless another answer handed it out too. Whether it was released. */
  giveBack(permit: { name: string; agentId: string; fencingToken: number }): Promise<boolean> {
    return this.d.db.write("semaphores.giveBackUndelivered", permit);
  }

  /** Renews the agent's permit (see semaphores.renew); its lease is cut to maxLeaseMs. LEASE_CONFLICT when it holds none under that token. */
  renew(request: RenewPermitRequest): Promise<Permit> {
    const leaseMs = renewalLength(this.d.config, request.leaseMs) ?? null;
    return this.d.db.write("semaphores.renew", { name: request.name, agentId: request.agentId, fencingToken: request.fencingToken, leaseMs, maxLeaseMs: this.d.config.maxLeaseMs });
  }

  /** Ends the agent's permit (see semaphores.release). */
  release(request: ReleasePermitRequest): Promise<PermitReleased> {
    return this.d.db.write("semaphores.release", request);
  }

  /** An operator ends one permit of `name` (its `fencingToken`), or every one held. */
  forceRelease(request: ForceReleasePermitsRequest, releasedBy: string | null): Promise<PermitsForceReleased> {
    return this.d.db.write("semaphores.forceRelease", { name: request.name, fencingToken: request.fencingToken, reason: request.reason, releasedBy });
  }

  /** Semaphore `name` as it is now, with its permits held. */
  get(name: string): Promise<Semaphore> {
    return this.d.db.read("semaphores.get", { name, now: Date.now() });
  }

  /** The permits held now, by semaphore name and token, a page (see semaphores.list). */
  list(request: ListPermitsRequest): Promise<PermitPage> {
    return this.d.db.read("semaphores.page", { holder: request.holder, prefix: request.prefix, cursor: request.cursor, limit: request.limit, now: Date.now() });
  }

  /** Takes away the permits whose lease ran out, a bounded number a write, each with its semaphore.expired: looked for on the reader first. How many. */
  expire(): Promise<number> {
    return expireRunOut(
      (now) => this.d.db.read("semaphores.anyRunOut", now),
      (limit) => this.d.db.write("semaphores.expire", limit),
    );
  }
}
