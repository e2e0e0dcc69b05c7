// A claim's context travels writer → reader → event loop while the claim's batch commits
// (src/db/thread/recall-relay.ts). Every request is answered exactly once, an answer may arrive
// before or after the claim's own, and the answer of a claim whose write failed is dropped, so
// nothing waits forever and nothing is kept.
import { MessageChannel } from "node:worker_threads";
import { describe, expect, it } from "vitest";
import BetterSqlite3 from "better-sqlite3";
import { loadConfig } from "../src/config.js";
import { Database } from "../src/db/thread/database.js";
import { openCoordination } from "../src/in-process-api.js";
import { createLogger } from "../src/logger.js";
import { makeTempDir } from "./helpers/test-server.js";
import { RecallRequests, RecallResults, serveRecalls, type RecallAnswer, type RecallRequest } from "../src/db/thread/recall-relay.js";
import type { RecallSubject } from "../src/memory/memory-recall.js";

const answer = (ticket: number, n: number): RecallAnswer => ({ ticket, ok: true, contexts: [Array.from({ length: n }, () => ({ memory: {} as never, score: 1 }))] });
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
    const tasks: RecallSubject[] = [{ id: "t", queue: "default", capability: null, payload: null, earlierRuns: false }];
    requests.request({ ticket: 1, tasks, limit: 5, budgetBytes: 1000 });
    // A batch retried with savepoints runs its claim twice: it is asked for once.
    requests.request({ ticket: 1, tasks, limit: 5, budgetBytes: 1000 });
    requests.request({ ticket: 2, tasks, limit: 5, budgetBytes: 1000 });
    requests.request({ ticket: 3, tasks, limit: 5, budgetBytes: 1000 });
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

  it("the requests of one chunk share one read transaction; a transaction that cannot start fails the request it was for and the next is answered", async () => {
    const channel = new MessageChannel();
    const requests = new RecallRequests(channel.port1);
    const log: string[] = [];
    let inside = false;
    let begins = 0;
    const snapshot = <T>(read: () => T): T => {
      // The second BEGIN is refused (as SQLITE_BUSY_RECOVERY or an I/O error would refuse it).
      if (++begins === 2) throw new Error("disk I/O error");
      inside = true;
      try {
        return read();
      } finally {
        inside = false;
      }
    };
    const received: RecallAnswer[] = [];
    const answered = (count: number) =>
      new Promise<void>((resolve) => {
        const check = setInterval(() => {
          if (received.length < count) return;
          clearInterval(check);
          resolve();
        }, 5);
      });
    serveRecalls(
      channel.port2,
      (request) => {
        log.push(`${request.ticket}:${inside ? "in" : "out"}`);
        return request.tasks.map(() => []);
      },
      (answers) => received.push(...answers),
      // One chunk for a whole message, whatever the machine's speed.
      { snapshot, chunkMs: Number.POSITIVE_INFINITY },
    );
    const tasks: RecallSubject[] = [{ id: "t", queue: "default", capability: null, payload: null, earlierRuns: false }];
    for (const ticket of [1, 2, 3]) requests.request({ ticket, tasks, limit: 5, budgetBytes: 1000 });
    requests.flush();
    await answered(3);
    expect(begins).toBe(1);
    expect(log).toEqual(["1:in", "2:in", "3:in"]);
    // The next message's transaction cannot start: its first request fails, the others get a new one.
    for (const ticket of [4, 5]) requests.request({ ticket, tasks, limit: 5, budgetBytes: 1000 });
    requests.flush();
    await answered(5);
    channel.port1.close();
    expect(begins).toBe(3);
    expect(log).toEqual(["1:in", "2:in", "3:in", "5:in"]);
    expect(received.map((a) => [a.ticket, a.ok])).toEqual([
      [1, true],
      [2, true],
      [3, true],
      [4, false],
      [5, true],
    ]);
    expect(received[3]).toMatchObject({ ok: false, error: { message: "disk I/O error" } });
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
