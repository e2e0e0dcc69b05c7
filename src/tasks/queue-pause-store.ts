// All SQL of queue pauses (SQLite dialect). A paused queue is a row of queue_pauses with no
// resumedAt: claims and steals leave its tasks out from the write that paused it (PAUSED_QUEUES,
// task-store.ts). Its pending tasks are also "held" (tasks.held), out of the claim indexes, so a
// claim of any queue never walks a paused backlog: the rows are held and let go a bounded chunk a
// write (SQLite writes a row again whole, payload included), best first.
import type { Statements } from "../db/statements.js";
import { LIMITED_QUEUES } from "./queue-limit-store.js";
import { TASK_TEXT_BYTES } from "./task-row-bytes.js";

/** SQL: the queues paused now (not those being resumed). */
export const PAUSED_QUEUES = `SELECT queue FROM queue_pauses WHERE resumedAt IS NULL`;

/**
 * SQL for an UPDATE's SET: a task made pending (or due) is held when its queue is paused or
 * limited (queue-limit-store.ts), so it stays out of the general claim indexes as the rest of its
 * queue does.
 */
export const HELD_IF_SET_ASIDE = `held = (queue IN (${PAUSED_QUEUES}) OR queue IN (${LIMITED_QUEUES}))`;

export interface PauseRow {
  queue: string;
  reason: string;
  pausedBy: string | null;
  pausedAt: number;
  resumedAt: number | null;
}

/** The most task rows one hold or release chunk changes. */
export const HOLD_CHUNK_ROWS = 1000;
/** The most bytes of task rows one chunk writes again (at least one row). */
export const HOLD_CHUNK_BYTES = 1024 * 1024;

/** The rows a hold takes: a paused queue's pending tasks still in the claim indexes. */
const HOLDABLE = `FROM tasks INDEXED BY tasks_pending_queue_idx WHERE queue = ? AND status = 'pending' AND delayed = 0 AND held = 0`;
/** The rows a release takes: a resumed queue's held tasks. */
const RELEASABLE = `FROM tasks INDEXED BY tasks_held_idx WHERE queue = ? AND status = 'pending' AND held = 1`;

/** A row's size as SQLite stores it, read from the record header (never its overflow pages). */
const ROW_BYTES = `${TASK_TEXT_BYTES} + 200`;

export class QueuePauseStore {
  constructor(private readonly st: Statements) {}

  get(queue: string): PauseRow | undefined {
    return this.st.get<[string], PauseRow>(`SELECT queue, reason, pausedBy, pausedAt, resumedAt FROM queue_pauses WHERE queue = ?`).get(queue);
  }

  /** Every pause, paused and being resumed, by queue name. */
  all(): PauseRow[] {
    return this.st.get<[], PauseRow>(`SELECT queue, reason, pausedBy, pausedAt, resumedAt FROM queue_pauses ORDER BY queue`).all();
  }

  /** Pauses `queue` (again, if it was being resumed): a new pause, its reason and author. */
  pause(queue: string, reason: string, pausedBy: string | null, now: number): PauseRow {
    this.st
      .get<[string, string, string | null, number]>(
        `INSERT INTO queue_pauses (queue, reason, pausedBy, pausedAt, resumedAt) VALUES (?, ?, ?, ?, NULL)
         ON CONFLICT(queue) DO UPDATE SET reason = excluded.reason, pausedBy = excluded.pausedBy, pausedAt = excluded.pausedAt, resumedAt = NULL`,
      )
      .run(queue, reason, pausedBy, now);
    return { queue, reason, pausedBy, pausedAt: now, resumedAt: null };
  }

  /** Marks a pause resumed: claims take the queue's tasks again as they are let go. */
  resume(queue: string, now: number): void {
    this.st.get<[number, string]>(`UPDATE queue_pauses SET resumedAt = ? WHERE queue = ? AND resumedAt IS NULL`).run(now, queue);
  }

  /** A resumed pause whose tasks are all let go: gone. */
  forget(queue: string): void {
    this.st.get<[string]>(`DELETE FROM queue_pauses WHERE queue = ? AND resumedAt IS NOT NULL`).run(queue);
  }

  /**
   * Holds the best of a paused (or limited) queue's pending tasks still in the claim indexes, a chunk of at
   * most HOLD_CHUNK_ROWS rows and HOLD_CHUNK_BYTES bytes. Returns how many it held (0: all are).
   */
  holdChunk(queue: string): number {
    return this.moveChunk(HOLDABLE, queue, 1);
  }

  /** Lets go of the best of a resumed (or no longer limited) queue's held tasks, a chunk as holdChunk's. Returns how many (0: none is left). */
  releaseChunk(queue: string): number {
    return this.moveChunk(RELEASABLE, queue, 0);
  }

  /** Whether `queue` has pending tasks left to hold (true) or let go (false): a look on the reader before a write. */
  hasRowsToMove(queue: string, held: boolean): boolean {
    return this.st.get<[string], number>(`SELECT 1 ${held ? HOLDABLE : RELEASABLE} LIMIT 1`).pluck().get(queue) !== undefined;
  }

  /**
   * Sets `held` on the best of `from`'s rows of `queue`: at most HOLD_CHUNK_ROWS, cut before their
   * rows pass HOLD_CHUNK_BYTES (always the first). How many.
   */
  private moveChunk(from: string, queue: string, held: 0 | 1): number {
    const seqs: number[] = [];
    let bytes = 0;
    const candidates = this.st.get<[string], { seq: number; bytes: number }>(`SELECT seq, ${ROW_BYTES} AS bytes ${from} ORDER BY priority, seq LIMIT ${HOLD_CHUNK_ROWS}`);
    for (const row of candidates.iterate(queue)) {
      if (seqs.length > 0 && bytes + row.bytes > HOLD_CHUNK_BYTES) break;
      seqs.push(row.seq);
      bytes += row.bytes;
    }
    const set = this.st.get<[number, number]>(`UPDATE tasks SET held = ? WHERE seq = ?`);
    for (const seq of seqs) set.run(held, seq);
    return seqs.length;
  }
}
