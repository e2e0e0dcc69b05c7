// Deduplicated enqueues (tasks.enqueue's dedupe): an enqueue naming a key that a task of its queue
// holds while that task waits to run (or, with until "settled", runs) adds no task and is answered
// with that one; with replace, the task takes the newest payload and due time (a debounce). Each
// case is one a queue's users met: a storm of "reindex repo 42" requests that ran 40 times, a
// debounced summary that ran with the first text instead of the last, a singleton job run twice.
import { afterEach, describe, expect, it } from "vitest";
import { killAllCli, runOperator } from "./helpers/cli-process.js";
import { DEDUPE_LOOKUP } from "../src/tasks/task-store.js";
import { rest, startTestServer, withDatabase, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
afterEach(async () => {
  await killAllCli();
  await t?.stop({ removeFiles: true });
  t = undefined;
});

const HOUR = 3_600_000;

describe("tasks.enqueue's dedupe", () => {
  it("answers a later enqueue of the same queue and key with the task that waits, adding none; once it runs, the next enqueue adds one", async () => {
    t = await startTestServer();
    const api = t.api;
    const first = await api.tasks.enqueue.mutate({ queue: "index", payload: { repo: 42 }, dedupe: { key: "reindex:42" } });
    expect([first.deduplicated, first.dedupeKey, first.duplicates, first.replacedAt]).toEqual([false, "reindex:42", 0, null]);
    const again = await api.tasks.enqueue.mutate({ queue: "index", payload: { repo: 42, asked: "again" }, priority: 0, dedupe: { key: "reindex:42" } });
    // The task as it was, counted: its first enqueue's payload and priority stand.
    expect([again.id, again.deduplicated, again.duplicates, again.payload, again.priority, again.status]).toEqual([first.id, true, 1, { repo: 42 }, 5, "pending"]);
    // Another queue's key, another key, no key: tasks of their own.
    const otherQueue = await api.tasks.enqueue.mutate({ queue: "index-2", dedupe: { key: "reindex:42" } });
    const otherKey = await api.tasks.enqueue.mutate({ queue: "index", dedupe: { key: "reindex:43" } });
    const none = await api.tasks.enqueue.mutate({ queue: "index" });
    expect(new Set([first.id, otherQueue.id, otherKey.id, none.id]).size).toBe(4);
    expect([otherQueue.deduplicated, otherKey.deduplicated, none.deduplicated, none.dedupeKey]).toEqual([false, false, false, null]);

    // Claimed: work asked for from now on was not seen by the run under way, so it is a task again.
    const claimed = await api.tasks.claim.mutate({ agentId: "a1", queues: ["index"] });
    expect(claimed?.id).toBe(first.id);
    const afterClaim = await api.tasks.enqueue.mutate({ queue: "index", payload: { repo: 42 }, dedupe: { key: "reindex:42" } });
    expect([afterClaim.id === first.id, afterClaim.deduplicated, afterClaim.duplicates]).toEqual([false, false, 0]);
    const again2 = await api.tasks.enqueue.mutate({ queue: "index", dedupe: { key: "reindex:42" } });
    expect([again2.id, again2.deduplicated, again2.duplicates]).toEqual([afterClaim.id, true, 1]);
    expect((await api.tasks.get.query({ taskId: first.id })).duplicates).toBe(1);

    const events = await api.events.list.query({ types: ["task.deduplicated"], limit: 10 });
    expect(events.map((e) => e.payload)).toEqual([
      { taskId: first.id, queue: "index", dedupeKey: "reindex:42", duplicates: 1, status: "pending", replaced: false, priority: 5, capability: null, targetAgentId: null, runAt: first.runAt.toISOString(), previousRunAt: first.runAt.toISOString() },
      { taskId: afterClaim.id, queue: "index", dedupeKey: "reindex:42", duplicates: 1, status: "pending", replaced: false, priority: 5, capability: null, targetAgentId: null, runAt: afterClaim.runAt.toISOString(), previousRunAt: afterClaim.runAt.toISOString() },
    ]);
    const enqueued = await api.events.list.query({ types: ["task.enqueued"], limit: 10 });
    expect(enqueued.map((e) => (e.payload as { dedupeKey?: string }).dedupeKey)).toEqual(["reindex:42", "reindex:42", "reindex:43", undefined, "reindex:42"]);
    // Counted apart in /metrics.
    // Which tasks hold a key: tasks.list by dedupeKey (with a status: the one answering its enqueues now), and from the command line.
    const holding = await api.tasks.list.query({ queue: "index", dedupeKey: "reindex:42" });
    expect(holding.items.map((task) => [task.id, task.status])).toEqual([[first.id, "claimed"], [afterClaim.id, "pending"]]);
    // Keys are a queue's: another queue's task of the same key is listed without a queue.
    expect((await api.tasks.list.query({ dedupeKey: "reindex:42", status: "pending" })).items.map((task) => task.id)).toEqual([otherQueue.id, afterClaim.id]);
    const listed = await runOperator({ args: ["tasks", "list", "--queue", "index", "--dedupe-key", "reindex:42", "--status", "pending", "--json"], env: { COORDINATION_URL: t.url } });
    expect([listed.code, JSON.parse(listed.stdout).items.map((task: { id: string }) => task.id)]).toEqual([0, [afterClaim.id]]);
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    expect(metrics).toContain('coordination_task_transitions_total{queue="index",transition="deduplicated"} 2');
    // ...whose help names it among the transitions, as it does every other.
    expect(metrics).toContain("# HELP coordination_task_transitions_total Task transitions committed by this process, per queue: enqueued, deduplicated (an enqueue answered with the task holding its dedupe key), ready");
  });

  it('until "settled" answers with the task while it runs too, so at most one of a key is under way; after its settle the next enqueue adds one', async () => {
    t = await startTestServer();
    const body = { queue: "nightly", payload: { job: "report" }, dedupe: { key: "report", until: "settled" } };
    const first = await rest(t.url, "POST", "/tasks", body);
    expect([first.status, first.body.deduplicated, first.body.dedupeKey]).toEqual([200, false, "report"]);
    const claimed = await t.api.tasks.claim.mutate({ agentId: "a1", queues: ["nightly"] });
    const whileRunning = await rest(t.url, "POST", "/tasks", body);
    expect([whileRunning.body.id, whileRunning.body.deduplicated, whileRunning.body.status, whileRunning.body.duplicates]).toEqual([first.body.id, true, "claimed", 1]);
    // A claim finds nothing more to do: no second task of the key was added.
    expect(await t.api.tasks.claim.mutate({ agentId: "a2", queues: ["nightly"] })).toBeNull();
    // The default, until "claimed", does not look at a run under way.
    const byDefault = await rest(t.url, "POST", "/tasks", { ...body, dedupe: { key: "report" } });
    expect([byDefault.body.id === first.body.id, byDefault.body.deduplicated]).toEqual([false, false]);
    await t.api.tasks.cancel.mutate({ taskId: byDefault.body.id });
    await t.api.tasks.complete.mutate({ taskId: first.body.id, agentId: "a1", leaseToken: claimed!.leaseToken, result: {} });
    const afterSettle = await rest(t.url, "POST", "/tasks", body);
    expect([afterSettle.body.id === first.body.id, afterSettle.body.deduplicated, afterSettle.body.status]).toEqual([false, false, "pending"]);
  });

  it("replace takes the newest payload and pushes the due time back (a debounce); a claim parked on the queue wakes when it falls due sooner", async () => {
    t = await startTestServer();
    const api = t.api;
    const debounce = (text: string, delayMs: number) => api.tasks.enqueue.mutate({ queue: "summaries", payload: { text }, delayMs, dedupe: { key: "doc-7", replace: true }, idempotencyKey: `edit-${text}` });
    const first = await debounce("h", HOUR);
    const second = await debounce("he", 2 * HOUR);
    expect([second.id, second.deduplicated, second.duplicates, second.payload]).toEqual([first.id, true, 1, { text: "he" }]);
    expect(second.runAt.getTime()).toBeGreaterThan(first.runAt.getTime() + HOUR - 1000);
    expect(second.replacedAt).not.toBeNull();
    // The first enqueue sent again (its answer lost) meets its own task, whose payload another replaced: no 409.
    const resent = await debounce("h", HOUR);
    expect([resent.id, resent.deduplicated, resent.payload]).toEqual([first.id, false, { text: "he" }]);
    // A claim parked on the queue, then the last edit, due now: the claim takes it with its text.
    const parked = api.tasks.claim.mutate({ agentId: "writer", queues: ["summaries"], waitMs: 60_000 });
    const last = await debounce("hello", 0);
    expect([last.id, last.duplicates, last.payload]).toEqual([first.id, 2, { text: "hello" }]);
    const taken = await parked;
    expect([taken?.id, taken?.payload, taken?.attempts]).toEqual([first.id, { text: "hello" }, 1]);
    const replaced = (await api.events.list.query({ types: ["task.deduplicated"], limit: 10 })).map((e) => e.payload as { replaced: boolean; runAt: string; previousRunAt: string });
    expect(replaced.map((p) => p.replaced)).toEqual([true, true]);
    expect(replaced[1]!.runAt < replaced[1]!.previousRunAt).toBe(true);
  });

  it("replace with a due time at or after the expiry the task keeps is a 400 naming the field; with a new ttlMs it moves both", async () => {
    t = await startTestServer();
    const first = await t.api.tasks.enqueue.mutate({ queue: "q", ttlMs: 60_000, dedupe: { key: "k", replace: true } });
    const late = await rest(t.url, "POST", "/tasks", { queue: "q", delayMs: HOUR, dedupe: { key: "k", replace: true } });
    expect([late.status, late.body.code, late.body.details.taskId]).toEqual([400, "INVALID_INPUT", first.id]);
    expect(late.body.message).toMatch(/^delayMs: \S+Z is not before task "\S+" \(which holds dedupe key "k"\) expires \(its expiresAt, \S+Z\): give expiresAt or ttlMs too$/);
    // Nothing was written: the task is as it was.
    expect((await t.api.tasks.get.query({ taskId: first.id })).duplicates).toBe(0);
    const moved = await t.api.tasks.enqueue.mutate({ queue: "q", delayMs: HOUR, ttlMs: 60_000, dedupe: { key: "k", replace: true } });
    expect([moved.id, moved.deduplicated, moved.expiresAt!.getTime() - moved.runAt.getTime()]).toEqual([first.id, true, 60_000]);
  });

  it("a task past its expiry, or settled, answers no enqueue: a new task holds the key", async () => {
    t = await startTestServer();
    const first = await t.api.tasks.enqueue.mutate({ queue: "q", ttlMs: HOUR, dedupe: { key: "k" } });
    // Its expiry came and the expiry job has not cancelled it yet: it will never run.
    withDatabase(t, (db) => db.prepare(`UPDATE tasks SET expiresAt = ? WHERE id = ?`).run(Date.now() - 1, first.id));
    const second = await t.api.tasks.enqueue.mutate({ queue: "q", dedupe: { key: "k" } });
    expect([second.id === first.id, second.deduplicated]).toEqual([false, false]);
    await t.api.tasks.cancel.mutate({ taskId: second.id });
    const third = await t.api.tasks.enqueue.mutate({ queue: "q", dedupe: { key: "k", until: "settled" } });
    expect([third.id === second.id, third.deduplicated]).toEqual([false, false]);
  });

  it("a task given back to fall due at or after its expiry (a release's delay past it) answers no enqueue: it will never run, so a new task holds the key", async () => {
    t = await startTestServer();
    const first = await t.api.tasks.enqueue.mutate({ queue: "q", ttlMs: HOUR, dedupe: { key: "k" } });
    const claimed = await t.api.tasks.claim.mutate({ agentId: "a1", queues: ["q"] });
    const released = await t.api.tasks.release.mutate({ taskId: first.id, agentId: "a1", leaseToken: claimed!.leaseToken, delayMs: 2 * HOUR });
    expect([released.status, released.runAt.getTime() >= released.expiresAt!.getTime()]).toEqual(["pending", true]);
    const second = await t.api.tasks.enqueue.mutate({ queue: "q", payload: { asked: "again" }, dedupe: { key: "k" } });
    expect([second.id === first.id, second.deduplicated, second.payload]).toEqual([false, false, { asked: "again" }]);
    expect((await t.api.tasks.get.query({ taskId: first.id })).duplicates).toBe(0);
    // The new one answers the next enqueue: it is due before it expires (it never does).
    const third = await t.api.tasks.enqueue.mutate({ queue: "q", dedupe: { key: "k" } });
    expect([third.id, third.deduplicated]).toEqual([second.id, true]);
  });

  it("in one enqueueMany a later task with the same key is answered with the earlier one, which a tasks[i] names too", async () => {
    t = await startTestServer();
    const batch = await t.api.tasks.enqueueMany.mutate({
      tasks: [{ queue: "q", dedupe: { key: "k" } }, { queue: "q", payload: { n: 2 }, dedupe: { key: "k" } }, { queue: "q", dependsOn: ["tasks[1]"] }],
    });
    expect(batch.map((task) => [task.deduplicated, task.duplicates])).toEqual([[false, 0], [true, 1], [false, 0]]);
    expect(batch[1]!.id).toBe(batch[0]!.id);
    expect(batch[2]!.dependsOn).toEqual([batch[0]!.id]);
  });

  it("replayed tells an enqueue sent again with its idempotencyKey (its answer lost) from one that added its task or was deduplicated: tRPC, REST, enqueueMany", async () => {
    t = await startTestServer();
    const api = t.api;
    const added = await api.tasks.enqueue.mutate({ queue: "r", idempotencyKey: "nightly-1", dedupe: { key: "nightly" } });
    expect([added.replayed, added.deduplicated]).toEqual([false, false]);
    const resent = await api.tasks.enqueue.mutate({ queue: "r", idempotencyKey: "nightly-1", dedupe: { key: "nightly" } });
    expect([resent.id, resent.replayed, resent.deduplicated, resent.duplicates]).toEqual([added.id, true, false, 0]);
    // Another key asking for the same work: the dedupe's answer, not a replay.
    const deduplicated = await api.tasks.enqueue.mutate({ queue: "r", idempotencyKey: "nightly-2", dedupe: { key: "nightly" } });
    expect([deduplicated.id, deduplicated.replayed, deduplicated.deduplicated]).toEqual([added.id, false, true]);
    const overRest = await rest(t.url, "POST", "/tasks", { queue: "r", idempotencyKey: "nightly-1", dedupe: { key: "nightly" } });
    expect([overRest.status, overRest.body.id, overRest.body.replayed, overRest.body.deduplicated]).toEqual([200, added.id, true, false]);
    // A batch: the entry found by its key is replayed, the new one is not.
    const batch = await api.tasks.enqueueMany.mutate({ tasks: [{ queue: "r", idempotencyKey: "nightly-1", dedupe: { key: "nightly" } }, { queue: "r", idempotencyKey: "other" }] });
    expect(batch.map((task) => [task.id === added.id, task.replayed, task.deduplicated])).toEqual([[true, true, false], [false, false, false]]);
    expect((await api.tasks.list.query({ queue: "r" })).items).toHaveLength(2);
    // A key named twice in one batch: the second entry is answered the task the first added, and
    // it is no replay (nothing was stored before); the whole batch sent again is one, entry by entry.
    const twice = [{ queue: "r", idempotencyKey: "fan-out-7", payload: { n: 1 } }, { queue: "r", idempotencyKey: "fan-out-7", payload: { n: 1 } }];
    const first = await api.tasks.enqueueMany.mutate({ tasks: twice });
    expect(first.map((task) => [task.id, task.replayed, task.deduplicated])).toEqual([[first[0]!.id, false, false], [first[0]!.id, false, false]]);
    const again = await api.tasks.enqueueMany.mutate({ tasks: twice });
    expect(again.map((task) => [task.id, task.replayed, task.deduplicated])).toEqual([[first[0]!.id, true, false], [first[0]!.id, true, false]]);
  });

  it("an enqueueMany whose entries found stored tasks past maxResponseBytes is refused, naming tasks, and stores nothing", async () => {
    t = await startTestServer({ maxResponseBytes: 65_536 });
    const large = await t.api.tasks.enqueue.mutate({ queue: "q", payload: { blob: "x".repeat(30_000) }, dedupe: { key: "k" } });
    // Two answers of it fit; three do not, whatever each entry carried itself.
    const two = await t.api.tasks.enqueueMany.mutate({ tasks: [{ queue: "q", dedupe: { key: "k" } }, { queue: "q", dedupe: { key: "k" } }] });
    expect(two.map((task) => [task.id, task.deduplicated])).toEqual([[large.id, true], [large.id, true]]);
    const three = await rest(t.url, "POST", "/tasks/batch", { tasks: [{ queue: "q", dedupe: { key: "k" } }, { queue: "q" }, { queue: "q", dedupe: { key: "k" } }, { queue: "q", dedupe: { key: "k" } }] });
    expect([three.status, three.body.code, three.body.details.index]).toEqual([400, "INVALID_INPUT", 3]);
    expect(three.body.message).toBe(
      "tasks: the tasks stored already that answer tasks[0..3] (by their idempotencyKey or dedupe key) weigh more than the server's maxResponseBytes (65536 bytes) in the answer: send fewer at a time, each key once",
    );
    // All or nothing: no task added, no duplicate counted.
    expect((await t.api.tasks.get.query({ taskId: large.id })).duplicates).toBe(2);
    expect((await t.api.tasks.stats.query()).totals.pending).toBe(1);
  });

  it("an enqueueMany resent whose one stored task weighs more than maxResponseBytes alone is answered with it, as tasks.enqueue is", async () => {
    t = await startTestServer({ maxResponseBytes: 65_536 });
    const batch = { tasks: [{ queue: "q", payload: { blob: "x".repeat(70_000) }, idempotencyKey: "big-1" }] };
    const [first] = await t.api.tasks.enqueueMany.mutate(batch);
    // Its answer lost, the batch sent again finds the task it stored, as the single enqueue does.
    const again = await rest(t.url, "POST", "/tasks/batch", batch);
    expect([again.status, again.body.length, again.body[0]?.id, again.body[0]?.deduplicated]).toEqual([200, 1, first!.id, false]);
    expect((await t.api.tasks.enqueue.mutate(batch.tasks[0]!)).id).toBe(first!.id);
    expect((await t.api.tasks.stats.query()).totals.pending).toBe(1);
  });

  it("refuses what cannot be: replace with until settled, an empty or long key, an unknown field, another dedupe key under one idempotencyKey", async () => {
    t = await startTestServer();
    const refused = async (dedupe: unknown) => {
      const response = await rest(t!.url, "POST", "/tasks", { queue: "q", dedupe });
      expect([response.status, response.body.code]).toEqual([400, "INVALID_INPUT"]);
      return response.body.message as string;
    };
    expect(await refused({ key: "k", until: "settled", replace: true })).toBe('dedupe.replace: needs until "claimed": a task under way cannot take a new payload');
    expect(await refused({ key: "" })).toMatch(/^dedupe\.key: /);
    expect(await refused({ key: "k".repeat(501) })).toMatch(/^dedupe\.key: /);
    expect(await refused({ key: "k", colour: "red" })).toBe('dedupe: unknown field "colour"');
    expect(await refused({ until: "settled" })).toMatch(/^dedupe\.key: /);
    expect(await refused({ key: "k", until: "done" })).toMatch(/^dedupe\.until: /);
    const first = await rest(t.url, "POST", "/tasks", { queue: "q", idempotencyKey: "i", dedupe: { key: "a" } });
    const mismatch = await rest(t.url, "POST", "/tasks", { queue: "q", idempotencyKey: "i", dedupe: { key: "b" } });
    expect([mismatch.status, mismatch.body.code, mismatch.body.details]).toEqual([409, "IDEMPOTENCY_MISMATCH", { taskId: first.body.id, differs: ["dedupe.key"] }]);
    // Sent again as it was: its own task, not a duplicate of it.
    const resent = await rest(t.url, "POST", "/tasks", { queue: "q", idempotencyKey: "i", dedupe: { key: "a" } });
    expect([resent.body.id, resent.body.deduplicated, resent.body.duplicates]).toEqual([first.body.id, false, 0]);
  });

  it("finds a key's task through the index that holds only tasks that have not settled", async () => {
    t = await startTestServer();
    await t.api.tasks.enqueue.mutate({ queue: "q", dedupe: { key: "k" } });
    const plan = withDatabase(t, (db) =>
      db
        .prepare(`EXPLAIN QUERY PLAN ${DEDUPE_LOOKUP}`)
        .all("q", "k", 0, 0)
        .map((row) => (row as { detail: string }).detail),
    );
    expect(plan).toEqual(["SEARCH tasks USING INDEX tasks_dedupe_idx (queue=? AND dedupeKey=?)"]);
  });
});
