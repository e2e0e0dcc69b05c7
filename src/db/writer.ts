// Every write in the server goes through one Writer. Why not Prisma transactions:
// @prisma/adapter-better-sqlite3 shares one connection, and an interactive transaction there
// can roll back writes that unrelated requests made meanwhile (DESIGN.md, "Correctness traps").
// Here a write is a synchronous function run on our own better-sqlite3 connection, so nothing
// can interleave with it inside this process, and:
//  - group commit: the writes requested during one event-loop turn share a single
//    BEGIN IMMEDIATE ... COMMIT, so durability=full costs one fsync per batch, not per request;
//  - isolation: each write runs in its own SAVEPOINT, so one that throws is rolled back alone
//    and never takes another request's write with it;
//  - acknowledgement = durability: promises settle only after COMMIT returned; if the commit
//    fails, every write of the batch is rejected (none was acknowledged);
//  - BEGIN IMMEDIATE takes the write lock up front, so a second server process on the same
//    file waits (busy_timeout) instead of failing at COMMIT, avoiding the SQLITE_BUSY-at-COMMIT
//    trap (prisma/orm#29933).
import { CoordinationError } from "../errors.js";
import type { SqliteDatabase } from "./open-database.js";

export interface WriteContext {
  /** Wall-clock time shared by the batch, in Unix ms. */
  readonly now: number;
  /** Runs after the batch committed (wake waiters, fan out events). Not run if it rolled back. */
  afterCommit(effect: () => void): void;
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
  private readonly commitListeners: Array<() => void> = [];

  constructor(private readonly db: SqliteDatabase) {}

  /** Queues `run` for the next group commit; resolves with its return value once durable. */
  write<T>(run: (ctx: WriteContext) => T): Promise<T> {
    if (this.closed) return Promise.reject(new CoordinationError("SHUTTING_DOWN", "the server is shutting down; retry on another instance or after restart"));
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ run, resolve: resolve as (value: unknown) => void, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Called after every successful commit (e.g. the event bus tails the log). */
  onCommit(listener: () => void): void {
    this.commitListeners.push(listener);
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
    const outcomes: Array<{ ok: true; value: unknown } | { ok: false; error: unknown }> = [];
    const effects: Array<() => void> = [];
    let commitError: unknown;
    try {
      this.db
        .transaction(() => {
          // Taken inside the transaction: BEGIN IMMEDIATE may have waited for another process.
          const ctx: WriteContext = { now: Date.now(), afterCommit: (effect) => effects.push(effect) };
          for (const write of batch) {
            const mark = effects.length;
            try {
              // A nested better-sqlite3 transaction is a SAVEPOINT: a throw undoes this write only.
              outcomes.push({ ok: true, value: this.db.transaction(() => write.run(ctx))() });
            } catch (error) {
              // Some errors (SQLITE_FULL, IOERR, NOMEM) make SQLite roll back the whole transaction.
              // Running the next writes now would commit each on its own, outside the batch, while
              // the batch is reported failed: stop here and fail the whole batch instead.
              if (!this.db.inTransaction) throw error;
              effects.length = mark;
              outcomes.push({ ok: false, error });
            }
          }
        })
        .immediate();
    } catch (error) {
      commitError = error;
    }
    batch.forEach((write, i) => {
      const outcome = outcomes[i];
      if (commitError !== undefined) write.reject(commitError);
      else if (outcome?.ok) write.resolve(outcome.value);
      else write.reject(outcome?.error);
    });
    if (commitError !== undefined) return;
    for (const effect of effects) effect();
    for (const listener of this.commitListeners) listener();
  }
}
