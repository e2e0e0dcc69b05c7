// All SQL of queue concurrency limits (SQLite dialect). A limited queue is a row of queue_limits
// with no removedAt: at most maxLeased of its tasks are leased at once. Its pending tasks are held
// (tasks.held), as a paused queue's are, so a claim of any queue never walks a full queue's
// backlog: claims read its due ones by queue (tasks_held_due_idx) while the queue has a free slot. Its leased
// tasks keep held = 1: tasks_claimed_limited_idx holds them, and no row of an unlimited queue.
import type { Statements } from "../db/statements.js";
import { RATED_QUEUES } from "./queue-rate-store.js";

/**
 * SQL: the queues limited now, by a concurrency limit or a rate (queue-rate-store.ts), not those
 * whose limit is being removed: their pending tasks are held, and claims read them by queue.
 */
export const LIMITED_QUEUES = `SELECT queue FROM queue_limits WHERE removedAt IS NULL UNION ALL ${RATED_QUEUES}`;

export interface LimitRow {
  queue: string;
  maxLeased: number;
  setBy: string | null;
  setAt: number;
  removedAt: number | null;
}

/** A limit in force, as a claim reads it. */
export interface ActiveLimit {
  queue: string;
  maxLeased: number;
}

/**
 * The limits in force as read in a transaction, by connection: every claim reads them, and within
 * one write transaction only a write of this connection can change them (the lock keeps other
 * processes out): those writes drop the entry.
 */
const activeIn = new WeakMap<Statements, { transaction: number; limits: ActiveLimit[] }>();

export class QueueLimitStore {
  constructor(private readonly st: Statements) {}

  get(queue: string): LimitRow | undefined {
    return this.st.get<[string], LimitRow>(`SELECT queue, maxLeased, setBy, setAt, removedAt FROM queue_limits WHERE queue = ?`).get(queue);
  }

  /** Every limit, in force and being removed, by queue name. */
  all(): LimitRow[] {
    return this.st.get<[], LimitRow>(`SELECT queue, maxLeased, setBy, setAt, removedAt FROM queue_limits ORDER BY queue`).all();
  }

  /** The limits in force: read by every claim, once a transaction (Statements.transactions; 0: not counted, read each time). */
  active(): ActiveLimit[] {
    const transaction = this.st.transactions;
    const known = activeIn.get(this.st);
    if (transaction !== 0 && known?.transaction === transaction) return known.limits;
    const limits = this.st.get<[], ActiveLimit>(`SELECT queue, maxLeased FROM queue_limits WHERE removedAt IS NULL`).all();
    if (transaction !== 0) activeIn.set(this.st, { transaction, limits });
    return limits;
  }

  /** Sets (or changes, or sets again while being removed) the limit of `queue`. */
  set(queue: string, maxLeased: number, setBy: string | null, now: number): LimitRow {
    this.st
      .get<[string, number, string | null, number]>(
        `INSERT INTO queue_limits (queue, maxLeased, setBy, setAt, removedAt) VALUES (?, ?, ?, ?, NULL)
         ON CONFLICT(queue) DO UPDATE SET maxLeased = excluded.maxLeased, setBy = excluded.setBy, setAt = excluded.setAt, removedAt = NULL`,
      )
      .run(queue, maxLeased, setBy, now);
    activeIn.delete(this.st);
    return { queue, maxLeased, setBy, setAt: now, removedAt: null };
  }

  /** Marks a limit removed: claims take the queue's tasks without a bound as they are let go. */
  remove(queue: string, now: number): void {
    this.st.get<[number, string]>(`UPDATE queue_limits SET removedAt = ? WHERE queue = ? AND removedAt IS NULL`).run(now, queue);
    activeIn.delete(this.st);
  }

  /** A removed limit whose tasks are all where they belong: gone. */
  forget(queue: string): void {
    this.st.get<[string]>(`DELETE FROM queue_limits WHERE queue = ? AND removedAt IS NOT NULL`).run(queue);
  }

  /** How many of `queue`'s tasks are leased now: a seek in tasks_claimed_limited_idx, as many steps as leases. */
  leased(queue: string): number {
    return this.st.get<[string], number>(`SELECT count(*) FROM tasks INDEXED BY tasks_claimed_limited_idx WHERE queue = ? AND status = 'claimed' AND held = 1`).pluck().get(queue)!;
  }

  /**
   * Marks the leases `queue`'s tasks hold now as a limited queue's (held = 1), so its count
   * includes the leases taken before the limit. Reads every lease of the server (a limit is set
   * rarely; leases are as many as the tasks running). How many it marked.
   */
  markLeases(queue: string): number {
    return this.st.get<[string]>(`UPDATE tasks INDEXED BY tasks_claimed_lease_idx SET held = 1 WHERE status = 'claimed' AND queue = ? AND held = 0`).run(queue).changes;
  }
}
