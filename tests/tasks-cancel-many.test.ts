// Cancelling a queue's tasks in bulk: tasks.cancelMany (POST /tasks/cancel), an operator's purge
// of what a bad deploy enqueued or a backlog no longer wanted. Each task goes as a single cancel
// takes it (its event, what waits on it, a schedule's run skipped); pages are bounded writes that
// stop at the tasks there were when the first one ran.
import { afterEach, describe, expect, it } from "vitest";
import { killAllCli, runOperator } from "./helpers/cli-process.js";
import { rest, startTestServer, withDatabase, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
afterEach(async () => {
  await killAllCli();
  await t?.stop({ removeFiles: true });
  t = undefined;
});

const HOUR = 3_600_000;

describe("tasks.cancelMany", () => {
  it("cancels the queue's pending and waiting tasks, oldest first, as a cancel does each; runs under way, other queues and settled tasks stay", async () => {
    t = await startTestServer();
    const api = t.api;
    const running = await api.tasks.enqueue.mutate({ queue: "bad" });
    await api.tasks.claim.mutate({ agentId: "a", queues: ["bad"], context: false });
    const due = await api.tasks.enqueue.mutate({ queue: "bad", payload: { n: 1 } });
    const delayed = await api.tasks.enqueue.mutate({ queue: "bad", delayMs: HOUR });
    const waiting = await api.tasks.enqueue.mutate({ queue: "bad", dependsOn: [running.id] });
    // In another queue, waiting on a task cancelled here: cancelled with it.
    const dependent = await api.tasks.enqueue.mutate({ queue: "good", dependsOn: [due.id] });
    const other = await api.tasks.enqueue.mutate({ queue: "good" });
    // In this queue, waiting on one cancelled before it: cancelled with that one, once (not listed).
    const chained = await api.tasks.enqueue.mutate({ queue: "bad", dependsOn: [due.id] });
    const { head } = await api.events.head.query();
    const page = await api.tasks.cancelMany.mutate({ queue: "bad", reason: "bad deploy" });
    expect(page).toEqual({ cancelled: [due.id, delayed.id, waiting.id], nextCursor: null });
    for (const id of page.cancelled) expect(await api.tasks.get.query({ taskId: id })).toMatchObject({ status: "cancelled", lastError: "bad deploy" });
    expect(await api.tasks.get.query({ taskId: running.id })).toMatchObject({ status: "claimed", leaseOwner: "a" });
    expect(await api.tasks.get.query({ taskId: other.id })).toMatchObject({ status: "pending" });
    expect(await api.tasks.get.query({ taskId: dependent.id })).toMatchObject({ status: "cancelled" });
    expect(await api.tasks.get.query({ taskId: chained.id })).toMatchObject({ status: "cancelled" });
    const events = await api.events.list.query({ afterSeq: head, types: ["task.cancelled"], limit: 10 });
    expect(events.map((e) => [(e.payload as { taskId: string }).taskId, (e.payload as { previousStatus: string }).previousStatus])).toEqual([
      [due.id, "pending"],
      [dependent.id, "waiting"],
      [chained.id, "waiting"],
      [delayed.id, "pending"],
      [waiting.id, "waiting"],
    ]);
    expect(events[0]!.payload).toEqual({ taskId: due.id, queue: "bad", previousStatus: "pending", agentId: null, reason: "bad deploy" });
    // Nothing left there to cancel in those states.
    expect(await api.tasks.cancelMany.mutate({ queue: "bad" })).toEqual({ cancelled: [], nextCursor: null });
    // Runs under way too, when asked: the holder's next heartbeat is refused.
    expect(await api.tasks.cancelMany.mutate({ queue: "bad", statuses: ["claimed"] })).toEqual({ cancelled: [running.id], nextCursor: null });
    const beat = await rest(t.url, "POST", `/tasks/${running.id}/heartbeat`, { agentId: "a" });
    expect([beat.status, beat.body.code]).toEqual([409, "LEASE_CONFLICT"]);
  });

  it("pages oldest first, within the tasks there were when it started: a schedule's next run, enqueued as its run is cancelled, is left alone", async () => {
    t = await startTestServer();
    const api = t.api;
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) ids.push((await api.tasks.enqueue.mutate({ queue: "q", payload: { i } })).id);
    const { schedule } = await api.schedules.set.mutate({ scheduleId: "sweep", everyMs: HOUR, task: { queue: "q" } });
    const first = await api.tasks.cancelMany.mutate({ queue: "q", limit: 5 });
    expect(first.cancelled).toEqual(ids.slice(0, 5));
    // Enqueued after the first page: not among the tasks it cancels.
    const late = await api.tasks.enqueue.mutate({ queue: "q" });
    const second = await api.tasks.cancelMany.mutate({ queue: "q", limit: 5, cursor: first.nextCursor! });
    expect(second.cancelled).toEqual(ids.slice(5, 10));
    const third = await api.tasks.cancelMany.mutate({ queue: "q", limit: 5, cursor: second.nextCursor! });
    expect(third).toEqual({ cancelled: [...ids.slice(10), schedule.nextTaskId], nextCursor: null });
    // The schedule's run was skipped: its next one waits, pending.
    const after = await api.schedules.get.query({ scheduleId: "sweep" });
    expect(after.nextTaskId).not.toBe(schedule.nextTaskId);
    expect(await api.tasks.get.query({ taskId: after.nextTaskId! })).toMatchObject({ status: "pending", queue: "q" });
    expect(await api.tasks.get.query({ taskId: late.id })).toMatchObject({ status: "pending" });
  });

  it("takes only tasks enqueued in [createdAfter, createdBefore), and dead letters when asked", async () => {
    t = await startTestServer();
    const api = t.api;
    const before = await api.tasks.enqueue.mutate({ queue: "w" });
    while (Date.now() <= before.createdAt.getTime()) await new Promise((resolve) => setTimeout(resolve, 5));
    const from = new Date();
    const inside = await api.tasks.enqueue.mutate({ queue: "w", maxAttempts: 1, priority: 0 });
    while (Date.now() <= inside.createdAt.getTime()) await new Promise((resolve) => setTimeout(resolve, 5));
    const until = new Date();
    const later = await api.tasks.enqueue.mutate({ queue: "w" });
    expect((await api.tasks.cancelMany.mutate({ queue: "w", createdAfter: from, createdBefore: until, statuses: ["dead_letter"] })).cancelled).toEqual([]);
    // Its only attempt failed: a dead letter, discarded as one.
    const insideRun = await api.tasks.claim.mutate({ agentId: "a", queues: ["w"], context: false });
    expect(insideRun?.id).toBe(inside.id);
    await api.tasks.fail.mutate({ taskId: inside.id, agentId: "a", error: "broken" });
    expect((await api.tasks.cancelMany.mutate({ queue: "w", createdAfter: from, createdBefore: until, statuses: ["dead_letter", "pending"] })).cancelled).toEqual([inside.id]);
    expect((await api.tasks.get.query({ taskId: inside.id })).status).toBe("cancelled");
    expect((await api.tasks.get.query({ taskId: before.id })).status).toBe("pending");
    expect((await api.tasks.get.query({ taskId: later.id })).status).toBe("pending");
  });

  it("looks at 5,000 tasks of any queue a call: a page past them is empty, with a cursor to go on", async () => {
    t = await startTestServer();
    const api = t.api;
    const now = Date.now();
    withDatabase(t, (db) =>
      db.exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 6000)
               INSERT INTO tasks (id, queue, payload, runAt, createdAt, updatedAt) SELECT 'filler-' || i, 'other', '{}', ${now}, ${now}, ${now} FROM n`),
    );
    const task = await api.tasks.enqueue.mutate({ queue: "target" });
    const first = await api.tasks.cancelMany.mutate({ queue: "target" });
    expect(first.cancelled).toEqual([]);
    expect(first.nextCursor).toMatch(/^\d+-\d+$/);
    expect(await api.tasks.cancelMany.mutate({ queue: "target", cursor: first.nextCursor! })).toEqual({ cancelled: [task.id], nextCursor: null });
  });

  it("reads 16 MiB of the queue's rows a call at most to find what to cancel: settled tasks with large payloads are walked over pages", async () => {
    t = await startTestServer();
    const api = t.api;
    const now = Date.now();
    // 40 completed tasks of the queue, a payload of about 1 MB each (its state follows it in the row).
    withDatabase(t, (db) =>
      db.exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40)
               INSERT INTO tasks (id, queue, payload, runAt, createdAt, updatedAt, status, finishedAt)
               SELECT 'big-' || i, 'q', '"' || hex(randomblob(500000)) || '"', ${now}, ${now}, ${now}, 'completed', ${now} FROM n`),
    );
    const task = await api.tasks.enqueue.mutate({ queue: "q" });
    const pages: string[][] = [];
    let cursor: string | undefined;
    do {
      const page = await api.tasks.cancelMany.mutate(cursor === undefined ? { queue: "q" } : { queue: "q", cursor });
      pages.push(page.cancelled);
      cursor = page.nextCursor ?? undefined;
    } while (cursor !== undefined);
    // 16 rows of 1 MB a page: 16, 16, then the last 8 and the pending task.
    expect(pages).toEqual([[], [], [task.id]]);
  });

  it("refuses bad input naming it, and writes nothing then", async () => {
    t = await startTestServer();
    // The task as stored (its enqueue's answer says, beside it, that no other task answered it).
    const { deduplicated: _, replayed: __, ...task } = await t.api.tasks.enqueue.mutate({ queue: "q" });
    for (const [body, message] of [
      [{}, "queue: is required"],
      [{ queue: "q", statuses: ["completed"] }, 'statuses[0]: must be one of "pending", "waiting", "claimed", "dead_letter"'],
      [{ queue: "q", statuses: [] }, "statuses: must have at least 1 item"],
      [{ queue: "q", cursor: "12" }, "cursor: must be a nextCursor value"],
      [{ queue: "q", limit: 0 }, "limit: must be at least 1"],
      [{ queue: "q", createdAfter: 2000, createdBefore: 1000 }, "createdBefore: must be later than createdAfter: no task was enqueued in that window"],
    ] as const) {
      const answer = await rest(t.url, "POST", "/tasks/cancel", body);
      expect([answer.status, answer.body.code, answer.body.message]).toEqual([400, "INVALID_INPUT", message]);
    }
    expect(await t.api.tasks.get.query({ taskId: task.id })).toEqual(task);
  });

  it("the operator's command cancels a queue's tasks, all pages", async () => {
    t = await startTestServer();
    const env = { COORDINATION_URL: t.url };
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await t.api.tasks.enqueue.mutate({ queue: "ops" })).id);
    await t.api.tasks.enqueue.mutate({ queue: "keep" });
    const done = await runOperator({ args: ["tasks", "cancel", "--all", "--queue", "ops", "--reason", "not wanted"], env });
    expect(done).toMatchObject({ code: 0, stdout: "cancelled 3 tasks of queue ops (and any waiting on them)\n" });
    for (const id of ids) expect(await t.api.tasks.get.query({ taskId: id })).toMatchObject({ status: "cancelled", lastError: "not wanted" });
    expect((await t.api.tasks.stats.query({ queue: "keep" })).queues[0]).toMatchObject({ queue: "keep", counts: expect.objectContaining({ pending: 1 }) });
    expect(await runOperator({ args: ["tasks", "cancel", "--all"], env })).toMatchObject({ code: 2, stderr: expect.stringContaining("tasks cancel --all needs --queue QUEUE") });
    expect(await runOperator({ args: ["tasks", "cancel", "--all", "--queue", "ops", "--status", "done"], env })).toMatchObject({ code: 2, stderr: expect.stringContaining('--status[0]: must be one of "pending", "waiting", "claimed", "dead_letter"') });
  });
});
