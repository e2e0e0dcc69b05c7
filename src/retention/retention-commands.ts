// Retention's reads and writes as the database threads run them: where a count retention cuts
// (read on the reader, so finding it never holds the write lock), and one bounded batch of
// deletes per write (so pruning interleaves with the hot paths instead of holding them).
import type { WriteContext } from "../db/writer.js";
import type { MemoryChanges } from "../memory/memory-changes.js";
import type { MemoryStore } from "../memory/memory-store.js";
import type { TaskLogStore } from "../tasks/task-log-store.js";
import type { TaskStore } from "../tasks/task-store.js";
import type { TokenStore } from "../auth/token-store.js";

/** What retention prunes: settled tasks, execution records, agents' notes and lessons, agents long offline, revoked credentials. */
export type RetainedClass = "settledTasks" | "executions" | "notes" | "agents" | "revokedTokens";
export const MEMORY_KINDS: Record<"executions" | "notes", readonly string[]> = { executions: ["execution"], notes: ["note", "lesson"] };

/**
 * The bound of one batch: older than a time (settled tasks, count retention: or at that time with
 * a seq below `seqBelow`), or (memories, count retention) below a seq.
 */
export type PruneBound = { before: number; seqBelow?: number } | { belowSeq: number };

/**
 * The most log lines (tasks.appendLog) one retention write deletes with their tasks: a write that
 * deleted a million took about 0.7 s here, and every claim, settle and heartbeat waited behind it.
 */
export const PRUNED_LOG_LINES = 20_000;

export function retentionCommands(d: {
  tasks: TaskStore;
  logs: TaskLogStore;
  memories: MemoryStore;
  memoryChanges: MemoryChanges;
  tokens: TokenStore;
  pruneAgents: (ctx: WriteContext, args: { before: number; limit: number }) => number;
  /** Cancels the tasks waiting on a task deleted as a dead letter (TaskTransitions.settleDependents). */
  settleDependents: (ctx: WriteContext, dependency: { seq: number; id: string }, outcome: "deleted") => boolean;
}) {
  return {
    /** One batch: the rows it deleted, and whether more may be left (a full batch, or one its tasks' logs cut short). */
    "retention.prune": (ctx: WriteContext, args: { what: RetainedClass; bound: PruneBound; limit: number; fromSeq?: number }): { done: number; more: boolean; floor?: number } => {
      const batch = (done: number) => ({ done, more: done >= args.limit });
      if (args.what === "settledTasks") {
        if (!("before" in args.bound)) return batch(0);
        const candidates = d.tasks.settledBefore(args.bound.before, args.limit, args.bound.seqBelow);
        // Their logs go first, and the tasks with them (a task's lines are kept no longer than the
        // task): at most PRUNED_LOG_LINES lines a write, so tasks with long logs take several writes.
        const gone = d.logs.forget(candidates.map((task) => task.seq), PRUNED_LOG_LINES);
        const pruned = candidates.slice(0, gone);
        d.tasks.deleteSettled(pruned);
        // A dead letter deleted can never complete: what waits on it is cancelled (nothing else
        // settled has a task waiting on it: a complete makes them pending, a cancel cancels them,
        // in its write or by the dependency job). The write's budget bounds the batch: the rest go to the job.
        for (const task of pruned) if (task.status === "dead_letter") d.settleDependents(ctx, task, "deleted");
        return { done: pruned.length, more: gone < candidates.length || candidates.length >= args.limit };
      }
      // Age only (by last heartbeat): a registry has no "newest N" worth keeping.
      if (args.what === "agents") return batch("before" in args.bound ? d.pruneAgents(ctx, { before: args.bound.before, limit: args.limit }) : 0);
      // Age only (since revoked): no count of revoked credentials is worth keeping.
      if (args.what === "revokedTokens") return batch("before" in args.bound ? d.tokens.pruneRevoked(args.bound.before, args.limit) : 0);
      const { done, floor } = d.memories.prune(MEMORY_KINDS[args.what], args.bound, args.limit, args.fromSeq);
      // Recall's cache must not hand them out after this (memory-changes.ts).
      if (done > 0) ctx.afterCommit(() => d.memoryChanges.changed());
      return { ...batch(done), floor };
    },
  };
}

export function retentionQueries(d: { tasks: TaskStore; memories: MemoryStore }) {
  return {
    /** Where keeping only the newest `keep` cuts: a settle time for tasks, a seq for memories; null when fewer exist. */
    "retention.countCutoff": (args: { what: RetainedClass; keep: number }): PruneBound | null => {
      if (args.what === "agents" || args.what === "revokedTokens") return null;
      if (args.what === "settledTasks") {
        const cutoff = d.tasks.settledCutoff(args.keep);
        return cutoff === null ? null : { before: cutoff.at, seqBelow: cutoff.seq };
      }
      const seq = d.memories.keepFromSeq(MEMORY_KINDS[args.what], args.keep);
      return seq === null ? null : { belowSeq: seq };
    },
    "retention.oldestSettledAt": (_: undefined): number | null => d.tasks.oldestSettledAt(),
  };
}
