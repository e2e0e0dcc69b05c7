// All SQL of runs' logs (SQLite dialect). A task's lines are rows of task_logs keyed by the task's
// seq (never reused) and their number; task_log_heads keeps, per task with a log, its last line,
// the first line kept and what the kept lines weigh, so an append reads one row however long the log.
import type { Statements } from "../db/statements.js";
import type { LogLevel } from "./task-log-schemas.js";

export interface LogLineRow {
  taskSeq: number;
  line: number;
  at: number;
  attempt: number;
  leaseToken: number;
  agentId: string;
  level: LogLevel;
  message: string;
  /** JSON text; null: none. */
  data: string | null;
  bytes: number;
  appendKey: string | null;
}

export interface LogHead {
  lastLine: number;
  firstKept: number;
  keptBytes: number;
}

/** A task with no line yet. */
export const EMPTY_LOG: LogHead = { lastLine: 0, firstKept: 1, keptBytes: 0 };

const COLUMNS = "taskSeq, line, at, attempt, leaseToken, agentId, level, message, data, bytes, appendKey";
/** The oldest lines looked at a time when the log is over its bound. */
const TRIM_WINDOW = 256;

export class TaskLogStore {
  constructor(private readonly st: Statements) {}

  /** Where `taskSeq`'s log stands; EMPTY_LOG when it has none. */
  head(taskSeq: number): LogHead {
    return this.st.get<[number], LogHead>(`SELECT lastLine, firstKept, keptBytes FROM task_log_heads WHERE taskSeq = ?`).get(taskSeq) ?? EMPTY_LOG;
  }

  /** The kept lines an append with `appendKey` wrote, oldest first. */
  byAppendKey(taskSeq: number, appendKey: string): LogLineRow[] {
    return this.st.get<[number, string], LogLineRow>(`SELECT ${COLUMNS} FROM task_logs WHERE taskSeq = ? AND appendKey = ? ORDER BY line`).all(taskSeq, appendKey);
  }

  insert(row: LogLineRow): void {
    this.st
      .get<[number, number, number, number, number, string, string, string, string | null, number, string | null]>(`INSERT INTO task_logs (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
      .run(row.taskSeq, row.line, row.at, row.attempt, row.leaseToken, row.agentId, row.level, row.message, row.data, row.bytes, row.appendKey);
  }

  /**
   * Deletes `taskSeq`'s oldest lines until the kept ones weigh at most `maxBytes` (the newest line
   * always stays), and writes its head. The head as written.
   */
  setHead(taskSeq: number, head: LogHead, maxBytes: number): LogHead {
    let { firstKept, keptBytes } = head;
    while (keptBytes > maxBytes && firstKept < head.lastLine) {
      const oldest = this.st
        .get<[number, number, number, number], { line: number; bytes: number }>(`SELECT line, bytes FROM task_logs WHERE taskSeq = ? AND line >= ? AND line < ? ORDER BY line LIMIT CAST(? AS INTEGER)`)
        .all(taskSeq, firstKept, head.lastLine, TRIM_WINDOW);
      if (oldest.length === 0) break;
      for (const row of oldest) {
        if (keptBytes <= maxBytes) break;
        keptBytes -= row.bytes;
        firstKept = row.line + 1;
      }
      this.st.get<[number, number]>(`DELETE FROM task_logs WHERE taskSeq = ? AND line < ?`).run(taskSeq, firstKept);
    }
    const written = { lastLine: head.lastLine, firstKept, keptBytes };
    this.st
      .get<[number, number, number, number]>(
        `INSERT INTO task_log_heads (taskSeq, lastLine, firstKept, keptBytes) VALUES (?, ?, ?, ?)
         ON CONFLICT(taskSeq) DO UPDATE SET lastLine = excluded.lastLine, firstKept = excluded.firstKept, keptBytes = excluded.keptBytes`,
      )
      .run(taskSeq, written.lastLine, written.firstKept, written.keptBytes);
    return written;
  }

  /**
   * Up to `limit` of `taskSeq`'s lines after `after` up to line `upTo`, oldest first
   * (`newestFirst`: from `upTo` back), of run `attempt` and at `levels` when given, read lazily:
   * the caller stops at its answer's budget.
   */
  lines(taskSeq: number, after: number, upTo: number, limit: number, filter: { attempt?: number | undefined; levels?: readonly LogLevel[] | undefined }, newestFirst = false): IterableIterator<LogLineRow> {
    const params: Array<string | number> = [taskSeq, after, upTo];
    let where = "";
    if (filter.attempt !== undefined) {
      where += " AND attempt = ?";
      params.push(filter.attempt);
    }
    if (filter.levels !== undefined) {
      where += ` AND level IN (${filter.levels.map(() => "?").join(", ")})`;
      params.push(...filter.levels);
    }
    params.push(limit);
    return this.st
      .get<Array<string | number>, LogLineRow>(`SELECT ${COLUMNS} FROM task_logs WHERE taskSeq = ? AND line > ? AND line <= ?${where} ORDER BY line${newestFirst ? " DESC" : ""} LIMIT CAST(? AS INTEGER)`)
      .iterate(...params);
  }

  /**
   * Deletes the logs of tasks retention deletes, in the order given, at most `maxLines` lines in
   * all: a log holds up to maxTaskLogBytes of short lines, and a batch of 500 tasks with full logs
   * was millions of rows in one write, holding every other write up for seconds. How many of
   * `taskSeqs`, from the first, have no log left (those tasks may go); when the first one's log
   * alone is past `maxLines`, its oldest `maxLines` lines went (the task stays for now) and 0 is answered.
   */
  forget(taskSeqs: readonly number[], maxLines: number): number {
    let lines = 0;
    for (const [i, seq] of taskSeqs.entries()) {
      const head = this.head(seq);
      // Kept lines run without a gap from firstKept to lastLine: only the oldest are ever deleted (a task with none: EMPTY_LOG, 0).
      const kept = Number(head.lastLine) - Number(head.firstKept) + 1;
      if (lines + kept > maxLines) {
        if (i === 0) this.dropOldest(seq, head, maxLines);
        return i;
      }
      lines += kept;
      this.st.get<[number]>(`DELETE FROM task_logs WHERE taskSeq = ?`).run(seq);
      this.st.get<[number]>(`DELETE FROM task_log_heads WHERE taskSeq = ?`).run(seq);
    }
    return taskSeqs.length;
  }

  /** Deletes `taskSeq`'s oldest `count` lines (fewer than it keeps) and moves its head past them. */
  private dropOldest(taskSeq: number, head: LogHead, count: number): void {
    const firstKept = Number(head.firstKept) + count;
    const bytes = this.st.get<[number, number], number>(`SELECT coalesce(sum(bytes), 0) FROM task_logs WHERE taskSeq = ? AND line < ?`).pluck().get(taskSeq, firstKept) ?? 0;
    this.st.get<[number, number]>(`DELETE FROM task_logs WHERE taskSeq = ? AND line < ?`).run(taskSeq, firstKept);
    this.st.get<[number, number, number]>(`UPDATE task_log_heads SET firstKept = ?, keptBytes = keptBytes - ? WHERE taskSeq = ?`).run(firstKept, Number(bytes), taskSeq);
  }
}
