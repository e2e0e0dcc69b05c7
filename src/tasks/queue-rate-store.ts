// All SQL of queue rate limits (SQLite dialect). A rate-limited queue is a row of queue_rates
// with no removedAt: at most maxClaims of its tasks are claimed in any window of perMs
// milliseconds (a sliding window, not a bucket that refills: the promise a provider's "requests
// per minute" asks for). Each write that claims some of its tasks keeps one queue_rate_starts row
// (when, how many); `used` is the sum of the rows kept, kept by the claims themselves: a claim
// first deletes the rows that left its window and takes their count off, so it reads one row,
// not the window. The queue's pending tasks are held, as a concurrency-limited
// queue's are (LIMITED_QUEUES, queue-limit-store.ts).
import type { Statements } from "../db/statements.js";

/** SQL: the queues rate-limited now (not those whose rate is being removed). */
export const RATED_QUEUES = `SELECT queue FROM queue_rates WHERE removedAt IS NULL`;

export interface RateRow {
  queue: string;
  maxClaims: number;
  perMs: number;
  used: number;
  setBy: string | null;
  setAt: number;
  removedAt: number | null;
}

/** A rate in force, as a claim reads it. */
export interface ActiveRate {
  queue: string;
  maxClaims: number;
  perMs: number;
}

/** The start rows one look for when a full window frees walks at most (see freesAt). */
const FREES_AT_WALK = 1000;
/**
 * The start rows one write deletes at most (a claim's expiry, a removed rate's forget): a window
 * made much shorter, or a rate of a million a day removed, goes a bounded chunk a write. Rows left
 * past their window keep counting until a later claim deletes them: fewer claims, never more.
 */
const DELETE_CHUNK = 5000;

/** The rates in force as read in a transaction, by connection (as QueueLimitStore.active keeps limits). */
const activeIn = new WeakMap<Statements, { transaction: number; rates: ActiveRate[] }>();

export class QueueRateStore {
  /** By queue, the transaction (Statements.transactions) whose claims deleted its rows past the window last. */
  private readonly expiredIn = new Map<string, number>();

  constructor(private readonly st: Statements) {}

  get(queue: string): RateRow | undefined {
    return this.st.get<[string], RateRow>(`SELECT queue, maxClaims, perMs, used, setBy, setAt, removedAt FROM queue_rates WHERE queue = ?`).get(queue);
  }

  /** Every rate, in force and being removed, by queue name. */
  all(): RateRow[] {
    return this.st.get<[], RateRow>(`SELECT queue, maxClaims, perMs, used, setBy, setAt, removedAt FROM queue_rates ORDER BY queue`).all();
  }

  /** The rates in force: read by every claim, once a transaction (Statements.transactions; 0: not counted, read each time). */
  active(): ActiveRate[] {
    const transaction = this.st.transactions;
    const known = activeIn.get(this.st);
    if (transaction !== 0 && known?.transaction === transaction) return known.rates;
    const rates = this.st.get<[], ActiveRate>(`SELECT queue, maxClaims, perMs FROM queue_rates WHERE removedAt IS NULL`).all();
    if (transaction !== 0) activeIn.set(this.st, { transaction, rates });
    return rates;
  }

  /**
   * Sets (or changes, or sets again while being removed) the rate of `queue`. The claims counted
   * stay: a maximum made lower binds at once; a window made longer counts those still kept (the
   * ones past the old window are deleted first: expire, by queues.setRate).
   */
  set(queue: string, maxClaims: number, perMs: number, setBy: string | null, now: number): void {
    this.st
      .get<[string, number, number, string | null, number]>(
        `INSERT INTO queue_rates (queue, maxClaims, perMs, used, setBy, setAt, removedAt) VALUES (?, ?, ?, 0, ?, ?, NULL)
         ON CONFLICT(queue) DO UPDATE SET maxClaims = excluded.maxClaims, perMs = excluded.perMs, setBy = excluded.setBy, setAt = excluded.setAt, removedAt = NULL`,
      )
      .run(queue, maxClaims, perMs, setBy, now);
    activeIn.delete(this.st);
  }

  /** Marks a rate removed: claims take the queue's tasks without it as they are let go. */
  remove(queue: string, now: number): void {
    this.st.get<[number, string]>(`UPDATE queue_rates SET removedAt = ? WHERE queue = ? AND removedAt IS NULL`).run(now, queue);
    activeIn.delete(this.st);
  }

  /**
   * A removed rate whose tasks are all where they belong: its claims are deleted, a chunk a call,
   * then its row (the holds job calls again while the row is there: queue-holds.ts).
   */
  forget(queue: string): void {
    const row = this.get(queue);
    if (row === undefined || row.removedAt === null) return;
    const claims = this.st
      .get<[string, string], number>(`DELETE FROM queue_rate_starts WHERE queue = ? AND at IN (SELECT at FROM queue_rate_starts WHERE queue = ? ORDER BY at LIMIT ${DELETE_CHUNK}) RETURNING n`)
      .pluck()
      .all(queue, queue);
    if (claims.length < DELETE_CHUNK) this.st.get<[string]>(`DELETE FROM queue_rates WHERE queue = ?`).run(queue);
    // Claims, not rows, come off `used` (a write's claims share a row): a rate set again meanwhile keeps the count.
    else this.st.get<[number, string]>(`UPDATE queue_rates SET used = max(used - ?, 0) WHERE queue = ?`).run(sum(claims), queue);
  }

  /**
   * Claims of `rate`'s queue in the window that ends at `now` (a write's: the rows that left the
   * window are deleted, DELETE_CHUNK at most a transaction, and taken off `used`). Rows stamped
   * after `now` (another process's clock ahead of this one) stay counted.
   */
  usedAt(rate: ActiveRate, now: number): number {
    // Once a transaction: a write's claims share its `now`, and later looks need not delete again.
    const transaction = this.st.transactions;
    if (transaction !== 0 && this.expiredIn.get(rate.queue) === transaction) return this.usedNow(rate.queue);
    if (transaction !== 0) this.expiredIn.set(rate.queue, transaction);
    return this.expire(rate.queue, rate.perMs, now);
  }

  /**
   * Deletes `queue`'s claims that left a window of `perMs` ending at `now` (DELETE_CHUNK at most)
   * and takes them off `used`: the claims counted then. A rate changed forgets, under its old
   * window, the claims no longer in it before the new one counts what is kept (queues.setRate):
   * a window made longer never brings back claims that had left the old one. `all`: every such
   * claim, not a chunk (a window made longer: the claims of a chunk's later writes would not
   * delete the rest, which the longer window holds, and the queue would be counted full of claims
   * made before its old window).
   */
  expire(queue: string, perMs: number, now: number, all = false): number {
    const left = sum(
      all
        ? this.st.get<[string, number], number>(`DELETE FROM queue_rate_starts WHERE queue = ? AND at <= ? RETURNING n`).pluck().all(queue, now - perMs)
        : this.st
            .get<[string, string, number], number>(
              `DELETE FROM queue_rate_starts WHERE queue = ? AND at IN (SELECT at FROM queue_rate_starts WHERE queue = ? AND at <= ? ORDER BY at LIMIT ${DELETE_CHUNK}) RETURNING n`,
            )
            .pluck()
            .all(queue, queue, now - perMs),
    );
    if (left === 0) return this.usedNow(queue);
    // The last rows gone: whatever `used` says, nothing is counted (a count that drifted from its
    // rows would otherwise keep the window full with no claim in it to wait for).
    const emptied = this.st.get<[string], number>(`SELECT 1 FROM queue_rate_starts WHERE queue = ? LIMIT 1`).pluck().get(queue) === undefined;
    return this.st.get<[number, number, string], number>(`UPDATE queue_rates SET used = CASE WHEN ? THEN 0 ELSE max(used - ?, 0) END WHERE queue = ? RETURNING used`).pluck().get(emptied ? 1 : 0, left, queue) ?? 0;
  }

  private usedNow(queue: string): number {
    return this.st.get<[string], number>(`SELECT used FROM queue_rates WHERE queue = ?`).pluck().get(queue) ?? 0;
  }

  /** How many more claims of `rate`'s queue its window that ends at `now` takes (a write: see usedAt); 0 or less when full. */
  roomAt(rate: ActiveRate, now: number): number {
    return rate.maxClaims - this.usedAt(rate, now);
  }

  /** Counts `n` claims of `queue` made at `now` (a write's claims share one row). */
  record(queue: string, n: number, now: number): void {
    if (n <= 0) return;
    this.st.get<[string, number, number]>(`INSERT INTO queue_rate_starts (queue, at, n) VALUES (?, ?, ?) ON CONFLICT(queue, at) DO UPDATE SET n = n + excluded.n`).run(queue, now, n);
    this.st.get<[number, string]>(`UPDATE queue_rates SET used = used + ? WHERE queue = ?`).run(n, queue);
  }

  /**
   * When the next claim of `rate`'s queue may be made, `used` claims being counted in the window
   * that ends at `now` (by default as a write counts them: usedAt): `now` while there is room, else
   * when enough of the oldest claims leave the window. Past FREES_AT_WALK rows (a maximum lowered
   * far below what the window holds), when the last of them leaves: a look then finds the next time.
   */
  freesAt(rate: ActiveRate, now: number, used = this.usedAt(rate, now)): number {
    if (used < rate.maxClaims) return now;
    let left = used;
    let at = now;
    for (const row of this.st
      .get<[string, number], { at: number; n: number }>(`SELECT at, n FROM queue_rate_starts WHERE queue = ? AND at > ? ORDER BY at LIMIT ${FREES_AT_WALK}`)
      .iterate(rate.queue, now - rate.perMs)) {
      at = Number(row.at) + rate.perMs;
      left -= row.n;
      if (left < rate.maxClaims) break;
    }
    // No claim in the window, yet counted full (rows past it still to delete, a chunk a write): look
    // again in a moment, not at once (each look deletes a chunk).
    return Math.max(at, now + (at === now ? 100 : 1));
  }

  /**
   * Claims of `queue` in the window that ends at `now`, read without a write: `used` (the sum of
   * every row kept) less the rows past the window that no claim deleted yet.
   */
  inWindow(queue: string, perMs: number, now: number): number {
    return (
      this.st
        .get<[string, number, string], number>(`SELECT used - coalesce((SELECT sum(n) FROM queue_rate_starts WHERE queue = ? AND at <= ?), 0) FROM queue_rates WHERE queue = ?`)
        .pluck()
        .get(queue, now - perMs, queue) ?? 0
    );
  }
}

function sum(values: readonly number[]): number {
  let total = 0;
  for (const value of values) total += value;
  return total;
}
