// Ordered processing per key (tasks.enqueue's orderingKey): the tasks of a queue enqueued with the
// same key run one at a time, in the order they were enqueued, while tasks of other keys run beside
// them. Each case is one a queue's users met: two updates of one account applied at once by two
// workers, a "delete" run before the "create" it follows, a key's line stuck for good after the
// task at its head was cancelled, dead-lettered or expired, or after a dependency's cancel.
import { afterEach, describe, expect, it } from "vitest";
import { BEHIND_LINE, listQuery, NEXT_IN_LINE, NEXT_WAITING } from "../src/tasks/task-store.js";
import { killAllCli, runOperator } from "./helpers/cli-process.js";
import { parkedLongPolls } from "./helpers/mcp-http.js";
import { rest, startTestServer, withDatabase, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
afterEach(async () => {
  await killAllCli();
  await t?.stop({ removeFiles: true });
  t = undefined;
});

/** The status of each task, in the order given. */
async function statuses(ids: readonly string[]): Promise<string[]> {
  return Promise.all(ids.map(async (taskId) => (await t!.api.tasks.get.query({ taskId })).status));
}

describe("tasks.enqueue's orderingKey", () => {
  it("runs a key's tasks one at a time in enqueue order, whatever their priority, beside other keys' tasks", async () => {
    t = await startTestServer();
    const api = t.api;
    const a1 = await api.tasks.enqueue.mutate({ queue: "ledger", payload: { op: "create" }, priority: 5, orderingKey: "account:1" });
    const a2 = await api.tasks.enqueue.mutate({ queue: "ledger", payload: { op: "update" }, priority: 5, orderingKey: "account:1" });
    // A better priority does not pass the tasks of its key enqueued before it.
    const a3 = await api.tasks.enqueue.mutate({ queue: "ledger", payload: { op: "delete" }, priority: 0, orderingKey: "account:1" });
    const b1 = await api.tasks.enqueue.mutate({ queue: "ledger", payload: { op: "create" }, priority: 5, orderingKey: "account:2" });
    // The same key in another queue is another line.
    const other = await api.tasks.enqueue.mutate({ queue: "audit", orderingKey: "account:1" });
    expect([a1.status, a2.status, a3.status, b1.status, other.status]).toEqual(["pending", "waiting", "waiting", "pending", "pending"]);
    expect([a1.orderingKey, a2.orderingKey, a2.dependsOn, b1.orderingKey]).toEqual(["account:1", "account:1", [], "account:2"]);

    // An operator sees why a task waits, and the key's line in the order it runs.
    const shown = await runOperator({ args: ["tasks", "get", a2.id], env: { COORDINATION_URL: t.url } });
    expect([shown.code, shown.stdout.match(/^ordering key\s+(.*)$/m)?.[1]]).toEqual([0, 'key "account:1": waits for its turn, after the tasks of its key enqueued before it']);
    const line = await runOperator({ args: ["tasks", "list", "--queue", "ledger", "--ordering-key", "account:1", "--json"], env: { COORDINATION_URL: t.url } });
    // A filter given empty (a script's unset variable) is refused naming it, not dropped (which listed every task).
    for (const flag of ["--ordering-key", "--queue", "--dedupe-key"]) {
      const empty = await runOperator({ args: ["tasks", "list", flag, "", "--json"], env: { COORDINATION_URL: t.url } });
      expect([empty.code, empty.stdout, empty.stderr], flag).toEqual([2, "", expect.stringContaining(`${flag}:`)]);
    }
    expect([line.code, JSON.parse(line.stdout).items.map((task: { id: string; status: string }) => [task.id, task.status])]).toEqual([0, [[a1.id, "pending"], [a2.id, "waiting"], [a3.id, "waiting"]]]);

    // Two workers asking for everything get one task of each key.
    const claimed = await api.tasks.claimMany.mutate({ agentId: "w1", queues: ["ledger"], limit: 10 });
    expect(claimed.map((task) => task.id).sort()).toEqual([a1.id, b1.id].sort());
    expect(await api.tasks.claim.mutate({ agentId: "w2", queues: ["ledger"] })).toBeNull();

    await api.tasks.complete.mutate({ taskId: a1.id, agentId: "w1", result: "created" });
    expect(await statuses([a2.id, a3.id])).toEqual(["pending", "waiting"]);
    const next = await api.tasks.claim.mutate({ agentId: "w2", queues: ["ledger"] });
    expect(next?.id).toBe(a2.id);
    await api.tasks.complete.mutate({ taskId: a2.id, agentId: "w2" });
    expect((await api.tasks.claim.mutate({ agentId: "w2", queues: ["ledger"] }))?.id).toBe(a3.id);

    // Each turn is a task.ready naming the task before it and the key; the waiting enqueue says it waits.
    const ready = await api.events.list.query({ types: ["task.ready"], limit: 10 });
    expect(ready.map((e) => e.payload)).toEqual([
      { taskId: a2.id, queue: "ledger", priority: 5, capability: null, targetAgentId: null, runAt: expect.any(String), after: a1.id, orderingKey: "account:1" },
      { taskId: a3.id, queue: "ledger", priority: 0, capability: null, targetAgentId: null, runAt: expect.any(String), after: a2.id, orderingKey: "account:1" },
    ]);
    const enqueued = await api.events.list.query({ types: ["task.enqueued"], limit: 10 });
    expect(enqueued.map((e) => [(e.payload as { waitingFor?: number }).waitingFor, (e.payload as { orderingKey?: string }).orderingKey])).toEqual([
      [undefined, "account:1"],
      [0, "account:1"],
      [0, "account:1"],
      [undefined, "account:2"],
      [undefined, "account:1"],
    ]);
  });

  it("keeps the next task waiting through its predecessor's retries, and lets it run once that one is dead-lettered or cancelled", async () => {
    t = await startTestServer();
    const api = t.api;
    const first = await api.tasks.enqueue.mutate({ queue: "q", orderingKey: "k", maxAttempts: 2, backoff: { type: "fixed", delayMs: 0 } });
    const second = await api.tasks.enqueue.mutate({ queue: "q", orderingKey: "k" });
    const third = await api.tasks.enqueue.mutate({ queue: "q", orderingKey: "k" });
    await api.tasks.claim.mutate({ agentId: "w", queues: ["q"] });
    // A failed run to be retried still holds the key: the retry runs before the next task.
    await api.tasks.fail.mutate({ taskId: first.id, agentId: "w", error: "timeout", retry: true });
    expect(await statuses([first.id, second.id, third.id])).toEqual(["pending", "waiting", "waiting"]);
    expect((await api.tasks.claim.mutate({ agentId: "w", queues: ["q"] }))?.id).toBe(first.id);
    await api.tasks.fail.mutate({ taskId: first.id, agentId: "w", error: "timeout again", retry: true });
    // Its last attempt failed: a dead letter holds the line no more.
    expect(await statuses([first.id, second.id, third.id])).toEqual(["dead_letter", "pending", "waiting"]);

    // A task cancelled while it runs lets the next run; one cancelled while it waits changes nothing for the others.
    const fourth = await api.tasks.enqueue.mutate({ queue: "q", orderingKey: "k" });
    expect((await api.tasks.claim.mutate({ agentId: "w", queues: ["q"] }))?.id).toBe(second.id);
    await api.tasks.cancel.mutate({ taskId: third.id, reason: "not needed" });
    expect(await statuses([second.id, third.id, fourth.id])).toEqual(["claimed", "cancelled", "waiting"]);
    await api.tasks.cancel.mutate({ taskId: second.id, reason: "stop it" });
    expect(await statuses([second.id, fourth.id])).toEqual(["cancelled", "pending"]);
  });

  it("lets the next task run when the one before expires unrun, or its lease runs out on its last attempt", async () => {
    t = await startTestServer({ leaseSweepMs: 50 });
    const api = t.api;
    const head = await api.tasks.enqueue.mutate({ queue: "q", orderingKey: "k", maxAttempts: 1 });
    const expiring = await api.tasks.enqueue.mutate({ queue: "q", orderingKey: "k", ttlMs: 200 });
    const last = await api.tasks.enqueue.mutate({ queue: "q", orderingKey: "k" });
    await api.tasks.claim.mutate({ agentId: "w", queues: ["q"], leaseMs: 300 });
    // The waiting task's expiry passes while the head runs: cancelled as expired; the head's lease then runs out (its only attempt).
    const ended = await api.tasks.waitMany.query({ taskIds: [expiring.id, head.id], until: "all", waitMs: 20_000 });
    expect(ended.done).toBe(true);
    expect(await statuses([head.id, expiring.id, last.id])).toEqual(["dead_letter", "cancelled", "pending"]);
    expect((await api.tasks.claim.mutate({ agentId: "w", queues: ["q"] }))?.id).toBe(last.id);
  });

  it("waits for a dependency as well as for its turn, and a dependency's cancel that cancels the head lets the next run", async () => {
    t = await startTestServer();
    const api = t.api;
    const dependency = await api.tasks.enqueue.mutate({ queue: "prep", payload: "fetch" });
    const other = await api.tasks.enqueue.mutate({ queue: "prep", payload: "other" });
    const a1 = await api.tasks.enqueue.mutate({ queue: "q", orderingKey: "k" });
    // Its turn comes after a1, and it waits for `dependency` too.
    const a2 = await api.tasks.enqueue.mutate({ queue: "q", orderingKey: "k", dependsOn: [dependency.id] });
    const a3 = await api.tasks.enqueue.mutate({ queue: "q", orderingKey: "k" });
    const a4 = await api.tasks.enqueue.mutate({ queue: "q", orderingKey: "k", dependsOn: [other.id] });
    expect([a2.status, a3.status]).toEqual(["waiting", "waiting"]);
    await api.tasks.claim.mutate({ agentId: "w", queues: ["q"] });
    await api.tasks.complete.mutate({ taskId: a1.id, agentId: "w" });
    // a2's turn, but its dependency has not completed: it waits, and so does a3 behind it.
    expect(await statuses([a2.id, a3.id])).toEqual(["waiting", "waiting"]);
    expect(await api.tasks.claim.mutate({ agentId: "w", queues: ["q"] })).toBeNull();
    // Waiting for both, it says so; promoting it is refused, saying why.
    const shown = await runOperator({ args: ["tasks", "get", a2.id], env: { COORDINATION_URL: t.url } });
    expect(shown.stdout.match(/^ordering key\s+(.*)$/m)?.[1]).toBe('key "k": runs once its dependencies have completed and the tasks of its key enqueued before it have settled');
    const promoted = await rest(t.url, "POST", `/tasks/${a3.id}/promote`);
    expect([promoted.status, promoted.body.message]).toEqual([409, `task "${a3.id}" is waiting: only a pending task can be promoted (it waits for its turn: a task of its ordering key "k" enqueued before it has not settled)`]);
    await api.tasks.claim.mutate({ agentId: "p", queues: ["prep"] });
    await api.tasks.complete.mutate({ taskId: dependency.id, agentId: "p" });
    expect(await statuses([a2.id, a3.id])).toEqual(["pending", "waiting"]);
    // Made ready by its dependency: a task.ready with no orderingKey (one with it says its turn came).
    const [readied] = (await api.events.list.query({ types: ["task.ready"], limit: 10 })).filter((e) => (e.payload as { taskId: string }).taskId === a2.id);
    expect(readied?.payload).toEqual({ taskId: a2.id, queue: "q", priority: 5, capability: null, targetAgentId: null, runAt: expect.any(String), after: dependency.id });
    // a4's dependency completing does not let it pass a2 and a3.
    await api.tasks.claim.mutate({ agentId: "p", queues: ["prep"] });
    await api.tasks.complete.mutate({ taskId: other.id, agentId: "p" });
    expect(await statuses([a2.id, a3.id, a4.id])).toEqual(["pending", "waiting", "waiting"]);
    await api.tasks.claim.mutate({ agentId: "w", queues: ["q"] });
    await api.tasks.complete.mutate({ taskId: a2.id, agentId: "w" });
    expect(await statuses([a3.id, a4.id])).toEqual(["pending", "waiting"]);
    await api.tasks.claim.mutate({ agentId: "w", queues: ["q"] });
    await api.tasks.complete.mutate({ taskId: a3.id, agentId: "w" });
    expect(await statuses([a4.id])).toEqual(["pending"]);

    // A head cancelled because its dependency was: the cascade lets the task behind it run.
    const gone = await api.tasks.enqueue.mutate({ queue: "prep", payload: "never" });
    const b1 = await api.tasks.enqueue.mutate({ queue: "q", orderingKey: "b", dependsOn: [gone.id] });
    const b2 = await api.tasks.enqueue.mutate({ queue: "q", orderingKey: "b" });
    expect(await statuses([b1.id, b2.id])).toEqual(["waiting", "waiting"]);
    await api.tasks.cancel.mutate({ taskId: gone.id });
    expect(await statuses([b1.id, b2.id])).toEqual(["cancelled", "pending"]);
  });

  it("brings a requeued task back to its place by enqueue order: behind the task that runs, before those enqueued after it", async () => {
    t = await startTestServer();
    const api = t.api;
    const [a1, a2, a3] = await api.tasks.enqueueMany.mutate({ tasks: [1, 2, 3].map((n) => ({ queue: "q", payload: n, orderingKey: "k", maxAttempts: 1 })) });
    expect([a1!.status, a2!.status, a3!.status]).toEqual(["pending", "waiting", "waiting"]);
    await api.tasks.claim.mutate({ agentId: "w", queues: ["q"] });
    await api.tasks.fail.mutate({ taskId: a1!.id, agentId: "w", error: "bad input", retry: false });
    expect((await api.tasks.claim.mutate({ agentId: "w", queues: ["q"] }))?.id).toBe(a2!.id);
    // Requeued while a2 runs: it waits, and goes before a3.
    const requeued = await api.tasks.requeue.mutate({ taskId: a1!.id });
    expect(requeued.status).toBe("waiting");
    await api.tasks.complete.mutate({ taskId: a2!.id, agentId: "w" });
    expect(await statuses([a1!.id, a3!.id])).toEqual(["pending", "waiting"]);
    const requeuedEvent = (await api.events.list.query({ types: ["task.requeued"], limit: 10 })).map((e) => e.payload);
    expect(requeuedEvent).toEqual([{ taskId: a1!.id, queue: "q", previousStatus: "dead_letter", capability: null, targetAgentId: null, waitingFor: 0, orderingKey: "k" }]);

    // A bulk requeue of a key's dead letters: the oldest runs (none of the key runs), the others wait behind it.
    await api.tasks.claim.mutate({ agentId: "w", queues: ["q"] });
    await api.tasks.fail.mutate({ taskId: a1!.id, agentId: "w", error: "bad again", retry: false });
    await api.tasks.claim.mutate({ agentId: "w", queues: ["q"] });
    await api.tasks.fail.mutate({ taskId: a3!.id, agentId: "w", error: "bad too", retry: false });
    expect(await statuses([a1!.id, a2!.id, a3!.id])).toEqual(["dead_letter", "completed", "dead_letter"]);
    const bulk = await api.tasks.requeueMany.mutate({ queue: "q" });
    expect(bulk.requeued).toEqual([a1!.id, a3!.id]);
    expect(await statuses([a1!.id, a3!.id])).toEqual(["pending", "waiting"]);
    // Requeued newest first, the newest takes the turn (nothing of the key ran): an older one requeued then waits behind it.
    await api.tasks.claim.mutate({ agentId: "w", queues: ["q"] });
    await api.tasks.fail.mutate({ taskId: a1!.id, agentId: "w", error: "bad once more", retry: false });
    await api.tasks.claim.mutate({ agentId: "w", queues: ["q"] });
    await api.tasks.fail.mutate({ taskId: a3!.id, agentId: "w", error: "bad once more", retry: false });
    expect((await api.tasks.requeue.mutate({ taskId: a3!.id })).status).toBe("pending");
    expect((await api.tasks.requeue.mutate({ taskId: a1!.id })).status).toBe("waiting");
    expect((await api.tasks.claim.mutate({ agentId: "w", queues: ["q"] }))?.id).toBe(a3!.id);

    // With none of the key running and none older waiting, a requeued task is pending at once.
    const lone = await api.tasks.enqueue.mutate({ queue: "solo", orderingKey: "k", maxAttempts: 1 });
    const behind = await api.tasks.enqueue.mutate({ queue: "solo", orderingKey: "k" });
    await api.tasks.claim.mutate({ agentId: "w", queues: ["solo"] });
    await api.tasks.fail.mutate({ taskId: lone.id, agentId: "w", error: "bad", retry: false });
    await api.tasks.claim.mutate({ agentId: "w", queues: ["solo"] });
    await api.tasks.complete.mutate({ taskId: behind.id, agentId: "w" });
    expect((await api.tasks.requeue.mutate({ taskId: lone.id })).status).toBe("pending");
  });

  it("wakes a claim parked for the queue when the next task of a key gets its turn", async () => {
    t = await startTestServer();
    const api = t.api;
    const first = await api.tasks.enqueue.mutate({ queue: "q", orderingKey: "k" });
    const second = await api.tasks.enqueue.mutate({ queue: "q", orderingKey: "k" });
    await api.tasks.claim.mutate({ agentId: "w1", queues: ["q"] });
    const parked = api.tasks.claim.mutate({ agentId: "w2", queues: ["q"], waitMs: 20_000 });
    // Parked: nothing of the queue may run while `first` runs.
    await expect.poll(() => parkedLongPolls(t!.url, "claim"), { timeout: 20_000 }).toBe(1);
    await api.tasks.complete.mutate({ taskId: first.id, agentId: "w1" });
    expect((await parked)?.id).toBe(second.id);
  });

  it("never runs two tasks of a key at once, and runs each key's tasks in enqueue order, under concurrent claims, completes and failures", async () => {
    t = await startTestServer();
    const api = t.api;
    const keys = ["k0", "k1", "k2", "k3", "k4"];
    const enqueued = await api.tasks.enqueueMany.mutate({
      tasks: Array.from({ length: 60 }, (_, i) => ({ queue: "load", payload: i, orderingKey: keys[i % keys.length]!, priority: i % 3, maxAttempts: 3, backoff: { type: "fixed" as const, delayMs: 0 } })),
    });
    const order = new Map(enqueued.map((task, i) => [task.id, i]));
    let failures = 0;
    let completed = 0;
    const worker = async (agentId: string): Promise<void> => {
      while (completed < enqueued.length) {
        const task = await api.tasks.claim.mutate({ agentId, queues: ["load"], waitMs: 200 });
        if (task === null) continue;
        // Every fifth task fails its first attempt: the retry still runs before the next of its key.
        if (order.get(task.id)! % 5 === 0 && task.attempts === 1) {
          failures++;
          await api.tasks.fail.mutate({ taskId: task.id, agentId, error: "flaky", retry: true, leaseToken: task.leaseToken });
        } else {
          await api.tasks.complete.mutate({ taskId: task.id, agentId, leaseToken: task.leaseToken });
          completed++;
        }
      }
    };
    await Promise.all(["w1", "w2", "w3", "w4", "w5", "w6"].map(worker));
    expect(failures).toBe(12);
    // Read the log: per key, each claim's task is the key's oldest not completed, and no claim starts before the last one settled.
    const events = [];
    for (let after: string | undefined; ; ) {
      const page = await api.events.list.query({ types: ["task.claimed", "task.completed", "task.retried"], limit: 1000, ...(after === undefined ? {} : { after }) });
      events.push(...page);
      if (page.length < 1000) break;
      after = String(page.at(-1)!.seq);
    }
    const keyOf = (taskId: string) => keys[order.get(taskId)! % keys.length]!;
    const running = new Map<string, string>();
    const done = new Map<string, number[]>(keys.map((key) => [key, []]));
    for (const event of events) {
      const { taskId } = event.payload as { taskId: string };
      const key = keyOf(taskId);
      if (event.type === "task.claimed") {
        expect(running.get(key), `${taskId} claimed while another task of ${key} ran`).toBeUndefined();
        running.set(key, taskId);
      } else {
        expect(running.get(key)).toBe(taskId);
        running.delete(key);
        if (event.type === "task.completed") done.get(key)!.push(order.get(taskId)!);
      }
    }
    for (const [key, completed] of done) {
      const expected = [...order.values()].filter((i) => keys[i % keys.length] === key);
      expect(completed).toEqual(expected);
    }
  });

  it("refuses a blank or overlong key, and an enqueue sent again with another key, naming orderingKey", async () => {
    t = await startTestServer();
    const blank = await rest(t.url, "POST", "/tasks", { queue: "q", orderingKey: "" });
    expect([blank.status, blank.body.code, blank.body.message]).toEqual([400, "INVALID_INPUT", expect.stringMatching(/^orderingKey: /)]);
    const long = await rest(t.url, "POST", "/tasks", { queue: "q", orderingKey: "x".repeat(501) });
    expect([long.status, long.body.message]).toEqual([400, expect.stringMatching(/^orderingKey: /)]);
    const first = await rest(t.url, "POST", "/tasks", { queue: "q", idempotencyKey: "i", orderingKey: "a" });
    const mismatch = await rest(t.url, "POST", "/tasks", { queue: "q", idempotencyKey: "i", orderingKey: "b" });
    expect([mismatch.status, mismatch.body.code, mismatch.body.details]).toEqual([409, "IDEMPOTENCY_MISMATCH", { taskId: first.body.id, differs: ["orderingKey"] }]);
    const resent = await rest(t.url, "POST", "/tasks", { queue: "q", idempotencyKey: "i", orderingKey: "a" });
    expect([resent.status, resent.body.id, resent.body.status]).toEqual([200, first.body.id, "pending"]);
  });

  it("frees a line an older server left stuck, in its order, by a cancel and requeue of its last waiting task", async () => {
    t = await startTestServer();
    const api = t.api;
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push((await api.tasks.enqueue.mutate({ queue: "q", orderingKey: "k", payload: { i } })).id);
    await api.tasks.claim.mutate({ agentId: "w", queues: ["q"] });
    // A server older than ordering keys completes the first: nothing of the key runs, three wait.
    withDatabase(t, (db) => db.prepare(`UPDATE tasks SET status = 'completed', finishedAt = ?, leaseOwner = NULL WHERE id = ?`).run(Date.now(), ids[0]));
    expect(await statuses(ids)).toEqual(["completed", "waiting", "waiting", "waiting"]);
    expect(await api.tasks.claim.mutate({ agentId: "w", queues: ["q"] })).toBeNull();
    // The last waiting one cancelled lets the first waiting run; requeued, it waits at its place.
    await api.tasks.cancel.mutate({ taskId: ids[3]! });
    expect((await api.tasks.requeue.mutate({ taskId: ids[3]! })).status).toBe("waiting");
    const ran: string[] = [];
    for (let lease = await api.tasks.claim.mutate({ agentId: "w", queues: ["q"] }); lease !== null; lease = await api.tasks.claim.mutate({ agentId: "w", queues: ["q"] })) {
      ran.push(lease.id);
      await api.tasks.complete.mutate({ taskId: lease.id, agentId: "w" });
    }
    expect(ran).toEqual(ids.slice(1));
  });

  it("reads a key's line through the index that holds only tasks that have not settled", async () => {
    t = await startTestServer();
    await t.api.tasks.enqueue.mutate({ queue: "q", orderingKey: "k" });
    const plan = (sql: string, params: unknown[]) =>
      withDatabase(t!, (db) =>
        db
          .prepare(`EXPLAIN QUERY PLAN ${sql}`)
          .all(...params)
          .map((row) => (row as { detail: string }).detail)
          .filter((detail) => detail.includes("line")),
      );
    const search = "SEARCH line USING COVERING INDEX tasks_ordering_idx (queue=? AND orderingKey=? AND status=?)";
    expect(plan(BEHIND_LINE, ["q", "k", 1, "q", "k", 1])).toEqual([expect.stringMatching(/^SEARCH line USING COVERING INDEX tasks_ordering_idx \(queue=\? AND orderingKey=\? AND status=\?\)$/), search]);
    // The task that waits longest (its row read for its dependencies left), and whether one runs.
    expect(plan(NEXT_IN_LINE, ["q", "k", "q", "k"])).toEqual(["SEARCH line USING INDEX tasks_ordering_idx (queue=? AND orderingKey=? AND status=?)", expect.stringMatching(/^SEARCH line USING COVERING INDEX tasks_ordering_idx \(queue=\? AND orderingKey=\? AND status=\?\)$/)]);
    // The next that waits once one started (keyConcurrency): the same range, no count, no sort.
    expect(plan(NEXT_WAITING, ["q", "k"])).toEqual(["SEARCH line USING INDEX tasks_ordering_idx (queue=? AND orderingKey=? AND status=?)"]);
    // An operator's list of a key's waiting tasks (or a dedupe key's holder) reads the same index, not the table.
    const listPlan = (filter: Parameters<typeof listQuery>[0]) => {
      const { sql, params } = listQuery(filter, 50);
      return withDatabase(t!, (db) => db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params).map((row) => (row as { detail: string }).detail));
    };
    expect(listPlan({ queue: "q", orderingKey: "k", status: "waiting", order: "asc" })).toEqual(["SEARCH tasks USING INDEX tasks_ordering_idx (queue=? AND orderingKey=? AND status=?)"]);
    expect(listPlan({ queue: "q", dedupeKey: "k", status: "pending", order: "desc" })).toEqual([expect.stringMatching(/^SEARCH tasks USING INDEX tasks_dedupe_idx \(queue=\? AND dedupeKey=\?\)$/)]);
  });
});
