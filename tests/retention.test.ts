// Settled tasks, execution records and notes are pruned to their retention, in small batches;
// pending and claimed tasks never are; stats say what is kept.
import { afterEach, describe, expect, it } from "vitest";
import { startTestServer, withDatabase, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
afterEach(async () => {
  await t?.stop({ removeFiles: true });
  t = undefined;
});

const count = (sql: string) => withDatabase(t!, (db) => db.prepare(sql).pluck().get() as number);

describe("retention", () => {
  it("by age: settled tasks and their execution records go, pending and claimed stay, notes stay by default", async () => {
    t = await startTestServer({ settledTaskRetentionMs: 60_000, executionRetentionMs: 60_000, retentionPruneMs: 3_600_000 });
    const { api, server } = t;
    for (let i = 0; i < 2; i++) await api.tasks.enqueueMany.mutate({ tasks: Array.from({ length: 600 }, (_, n) => ({ queue: "r", payload: { n } })) });
    const claimed = await api.tasks.claimMany.mutate({ agentId: "a", queues: ["r"], limit: 100, context: false });
    for (const task of claimed.slice(0, 90)) await api.tasks.complete.mutate({ taskId: task.id, agentId: "a" });
    await api.tasks.cancel.mutate({ taskId: claimed[95]!.id });
    await api.memory.remember.mutate({ content: "keep me", kind: "lesson" });
    // Everything settled so far is "old" an hour from now: pruned, in batches of 500 or fewer.
    const pruned = await server.services.retention.prune(Date.now() + 3_600_000);
    expect(pruned).toBe(91 + 90);
    expect(count("SELECT count(*) FROM tasks WHERE status IN ('completed', 'dead_letter', 'cancelled')")).toBe(0);
    expect(count("SELECT count(*) FROM tasks WHERE status = 'claimed'")).toBe(9);
    expect(count("SELECT count(*) FROM tasks WHERE status = 'pending'")).toBe(1100);
    expect(count("SELECT count(*) FROM memories WHERE kind = 'execution'")).toBe(0);
    expect(count("SELECT count(*) FROM memories WHERE kind = 'lesson'")).toBe(1);
    // The full-text index lost the pruned rows with them.
    expect(count("SELECT count(*) FROM memories_fts")).toBe(1);
    expect((await api.memory.recall.query({ query: "keep" })).map((m) => m.memory.content)).toEqual(["keep me"]);
    // Nothing settled recently is touched.
    expect(await server.services.retention.prune()).toBe(0);
  });

  it("by count: the newest settled tasks and notes are kept", async () => {
    t = await startTestServer({ settledTaskRetentionMs: 0, settledTaskRetentionCount: 10, noteRetentionCount: 2, retentionPruneMs: 3_600_000 });
    const { api, server } = t;
    await api.tasks.enqueueMany.mutate({ tasks: Array.from({ length: 30 }, () => ({ queue: "c" })) });
    const claimed = await api.tasks.claimMany.mutate({ agentId: "a", queues: ["c"], limit: 30, context: false });
    for (const task of claimed) {
      await api.tasks.complete.mutate({ taskId: task.id, agentId: "a" });
      // Each in a millisecond of its own: the count keeps every task as new as the 10th newest, so
      // two finished in one millisecond (a fast machine) would both be kept.
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    for (const content of ["first", "second", "third"]) await api.memory.remember.mutate({ content });
    await server.services.retention.prune();
    const kept = withDatabase(t, (db) => db.prepare("SELECT id FROM tasks WHERE status = 'completed' ORDER BY finishedAt, seq").pluck().all());
    expect(kept).toHaveLength(10);
    expect(kept).toEqual(claimed.slice(20).map((task) => task.id));
    expect(withDatabase(t, (db) => db.prepare("SELECT content FROM memories WHERE kind = 'note' ORDER BY seq").pluck().all())).toEqual(["second", "third"]);
    const stats = await api.tasks.stats.query();
    expect(stats.retention).toEqual({
      settledTasks: { maxAgeMs: null, maxCount: 10, oldestSettledAt: expect.any(Date) },
      executions: { maxAgeMs: 2_592_000_000, maxCount: null },
      notes: { maxAgeMs: null, maxCount: 2 },
    });
  });
});

describe("retention of memories, run after run", () => {
  it("each run reads from where the last one stopped, not past every note kept for good from the oldest", async () => {
    t = await startTestServer({ executionRetentionMs: 60_000, retentionPruneMs: 3_600_000 });
    const { api, server } = t;
    const lessons = ["the oldest lesson", "a lesson between records"];
    await api.memory.remember.mutate({ content: lessons[0]!, kind: "lesson" });
    const runs = async (n: number, queue: string) => {
      await api.tasks.enqueueMany.mutate({ tasks: Array.from({ length: n }, () => ({ queue })) });
      for (const task of await api.tasks.claimMany.mutate({ agentId: "a", queues: [queue], limit: n, context: false })) await api.tasks.complete.mutate({ taskId: task.id, agentId: "a" });
    };
    await runs(30, "first");
    await api.memory.remember.mutate({ content: lessons[1]!, kind: "lesson" });
    await runs(20, "second");
    // An hour on, every record so far is past its age: all go, the lessons stay.
    const hourOn = Date.now() + 3_600_000;
    expect(await server.services.retention.prune(hourOn)).toBe(50);
    await runs(10, "third");
    expect(await server.services.retention.prune(hourOn + 3_600_000)).toBe(10);
    expect(withDatabase(t, (db) => db.prepare("SELECT content FROM memories ORDER BY seq").pluck().all())).toEqual(lessons);
    // How the test sees where the next run reads from: an old record put below everything the
    // runs pruned (as no write ever puts one: seqs only grow) is not read, so not pruned. A run
    // that read from the oldest row, past the lessons, took it.
    withDatabase(t, (db) =>
      db
        .prepare("INSERT INTO memories (seq, id, kind, content, tags, data, createdAt) VALUES (2, 'planted', 'execution', 'planted', '[]', '{}', 0)")
        .run(),
    );
    await runs(5, "fourth");
    expect(await server.services.retention.prune(hourOn + 7_200_000)).toBe(5);
    expect(withDatabase(t, (db) => db.prepare("SELECT id FROM memories WHERE kind = 'execution'").pluck().all())).toEqual(["planted"]);
  });
});

describe("a task's history", () => {
  it("tasks.events lists its own events, oldest first, found from its creation on a log with others", async () => {
    t = await startTestServer();
    const { api } = t;
    await api.tasks.enqueueMany.mutate({ tasks: Array.from({ length: 50 }, () => ({ queue: "noise" })) });
    const task = await api.tasks.enqueue.mutate({ queue: "h" });
    await api.tasks.enqueueMany.mutate({ tasks: Array.from({ length: 50 }, () => ({ queue: "noise" })) });
    const claimed = (await api.tasks.claim.mutate({ agentId: "a", queues: ["h"] }))!;
    await api.tasks.complete.mutate({ taskId: claimed.id, agentId: "a" });
    const history = await api.tasks.events.query({ taskId: task.id });
    expect(history.map((e) => e.type)).toEqual(["task.enqueued", "task.claimed", "task.completed"]);
    expect(history.every((e) => (e.payload as { taskId: string }).taskId === task.id)).toBe(true);
    expect((await api.events.head.query()).head).toBe(history.at(-1)!.seq);
  });

  it("tasks.events finds a task's claim and end however many events came between its creation and its claim (a schedule's run, a long delay)", async () => {
    t = await startTestServer();
    const { api } = t;
    const task = await api.tasks.enqueue.mutate({ queue: "later" });
    // More events than one window reads (100,000), all of them stamped at the task's creation,
    // as another process's would be (the server reads them as it reads any other writer's).
    withDatabase(t, (db) => {
      const insert = db.prepare(`INSERT INTO events (type, source, payload, createdAt) VALUES ('noise.tick', 'test', '{}', ?)`);
      db.transaction(() => {
        for (let i = 0; i < 120_000; i++) insert.run(task.createdAt.getTime());
      })();
    });
    // Its claim comes more than a second (the windows' margin) after all of them.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const claimed = (await api.tasks.claim.mutate({ agentId: "a", queues: ["later"], context: false }))!;
    await api.tasks.complete.mutate({ taskId: claimed.id, agentId: "a", leaseToken: claimed.leaseToken });
    const history = await api.tasks.events.query({ taskId: task.id });
    expect(history.map((e) => e.type)).toEqual(["task.enqueued", "task.claimed", "task.completed"]);
    expect(history.map((e) => e.seq)).toEqual([...history.map((e) => e.seq)].sort((a, b) => a - b));
    expect(await api.tasks.events.query({ taskId: task.id, limit: 2 })).toEqual(history.slice(0, 2));
  });

  it("tasks.events cut by the byte budget answers the task's first events, never its last ones after a hole", async () => {
    t = await startTestServer({ maxResponseBytes: 65_536 });
    const { api } = t;
    const task = await api.tasks.enqueue.mutate({ queue: "big", maxAttempts: 10 });
    // Four failed runs whose errors (27 KB each, in their task.failed events) pass the budget together.
    for (let i = 0; i < 4; i++) {
      const run = (await api.tasks.claim.mutate({ agentId: "a", queues: ["big"], context: false }))!;
      await api.tasks.fail.mutate({ taskId: task.id, agentId: "a", leaseToken: run.leaseToken, error: "€".repeat(9000), retryAfterMs: 0 });
    }
    // The last claim a window of its own away (more than a second after the rest).
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const last = (await api.tasks.claim.mutate({ agentId: "a", queues: ["big"], context: false }))!;
    await api.tasks.complete.mutate({ taskId: task.id, agentId: "a", leaseToken: last.leaseToken });
    const all = withDatabase(t, (db) =>
      db.prepare(`SELECT seq FROM events WHERE type LIKE 'task.%' AND type <> 'task.progress' AND json_extract(payload, '$.taskId') = ? ORDER BY seq`).pluck().all(task.id),
    ) as number[];
    const history = (await api.tasks.events.query({ taskId: task.id })).map((e) => e.seq);
    expect(history.length).toBeGreaterThan(0);
    expect(history.length).toBeLessThan(all.length);
    expect(history).toEqual(all.slice(0, history.length));
  });
});

describe("stats", () => {
  it("a count is reused while no task changed, and never hides the caller's own write", async () => {
    t = await startTestServer();
    const { api, server } = t;
    const counted = () => server.services.db.sent.get("tasks.stats") ?? 0;
    await api.tasks.enqueue.mutate({ queue: "s" });
    expect((await api.tasks.stats.query()).totals.pending).toBe(1);
    const reads = counted();
    await Promise.all([api.tasks.stats.query(), api.tasks.stats.query(), api.tasks.stats.query()]);
    expect(counted()).toBe(reads);
    await api.tasks.enqueue.mutate({ queue: "s" });
    expect((await api.tasks.stats.query()).totals.pending).toBe(2);
    expect(counted()).toBe(reads + 1);
    // A reused count still ages its oldest pending task.
    const first = (await api.tasks.stats.query()).queues[0]!.oldestPendingAgeMs!;
    // A timer may fire a millisecond early, and ages are whole milliseconds: 50 ms of sleep ages it 30 at least.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect((await api.tasks.stats.query()).queues[0]!.oldestPendingAgeMs!).toBeGreaterThanOrEqual(first + 30);
    expect(counted()).toBe(reads + 1);
  });
});
