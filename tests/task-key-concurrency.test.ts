// A key's share of a queue (tasks.enqueue's keyConcurrency with its orderingKey): at most that many
// tasks of the key run (pending or claimed) at once, started in the order they were enqueued, while
// other keys' tasks run beside them. The cases are those of a queue shared by tenants: one tenant's
// backlog of thousands taking every agent, a customer's API key hit by ten runs at once, a line that
// stops moving when its head waits for a dependency or asks for less room than those before it.
import { rmSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { applyMigrations } from "../src/db/migrate.js";
import { openDatabase } from "../src/db/open-database.js";
import { Statements } from "../src/db/statements.js";
import { TaskStore } from "../src/tasks/task-store.js";
import { killAllCli, runOperator } from "./helpers/cli-process.js";
import { callTool, closeMcpClients, connectMcp } from "./helpers/mcp-client.js";
import { refusal } from "./helpers/refusal.js";
import { makeTempDir, rest, startTestServer, withDatabase, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
afterEach(async () => {
  await closeMcpClients();
  await killAllCli();
  await t?.stop({ removeFiles: true });
  t = undefined;
});

/** The status of each task, in the order given. */
async function statuses(ids: readonly string[]): Promise<string[]> {
  return Promise.all(ids.map(async (taskId) => (await t!.api.tasks.get.query({ taskId })).status));
}

/** The task.ready events so far, as [taskId, after, orderingKey]. */
async function readies(): Promise<Array<[string, string, string | undefined]>> {
  const events = await t!.api.events.list.query({ types: ["task.ready"], limit: 100 });
  return events.map((e) => {
    const payload = e.payload as { taskId: string; after: string; orderingKey?: string };
    return [payload.taskId, payload.after, payload.orderingKey];
  });
}

describe("tasks.enqueue's keyConcurrency", () => {
  it("lets that many tasks of a key run at once, started in enqueue order, beside other keys' tasks", async () => {
    t = await startTestServer();
    const api = t.api;
    const a: string[] = [];
    // Priorities do not reorder a key's tasks: the fifth, best of all, still starts last.
    for (const priority of [5, 5, 5, 5, 0]) a.push((await api.tasks.enqueue.mutate({ queue: "llm", payload: { n: a.length }, priority, orderingKey: "tenant:a", keyConcurrency: 3, maxAttempts: 2, backoff: { type: "fixed", delayMs: 0 } })).id);
    const b1 = await api.tasks.enqueue.mutate({ queue: "llm", orderingKey: "tenant:b" });
    const plain = await api.tasks.enqueue.mutate({ queue: "llm" });
    expect(await statuses([...a, b1.id])).toEqual(["pending", "pending", "pending", "waiting", "waiting", "pending"]);
    // Every answer says the key's width; a task without a key has none.
    const [first, fourth] = await Promise.all([api.tasks.get.query({ taskId: a[0]! }), api.tasks.get.query({ taskId: a[3]! })]);
    expect([first.keyConcurrency, fourth.keyConcurrency, b1.keyConcurrency, plain.keyConcurrency, plain.orderingKey]).toEqual([3, 3, 1, null, null]);

    // Its task.enqueued says its share (above 1) beside its key; one at a time says none.
    const enqueued = await api.events.list.query({ types: ["task.enqueued"], limit: 10 });
    const shares = enqueued.map((e) => {
      const { orderingKey, keyConcurrency, waitingFor } = e.payload as { orderingKey?: string; keyConcurrency?: number; waitingFor?: number };
      return [orderingKey, keyConcurrency, waitingFor];
    });
    expect(shares).toEqual([
      ["tenant:a", 3, undefined],
      ["tenant:a", 3, undefined],
      ["tenant:a", 3, undefined],
      ["tenant:a", 3, 0],
      ["tenant:a", 3, 0],
      ["tenant:b", undefined, undefined],
      [undefined, undefined, undefined],
    ]);

    // An operator reads why the fourth waits.
    const shown = await runOperator({ args: ["tasks", "get", a[3]!], env: { COORDINATION_URL: t.url } });
    expect([shown.code, shown.stdout.match(/^ordering key\s+(.*)$/m)?.[1]]).toEqual([0, 'key "tenant:a", 3 at a time: waits for its turn, until fewer than 3 tasks of its key are pending or claimed and those enqueued before it have started']);

    // It cannot be promoted past its turn.
    const promoted = await rest(t.url, "POST", `/tasks/${a[3]}/promote`);
    expect([promoted.status, promoted.body.message]).toEqual([409, `task "${a[3]}" is waiting: only a pending task can be promoted (it waits for its turn: 3 tasks of its ordering key "tenant:a" are pending or claimed (its keyConcurrency; a pending one holds its place while not due), or one enqueued before it waits)`]);

    // Asking for everything: three of tenant a, tenant b's, and the task without a key.
    const claimed = await api.tasks.claimMany.mutate({ agentId: "w1", queues: ["llm"], limit: 10 });
    expect(claimed.map((task) => task.id).sort()).toEqual([a[0], a[1], a[2], b1.id, plain.id].sort());
    expect(await api.tasks.claim.mutate({ agentId: "w2", queues: ["llm"] })).toBeNull();

    // A settle frees one place: the oldest waiting takes it, with a task.ready naming the settled task.
    await api.tasks.complete.mutate({ taskId: a[1]!, agentId: "w1" });
    expect(await statuses(a.slice(3))).toEqual(["pending", "waiting"]);
    expect(await readies()).toEqual([[a[3], a[1], "tenant:a"]]);
    // A failed run to be retried keeps its place (pending again): the fifth waits on.
    await api.tasks.fail.mutate({ taskId: a[0]!, agentId: "w1", error: "model overloaded" });
    expect(await statuses([a[0]!, a[4]!])).toEqual(["pending", "waiting"]);
    // A cancel frees one.
    await api.tasks.cancel.mutate({ taskId: a[2]! });
    expect(await statuses([a[4]!])).toEqual(["pending"]);
    expect(await readies()).toEqual([
      [a[3], a[1], "tenant:a"],
      [a[4], a[2], "tenant:a"],
    ]);
  });

  it("keeps a backlogged key to its share of the agents: the others run the other keys' tasks", async () => {
    t = await startTestServer();
    const api = t.api;
    // Tenant a asks for 30 runs at once, then tenant b for 3: four agents, a's share two of them.
    const tenantOf = new Map<string, string>();
    for (let i = 0; i < 30; i++) tenantOf.set((await api.tasks.enqueue.mutate({ queue: "llm", orderingKey: "tenant:a", keyConcurrency: 2 })).id, "a");
    for (let i = 0; i < 3; i++) tenantOf.set((await api.tasks.enqueue.mutate({ queue: "llm", orderingKey: "tenant:b", keyConcurrency: 2 })).id, "b");
    const agents = ["w1", "w2", "w3", "w4"];
    const done: string[] = [];
    const held = new Map<string, string>();
    while (done.length < tenantOf.size) {
      for (const agentId of agents) {
        if (held.has(agentId)) continue;
        const task = await api.tasks.claim.mutate({ agentId, queues: ["llm"] });
        if (task !== null) held.set(agentId, task.id);
      }
      // Never more than two of a tenant's tasks run at once.
      const running = [...held.values()].map((id) => tenantOf.get(id));
      expect(running.filter((tenant) => tenant === "a").length).toBeLessThanOrEqual(2);
      // Each agent finishes what it holds; the next round claims again.
      for (const [agentId, taskId] of held) {
        await api.tasks.complete.mutate({ taskId, agentId });
        done.push(tenantOf.get(taskId)!);
        held.delete(agentId);
      }
    }
    // Tenant b's three ran among tenant a's first six, not after its thirty.
    expect(done.slice(0, 8).filter((tenant) => tenant === "b").length).toBe(3);
    expect(done.filter((tenant) => tenant === "a").length).toBe(30);
  });

  it("never runs more than a key's share at once, and starts its tasks in enqueue order, under concurrent claims, completes, failures and cancels", async () => {
    t = await startTestServer();
    const api = t.api;
    const keys = ["k0", "k1"];
    const enqueued = await api.tasks.enqueueMany.mutate({
      tasks: Array.from({ length: 60 }, (_, i) => ({ queue: "load", payload: i, orderingKey: keys[i % keys.length]!, keyConcurrency: 3, priority: i % 4, maxAttempts: 3, backoff: { type: "fixed" as const, delayMs: 0 } })),
    });
    const order = new Map(enqueued.map((task, i) => [task.id, i]));
    let settled = 0;
    const worker = async (agentId: string): Promise<void> => {
      while (settled < enqueued.length) {
        const task = await api.tasks.claim.mutate({ agentId, queues: ["load"], waitMs: 200 });
        if (task === null) continue;
        const i = order.get(task.id)!;
        // Every seventh is cancelled as it runs; every fifth fails its first attempt (its retry keeps its place).
        if (i % 7 === 0) {
          await api.tasks.cancel.mutate({ taskId: task.id });
          settled++;
        } else if (i % 5 === 0 && task.attempts === 1) {
          await api.tasks.fail.mutate({ taskId: task.id, agentId, error: "flaky", leaseToken: task.leaseToken });
        } else {
          await api.tasks.complete.mutate({ taskId: task.id, agentId, leaseToken: task.leaseToken });
          settled++;
        }
      }
    };
    await Promise.all(["w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8"].map(worker));
    const events = [];
    for (let after: string | undefined; ; ) {
      const page = await api.events.list.query({ types: ["task.ready", "task.claimed", "task.completed", "task.cancelled"], limit: 1000, ...(after === undefined ? {} : { after }) });
      events.push(...page);
      if (page.length < 1000) break;
      after = String(page.at(-1)!.seq);
    }
    // Per key, in the log's order: how many run (pending from enqueue or task.ready, until settled) never passes 3,
    // and the tasks start (first pending) in enqueue order.
    const keyOf = (taskId: string) => keys[order.get(taskId)! % keys.length]!;
    const running = new Map<string, Set<string>>(keys.map((key) => [key, new Set()]));
    const started = new Map<string, number[]>(keys.map((key) => [key, []]));
    for (const task of enqueued) {
      if (task.status === "pending") {
        running.get(keyOf(task.id))!.add(task.id);
        started.get(keyOf(task.id))!.push(order.get(task.id)!);
      }
    }
    expect(keys.map((key) => running.get(key)!.size)).toEqual([3, 3]);
    for (const event of events) {
      const { taskId } = event.payload as { taskId: string };
      const now = running.get(keyOf(taskId))!;
      if (event.type === "task.ready") {
        now.add(taskId);
        started.get(keyOf(taskId))!.push(order.get(taskId)!);
        expect(now.size, `${taskId} made ready beside ${[...now].join(", ")}`).toBeLessThanOrEqual(3);
      } else if (event.type === "task.claimed") {
        expect(now.has(taskId), `${taskId} claimed before its turn`).toBe(true);
      } else {
        now.delete(taskId);
      }
    }
    for (const key of keys) {
      const expected = [...order.values()].filter((i) => keys[i % keys.length] === key);
      expect(started.get(key)).toEqual(expected);
    }
    expect((await api.tasks.stats.query({ queue: "load" })).totals).toMatchObject({ completed: 51, cancelled: 9 });
  });

  it("starts everything that fits when the head of a line goes: one that asked for less room, or one that waited for a dependency", async () => {
    t = await startTestServer();
    const api = t.api;
    // Two of width 2 run; a third asks for the key to itself (width 1), a fourth of width 2 waits behind it.
    const w1 = await api.tasks.enqueue.mutate({ queue: "q", orderingKey: "k", keyConcurrency: 2 });
    const w2 = await api.tasks.enqueue.mutate({ queue: "q", orderingKey: "k", keyConcurrency: 2 });
    const alone = await api.tasks.enqueue.mutate({ queue: "q", orderingKey: "k" });
    const after = await api.tasks.enqueue.mutate({ queue: "q", orderingKey: "k", keyConcurrency: 2 });
    expect([w1.status, w2.status, alone.status, after.status]).toEqual(["pending", "pending", "waiting", "waiting"]);
    await api.tasks.cancel.mutate({ taskId: w1.id });
    // One of the key runs: the one asking for the key alone waits on, and the fourth behind it.
    expect(await statuses([alone.id, after.id])).toEqual(["waiting", "waiting"]);
    await api.tasks.cancel.mutate({ taskId: w2.id });
    // None runs: it starts, and the fourth fits beside it (two of width 2), in the same write.
    expect(await statuses([alone.id, after.id])).toEqual(["pending", "pending"]);
    expect(await readies()).toEqual([
      [alone.id, w2.id, "k"],
      [after.id, w2.id, "k"],
    ]);

    // A head waiting for a dependency holds the line; its dependency's complete starts it and those that fit behind it.
    const dependency = await api.tasks.enqueue.mutate({ queue: "prep" });
    const head = await api.tasks.enqueue.mutate({ queue: "q", orderingKey: "j", keyConcurrency: 3, dependsOn: [dependency.id] });
    const behind = [];
    for (let i = 0; i < 3; i++) behind.push(await api.tasks.enqueue.mutate({ queue: "q", orderingKey: "j", keyConcurrency: 3 }));
    expect(await statuses([head.id, ...behind.map((task) => task.id)])).toEqual(["waiting", "waiting", "waiting", "waiting"]);
    const prep = await api.tasks.claim.mutate({ agentId: "w", queues: ["prep"] });
    await api.tasks.complete.mutate({ taskId: prep!.id, agentId: "w" });
    expect(await statuses([head.id, ...behind.map((task) => task.id)])).toEqual(["pending", "pending", "pending", "waiting"]);
    expect((await readies()).slice(2)).toEqual([
      [head.id, dependency.id, undefined],
      [behind[0]!.id, head.id, "j"],
      [behind[1]!.id, head.id, "j"],
    ]);
  });

  it("requeues a dead letter of a key to pending while its key has room, else to wait its turn", async () => {
    t = await startTestServer();
    const api = t.api;
    const first = await api.tasks.enqueue.mutate({ queue: "q", orderingKey: "k", keyConcurrency: 2, maxAttempts: 1 });
    const lease = await api.tasks.claim.mutate({ agentId: "w", queues: ["q"] });
    await api.tasks.fail.mutate({ taskId: lease!.id, agentId: "w", error: "bad input" });
    expect(await statuses([first.id])).toEqual(["dead_letter"]);
    const second = await api.tasks.enqueue.mutate({ queue: "q", orderingKey: "k", keyConcurrency: 2 });
    // One of two places taken: the requeued task takes the other.
    expect((await api.tasks.requeue.mutate({ taskId: first.id })).status).toBe("pending");
    const third = await api.tasks.enqueue.mutate({ queue: "q", orderingKey: "k", keyConcurrency: 2 });
    expect([second.status, third.status]).toEqual(["pending", "waiting"]);
    await api.tasks.cancel.mutate({ taskId: first.id });
    expect(await statuses([third.id])).toEqual(["pending"]);
    const fourth = await api.tasks.enqueue.mutate({ queue: "q", orderingKey: "k", keyConcurrency: 2 });
    await api.tasks.cancel.mutate({ taskId: second.id });
    expect(await statuses([fourth.id])).toEqual(["pending"]);
    // Both places taken (third, fourth): a dead letter requeued now waits its turn.
    expect((await api.tasks.requeue.mutate({ taskId: second.id })).status).toBe("waiting");
  });

  it("refuses a keyConcurrency without an orderingKey, out of range, or sent again changed, naming it, over REST, tRPC and MCP", async () => {
    t = await startTestServer();
    const alone = await rest(t.url, "POST", "/tasks", { queue: "q", keyConcurrency: 2 });
    expect([alone.status, alone.body.code, alone.body.message]).toEqual([400, "INVALID_INPUT", "keyConcurrency: is how many tasks of its orderingKey may run at once: give an orderingKey with it"]);
    for (const keyConcurrency of [0, 1001, 1.5]) {
      const out = await rest(t.url, "POST", "/tasks", { queue: "q", orderingKey: "k", keyConcurrency });
      expect([out.status, out.body.code, out.body.message], String(keyConcurrency)).toEqual([400, "INVALID_INPUT", expect.stringMatching(/^keyConcurrency: /)]);
    }
    const batch = await refusal(t.api.tasks.enqueueMany.mutate({ tasks: [{ queue: "q", orderingKey: "k" }, { queue: "q", keyConcurrency: 3 }] }));
    expect([batch.code, batch.message]).toEqual(["INVALID_INPUT", "tasks[1].keyConcurrency: is how many tasks of its orderingKey may run at once: give an orderingKey with it"]);
    // Nothing of the refused batch was stored.
    expect((await t.api.tasks.list.query({ queue: "q" })).items).toEqual([]);

    const first = await rest(t.url, "POST", "/tasks", { queue: "q", idempotencyKey: "i", orderingKey: "k", keyConcurrency: 4 });
    expect([first.status, first.body.keyConcurrency]).toEqual([200, 4]);
    const changed = await rest(t.url, "POST", "/tasks", { queue: "q", idempotencyKey: "i", orderingKey: "k", keyConcurrency: 2 });
    expect([changed.status, changed.body.code, changed.body.details]).toEqual([409, "IDEMPOTENCY_MISMATCH", { taskId: first.body.id, differs: ["keyConcurrency"] }]);
    // Left out, it is 1: another request than the one stored.
    const omitted = await rest(t.url, "POST", "/tasks", { queue: "q", idempotencyKey: "i", orderingKey: "k" });
    expect([omitted.status, omitted.body.details]).toEqual([409, { taskId: first.body.id, differs: ["keyConcurrency"] }]);
    const resent = await rest(t.url, "POST", "/tasks", { queue: "q", idempotencyKey: "i", orderingKey: "k", keyConcurrency: 4 });
    expect([resent.status, resent.body.id]).toEqual([200, first.body.id]);

    // An LLM agent's enqueue_task takes it; without a key it is refused naming it.
    const client = await connectMcp(t.url, { "x-agent-id": "planner" });
    const viaMcp = await callTool(client, "enqueue_task", { queue: "mcp", payload: "page 1", orderingKey: "tenant:a", keyConcurrency: 2 });
    expect([viaMcp.status, viaMcp.orderingKey, viaMcp.keyConcurrency]).toEqual(["pending", "tenant:a", 2]);
    expect(await callTool(client, "enqueue_task", { queue: "mcp", keyConcurrency: 2 })).toEqual({
      error: {
        code: "INVALID_INPUT",
        message: "keyConcurrency: is how many tasks of its orderingKey may run at once: give an orderingKey with it",
        details: { issues: [{ path: "keyConcurrency", message: "is how many tasks of its orderingKey may run at once: give an orderingKey with it" }] },
      },
    });
  });

  it("counts a line's running tasks once a release, however many of it start: a head's release of 1,000 read 500,000 index entries in one write", () => {
    const dir = makeTempDir("coordination-key-concurrency-");
    const db = openDatabase({ dbPath: join(dir, "line.db"), busyTimeoutMs: 5000, durability: "full" });
    try {
      applyMigrations(db);
      const st = new Statements(db);
      // Every execution of a statement that counts a line's running tasks.
      let counts = 0;
      const get = st.get.bind(st) as (sql: string) => ReturnType<Statements["get"]>;
      (st as { get: unknown }).get = (sql: string) => {
        const query = get(sql);
        if (!sql.includes("COUNT(*)")) return query;
        return new Proxy(query, { get: (target, name, receiver) => (name === "get" || name === "all" ? (...params: unknown[]) => (counts++, (target as { get(...p: unknown[]): unknown }).get(...params)) : Reflect.get(target, name, receiver)) });
      };
      const tasks = new TaskStore(st);
      const task = { queue: "q", payload: "1", priority: 5, capability: null, targetAgentId: null, maxAttempts: 3, idempotencyKey: null, idempotencyScope: "", runAt: 0, dependsOn: null, cancelOnDependencyFailure: 0, backoff: null, scheduleId: null, expiresAt: null, maxRunMs: null, dedupeKey: null, orderingKey: "tenant:a", traceparent: null, tracestate: null, keyConcurrency: 1_000, baggage: null, waitingFor: [], inLine: true };
      db.transaction(() => {
        for (let i = 0; i < 1_001; i++) tasks.insert({ ...task, id: `t${i}` }, 1);
      })();
      const released = db.transaction(() => tasks.releaseLine("q", "tenant:a", 2))();
      expect(released.map((row) => row.id)).toEqual(Array.from({ length: 1_000 }, (_, i) => `t${i}`));
      expect(counts).toBe(1);
      // The one after them waits: its key has no room.
      expect(db.prepare(`SELECT status FROM tasks WHERE id = 't1000'`).pluck().get()).toBe("waiting");
    } finally {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("charges the tasks a cascade's cancels let start to the write's 500 dependents: the job starts the rest", async () => {
    // The dependents job's period is past the test: it runs when the test says.
    t = await startTestServer({ leaseSweepMs: 60_000 });
    const api = t.api;
    const count = (status: string) => withDatabase(t!, (db) => db.prepare(`SELECT count(*) FROM tasks WHERE status = ? AND queue = 'q'`).pluck().get(status) as number);
    // 20 lines whose heads wait on one task, each with 100 of width 1,000 behind its head.
    const doomed = await api.tasks.enqueue.mutate({ queue: "prep" });
    for (let k = 0; k < 20; k++) {
      await api.tasks.enqueueMany.mutate({
        tasks: [{ queue: "q", orderingKey: `k${k}`, keyConcurrency: 1_000, dependsOn: [doomed.id] }, ...Array.from({ length: 100 }, () => ({ queue: "q", orderingKey: `k${k}`, keyConcurrency: 1_000 }))],
      });
    }
    expect(count("waiting")).toBe(2_020);
    // Its cancel cancels the heads, and each head's cancel starts its line: 2,000 in one write, where
    // a write makes at most 500 dependents ready or cancelled (and one line's release past them).
    await api.tasks.cancel.mutate({ taskId: doomed.id });
    expect(count("pending") + count("cancelled")).toBeLessThanOrEqual(500 + 100);
    while ((await t.server.services.tasks.settleDependents()) > 0);
    expect([count("pending"), count("cancelled"), count("waiting")]).toEqual([2_000, 20, 0]);
  });

  it("charges the tasks a dependency's complete lets start behind the heads it readied to the write's 500: their heads' settles start the rest", async () => {
    t = await startTestServer();
    const api = t.api;
    const count = (status: string) => withDatabase(t!, (db) => db.prepare(`SELECT count(*) FROM tasks WHERE status = ? AND queue = 'q'`).pluck().get(status) as number);
    // 20 lines whose heads (the best priority) wait on one task, each with 100 of width 1,000 behind its head.
    const prep = await api.tasks.enqueue.mutate({ queue: "prep" });
    for (let k = 0; k < 20; k++) {
      await api.tasks.enqueueMany.mutate({
        tasks: [{ queue: "q", orderingKey: `k${k}`, keyConcurrency: 1_000, priority: 0, dependsOn: [prep.id] }, ...Array.from({ length: 100 }, () => ({ queue: "q", orderingKey: `k${k}`, keyConcurrency: 1_000 }))],
      });
    }
    const lease = (await api.tasks.claim.mutate({ agentId: "w", queues: ["prep"] }))!;
    await api.tasks.complete.mutate({ taskId: lease.id, agentId: "w", leaseToken: lease.leaseToken });
    // The 20 heads run, and as many behind them as the write's budget leaves: 500 in all, no more.
    expect(count("pending")).toBe(500);
    // Every line's head runs, so none is stuck: each head's complete starts what fits of its line.
    const heads = await api.tasks.claimMany.mutate({ agentId: "w", queues: ["q"], limit: 20 });
    expect(heads.map((task) => task.priority)).toEqual(Array.from({ length: 20 }, () => 0));
    for (const head of heads) await api.tasks.complete.mutate({ taskId: head.id, agentId: "w", leaseToken: head.leaseToken });
    expect([count("pending"), count("waiting"), count("completed")]).toEqual([2_000, 0, 20]);
  });
});
