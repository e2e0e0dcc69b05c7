// Every write in the server goes through one Writer. Why not Prisma transactions:
// @prisma/adapter-better-sqlite3 shares one connection, and an interactive transaction there
// can roll back writes that unrelated requests made meanwhile (DESIGN.md, "Correctness traps").
// Here a write is a synchronous function run on our own better-sqlite3 connection, so nothing
// can interleave with it inside this process, and:
//  - group commit: the writes requested during one event-loop turn share a single
//    BEGIN IMMEDIATE ... COMMIT, so durability=full costs one fsync per batch, not per request;
//  - isolation: a write that throws is undone alone and never takes another request's write with
//    it. Most throw before changing anything (not found, lease conflict): those need no undo. One
//    that throws after changing rows rolls the batch back, and the batch runs again with a
//    SAVEPOINT around each write (savepoints cost two statements a write, so only then);
//  - acknowledgement = durability: promises settle only after COMMIT returned; if the commit
//    fails, every write of the batch is rejected (none was acknowledged);
//  - BEGIN IMMEDIATE takes the write lock up front, so a second server process on the same
//    file waits (busy_timeout) instead of failing at COMMIT, avoiding the SQLITE_BUSY-at-COMMIT
//    trap (prisma/orm#29933).
import { shuttingDown } from "../errors.js";
import type { Statement, Transaction } from "better-sqlite3";
import type { SqliteDatabase } from "./open-database.js";

/** A row the batch appended to the event log, handed to commit listeners as written (no read-back). */
export interface AppendedEvent {
  readonly seq: number;
}

export interface WriteContext {
  /** Wall-clock time shared by the batch, in Unix ms. */
  readonly now: number;
  /** Runs after the batch committed (wake waiters). Not run if it rolled back. */
  afterCommit(effect: () => void): void;
  /**
   * Runs once every write of the batch ran, just before COMMIT (a claim asks the reader for its
   * context: recall-relay.ts). Not run for a write that failed, nor if the batch rolled back
   * first; the COMMIT itself can still fail after it.
   */
  beforeCommit(effect: () => void): void;
  /** Records an event row this write appended: after the commit it goes to the listeners. */
  appended(event: AppendedEvent): void;
}

interface PendingWrite {
  run: (ctx: WriteContext) => unknown;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

/** Caps a batch so one flush cannot block the event loop for long under heavy load. */
const MAX_BATCH = 256;

export class Writer {
  private queue: PendingWrite[] = [];
  private scheduled = false;
  private closed = false;
  private readonly commitListeners: Array<(events: readonly AppendedEvent[], batch: BatchStats) => void> = [];
  /** Checks run last inside every batch's transaction: one that throws rolls the batch back and fails it. */
  private readonly commitChecks: Array<() => void> = [];
  /** Run first inside every batch's transaction, once the write lock is held. */
  private readonly beginSteps: Array<() => void> = [];

  /** Rows changed by the connection so far: tells a write that failed cleanly from one that failed halfway. */
  private readonly totalChanges: Statement<[], number>;
  /**
   * Runs a function in a transaction. better-sqlite3 decides at call time, whichever variant is
   * called: with none open, a batch's (`.immediate`: BEGIN IMMEDIATE … COMMIT); inside one, a
   * SAVEPOINT (a write's own). Made once: better-sqlite3 builds four wrappers and their
   * properties each time `transaction()` is called (2.6% of the writer's CPU when made per batch).
   */
  private readonly transaction: Transaction<(run: () => unknown) => unknown>;

  constructor(private readonly db: SqliteDatabase) {
    this.totalChanges = db.prepare<[], number>("SELECT total_changes()").pluck();
    this.transaction = db.transaction((run: () => unknown) => run());
  }

  /** Queues `run` for the next group commit; resolves with its return value once durable. */
  write<T>(run: (ctx: WriteContext) => T): Promise<T> {
    if (this.closed) return Promise.reject(shuttingDown());
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ run, resolve: resolve as (value: unknown) => void, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Called after every successful commit with the events it appended, in seq order (the event bus), and the batch's size and time. */
  onCommit(listener: (events: readonly AppendedEvent[], batch: BatchStats) => void): void {
    this.commitListeners.push(listener);
  }

  /** Runs `check` before every commit; if it throws, the batch is rolled back and every write in it rejected with that error. */
  beforeCommit(check: () => void): void {
    this.commitChecks.push(check);
  }

  /** Runs `step` first in every batch's transaction, once the write lock is held; if it throws, the batch fails. */
  afterBegin(step: () => void): void {
    this.beginSteps.push(step);
  }

  /** Runs whatever is queued now; later writes are rejected. */
  close(): void {
    while (this.queue.length > 0) this.flushBatch();
    this.closed = true;
  }

  private flush(): void {
    this.scheduled = false;
    this.flushBatch();
    if (this.queue.length > 0 && !this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flushBatch(): void {
    const batch = this.queue.splice(0, MAX_BATCH);
    if (batch.length === 0) return;
    const started = performance.now();
    let result: BatchResult;
    try {
      try {
        result = this.runBatch(batch, false);
      } catch (error) {
        if (!(error instanceof DirtyFailure)) throw error;
        // A write threw after changing rows: the batch was rolled back; run it again with a
        // savepoint around each write, so that one is undone alone.
        result = this.runBatch(batch, true);
      }
    } catch (commitError) {
      for (const write of batch) write.reject(commitError);
      return;
    }
    batch.forEach((write, i) => {
      const outcome = result.outcomes[i]!;
      if (outcome.ok) write.resolve(outcome.value);
      else write.reject(outcome.error);
    });
    for (const effect of result.effects) effect();
    const stats: BatchStats = { writes: batch.length, ms: performance.now() - started };
    for (const listener of this.commitListeners) listener(result.events, stats);
  }

  /**
   * One BEGIN IMMEDIATE … COMMIT around the batch. Without savepoints, a write that throws before
   * changing a row (a domain error: not found, lease conflict) simply failed; one that throws after
   * changing rows aborts the attempt (DirtyFailure) so the caller can retry `withSavepoints`.
   */
  private runBatch(batch: PendingWrite[], withSavepoints: boolean): BatchResult {
    const outcomes: BatchResult["outcomes"] = [];
    const effects: Array<() => void> = [];
    const lastEffects: Array<() => void> = [];
    const events: AppendedEvent[] = [];
    this.transaction.immediate(() => {
      for (const step of this.beginSteps) step();
      // Taken inside the transaction: BEGIN IMMEDIATE may have waited for another process.
      const ctx: WriteContext = {
        now: Date.now(),
        afterCommit: (effect) => effects.push(effect),
        beforeCommit: (effect) => lastEffects.push(effect),
        appended: (event) => events.push(event),
      };
      for (const write of batch) {
        const marks = [effects.length, events.length, lastEffects.length] as const;
        const changesBefore = withSavepoints ? 0 : this.totalChanges.get()!;
        try {
          // A nested better-sqlite3 transaction is a SAVEPOINT: a throw undoes this write only.
          outcomes.push({ ok: true, value: withSavepoints ? this.transaction(() => write.run(ctx)) : write.run(ctx) });
        } catch (error) {
          // Some errors (SQLITE_FULL, IOERR, NOMEM) make SQLite roll back the whole transaction.
          // Running the next writes now would commit each on its own, outside the batch, while
          // the batch is reported failed: stop here and fail the whole batch instead.
          if (!this.db.inTransaction) throw error;
          if (!withSavepoints && this.totalChanges.get()! !== changesBefore) throw new DirtyFailure();
          effects.length = marks[0];
          events.length = marks[1];
          lastEffects.length = marks[2];
          outcomes.push({ ok: false, error });
        }
      }
      for (const effect of lastEffects) effect();
      for (const check of this.commitChecks) check();
    });
    return { outcomes, effects, events };
  }
}

/** One group commit: how many writes it carried and how long it took, BEGIN to COMMIT (fsync included), in ms. */
export interface BatchStats {
  writes: number;
  ms: number;
}

interface BatchResult {
  outcomes: Array<{ ok: true; value: unknown } | { ok: false; error: unknown }>;
  effects: Array<() => void>;
  events: AppendedEvent[];
}

/** A write threw after changing rows, in a batch run without savepoints. */
class DirtyFailure extends Error {}
