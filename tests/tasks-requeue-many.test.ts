// Bulk requeue (tasks.requeueMany, POST /tasks/requeue, `coordination tasks requeue --all`): an
// outage dead-letters a queue's tasks; once it is over, the operator brings them back in pages,
// oldest first, each once, without reading the completed tasks.
import { afterEach, describe, expect, it, vi } from "vitest";
import { killAllCli, runOperator } from "./helpers/cli-process.js";
import { rest, startTestServer, withDatabase, type TestServer } from "./helpers/test-server.js";
import { Statements } from "../src/db/statements.js";
import { TaskStore } from "../src/tasks/task-store.js";

let t: TestServer | undefined;
afterEach(async () => {
  await killAllCli();
  await t?.stop({ removeFiles: true });
  t = undefined;
});

/** Enqueues a task in `queue` and fails it for good: a dead letter. Its id. */
async function deadLetter(server: TestServer, queue: string, n: number): Promise<string> {
  const task = await server.api.tasks.enqueue.mutate({ queue, payload: { n }, maxAttempts: 1 });
  const claimed = await server.api.tasks.claim.mutate({ agentId: "worker", queues: [queue] });
  expect(claimed?.id).toBe(task.id);
  await server.api.tasks.fail.mutate({ taskId: task.id, agentId: "worker", error: `outage ${n}` });
  return task.id;
}

describe("tasks.requeueMany", () => {
  it("brings dead letters back oldest first, a page at a time, each once, and only those asked for", async () => {
    t = await startTestServer();
    const mail = [await deadLetter(t, "mail", 1), await deadLetter(t, "mail", 2)];
    const other = await deadLetter(t, "other", 3);
    mail.push(await deadLetter(t, "mail", 4), await deadLetter(t, "mail", 5));
    const cancelled = await t.api.tasks.enqueue.mutate({ queue: "mail", payload: { n: 6 } });
    await t.api.tasks.cancel.mutate({ taskId: cancelled.id });
    const completed = await t.api.tasks.enqueue.mutate({ queue: "mail", payload: { n: 7 } });
    await t.api.tasks.claim.mutate({ agentId: "worker", queues: ["mail"] });
    await t.api.tasks.complete.mutate({ taskId: completed.id, agentId: "worker", result: 1 });

    const first = await t.api.tasks.requeueMany.mutate({ queue: "mail", limit: 2 });
    expect(first).toEqual({ requeued: mail.slice(0, 2), nextCursor: expect.stringMatching(/^\d+$/) });
    // A task brought back that fails for good again is behind the cursor: not brought back twice.
    const again = await t.api.tasks.claim.mutate({ agentId: "worker", queues: ["mail"] });
    expect(again?.id).toBe(mail[0]);
    await t.api.tasks.fail.mutate({ taskId: mail[0]!, agentId: "worker", error: "still down", retry: false });
    const second = await t.api.tasks.requeueMany.mutate({ queue: "mail", limit: 2, cursor: first.nextCursor! });
    expect(second).toEqual({ requeued: mail.slice(2, 4), nextCursor: null });

    for (const id of mail.slice(1)) expect(await t.api.tasks.get.query({ taskId: id })).toMatchObject({ status: "pending", attempts: 0, errorHistory: [expect.objectContaining({ error: expect.stringMatching(/^outage/) })] });
    expect((await t.api.tasks.get.query({ taskId: mail[0]! })).status).toBe("dead_letter");
    expect((await t.api.tasks.get.query({ taskId: other })).status).toBe("dead_letter");
    expect((await t.api.tasks.get.query({ taskId: cancelled.id })).status).toBe("cancelled");
    expect((await t.api.tasks.get.query({ taskId: completed.id })).status).toBe("completed");
    // Every one has its task.requeued event, as a single requeue does.
    const events = await t.api.events.list.query({ types: ["task.requeued"], limit: 100 });
    expect(events.map((e) => e.payload as { taskId: string; queue: string; previousStatus: string }).map((p) => [p.taskId, p.queue, p.previousStatus])).toEqual([...mail.slice(0, 4)].map((id) => [id, "mail", "dead_letter"]));

    // Without a cursor, the re-failed one comes back too; a cancelled task is not a dead letter.
    expect(await t.api.tasks.requeueMany.mutate({ queue: "mail" })).toEqual({ requeued: [mail[0]], nextCursor: null });
    expect(await t.api.tasks.requeueMany.mutate({})).toEqual({ requeued: [other], nextCursor: null });
    expect(await t.api.tasks.requeueMany.mutate({})).toEqual({ requeued: [], nextCursor: null });
  });

  it("finishedAfter and finishedBefore keep to the tasks dead-lettered in that window: an outage's, not older ones", async () => {
    t = await startTestServer();
    const ids = [await deadLetter(t, "q", 1), await deadLetter(t, "q", 2), await deadLetter(t, "q", 3)];
    // Dead-lettered a second apart, whatever the machine's speed.
    withDatabase(t, (db) => ids.forEach((id, i) => db.prepare("UPDATE tasks SET finishedAt = ? WHERE id = ?").run(Date.UTC(2026, 0, 1, 0, 0, i), id)));
    const second = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s));
    expect(await t.api.tasks.requeueMany.mutate({ finishedAfter: second(1), finishedBefore: second(2) })).toEqual({ requeued: [ids[1]], nextCursor: null });
    expect(await t.api.tasks.requeueMany.mutate({ finishedBefore: second(1) })).toEqual({ requeued: [ids[0]], nextCursor: null });
    expect((await t.api.tasks.get.query({ taskId: ids[2]! })).status).toBe("dead_letter");
    expect(await t.api.tasks.requeueMany.mutate({ finishedAfter: second(2) })).toEqual({ requeued: [ids[2]], nextCursor: null });
  });

  it("wakes a claim waiting for work", async () => {
    t = await startTestServer();
    const id = await deadLetter(t, "q", 1);
    const waiting = t.api.tasks.claim.mutate({ agentId: "patient", queues: ["q"], waitMs: 20_000 });
    // The long-poll parks first (nothing is pending); the requeue then makes the task claimable.
    await vi.waitFor(async () => expect(await (await fetch(`${t!.url}/metrics`)).text()).toMatch(/^coordination_long_polls_parked\{kind="claim"\} 1$/m), { timeout: 15_000, interval: 25 });
    expect((await t.api.tasks.requeueMany.mutate({ queue: "q" })).requeued).toEqual([id]);
    expect((await waiting)?.id).toBe(id);
  });

  it("reads dead letters on their own indexes, never a sort of them, with or without ANALYZE", async () => {
    t = await startTestServer();
    await deadLetter(t, "q", 1);
    withDatabase(t, (db) => {
      // Many completed tasks and dead letters, so that ANALYZE has something to weigh.
      const insert = db.prepare(`INSERT INTO tasks (id, queue, payload, status, runAt, createdAt, updatedAt, finishedAt) VALUES (?, ?, '{}', ?, 0, 0, 0, 0)`);
      db.transaction(() => {
        for (let i = 0; i < 3000; i++) insert.run(`c${i}`, "q", "completed");
        for (let i = 0; i < 1000; i++) insert.run(`d${i}`, i % 2 ? "q" : "other", "dead_letter");
      })();
      const sql: string[] = [];
      const store = new TaskStore(new Statements(new Proxy(db, { get: (target, key) => (key === "prepare" ? (text: string) => (sql.push(text), target.prepare(text)) : Reflect.get(target, key, target)) })));
      // The store's own statements, as it prepares them.
      store.deadLetters(undefined, 0, 10);
      store.deadLetters("q", 0, 10);
      const statements = sql.filter((text) => text.includes("INDEXED BY"));
      expect(statements).toHaveLength(2);
      const plans = () =>
        statements.map((text) => db.prepare(`EXPLAIN QUERY PLAN ${text}`).all(...(text.includes("queue = ?") ? ["q", 0, 10] : [0, 10])).map((row) => (row as { detail: string }).detail));
      const expected = [["SEARCH tasks USING INDEX tasks_dead_letter_idx (seq>?)"], ["SEARCH tasks USING INDEX tasks_dead_letter_queue_idx (queue=? AND seq>?)"]];
      expect(plans()).toEqual(expected);
      db.exec("ANALYZE");
      expect(plans()).toEqual(expected);
    });
  });

  it("a page rewrites 4 MiB of task rows at most (at least one task); a filter is looked for a window of 5,000 at a time", async () => {
    t = await startTestServer();
    const big = "x".repeat(600 * 1024);
    const ids: string[] = [];
    for (let n = 0; n < 10; n++) {
      const task = await t.api.tasks.enqueue.mutate({ queue: "big", payload: { big, n }, maxAttempts: 1 });
      await t.api.tasks.claim.mutate({ agentId: "worker", queues: ["big"] });
      await t.api.tasks.fail.mutate({ taskId: task.id, agentId: "worker", error: "too big" });
      ids.push(task.id);
    }
    const first = await t.api.tasks.requeueMany.mutate({ queue: "big", limit: 1000 });
    expect(first.requeued).toEqual(ids.slice(0, 6)); // 6 × 600 KiB fit in 4 MiB, a seventh would not
    const second = await t.api.tasks.requeueMany.mutate({ queue: "big", limit: 1000, cursor: first.nextCursor! });
    expect(second).toEqual({ requeued: ids.slice(6), nextCursor: null });

    // 6,000 dead letters of which the newest alone settled before the bound: the first window has none of it.
    const late = withDatabase(t, (db) => {
      const insert = db.prepare(`INSERT INTO tasks (id, queue, payload, status, runAt, createdAt, updatedAt, finishedAt) VALUES (?, 'w', '{}', 'dead_letter', 0, 0, 0, ?)`);
      db.transaction(() => {
        for (let i = 0; i < 5999; i++) insert.run(`w${i}`, 2_000_000);
        insert.run("w-early", 1_000);
      })();
      return "w-early";
    });
    const windowed = await t.api.tasks.requeueMany.mutate({ queue: "w", finishedBefore: 1_000_000 });
    expect(windowed).toEqual({ requeued: [], nextCursor: expect.stringMatching(/^\d+$/) });
    expect(await t.api.tasks.requeueMany.mutate({ queue: "w", finishedBefore: 1_000_000, cursor: windowed.nextCursor! })).toEqual({ requeued: [late], nextCursor: null });
  });

  it("by time, reads 16 MiB of dead letters a call at most to find when each died: large payloads are walked over pages", async () => {
    t = await startTestServer();
    // 40 dead letters of about 1 MB from before the bound (when each died follows its payload in the row), then one after.
    withDatabase(t, (db) =>
      db.exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40)
               INSERT INTO tasks (id, queue, payload, status, runAt, createdAt, updatedAt, finishedAt)
               SELECT 'big-' || i, 'b', '"' || hex(randomblob(500000)) || '"', 'dead_letter', 0, 0, 0, 1000 FROM n;
               INSERT INTO tasks (id, queue, payload, status, runAt, createdAt, updatedAt, finishedAt) VALUES ('after', 'b', '{}', 'dead_letter', 0, 0, 0, 5000)`),
    );
    const pages: string[][] = [];
    let cursor: string | undefined;
    do {
      const page = await t.api.tasks.requeueMany.mutate({ queue: "b", finishedAfter: 2000, ...(cursor === undefined ? {} : { cursor }) });
      pages.push(page.requeued);
      cursor = page.nextCursor ?? undefined;
    } while (cursor !== undefined);
    // 16 rows of 1 MB a page: 16, 16, then the last 8 and the one after the bound.
    expect(pages).toEqual([[], [], ["after"]]);
  });

  it("over REST: POST /tasks/requeue, with its input checked", async () => {
    t = await startTestServer();
    const id = await deadLetter(t, "q", 1);
    expect(await rest(t.url, "POST", "/tasks/requeue", { queue: "q", limit: 10 })).toEqual({ status: 200, body: { requeued: [id], nextCursor: null } });
    for (const [body, field] of [
      [{ limit: 0 }, "limit"],
      [{ limit: 1001 }, "limit"],
      [{ status: "cancelled" }, "status"],
      [{ cursor: "x" }, "cursor"],
      [{ finishedBefore: "yesterday" }, "finishedBefore"],
      [{ finishedAfter: -1 }, "finishedAfter"],
      // Swapped times match no dead letter: refused, not answered "none requeued".
      [{ finishedAfter: "2026-12-02T00:00:00Z", finishedBefore: "2026-12-01T00:00:00Z" }, "finishedBefore"],
      [{ finishedAfter: 5000, finishedBefore: 5000 }, "finishedBefore"],
      [{ taskId: id }, "taskId"],
    ] as const) {
      const answer = await rest(t.url, "POST", "/tasks/requeue", body);
      expect(answer.status).toBe(400);
      expect(JSON.stringify(answer.body)).toContain(field);
    }
  });

  it("coordination tasks requeue --all brings every dead letter of a queue back", async () => {
    t = await startTestServer();
    const ids = [];
    for (let n = 0; n < 3; n++) ids.push(await deadLetter(t, "q", n));
    const kept = await deadLetter(t, "elsewhere", 9);
    const env = { COORDINATION_URL: t.url };
    const none = await runOperator({ args: ["tasks", "requeue", "--all", "--queue", "q", "--after", "2999-01-01T00:00:00Z"], env });
    expect([none.code, none.stdout]).toEqual([0, "requeued 0 dead letters of queue q\n"]);
    const done = await runOperator({ args: ["tasks", "requeue", "--all", "--queue", "q", "--after", "0"], env });
    expect([done.code, done.stdout, done.stderr]).toEqual([0, "requeued 3 dead letters of queue q\n", ""]);
    for (const id of ids) expect((await t.api.tasks.get.query({ taskId: id })).status).toBe("pending");
    expect((await t.api.tasks.get.query({ taskId: kept })).status).toBe("dead_letter");
    const json = await runOperator({ args: ["tasks", "requeue", "--all", "--json"], env });
    expect(JSON.parse(json.stdout)).toEqual({ requeued: [kept] });
    const bad = await runOperator({ args: ["tasks", "requeue", "--all", "--status", "cancelled"], env });
    expect([bad.code, bad.stderr.split("\n")[0]]).toEqual([2, "coordination: tasks requeue --all does not take --status (it takes --all, --queue, --after, --before, --clear-checkpoint)"]);
    // A time the server refuses is named by the option it came from, not by the API's field.
    const yesterday = await runOperator({ args: ["tasks", "requeue", "--all", "--queue", "q", "--after", "yesterday"], env });
    expect(yesterday.code).toBe(2);
    expect(yesterday.stderr).toMatch(/^coordination: INVALID_INPUT: --after: /);
    expect(yesterday.stderr).not.toContain("finishedAfter");
    const swapped = await runOperator({ args: ["tasks", "requeue", "--all", "--queue", "q", "--after", "2026-12-02T00:00:00Z", "--before", "2026-12-01T00:00:00Z"], env });
    expect([swapped.code, swapped.stderr.split("\n")[0]]).toEqual([2, "coordination: INVALID_INPUT: --before: must be later than finishedAfter: no task was dead-lettered in that window"]);
    // Only an option the command was given: `queues pause NAME` has no --queue, its field keeps its name.
    const long = await runOperator({ args: ["queues", "pause", "q".repeat(300)], env });
    expect([long.code, long.stderr]).toEqual([2, "coordination: INVALID_INPUT: queue: must be at most 200 characters long\n"]);
  });
});
