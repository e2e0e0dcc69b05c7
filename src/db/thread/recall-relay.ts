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

/** Runs reads in one read transaction (read-transaction.ts); what `read` returns, or the transaction's own error. */
export type Snapshot = <T>(read: () => T) => T;

/**
 * The reader's end: answers every request exactly once (an error becomes a failed answer), sending
 * what is done every `chunkMs` and at the end of each message. The requests of one chunk share one
 * read transaction (`snapshot`): its BEGIN, schema check and COMMIT cost a tenth of a recall, and
 * a chunk's requests were all sent before the same commit, so one snapshot suits them all.
 */
export function serveRecalls(
  fromWriter: MessagePort,
  recall: (request: RecallRequest) => MemoryMatch[][],
  send: (answers: RecallAnswer[]) => void,
  { snapshot = (read) => read(), chunkMs = CHUNK_MS }: { snapshot?: Snapshot; chunkMs?: number } = {},
): void {
  fromWriter.on("message", (requests: RecallRequest[]) => {
    let next = 0;
    while (next < requests.length) {
      const answers: RecallAnswer[] = [];
      const since = performance.now();
      try {
        snapshot(() => {
          do {
            const request = requests[next++]!;
            try {
              answers.push({ ticket: request.ticket, ok: true, contexts: recall(request) });
            } catch (error) {
              answers.push({ ticket: request.ticket, ok: false, error: serializeError(error) });
            }
          } while (next < requests.length && performance.now() - since < chunkMs);
        });
      } catch (error) {
        // The transaction could not start (nothing was read: the request it was for fails with
        // its error) or could not end (the answers were read all the same; read-transaction.ts
        // stops the thread if it is stuck).
        if (answers.length === 0) {
          const request = requests[next++]!;
          answers.push({ ticket: request.ticket, ok: false, error: serializeError(error) });
        }
      }
      send(answers);
    }
  });
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
