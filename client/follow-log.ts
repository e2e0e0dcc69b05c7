// Reading a run's log as it grows: followLog yields a task's lines in order, a long-poll at a time
// (tasks.log with waitMs), through restarts and dropped connections, until the task settles and
// its last line was read.
import { paceRound, untilAnswered } from "./lease-calls.js";
import type { CoordinationApi, RouterInputs, RouterOutputs } from "./types.js";
import { sentOnce } from "./send-once.js";

/** A line of a run's log, as tasks.log answers it. */
export type LogLine = RouterOutputs["tasks"]["log"]["lines"][number];

export interface FollowLogOptions {
  taskId: string;
  /** Lines after this number (0, the default: from the first the log keeps). */
  after?: number;
  /** Only this attempt's lines (the task's attempt when they were written: a run given back uncharged shares it with the next; a line's leaseToken tells runs apart). */
  attempt?: number;
  /** Only lines this urgent or more. */
  level?: RouterInputs["tasks"]["log"]["level"];
  /** One long-poll's wait, in ms (default 25,000; the server cuts it to its maxWaitMs). */
  waitMs?: number;
  /** Ends the follow: the generator returns (a long-poll under way is aborted). */
  signal?: AbortSignal;
  /**
   * Told of each read that got no answer (or a 5xx), before the follow asks again (after a pause
   * that grows to a second), with how long reads have gone unanswered (ms; 0 at an outage's first
   * failure): what it throws ends the follow with that error, so a caller can say so once and give
   * up on an outage that lasts. Left out, the follow asks again for as long as it takes.
   */
  onRetry?: (error: unknown, outageMs: number) => void;
  /**
   * Told when lines after the last one read were dropped (the log keeps maxTaskLogBytes, oldest
   * lines first out) before the follow read them: `first` to `last` are gone. A writer faster than
   * its reader loses lines this way; left out, the gap shows only in the lines' numbers.
   */
  onDropped?: (first: number, last: number) => void;
}

/** Lines a read asks for: tasks.log's most, so a follow keeps up with a run that logs fast. */
const PAGE_LINES = 1000;

const SETTLED: ReadonlySet<string> = new Set(["completed", "dead_letter", "cancelled"]);

/**
 * The task's log lines, oldest first, each once, as they come; it returns once the task settled
 * and every line was read (a requeued task's new runs are another follow, from the last line's
 * number). Lines the log dropped (maxTaskLogBytes) before they were read are skipped: their
 * numbers are missing, and onDropped is told. Rejects with TASK_NOT_FOUND, or an error no resend mends; goes on through
 * no answer and 5xx.
 */
export async function* followLog(api: CoordinationApi, options: FollowLogOptions): AsyncGenerator<LogLine, void, undefined> {
  const { taskId, attempt, level, signal, onRetry, onDropped } = options;
  let after = options.after ?? 0;
  const waitMs = options.waitMs ?? 25_000;
  /** When reads stopped being answered (Date.now() ms); undefined while they are. */
  let outageSince: number | undefined;
  try {
    for (;;) {
      const sentAt = performance.now();
      const input = { taskId, after, waitMs, limit: PAGE_LINES, ...(attempt === undefined ? {} : { attempt }), ...(level === undefined ? {} : { level }) };
      const page = await untilAnswered(() => api.tasks.log.query(input, sentOnce(signal)), signal, (error) => {
        outageSince ??= Date.now();
        onRetry?.(error, Date.now() - outageSince);
      });
      outageSince = undefined;
      if (page.dropped > after) onDropped?.(after + 1, page.dropped);
      for (const line of page.lines) yield line;
      after = page.nextAfter;
      if (page.more) continue;
      if (SETTLED.has(page.status)) return;
      if (page.lines.length === 0) await paceRound(sentAt, signal);
    }
  } catch (error) {
    // Stopped by the caller: the follow ends, as iterating stops.
    if (signal?.aborted) return;
    throw error;
  }
}
