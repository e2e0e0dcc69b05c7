// Getting leased tasks back: leases that expired (the sweeper), the leases of an agent seen
// offline or deregistered, and claims whose answer never reached the claimer.
import type { Writer, WriteContext } from "../db/writer.js";
import type { TaskTransitions } from "./task-transitions.js";
import type { TaskRow, TaskStore } from "./task-store.js";

export class LeaseRecovery {
  constructor(
    private readonly writer: Writer,
    private readonly tasks: TaskStore,
    private readonly transitions: TaskTransitions,
  ) {}

  /** Returns expired claims to the queue, charging the attempt. Run by the lease sweeper. */
  expireLeases(batchSize = 500): Promise<number> {
    return this.writer.write((ctx) => {
      const expired = this.tasks.expiredClaims(ctx.now, batchSize);
      for (const row of expired) this.transitions.expireClaim(ctx, row, `lease expired (held by ${row.leaseOwner})`);
      return expired.length;
    });
  }

  /** Inside a write: frees every claim an agent holds (it went offline or deregistered). */
  releaseClaimsOf(ctx: WriteContext, agentId: string, reason: string): number {
    const held = this.tasks.claimsHeldBy(agentId);
    for (const row of held) this.transitions.expireClaim(ctx, row, reason);
    return held.length;
  }

  /**
   * The compensation for a claim whose answer never reached the claimer: each task still held
   * under that very lease goes back to pending with no attempt charged; its task.released event
   * says why. A lease that moved on meanwhile (settled, expired, stolen) is left alone.
   */
  releaseUndelivered(claimed: readonly TaskRow[]): Promise<void> {
    return this.writer.write((ctx) => {
      for (const row of claimed) {
        const current = this.tasks.findById(row.id);
        if (current?.status !== "claimed" || current.leaseToken !== row.leaseToken) continue;
        this.transitions.releaseRow(ctx, current, ctx.now, "the claimer never received the task (its connection closed before the answer was delivered)");
      }
    });
  }
}
