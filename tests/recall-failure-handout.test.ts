// A claim whose context cannot be recalled. What it leased goes back, uncharged, and the call
// says recall failed (a claim) or hands out no next task (a complete-and-claim, whose complete
// stands). But a lease an earlier answer of the same call handed out (a keyed claim or a
// complete-and-claim sent again, its first answer lost) cannot go back, as that answer may have
// arrived: it is handed out again without context, never left with an agent told nothing of it.
// Recall is made to fail for real: its search index is dropped from another connection.
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { openCoordination } from "../src/index.js";
import { makeTempDir, rest, startTestServer, withDatabase, type TestServer } from "./helpers/test-server.js";

/** Every later recall fails: its full-text tables are gone (records are off, so no write needs them). */
const breakRecall = (t: Pick<TestServer, "dbPath">) => withDatabase(t, (db) => db.exec("DROP TABLE memories_fts; DROP TABLE notes_fts;"));

const releasedReasons = (t: Pick<TestServer, "dbPath">, taskId: string) =>
  withDatabase(t, (db) =>
    (db.prepare("SELECT payload FROM events WHERE type = 'task.released' ORDER BY seq").pluck().all() as string[])
      .map((text) => JSON.parse(text) as { taskId: string; reason?: string })
      .filter((e) => e.taskId === taskId)
      .map((e) => e.reason),
  );

describe("a claim whose recall fails", () => {
  it("complete-and-claim sent again: the next task its first answer handed out comes again, without context; a first one gives its next task back", async () => {
    await using t = await startTestServer({ recordExecutions: false });
    const [a, b, c] = await t.api.tasks.enqueueMany.mutate({ tasks: ["alpha", "bravo", "charlie"].map((word) => ({ queue: "rq", payload: { summarize: `${word} quarterly figures` } })) });
    expect((await rest(t.url, "POST", "/tasks/claim", { agentId: "w", queues: ["rq"] })).body).toMatchObject({ id: a!.id, leaseToken: 1 });
    const call = { agentId: "w", leaseToken: 1, result: "done", next: { queues: ["rq"] } };
    // The first answer, as if lost on its way: b is w's now.
    expect((await rest(t.url, "POST", `/tasks/${a!.id}/complete-and-claim`, call)).body).toMatchObject({ next: { id: b!.id, leaseToken: 1 } });
    breakRecall(t);

    const again = await rest(t.url, "POST", `/tasks/${a!.id}/complete-and-claim`, call);
    expect(again).toMatchObject({ status: 200, body: { completed: { id: a!.id, status: "completed" }, next: { id: b!.id, status: "claimed", leaseOwner: "w", leaseToken: 1, attempts: 1, context: [] } } });
    expect(await t.api.tasks.get.query({ taskId: b!.id })).toMatchObject({ status: "claimed", leaseOwner: "w", leaseToken: 1 });

    // A first complete-and-claim: its complete stands, its next task goes back uncharged, saying why.
    const first = await rest(t.url, "POST", `/tasks/${b!.id}/complete-and-claim`, { ...call, result: "done b" });
    expect(first).toMatchObject({ status: 200, body: { completed: { id: b!.id, status: "completed" }, next: null } });
    expect(await t.api.tasks.get.query({ taskId: c!.id })).toMatchObject({ status: "pending", attempts: 0, leaseOwner: null, leaseToken: 1 });
    expect(releasedReasons(t, c!.id)).toEqual(["its context could not be recalled, so the claim failed"]);
  });

  it("a keyed claim sent again: the lease its first answer handed out comes again, without context; a first claim fails and gives its task back", async () => {
    await using t = await startTestServer({ recordExecutions: false });
    const [a, b] = await t.api.tasks.enqueueMany.mutate({ tasks: ["delta", "echo"].map((word) => ({ queue: "rk", payload: { summarize: `${word} yearly figures` } })) });
    const keyed = { agentId: "w", queues: ["rk"], idempotencyKey: "claim-1" };
    expect((await rest(t.url, "POST", "/tasks/claim", keyed)).body).toMatchObject({ id: a!.id, leaseToken: 1 });
    breakRecall(t);

    expect(await rest(t.url, "POST", "/tasks/claim", keyed)).toMatchObject({ status: 200, body: { id: a!.id, leaseOwner: "w", leaseToken: 1, attempts: 1, context: [] } });
    expect(await t.api.tasks.get.query({ taskId: a!.id })).toMatchObject({ status: "claimed", leaseOwner: "w" });

    const fresh = await rest(t.url, "POST", "/tasks/claim", { agentId: "w", queues: ["rk"], idempotencyKey: "claim-2" });
    expect(fresh.status).toBe(500);
    expect(await t.api.tasks.get.query({ taskId: b!.id })).toMatchObject({ status: "pending", attempts: 0, leaseOwner: null, leaseToken: 1 });
    expect(releasedReasons(t, b!.id)).toEqual(["its context could not be recalled, so the claim failed"]);
  });

  it("in-process (no answer to lose): the claim fails and its task goes back, uncharged", async () => {
    const dbPath = join(makeTempDir(), "embedded.db");
    const coordination = await openCoordination({ settings: { dbPath, logLevel: "silent", recordExecutions: false } });
    try {
      const task = await coordination.tasks.enqueue({ queue: "ri", payload: { summarize: "foxtrot monthly figures" } });
      breakRecall({ dbPath });
      await expect(coordination.tasks.claim("w", { queues: ["ri"] })).rejects.toThrow(/memories_fts|notes_fts/);
      expect(await coordination.tasks.get(task.id)).toMatchObject({ status: "pending", attempts: 0, leaseOwner: null, leaseToken: 1 });
      expect(releasedReasons({ dbPath }, task.id)).toEqual(["its context could not be recalled, so the claim failed"]);
    } finally {
      await coordination.close();
    }
  });
});
