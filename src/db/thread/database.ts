// The event loop's database: a writer thread and a reader thread (database-thread.ts), called by
// command name with typed arguments and results. Nothing here runs SQL.
import { dirname } from "node:path";
import { MessageChannel } from "node:worker_threads";
import type { Config } from "../../config.js";
import { CoordinationError, shuttingDown } from "../../errors.js";
import type { Logger } from "../../logger.js";
import { asFault, diskHasRoom, WriteFaults } from "../faults.js";
import type { ReadCommands, WriteCommands } from "./commands.js";
import type { ContextWanted, Handout } from "../../tasks/task-commands.js";
import { serializeError } from "./protocol.js";
import { RecallResults, type RecalledContexts } from "./recall-relay.js";
import { DatabaseThread } from "./thread-client.js";
import { copyWith } from "../../copy-with.js";

/** The writes that lease tasks for their caller and recall their context. */
type HandingOut = "tasks.claim" | "tasks.steal" | "tasks.completeAndClaim";

type WriteArgs<F> = F extends (ctx: never, args: infer A) => unknown ? A : never;
type ReadArgs<F> = F extends (args: infer A) => unknown ? A : never;
type Result<F> = F extends (...args: never[]) => infer R ? Awaited<R> : never;

export class Database {
  private readonly writer: DatabaseThread<WriteCommands>;
  private readonly reader: DatabaseThread<ReadCommands>;
  /** Commands sent since start, by name (observability: what idle waiting costs, for one). */
  readonly sent = new Map<string, number>();
  /** Writes sent since start (writesSent). */
  private writes = 0;
  /** Whether writes are failing now (disk full, read-only, I/O errors, a replaced file), and why. */
  readonly faults: WriteFaults;
  private readonly busyTimeoutMs: number;
  private readonly recalled = new RecallResults();
  /** Claims and steals not yet answered with their context (close waits for them). */
  private readonly handingOut = new Set<Promise<unknown>>();

  /** Receives each group commit's size and time (the metrics set it). */
  onBatches: ((batches: Array<{ writes: number; ms: number }>) => void) | undefined;

  constructor(config: Config, startedAt: number, log: Logger, onEvents: (events: unknown[]) => void | Promise<void>) {
    // A full disk is over once it has room for the largest request the server takes.
    this.faults = new WriteFaults(log, () => diskHasRoom(dirname(config.dbPath), config.maxBodyBytes));
    this.busyTimeoutMs = config.busyTimeoutMs;
    // Shared by the two threads: the writer counts memory deletes and notes, the reader's recall cache reads the count.
    const setup = { config, startedAt, memoryChanges: new SharedArrayBuffer(4) };
    const recall = new MessageChannel();
    this.writer = new DatabaseThread({ role: "writer", ...setup, log, onEvents, onBatches: (batches) => this.onBatches?.(batches), recallPort: recall.port1 });
    this.reader = new DatabaseThread({ role: "reader", ...setup, log, recallPort: recall.port2, onRecalled: (answers) => this.recalled.deliver(answers) });
    void this.reader.lost.then((error) => this.recalled.fail(serializeError(error)));
  }

  /**
   * Resolves if either thread dies without being closed (a crash, a native fault): the server
   * cannot work without both, so its owner should stop it (the CLI exits 1 for a supervisor to
   * restart it; everything acknowledged is in the file).
   */
  get lost(): Promise<Error> {
    return Promise.race([this.writer.lost, this.reader.lost]);
  }

  /** Wall-clock milliseconds each database thread has not been idle since start (metrics; see DatabaseThread.busyMs). */
  get busyMs(): { writer: number; reader: number } {
    return { writer: this.writer.busyMs, reader: this.reader.busyMs };
  }

  /** Why the database cannot be used, if it cannot (health reports it). */
  get failure(): Error | undefined {
    return this.writer.failure ?? this.reader.failure;
  }

  /** Resolves once both threads opened their connections. */
  async ready(): Promise<void> {
    await Promise.all([this.writer.ready(), this.reader.ready()]);
  }

  /**
   * A write, group-committed in the writer thread; resolves after its batch committed. A failing
   * database rejects with its fault's code (DISK_FULL, READ_ONLY, IO_ERROR, DATABASE_LOCKED,
   * DATABASE_REPLACED: src/db/faults.ts); nothing of the write was stored then.
   */
  write<K extends keyof WriteCommands & string>(op: K, args: WriteArgs<WriteCommands[K]>, onFailure?: (error: unknown) => void): Promise<Result<WriteCommands[K]>> {
    this.sent.set(op, (this.sent.get(op) ?? 0) + 1);
    this.writes++;
    return (this.writer.call(op, args as never) as Promise<Result<WriteCommands[K]>>).then(
      (value) => {
        this.faults.succeeded();
        return value;
      },
      (error: unknown) => {
        onFailure?.(error);
        const fault = asFault(error, this.busyTimeoutMs);
        this.faults.failed(fault);
        throw fault;
      },
    );
  }

  /**
   * A claim or a steal, and the context of what it leased: the writer asks the reader for it
   * inside the claim's batch, and it arrives here, often before the claim's own answer
   * (recall-relay.ts). `contextLimit`: memories per task (0: none).
   */
  handOut<K extends HandingOut>(op: K, args: Omit<WriteArgs<WriteCommands[K]>, "recallTicket">): Promise<Result<WriteCommands[K]> & { contexts: RecalledContexts }> {
    const handing = this.handOutOnce(op, args);
    this.handingOut.add(handing);
    const settled = () => this.handingOut.delete(handing);
    handing.then(settled, settled);
    return handing;
  }

  /** Resolves once every claim and steal sent so far was answered (shutdown: before their undo is drained). */
  async handOutsSettled(): Promise<void> {
    await Promise.allSettled([...this.handingOut]);
  }

  private async handOutOnce<K extends HandingOut>(op: K, args: Omit<WriteArgs<WriteCommands[K]>, "recallTicket">): Promise<Result<WriteCommands[K]> & { contexts: RecalledContexts }> {
    const recallTicket = this.recalled.ticket();
    // A write that failed by itself (a domain error) asked for nothing: its before-commit effects
    // were dropped. A batch that failed at its commit checks or COMMIT may have asked.
    const askedMaybe = (error: unknown) => !(error instanceof CoordinationError) || error.code === "DATABASE_REPLACED";
    const handout = (await this.write(op, copyWith(args, { recallTicket }) as ContextWanted as WriteArgs<WriteCommands[K]>, (error) => {
      if (askedMaybe(error)) this.recalled.forget(recallTicket);
    })) as Result<WriteCommands[K]> & Handout;
    const contexts: RecalledContexts = handout.recalling ? await this.recalled.take(recallTicket) : { ok: true, contexts: handout.leased.map(() => []) };
    return copyWith(handout, { contexts });
  }

  /** A read, on the reader thread's own connection; a failing database rejects with its fault's code. */
  read<K extends keyof ReadCommands & string>(op: K, args: ReadArgs<ReadCommands[K]>): Promise<Result<ReadCommands[K]>> {
    this.sent.set(op, (this.sent.get(op) ?? 0) + 1);
    return (this.reader.call(op, args as never) as Promise<Result<ReadCommands[K]>>).catch((error: unknown) => {
      throw asFault(error, this.busyTimeoutMs);
    });
  }

  /** Writes sent since start, of any kind: tells background work whether anything else was written meanwhile. */
  get writesSent(): number {
    return this.writes;
  }

  /**
   * How long the oldest write waiting for its answer has waited, in ms; 0 with none. Past
   * busyTimeoutMs, another process holds the write lock (the write will answer DATABASE_LOCKED,
   * those behind it wait on) or the disk stalls: /health and the metrics show it.
   */
  get writeWaitMs(): number {
    return this.writer.oldestWaitMs;
  }

  /** Writes and reads waiting for an answer (observability). */
  get inFlight(): { writes: number; reads: number } {
    return { writes: this.writer.inFlight, reads: this.reader.inFlight };
  }

  /** The reader first (a checkpoint wants no reader), then the writer, which runs what was sent and checkpoints. */
  async close(): Promise<void> {
    await this.reader.close();
    // A claim the writer still runs would wait for a context no reader will send: it fails instead, and gives its task back.
    this.recalled.fail(serializeError(shuttingDown()));
    await this.writer.close();
    const failure = this.writer.closeFailure ?? this.reader.closeFailure;
    if (failure) {
      throw new Error(
        `the database was closed, but not cleanly: ${failure.message}. What was acknowledged is in the database's -wal file, which the next start reads; keep it with the database`,
        { cause: failure },
      );
    }
  }
}
