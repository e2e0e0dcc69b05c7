// The event loop's handle on a database thread. Calls made in one turn travel as one message;
// each resolves with its command's result once the thread answered (a writer: after its batch
// committed). A writer's answer also carries the events its batch appended, handed to `onEvents`;
// the batch's calls resolve once that settled, so a caller never sees its write before the bus has.
import { fileURLToPath } from "node:url";
import { Worker, type MessagePort } from "node:worker_threads";
import type { Config } from "../../config.js";
import type { Logger } from "../../logger.js";
import { CoordinationError, shuttingDown } from "../../errors.js";
import type { RecallAnswer } from "./recall-relay.js";
import { deserializeError, type Call, type FromThread, type Outcome, type ThreadRole, type ToThread } from "./protocol.js";
import { copyWith } from "../../copy-with.js";

/** The command table of a thread: name → function. Writers' commands take a WriteContext first. */
export type CommandTable = Record<string, (...args: never[]) => unknown>;

export interface ThreadOptions {
  role: ThreadRole;
  config: Config;
  /** When the server started: the threads judge agent health with the same start-up grace. */
  startedAt: number;
  /** The count of memory deletes and notes, shared by both threads (memory-changes.ts). */
  memoryChanges: SharedArrayBuffer;
  log: Logger;
  /** Writer only: the events each committed batch appended, in seq order; the batch's answers wait for it. */
  onEvents?: (events: unknown[]) => void | Promise<void>;
  /** Writer only: each group commit's size and time (metrics). */
  onBatches?: (batches: Array<{ writes: number; ms: number }>) => void;
  /** Reader only: the context of claims, as it is recalled (recall-relay.ts). */
  onRecalled?: (answers: RecallAnswer[]) => void;
  /** This thread's end of the channel between the writer and the reader (claims' recall: recall-relay.ts). */
  recallPort: MessagePort;
}

/**
 * The worker's script. Under the test runner the sources are TypeScript that a worker cannot
 * load, so the thread always runs the compiled build (npm test builds first; see vitest.config.ts).
 */
function threadScript(): URL {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith(".js")) return new URL("./database-thread.js", import.meta.url);
  return new URL("../../../dist/src/db/thread/database-thread.js", import.meta.url);
}

export class DatabaseThread<Commands extends CommandTable> {
  private readonly worker: Worker;
  /** Calls waiting for their answer, oldest first (ids grow), with when each was made (Unix ms). */
  private readonly pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: unknown) => void; calledAt: number }>();
  private outbox: Call[] = [];
  private nextId = 1;
  private dead: Error | undefined;
  private readonly started: Promise<void>;
  private closed: Promise<void> | undefined;
  private onClosed: (() => void) | undefined;
  /** Set when the thread closed its connection but not cleanly (see protocol.ts). */
  closeFailure: Error | undefined;
  private onLost: ((error: Error) => void) | undefined;
  /** Answers held until the bus dispatched their batch's events (see receive). */
  private answering: Promise<void> | undefined;
  /** The largest busyMs seen (Node reports 0 for a worker that exited). */
  private lastBusyMs = 0;
  /** Resolves if the thread ends without close() (a crash): every call from then on fails. */
  readonly lost = new Promise<Error>((resolve) => (this.onLost = resolve));

  constructor(private readonly options: ThreadOptions) {
    this.worker = new Worker(threadScript(), {
      workerData: { role: options.role, config: options.config, startedAt: options.startedAt, memoryChanges: options.memoryChanges, recallPort: options.recallPort },
      transferList: [options.recallPort],
    });
    this.started = new Promise((resolve, reject) => {
      const onMessage = (message: FromThread) => {
        if (message.kind === "ready") resolve();
        else if (message.kind === "failed") reject(deserializeError(message.error));
      };
      this.worker.on("message", onMessage);
      this.worker.once("error", reject);
    });
    this.worker.on("message", (message: FromThread) => this.receive(message));
    // An uncaught error in the thread ends it: "exit" follows and reports it.
    let crash: Error | undefined;
    this.worker.on("error", (error) => (crash = error));
    this.worker.on("exit", (code) => {
      if (this.closed === undefined) {
        const why = crash ? `: ${crash.message}` : "";
        const lost = new CoordinationError("SHUTTING_DOWN", `the database ${options.role} thread exited (code ${code})${why}; the server cannot continue`);
        // A write the thread was given may have committed before it died (its answer not yet
        // posted, or held for the bus): not SHUTTING_DOWN, which says nothing was stored and
        // which clients send again (the typed client at once). It answers as an internal error:
        // sent again only under its idempotency key.
        const unknown = options.role === "writer" ? new Error(`the database writer thread exited (code ${code})${why} with this write under way: it may have been stored`) : lost;
        this.fail(lost, unknown);
        this.onLost?.(crash ?? lost);
      } else {
        this.fail(shuttingDown());
      }
      this.onClosed?.();
    });
  }

  /** Resolves once the thread opened its connection; rejects with why it could not. */
  ready(): Promise<void> {
    return this.started;
  }

  /** Queues `op` for the thread; calls of one event-loop turn travel together. (Typed by database.ts.) */
  call(op: keyof Commands & string, args: unknown): Promise<unknown> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject, calledAt: Date.now() });
      // Sent at the end of this turn of the event loop: the calls of every request that turn
      // read travel as one message (one wake-up of the thread, one batch for the writer).
      if (this.outbox.length === 0) setImmediate(() => this.send());
      this.outbox.push({ id, op, args });
    });
  }

  /**
   * Wall-clock milliseconds the thread's event loop has not been idle since it started: running
   * commands, a writer's batches with their COMMIT (waits for fsync, a lock or a CPU included).
   * From Node's event-loop utilization of the worker, read without a message. Node reports 0
   * before the thread is online and after it exited: the last value is kept, so the count never
   * goes back.
   */
  get busyMs(): number {
    this.lastBusyMs = Math.max(this.lastBusyMs, this.worker.performance.eventLoopUtilization().active);
    return this.lastBusyMs;
  }

  /** Calls waiting for an answer (observability). */
  get inFlight(): number {
    return this.pending.size;
  }

  /** How long the oldest call waiting for its answer has waited, in ms; 0 with none (observability). */
  get oldestWaitMs(): number {
    const oldest = this.pending.values().next().value;
    return oldest === undefined ? 0 : Math.max(0, Date.now() - oldest.calledAt);
  }

  /** Why the thread can take no more calls, if it cannot. */
  get failure(): Error | undefined {
    return this.dead;
  }

  /** Lets the thread finish what it was sent, close its connection and exit. Idempotent. */
  close(): Promise<void> {
    this.closed ??= new Promise<void>((resolve) => {
      this.onClosed = resolve;
      if (this.dead) return resolve();
      this.send();
      this.worker.postMessage({ kind: "close" } satisfies ToThread);
    });
    return this.closed;
  }

  private send(): void {
    if (this.outbox.length === 0 || this.dead) return;
    const calls = this.outbox;
    this.outbox = [];
    this.worker.postMessage({ kind: "calls", calls } satisfies ToThread);
  }

  private receive(message: FromThread): void {
    switch (message.kind) {
      case "results": {
        if (message.batches) this.options.onBatches?.(message.batches);
        // Answers wait until the bus dispatched the batch's events, and keep the threads' order.
        const dispatched = message.events.length > 0 ? this.options.onEvents?.(message.events) : undefined;
        if (dispatched === undefined && this.answering === undefined) return this.answer(message.outcomes);
        const answering: Promise<void> = Promise.all([this.answering, dispatched]).then(() => {
          this.answer(message.outcomes);
          if (this.answering === answering) this.answering = undefined;
        });
        this.answering = answering;
        return;
      }
      case "recalled":
        this.options.onRecalled?.(message.answers);
        return;
      case "log":
        this.options.log[message.level](copyWith(message.fields, { thread: this.options.role }), message.message);
        return;
      case "closed":
        if (message.error) this.closeFailure = deserializeError(message.error);
        void this.worker.terminate();
        return;
      default:
        return;
    }
  }

  private answer(outcomes: readonly Outcome[]): void {
    for (const outcome of outcomes) {
      const waiter = this.pending.get(outcome.id);
      if (!waiter) continue;
      this.pending.delete(outcome.id);
      if (outcome.ok) waiter.resolve(outcome.value);
      else waiter.reject(deserializeError(outcome.error));
    }
  }

  /**
   * Fails every call from now on with `error`; those waiting for an answer with `error` too if
   * they never reached the thread (still in the outbox), else with `underWay`. Answers already
   * received (held until the bus dispatched their events) are given first: their writes committed.
   */
  private fail(error: Error, underWay: Error = error): void {
    this.dead ??= error;
    const unsent = new Set(this.outbox.map((call) => call.id));
    this.outbox = [];
    const rejectPending = () => {
      for (const [id, waiter] of this.pending) waiter.reject(unsent.has(id) ? error : underWay);
      this.pending.clear();
    };
    if (this.answering === undefined) rejectPending();
    else void this.answering.then(rejectPending, rejectPending);
  }
}
