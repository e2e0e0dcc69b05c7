// Pre-execution recall started by the writer. A claim's tasks go to the reader thread the moment
// they are leased, inside the batch, and the reader recalls their context while the writer
// finishes the batch and syncs it; the reader sends the context straight to the event loop, where
// the claim's answer picks it up. Before, recall began only after the claim's answer had crossed
// to the event loop and back out to the reader, and a batch's claims waited for the recall of all
// of them: at 32 claimers, 7.5 ms added to every claim (bench/RESULTS.md).
//
// Three ends, one per thread. The event loop names each recall with a ticket and passes it with
// the claim (RecallResults); the writer sends a batch's requests to the reader before its COMMIT
// over a channel of their own (RecallRequests); the reader answers each request once, in chunks
// as it goes (serveRecalls). A claim whose write failed forgets its ticket, so an answer that
// arrives for it anyway (its batch rolled back after the request went out) is dropped.
import type { MessagePort } from "node:worker_threads";
import type { MemoryMatch } from "../../memory/memory-schemas.js";
import type { RecallSubject } from "../../memory/memory-recall.js";
import { serializeError, type SerializedError } from "./protocol.js";

/** What the reader is asked: the context of one claim's tasks, `limit` memories each, within `budgetBytes` of answer. */
export interface RecallRequest {
  ticket: number;
  tasks: RecallSubject[];
  limit: number;
  budgetBytes: number;
}

/** The claim's context, one list per task in order; or why recall failed (the claim then fails, its tasks go back). */
export type RecalledContexts = { ok: true; contexts: MemoryMatch[][] } | { ok: false; error: SerializedError };

export type RecallAnswer = RecalledContexts & { ticket: number };

/** The writer's end: collects a batch's requests (one per ticket) and sends them together before its COMMIT. */
export class RecallRequests {
  private queued = new Map<number, RecallRequest>();

  constructor(private readonly toReader: MessagePort) {}

  /** Asks for the context of `tasks` under `ticket`. A write run again (a batch retried with savepoints) asks once. */
  request(request: RecallRequest): void {
    this.queued.set(request.ticket, request);
  }

  /** Sends what the batch asked for, in one message: run before the batch's COMMIT, so recall overlaps the sync. */
  flush(): void {
    if (this.queued.size === 0) return;
    const requests = [...this.queued.values()];
    this.queued = new Map();
    this.toReader.postMessage(requests);
  }
}

/** Answers go out once this much work piled up (ms), so the first claims of a batch need not wait for the last. */
const CHUNK_MS = 1;

/**
 * Runs `read` in one read transaction (read-transaction.ts) and returns what it returns; throws
 * `read`'s own error, or the transaction's when it could not start or end. Called while one is
 * open, it just runs `read`.
 */
export type Snapshot = <T>(read: () => T) => T;

/** Answered requests kept at the head of the reader's queue before they are dropped (amortized: at most half of it). */
const DROP_ANSWERED_AT = 64;

/** The reader's end, as serveRecalls returns it. */
export interface RecallServer {
  /** Answers every request not answered yet, and each that arrives later, with `error`: the reader is closing. */
  stop(error: SerializedError): void;
}

/**
 * The reader's end: answers every request exactly once, in order, a chunk at a time: each chunk
 * runs for `chunkMs` or until no request is left, sends its answers, and lets the thread's event
 * loop turn before the next one. The reader's other work (reads: a task, a list, /health) thus
 * waits for the chunk in progress, not for every recall queued before it: with text payloads a
 * batch's recall took 8 ms and a backlog of them held a read for 200 ms (bench/RESULTS.md,
 * 2026-12-01). `beforeChunk` runs first in each chunk: the reader posts the answers of the reads
 * that ran since the last one, which would otherwise wait behind this chunk too.
 * A recall that throws is a failed answer; so is the request a read transaction could not start
 * for. The requests of one chunk share one read transaction (`snapshot`): its BEGIN, schema check
 * and COMMIT cost about 15% of a recall with number payloads. A chunk's requests see the database
 * as it was when the chunk began: whether the commit of their own batch is in it depends on
 * timing (a claim's context never promised its own batch). After a COMMIT that failed, the chunk's
 * answers go out all the same: they were read from one snapshot (read-transaction.ts stops the
 * thread if the transaction is stuck).
 */
export function serveRecalls(
  fromWriter: MessagePort,
  recall: (request: RecallRequest) => MemoryMatch[][],
  send: (answers: RecallAnswer[]) => void,
  { snapshot = (read) => read(), chunkMs = CHUNK_MS, beforeChunk = () => {} }: { snapshot?: Snapshot; chunkMs?: number; beforeChunk?: () => void } = {},
): RecallServer {
  /** Requests in the order they came; those before `next` are answered. */
  let queued: RecallRequest[] = [];
  let next = 0;
  let scheduled = false;
  let stopped: SerializedError | undefined;
  const runChunk = () => {
    scheduled = false;
    if (stopped || next >= queued.length) return;
    beforeChunk();
    const answers: RecallAnswer[] = [];
    const since = performance.now();
    let read = false;
    try {
      snapshot(() => {
        for (;;) {
          const request = queued[next + answers.length]!;
          try {
            answers.push({ ticket: request.ticket, ok: true, contexts: recall(request) });
          } catch (error) {
            answers.push({ ticket: request.ticket, ok: false, error: serializeError(error) });
            // The error may have ended the transaction (SQLite rolls it back on some): the
            // next request starts a new one rather than read outside any.
            break;
          }
          if (next + answers.length >= queued.length || performance.now() - since >= chunkMs) break;
        }
        read = true;
      });
    } catch (error) {
      // Not read to the end: the transaction could not start, or the request after the last
      // answered failed in a way that escaped it. That request fails with the error.
      if (!read) {
        const request = queued[next + answers.length]!;
        answers.push({ ticket: request.ticket, ok: false, error: serializeError(error) });
      }
    }
    next += answers.length;
    // Under steady load the queue may never run empty: what was answered goes, not all of it.
    if (next >= queued.length) {
      queued = [];
      next = 0;
    } else if (next >= DROP_ANSWERED_AT && next * 2 >= queued.length) {
      queued = queued.slice(next);
      next = 0;
    }
    try {
      send(answers);
    } finally {
      if (next < queued.length) schedule();
    }
  };
  const schedule = () => {
    if (scheduled) return;
    scheduled = true;
    setImmediate(runChunk);
  };
  const refuse = (requests: readonly RecallRequest[], error: SerializedError) => {
    if (requests.length > 0) send(requests.map((request) => ({ ticket: request.ticket, ok: false, error })));
  };
  fromWriter.on("message", (requests: RecallRequest[]) => {
    if (stopped) return refuse(requests, stopped);
    for (const request of requests) queued.push(request);
    schedule();
  });
  return {
    stop(error) {
      if (stopped) return;
      stopped = error;
      const left = queued.slice(next);
      queued = [];
      next = 0;
      refuse(left, error);
    },
  };
}

/** How many forgotten tickets are remembered: more than a server has claims failing at once. */
const MAX_FORGOTTEN = 10_000;

/** The event loop's end: answers arrive, often before the claim's own answer; each is taken once. */
export class RecallResults {
  private nextTicket = 1;
  private readonly arrived = new Map<number, RecalledContexts>();
  private readonly waiting = new Map<number, (answer: RecalledContexts) => void>();
  private readonly forgotten = new Set<number>();
  /** Set once the reader is gone: every claim still waiting, and any later one, fails with it. */
  private failure: SerializedError | undefined;

  ticket(): number {
    return this.nextTicket++;
  }

  deliver(answers: readonly RecallAnswer[]): void {
    for (const { ticket, ...answer } of answers) {
      if (this.forgotten.delete(ticket)) continue;
      const resolve = this.waiting.get(ticket);
      if (resolve) {
        this.waiting.delete(ticket);
        resolve(answer);
      } else this.arrived.set(ticket, answer);
    }
  }

  /** The context recalled under `ticket`: the writer said it asked for it. */
  take(ticket: number): Promise<RecalledContexts> {
    const answer = this.arrived.get(ticket);
    if (answer !== undefined) {
      this.arrived.delete(ticket);
      return Promise.resolve(answer);
    }
    if (this.failure) return Promise.resolve({ ok: false, error: this.failure });
    return new Promise((resolve) => this.waiting.set(ticket, resolve));
  }

  /** The claim under `ticket` failed: its answer, if the writer asked for one before the batch failed, is dropped. */
  forget(ticket: number): void {
    if (this.arrived.delete(ticket)) return;
    if (this.forgotten.size >= MAX_FORGOTTEN) this.forgotten.delete(this.forgotten.values().next().value!);
    this.forgotten.add(ticket);
  }

  /** The reader is gone (closed or crashed): nothing more will arrive; claims waiting now or later fail with `error`. */
  fail(error: SerializedError): void {
    this.failure ??= error;
    for (const resolve of this.waiting.values()) resolve({ ok: false, error: this.failure });
    this.waiting.clear();
  }
}
