// A worker's lines for its run's log (tasks.appendLog), sent in batches: a handler may log in a
// tight loop and the server gets one append per LOG_FLUSH_MS (or per MAX_BATCH lines, or
// MAX_BATCH_BYTES) at most, in order, each under a key of its own so a batch sent again after a
// lost answer is not written twice. A line the server refuses costs that line alone, never the
// others of its batch. Lines go only while the run holds its lease: the worker closes the log
// before it settles.
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { isTRPCClientError } from "@trpc/client";
import superjson from "superjson";
import { encodedBytesUpTo } from "./encoded-size.js";
import { httpStatus, isLeaseGone, isTransient, isUnknownProcedure, RETRY_MAX_MS, RETRY_START_MS } from "./lease-calls.js";
import { isUnsendable } from "./serialize-input.js";
import type { CoordinationApi, JsonValue } from "./types.js";
import { sentOnce } from "./send-once.js";

/**
 * How long a line waits for others to share its append, at most (ms). Each append is a write and
 * a task.log event: a run logging all the time costs one a second, as its progress reports do.
 */
export const LOG_FLUSH_MS = 1000;
/** The most lines one append carries (the server's bound). */
const MAX_BATCH = 100;
/**
 * The most one append's lines take in its request body (bytes, as sent): 100 lines of 16,384
 * characters pass a server's default maxBodyBytes (1 MiB), and its 413 refused them all. A
 * server with a smaller bound answers 413 still: the batch is then sent in halves.
 */
const MAX_BATCH_BYTES = 256 * 1024;
/** The longest message the server takes, in characters. */
const MAX_MESSAGE = 16_384;
/** How long close() waits for the lines still to go, at most (ms): a server that stays away does not hold the settle up longer. */
export const LOG_CLOSE_MS = 5000;

export type LogLevel = "debug" | "info" | "warn" | "error";
const LEVELS: ReadonlySet<string> = new Set(["debug", "info", "warn", "error"]);

/** What a line may say beside its message. */
export interface LogOptions {
  /** debug, info (the default), warn or error. */
  level?: LogLevel;
  /** Anything structured (a tool call's arguments, token counts): JSON, at most 16,384 bytes as JSON. */
  data?: JsonValue;
}

/** Characters as the server counts them (code points: an emoji is one, two UTF-16 units), up to one past `most`. */
function charactersUpTo(text: string, most: number): number {
  let count = 0;
  for (const _ of text) if (++count > most) break;
  return count;
}

/** Why the server would refuse a line's message or level, before it is sent; undefined: it takes them. */
function lineProblem(message: unknown, level: string): string | undefined {
  if (typeof message !== "string" || message.length === 0) return `its message must be text of 1 to ${MAX_MESSAGE} characters (got ${typeof message === "string" ? "an empty one" : typeof message})`;
  if (charactersUpTo(message, MAX_MESSAGE) > MAX_MESSAGE) return `its message is longer than ${MAX_MESSAGE} characters: split it, or put the rest in data`;
  if (!LEVELS.has(level)) return `its level must be one of debug, info, warn, error (got ${JSON.stringify(level)})`;
  return undefined;
}

/** Clients whose server does not take run logs (older than this client): said once, then lines are not sent. */
const noRunLogs = new WeakSet<CoordinationApi>();

interface Waiting {
  entry: { message: string; level: LogLevel; data?: JsonValue };
  /** What it takes in a request body (bytes; MAX_BATCH_BYTES for what cannot be measured: it goes alone). */
  bytes: number;
  stored: (yes: boolean) => void;
}

/**
 * The lines of `batch` the server (or the client's serializer) refused, by index, when the
 * refusal names lines only (too long, too deep, not JSON): those lines alone are dropped and the
 * others sent. Undefined when it is the append's own (its lease, its task, a bound of the call).
 */
function refusedLines(error: unknown, batch: readonly Waiting[]): Set<number> | undefined {
  const refused = new Set<number>();
  if (isUnsendable(error)) {
    // The serializer says what it could not send, not which line: each is tried alone.
    batch.forEach((w, i) => {
      try {
        superjson.serialize(w.entry);
      } catch {
        refused.add(i);
      }
    });
  } else if (isTRPCClientError(error) && error.data?.code === "INVALID_INPUT") {
    const issues = (error.data as { details?: { issues?: Array<{ path?: unknown }> } }).details?.issues ?? [];
    for (const issue of issues) {
      const at = typeof issue.path === "string" ? /^entries(?:\[(\d+)\]|\.(\d+))(?:[.[]|$)/.exec(issue.path) : null;
      if (at === null) return undefined;
      refused.add(Number(at[1] ?? at[2]));
    }
  }
  return refused.size > 0 && [...refused].every((i) => i < batch.length) ? refused : undefined;
}

export class RunLog {
  private waiting: Waiting[] = [];
  /** What the waiting lines take in a request body (bytes). */
  private waitingBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private sending: Promise<void> | undefined;
  /** Set once no line can go any more (closed, the lease gone, refused): later lines resolve false. */
  private over = false;
  /** Aborted when close() stops waiting: a retry in progress gives up. */
  private readonly giveUp = new AbortController();

  constructor(
    private readonly api: CoordinationApi,
    private readonly run: { taskId: string; agentId: string; leaseToken: number },
    private readonly onError: (error: unknown) => void,
  ) {}

  /**
   * Adds a line to the run's log: sent with the lines logged within LOG_FLUSH_MS of it, in order.
   * Resolves true once the server stored it, false when it did not: the run ended first (lines
   * still waiting when close() gives up are dropped), the lease is over, or the server refused the
   * batch (onError says why). Never rejects, so it need not be awaited.
   */
  log(message: string, options: LogOptions = {}): Promise<boolean> {
    const level = options.level ?? "info";
    if (this.over || noRunLogs.has(this.api)) return Promise.resolve(false);
    const problem = lineProblem(message, level);
    if (problem !== undefined) {
      this.onError(new Error(`runWorker: a log line of task "${this.run.taskId}" was not sent: ${problem}`));
      return Promise.resolve(false);
    }
    const entry = { message, level, ...(options.data === undefined ? {} : { data: options.data }) };
    const bytes = Math.min(encodedBytesUpTo(entry, MAX_BATCH_BYTES), MAX_BATCH_BYTES);
    return new Promise<boolean>((stored) => {
      this.waiting.push({ entry, bytes, stored });
      this.waitingBytes += bytes;
      if (this.waiting.length >= MAX_BATCH || this.waitingBytes >= MAX_BATCH_BYTES) this.flushSoon(0);
      else this.flushSoon(LOG_FLUSH_MS);
    });
  }

  /**
   * Sends the lines still waiting and stops taking more: what the worker awaits before it settles
   * (the server takes no line once the run settled). Gives up after LOG_CLOSE_MS.
   */
  async close(): Promise<void> {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    const done = this.drain().then(() => {
      this.over = true;
    });
    const timer = setTimeout(() => this.giveUp.abort(), LOG_CLOSE_MS);
    try {
      await done;
    } finally {
      clearTimeout(timer);
      this.end();
    }
  }

  private flushSoon(afterMs: number): void {
    if (this.timer !== undefined) {
      if (afterMs > 0) return;
      clearTimeout(this.timer);
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.drain();
    }, afterMs);
  }

  /**
   * Sends every batch waiting, one append at a time (so lines keep their order). With nothing to
   * send (a flush timer whose lines rode on an append already under way), it sends nothing and
   * leaves no loop behind: a loop that ended before it was stored as `sending` would be taken for
   * one under way for good, and no later line would ever go.
   */
  private drain(): Promise<void> {
    if (this.sending !== undefined) return this.sending;
    if (this.waiting.length === 0 || this.over) return Promise.resolve();
    // Cleared in the loop's own finally, in the same turn as its last look at `waiting`: cleared a
    // step later (a .then), a close() or push in between would get the finished loop, and a line
    // pushed then would wait for a flush that close() no longer makes. The loop awaits at least
    // once (there is a batch), so `sending` is stored before its finally runs.
    let sending: Promise<void> | undefined;
    sending = (async () => {
      try {
        while (this.waiting.length > 0 && !this.over) await this.send(this.nextBatch());
      } finally {
        if (this.sending === sending) this.sending = undefined;
      }
    })();
    this.sending = sending;
    return sending;
  }

  /** The oldest waiting lines, up to MAX_BATCH of them and MAX_BATCH_BYTES (one at least), taken off the queue. */
  private nextBatch(): Waiting[] {
    let count = 0;
    let bytes = 0;
    for (const w of this.waiting) {
      if (count === MAX_BATCH || (count > 0 && bytes + w.bytes > MAX_BATCH_BYTES)) break;
      count++;
      bytes += w.bytes;
    }
    this.waitingBytes -= bytes;
    return this.waiting.splice(0, count);
  }

  /** One batch, sent until it is answered: under one key, so a resend is never written twice. */
  private async send(batch: Waiting[]): Promise<void> {
    const idempotencyKey = `log:${randomUUID()}`;
    let delay = RETRY_START_MS;
    for (;;) {
      try {
        await this.api.tasks.appendLog.mutate({ ...this.run, entries: batch.map((w) => w.entry), idempotencyKey }, sentOnce(this.giveUp.signal));
        for (const w of batch) w.stored(true);
        return;
      } catch (error) {
        if (!this.giveUp.signal.aborted && isTransient(error)) {
          await sleep(delay, undefined, { signal: this.giveUp.signal }).catch(() => undefined);
          delay = Math.min(delay * 2, RETRY_MAX_MS);
          continue;
        }
        const refused = this.giveUp.signal.aborted ? undefined : refusedLines(error, batch);
        if (refused !== undefined && refused.size < batch.length) {
          // Those lines alone are dropped; the others go under the same key (a refused call wrote nothing).
          this.onError(new Error(`runWorker: the server refused ${refused.size} log line(s) of task "${this.run.taskId}": ${error instanceof Error ? error.message : String(error)}`, { cause: error }));
          for (const i of refused) batch[i]!.stored(false);
          batch = batch.filter((_, i) => !refused.has(i));
          continue;
        }
        // Past the server's maxBodyBytes (a 413 wrote nothing): in halves, each an append of its own.
        if (!this.giveUp.signal.aborted && httpStatus(error) === 413 && batch.length > 1) {
          const half = Math.ceil(batch.length / 2);
          await this.send(batch.slice(0, half));
          if (!this.over) return this.send(batch.slice(half));
          for (const w of batch.slice(half)) w.stored(false);
          return;
        }
        for (const w of batch) w.stored(false);
        // The lease is over (the run lost it, or settled): no later line can go either, and the worker says why elsewhere.
        if (isLeaseGone(error) || this.giveUp.signal.aborted) return this.end();
        if (isUnknownProcedure(error)) {
          if (noRunLogs.has(this.api)) return this.end();
          noRunLogs.add(this.api);
          this.onError(new Error(`the server does not take run logs (it is older than this client): the runs' log lines are not kept, from task "${this.run.taskId}" on`, { cause: error }));
          return this.end();
        }
        this.onError(new Error(`runWorker: the server refused ${batch.length} log line(s) of task "${this.run.taskId}": ${error instanceof Error ? error.message : String(error)}`, { cause: error }));
        return;
      }
    }
  }

  /** No line goes from now on: those waiting resolve false. */
  private end(): void {
    this.over = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.waitingBytes = 0;
    for (const w of this.waiting.splice(0)) w.stored(false);
  }
}
