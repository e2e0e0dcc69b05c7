// Data that does not grow without bound: settled tasks (completed, dead-lettered, cancelled),
// execution records and agents' notes each have an age and a count retention (0: keep); agents
// offline with no heartbeat for agentRetentionMs go as a deregistration would, and credentials
// revokedTokenRetentionMs after they were revoked. A
// periodic job prunes each class in batches of PRUNE_BATCH rows (fewer settled tasks when their
// logs hold more than PRUNED_LOG_LINES lines in all), one write each, giving the
// event loop and the writer back between batches, so the hot paths never wait behind a big
// delete. Pending and claimed tasks are never pruned; the event log has its own pruner.
import type { Config } from "../config.js";
import { whileMore } from "../db/in-batches.js";
import type { Database } from "../db/thread/database.js";
import type { Logger } from "../logger.js";
import type { PruneBound, RetainedClass } from "./retention-commands.js";

const PRUNE_BATCH = 500;

export interface RetentionPolicy {
  /** Oldest kept, in ms of age; null: no age limit. */
  maxAgeMs: number | null;
  /** Most kept (the newest); null: no count limit. */
  maxCount: number | null;
}

export function retentionPolicies(config: Config): Record<RetainedClass, RetentionPolicy> {
  const policy = (ms: number, count: number): RetentionPolicy => ({ maxAgeMs: ms > 0 ? ms : null, maxCount: count > 0 ? count : null });
  return {
    settledTasks: policy(config.settledTaskRetentionMs, config.settledTaskRetentionCount),
    executions: policy(config.executionRetentionMs, config.executionRetentionCount),
    notes: policy(config.noteRetentionMs, config.noteRetentionCount),
    agents: policy(config.agentRetentionMs, 0),
    revokedTokens: policy(config.revokedTokenRetentionMs, 0),
  };
}

export class Retention {
  readonly policies: Record<RetainedClass, RetentionPolicy>;
  /** Rows pruned by this process since start, per class (observability). */
  readonly pruned: Record<RetainedClass, number> = { settledTasks: 0, executions: 0, notes: 0, agents: 0, revokedTokens: 0 };
  /**
   * Per class of memories, the seq below which none is left to prune (MemoryStore.prune): each
   * run reads from there, not past every kept note or record from the oldest. 0 at start: the
   * first run reads them once.
   */
  private readonly memoryFloor: Partial<Record<RetainedClass, number>> = {};

  constructor(
    config: Config,
    private readonly db: Database,
    private readonly log: Logger,
  ) {
    this.policies = retentionPolicies(config);
  }

  /**
   * Prunes every class down to its policy; returns how many rows went. A run that removed any
   * says so at info, each class with its count and the policy that removed it: deleting data is
   * never silent (the first run after an upgrade from a version without retention removes
   * everything older than the defaults).
   */
  async prune(now = Date.now()): Promise<number> {
    const removed: Partial<Record<RetainedClass, { rows: number } & RetentionPolicy>> = {};
    let total = 0;
    for (const [what, policy] of Object.entries(this.policies) as Array<[RetainedClass, RetentionPolicy]>) {
      let rows = 0;
      if (policy.maxAgeMs !== null) rows += await this.pruneTo(what, { before: now - policy.maxAgeMs });
      if (policy.maxCount !== null) {
        const cutoff = await this.db.read("retention.countCutoff", { what, keep: policy.maxCount });
        if (cutoff !== null) rows += await this.pruneTo(what, cutoff);
      }
      if (rows > 0) removed[what] = { rows, ...policy };
      total += rows;
    }
    if (total > 0) this.log.info({ removed }, `retention removed ${total} rows past their age or count limits`);
    return total;
  }

  private pruneTo(what: RetainedClass, bound: PruneBound): Promise<number> {
    return whileMore(async () => {
      const fromSeq = this.memoryFloor[what];
      const batch = await this.db.write("retention.prune", { what, bound, limit: PRUNE_BATCH, ...(fromSeq === undefined ? {} : { fromSeq }) });
      this.pruned[what] += batch.done;
      if (batch.floor !== undefined) this.memoryFloor[what] = Math.max(fromSeq ?? 0, batch.floor);
      return batch;
    });
  }
}
