// A claim's context travels writer → reader → event loop while the claim's batch commits
// (src/db/thread/recall-relay.ts). Every request is answered exactly once, an answer may arrive
// before or after the claim's own, and the answer of a claim whose write failed is dropped, so
// nothing waits forever and nothing is kept.
import { MessageChannel } from "node:worker_threads";
import { describe, expect, it, vi } from "vitest";
import BetterSqlite3 from "better-sqlite3";
import { loadConfig } from "../src/config.js";
import { Database } from "../src/db/thread/database.js";
import { openCoordination } from "../src/in-process-api.js";
import { createLogger } from "../src/logger.js";
import { makeTempDir } from "./helpers/test-server.js";
import { RecallRequests, RecallResults, serveRecalls, type RecallAnswer, type RecallRequest, type RecallServer } from "../src/db/thread/recall-relay.js";
import type { RecallSubject } from "../src/memory/memory-recall.js";

const answer = (ticket: number, n: number): RecallAnswer => ({ ticket, ok: true, contexts: [Array.from({ length: n }, () => ({ memory: {} as never, score: 1 }))] });
/** What each request of these tests asks about: one task. */
const TASKS: RecallSubject[] = [{ id: "t", queue: "default", capability: null, payload: null, earlierRuns: false }];
const internals = (results: RecallResults) => results as unknown as { arrived: Map<number, unknown>; waiting: Map<number, unknown>; forgotten: Set<number> };

describe("recall relay", () => {
  it("an answer taken after it arrived, or awaited before it arrives, is handed over once; the maps are empty after", async () => {
    const results = new RecallResults();
    const early = results.ticket();
    const late = results.ticket();
    results.deliver([answer(early, 1)]);
    expect(await results.take(early)).toEqual({ ok: true, contexts: [[{ memory: {}, score: 1 }]] });
    const waiting = results.take(late);
    results.deliver([answer(late, 2)]);
    expect((await waiting).ok).toBe(true);
    expect(internals(results).arrived.size + internals(results).waiting.size + internals(results).forgotten.size).toBe(0);
  });

  it("a failed claim's answer is dropped whether it arrived before or after the claim failed", () => {
    const results = new RecallResults();
    const before = results.ticket();
    const after = results.ticket();
    results.deliver([answer(before, 1)]);
    results.forget(before);
    results.forget(after);
    results.deliver([answer(after, 1)]);
    expect(internals(results).arrived.size + internals(results).waiting.size + internals(results).forgotten.size).toBe(0);
  });

  it("a reader that is gone fails every claim waiting for its context, and every later one, instead of leaving it waiting", async () => {
    const results = new RecallResults();
    const waiting = results.take(results.ticket());
    const gone = { domain: false as const, name: "Error", message: "the database reader thread exited" };
    results.fail(gone);
    expect(await waiting).toEqual({ ok: false, error: gone });
    // A claim the writer answered after the reader closed (a shutdown) asks too late: it fails at once.
    expect(await results.take(results.ticket())).toEqual({ ok: false, error: gone });
  });

  it("the writer sends a batch's requests once each; the reader answers each exactly once, a failing recall as a failed answer", async () => {
    const channel = new MessageChannel();
    const requests = new RecallRequests(channel.port1);
    const received: RecallAnswer[] = [];
    const allAnswered = new Promise<void>((resolve) =>
      serveRecalls(
        channel.port2,
        (request: RecallRequest) => {
          if (request.ticket === 2) throw new Error("no such table: memories_fts");
          return request.tasks.map(() => []);
        },
        (answers) => {
          received.push(...answers);
          if (received.length === 3) resolve();
        },
      ),
    );
    requests.request({ ticket: 1, tasks: TASKS, limit: 5, budgetBytes: 1000 });
    // A batch retried with savepoints runs its claim twice: it is asked for once.
    requests.request({ ticket: 1, tasks: TASKS, limit: 5, budgetBytes: 1000 });
    requests.request({ ticket: 2, tasks: TASKS, limit: 5, budgetBytes: 1000 });
    requests.request({ ticket: 3, tasks: TASKS, limit: 5, budgetBytes: 1000 });
    requests.flush();
    requests.flush();
    await allAnswered;
    channel.port1.close();
    expect(received.map((a) => [a.ticket, a.ok])).toEqual([
      [1, true],
      [2, false],
      [3, true],
    ]);
    expect(received[1]).toMatchObject({ ok: false, error: { message: "no such table: memories_fts" } });
  });

  /**
   * serveRecalls with a scripted snapshot: transactions are numbered from 1; `refuseBegin` and
   * `refuseCommit` name the transactions that fail to start or to end, `failing` the tickets whose
   * recall throws. Each send is kept apart, and `settled` waits for a last ticket's answer: the
   * reader answers in order, so every answer before it has arrived by then, and none after.
   */
  function scripted(chunkMs: number, script: { refuseBegin?: number[]; refuseCommit?: number[]; failing?: number[]; unprintable?: number[] } = {}) {
    const channel = new MessageChannel();
    const requests = new RecallRequests(channel.port1);
    const ranIn: string[] = [];
    const sends: Array<Array<[number, boolean]>> = [];
    const errors = new Map<number, string>();
    let transactions = 0;
    let open: number | undefined;
    const snapshot = <T>(read: () => T): T => {
      const id = ++transactions;
      if (script.refuseBegin?.includes(id)) throw new Error(`BEGIN ${id} refused`);
      open = id;
      try {
        const result = read();
        if (script.refuseCommit?.includes(id)) throw new Error(`COMMIT ${id} refused`);
        return result;
      } finally {
        open = undefined;
      }
    };
    serveRecalls(
      channel.port2,
      (request) => {
        ranIn.push(`${request.ticket}@${open ?? "none"}`);
        if (script.failing?.includes(request.ticket)) throw new Error(`recall ${request.ticket} failed`);
        // A thrown value String() cannot turn into text.
        if (script.unprintable?.includes(request.ticket)) throw Object.create(null);
        return request.tasks.map(() => []);
      },
      (answers) => {
        sends.push(answers.map((a) => [a.ticket, a.ok]));
        for (const a of answers) if (!a.ok) errors.set(a.ticket, a.error.message);
      },
      { snapshot, chunkMs },
    );
    return {
      ranIn,
      sends,
      errors,
      ask(tickets: number[]) {
        for (const ticket of tickets) requests.request({ ticket, tasks: TASKS, limit: 5, budgetBytes: 1000 });
        requests.flush();
      },
      async settled(ticket: number) {
        await vi.waitFor(() => expect(sends.flat().some(([t]) => t === ticket)).toBe(true), { timeout: 30_000 });
      },
      close: () => channel.port1.close(),
    };
  }

  it("the requests of one chunk share one read transaction and go out in one send; each of its own when chunks are shorter than a recall", async () => {
    const whole = scripted(Number.POSITIVE_INFINITY);
    whole.ask([1, 2, 3]);
    await whole.settled(3);
    whole.close();
    expect(whole.ranIn).toEqual(["1@1", "2@1", "3@1"]);
    expect(whole.sends).toEqual([[[1, true], [2, true], [3, true]]]);

    const apart = scripted(0);
    apart.ask([1, 2, 3]);
    await apart.settled(3);
    apart.close();
    expect(apart.ranIn).toEqual(["1@1", "2@2", "3@3"]);
    expect(apart.sends).toEqual([[[1, true]], [[2, true]], [[3, true]]]);
  });

  it("lets the thread's other messages in between chunks: a read waits for the chunk in progress, not for every recall queued before it", async () => {
    const channel = new MessageChannel();
    const reads = new MessageChannel();
    const requests = new RecallRequests(channel.port1);
    const answered: number[] = [];
    const chunksBegun: number[] = [];
    let answeredWhenReadRan: number | undefined;
    reads.port2.on("message", () => (answeredWhenReadRan = answered.length));
    const allAnswered = new Promise<void>((resolve) =>
      serveRecalls(
        channel.port2,
        (request) => request.tasks.map(() => []),
        (answers) => {
          // A read arrives on the thread's other port as the first chunk is sent.
          if (answered.length === 0) reads.port1.postMessage("read");
          answered.push(...answers.map((a) => a.ticket));
          if (answered.length === 20) resolve();
        },
        { chunkMs: 0, beforeChunk: () => chunksBegun.push(answered.length) },
      ),
    );
    for (let ticket = 1; ticket <= 20; ticket++) requests.request({ ticket, tasks: TASKS, limit: 5, budgetBytes: 1000 });
    requests.flush();
    await allAnswered;
    await vi.waitFor(() => expect(answeredWhenReadRan).toBeDefined(), { timeout: 30_000 });
    for (const port of [channel.port1, reads.port1, reads.port2]) port.close();
    expect(answeredWhenReadRan).toBeLessThan(20);
    expect(answered).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    // beforeChunk (the reader posts the reads' answers there) runs first in every chunk.
    expect(chunksBegun).toEqual(Array.from({ length: 20 }, (_, i) => i));
  });

  it("stopped (the reader closing), answers what is left and whatever comes later with the error, once each", async () => {
    const channel = new MessageChannel();
    const requests = new RecallRequests(channel.port1);
    const sent: Array<[number, boolean]> = [];
    const gone = { domain: true as const, code: "SHUTTING_DOWN" as const, message: "the server is shutting down" };
    let server: RecallServer | undefined = undefined;
    server = serveRecalls(
      channel.port2,
      (request) => request.tasks.map(() => []),
      (answers) => {
        sent.push(...answers.map((a): [number, boolean] => [a.ticket, a.ok]));
        // Stopped as the first chunk is sent: 2 and 3 are still queued.
        if (sent.length === 1) server!.stop(gone);
      },
      { chunkMs: 0 },
    );
    for (const ticket of [1, 2, 3]) requests.request({ ticket, tasks: TASKS, limit: 5, budgetBytes: 1000 });
    requests.flush();
    await vi.waitFor(() => expect(sent).toHaveLength(3), { timeout: 30_000 });
    requests.request({ ticket: 4, tasks: TASKS, limit: 5, budgetBytes: 1000 });
    requests.flush();
    await vi.waitFor(() => expect(sent).toHaveLength(4), { timeout: 30_000 });
    channel.port1.close();
    expect(sent).toEqual([
      [1, true],
      [2, false],
      [3, false],
      [4, false],
    ]);
  });

  it("a failed recall ends its chunk (the error may have ended the transaction); a transaction that cannot start fails only its request; one that cannot end still sends what it read", async () => {
    const relay = scripted(Number.POSITIVE_INFINITY, { failing: [2], refuseBegin: [3], refuseCommit: [5], unprintable: [9] });
    // Recall 2 throws: 3 is recalled in a transaction of its own.
    relay.ask([1, 2, 3]);
    await relay.settled(3);
    // Transaction 3 cannot start: request 4 fails with its error, 5 and 6 get transaction 4.
    relay.ask([4, 5, 6]);
    await relay.settled(6);
    // Transaction 5's COMMIT fails after both were read: they are answered all the same.
    relay.ask([7, 8]);
    await relay.settled(8);
    // A recall throws what cannot be shown as text: still its own failed answer, and 10 goes on.
    relay.ask([9, 10]);
    await relay.settled(10);
    relay.close();
    expect(relay.ranIn).toEqual(["1@1", "2@1", "3@2", "5@4", "6@4", "7@5", "8@5", "9@6", "10@7"]);
    expect(relay.sends).toEqual([
      [
        [1, true],
        [2, false],
      ],
      [[3, true]],
      [[4, false]],
      [
        [5, true],
        [6, true],
      ],
      [
        [7, true],
        [8, true],
      ],
      [[9, false]],
      [[10, true]],
    ]);
    expect([...relay.errors]).toEqual([
      [2, "recall 2 failed"],
      [4, "BEGIN 3 refused"],
      [9, "a thrown object that cannot be shown as text"],
    ]);
  });

  it("a claim the writer answers after the reader closed (a shutdown) fails with SHUTTING_DOWN instead of waiting forever for its context", async () => {
    const dbPath = `${makeTempDir()}/c.db`;
    const migrated = await openCoordination({ settings: { dbPath, logLevel: "silent" } });
    await migrated.tasks.enqueue({ queue: "q", payload: { text: "quarterly report" } });
    await migrated.close();
    const config = loadConfig({ env: {}, overrides: { dbPath, logLevel: "silent", busyTimeoutMs: 60_000 } });
    const db = new Database(config, Date.now(), createLogger("silent"), () => undefined);
    await db.ready();
    // Another process holds the write lock: the claim waits in the writer while the reader closes.
    const other = new BetterSqlite3(dbPath);
    other.prepare("BEGIN IMMEDIATE").run();
    const claim = db.handOut("tasks.claim", { request: { agentId: "a1", queues: ["q"] }, limit: 1, leaseMs: 30_000, noteAgent: true, contextLimit: 5 });
    const closing = db.close();
    await (db as unknown as { reader: { close(): Promise<void> } }).reader.close();
    other.prepare("COMMIT").run();
    other.close();
    const handout = await claim;
    expect(handout.leased).toHaveLength(1);
    expect(handout.contexts).toMatchObject({ ok: false, error: { code: "SHUTTING_DOWN" } });
    await closing;
  });
});
