// A claim's context travels writer → reader → event loop while the claim's batch commits
// (src/db/thread/recall-relay.ts). Every request is answered exactly once, an answer may arrive
// before or after the claim's own, and the answer of a claim whose write failed is dropped, so
// nothing waits forever and nothing is kept.
import { MessageChannel } from "node:worker_threads";
import { describe, expect, it } from "vitest";
import { RecallRequests, RecallResults, serveRecalls, type RecallAnswer, type RecallRequest } from "../src/db/thread/recall-relay.js";
import type { Task } from "../src/tasks/task-schemas.js";

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

  it("a reader that is gone fails every claim still waiting for its context", async () => {
    const results = new RecallResults();
    const waiting = results.take(results.ticket());
    results.fail({ domain: false, name: "Error", message: "the database reader thread exited" });
    expect(await waiting).toEqual({ ok: false, error: { domain: false, name: "Error", message: "the database reader thread exited" } });
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
    const tasks = [{ id: "t" } as Task];
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
});
