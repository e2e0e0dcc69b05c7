// Checkpoints: a heartbeat's `checkpoint` is kept on the task across claims (unlike progress) and
// handed to every later run (a retry, a run given back, an expired lease's, a steal's, a requeue's),
// so work done before a failure or a crash is not done again; only the lease's holder saves one;
// a replaced payload clears it, as do tasks.update's and tasks.requeue's `checkpoint: null`;
// REST, MCP, runWorker's run.saveCheckpoint, the CLI and the answer's byte bounds carry it.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { CoordinationApi } from "../client/index.js";
import { HeldLease, momentNow } from "../client/lease-calls.js";
import { MAX_CHECKPOINT_BYTES } from "../src/tasks/task-schemas.js";
import { killAllCli, runOperator } from "./helpers/cli-process.js";
import { callTool, closeMcpClients, connectMcp } from "./helpers/mcp-client.js";
import { asOlderServer, withTaskCalls } from "./helpers/task-calls.js";
import { workerOn } from "./helpers/worker-on.js";
import { startTestServer, startTestServerWithout, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
afterEach(async () => {
  await killAllCli();
  await closeMcpClients();
  await t?.stop({ removeFiles: true });
  t = undefined;
});

/** What a value weighs as JSON (a checkpoint event's bytes). */
const bytes = (value: unknown) => Buffer.byteLength(JSON.stringify(value));

/** The events of `types` about a task in the log, as [type, payload], oldest first. */
const eventsOf = async (api: CoordinationApi, taskId: string, types: string[]) =>
  (await api.events.list.query({ types, limit: 1000 })).filter((e) => (e.payload as { taskId?: string }).taskId === taskId).map((e) => [e.type, e.payload] as const);

describe("task checkpoints", () => {
  it("a heartbeat's checkpoint is kept across claims and handed to the next run; null clears it; a complete keeps the last", async () => {
    t = await startTestServer({ retryBaseMs: 0 });
    const api = t.api;
    const task = await api.tasks.enqueue.mutate({ queue: "crawl", payload: { site: "example.org" } });
    expect(task).toMatchObject({ checkpoint: null, checkpointAt: null });
    const first = (await api.tasks.claim.mutate({ agentId: "a", queues: ["crawl"], leaseMs: 10_000 }))!;
    expect(first).toMatchObject({ checkpoint: null, checkpointAt: null });

    const before = Date.now();
    const saved = await api.tasks.heartbeat.mutate({ taskId: task.id, agentId: "a", leaseToken: first.leaseToken, leaseMs: 20_000, checkpoint: { pagesDone: 40, cursor: "p41" }, progress: "40 of 100" });
    expect(saved).toMatchObject({ status: "claimed", checkpoint: { pagesDone: 40, cursor: "p41" }, progress: "40 of 100" });
    // The same write renews the lease, as any heartbeat does.
    expect(saved.leaseExpiresAt!.getTime()).toBe(saved.checkpointAt!.getTime() + 20_000);
    expect(saved.checkpointAt!.getTime()).toBeGreaterThanOrEqual(before - 1000);
    expect(await api.tasks.get.query({ taskId: task.id })).toEqual(saved);
    // A plain heartbeat keeps it as saved.
    expect(await api.tasks.heartbeat.mutate({ taskId: task.id, agentId: "a" })).toMatchObject({ checkpoint: { pagesDone: 40, cursor: "p41" }, checkpointAt: saved.checkpointAt });

    // The run fails: its retry is handed the checkpoint (its progress, a run's own, is cleared).
    await api.tasks.fail.mutate({ taskId: task.id, agentId: "a", leaseToken: first.leaseToken, error: "rate limited" });
    const second = (await api.tasks.claim.mutate({ agentId: "b", queues: ["crawl"] }))!;
    expect(second).toMatchObject({ id: task.id, attempts: 2, checkpoint: { pagesDone: 40, cursor: "p41" }, checkpointAt: saved.checkpointAt, progress: null });
    // Given back (no attempt charged): the next run is handed it too.
    await api.tasks.heartbeat.mutate({ taskId: task.id, agentId: "b", checkpoint: { pagesDone: 70, cursor: "p71" } });
    await api.tasks.release.mutate({ taskId: task.id, agentId: "b" });
    const third = (await api.tasks.claim.mutate({ agentId: "c", queues: ["crawl"] }))!;
    expect(third.checkpoint).toEqual({ pagesDone: 70, cursor: "p71" });
    // null clears it: the next run starts from the beginning.
    const cleared = await api.tasks.heartbeat.mutate({ taskId: task.id, agentId: "c", checkpoint: null });
    expect(cleared).toMatchObject({ checkpoint: null, checkpointAt: null });
    await api.tasks.heartbeat.mutate({ taskId: task.id, agentId: "c", checkpoint: [1, "two", { three: 3 }] });
    const done = await api.tasks.complete.mutate({ taskId: task.id, agentId: "c", leaseToken: third.leaseToken, result: { pages: 100 } });
    expect(done).toMatchObject({ status: "completed", checkpoint: [1, "two", { three: 3 }] });

    // Each save is a task.checkpointed event, its size and not its value; none is among the task's transitions.
    expect(await eventsOf(api, task.id, ["task.checkpointed"])).toEqual([
      ["task.checkpointed", { taskId: task.id, queue: "crawl", agentId: "a", attempt: 1, leaseToken: first.leaseToken, bytes: bytes({ pagesDone: 40, cursor: "p41" }), cleared: false }],
      ["task.checkpointed", { taskId: task.id, queue: "crawl", agentId: "b", attempt: 2, leaseToken: second.leaseToken, bytes: bytes({ pagesDone: 70, cursor: "p71" }), cleared: false }],
      ["task.checkpointed", { taskId: task.id, queue: "crawl", agentId: "c", attempt: 2, leaseToken: third.leaseToken, bytes: 0, cleared: true }],
      ["task.checkpointed", { taskId: task.id, queue: "crawl", agentId: "c", attempt: 2, leaseToken: third.leaseToken, bytes: bytes([1, "two", { three: 3 }]), cleared: false }],
    ]);
    expect((await api.tasks.events.query({ taskId: task.id })).map((e) => e.type)).not.toContain("task.checkpointed");
    expect(await (await fetch(`${t.url}/metrics`)).text()).toMatch(/^coordination_task_transitions_total\{queue="crawl",transition="checkpointed"\} 4$/m);
  });

  it("a fail or a release saves the checkpoint it carries in the same write, fenced as they are; sent again, it saves nothing", async () => {
    t = await startTestServer({ retryBaseMs: 0 });
    const api = t.api;
    const task = await api.tasks.enqueue.mutate({ queue: "settle", maxAttempts: 5 });
    const first = (await api.tasks.claim.mutate({ agentId: "a", queues: ["settle"] }))!;
    // Another agent's fail, or one under a stale token, saves nothing.
    await expect(api.tasks.fail.mutate({ taskId: task.id, agentId: "b", error: "x", checkpoint: { forged: true } })).rejects.toMatchObject({ data: { code: "LEASE_CONFLICT" } });
    await expect(api.tasks.fail.mutate({ taskId: task.id, agentId: "a", leaseToken: first.leaseToken + 1, error: "x", checkpoint: { forged: true } })).rejects.toMatchObject({ data: { code: "LEASE_CONFLICT" } });
    expect((await api.tasks.get.query({ taskId: task.id })).checkpoint).toBeNull();

    // The run fails where it got: one call saves it and fails, and the retry is handed it.
    const failed = await api.tasks.fail.mutate({ taskId: task.id, agentId: "a", leaseToken: first.leaseToken, error: "rate limited", checkpoint: { pages: 40, next: "p41" } });
    expect(failed).toMatchObject({ status: "pending", checkpoint: { pages: 40, next: "p41" } });
    // Sent again (its answer lost), even with another checkpoint: the first answer, nothing saved.
    const again = await api.tasks.fail.mutate({ taskId: task.id, agentId: "a", leaseToken: first.leaseToken, error: "rate limited", checkpoint: { pages: 0 } });
    expect(again).toEqual(failed);
    const second = (await api.tasks.claim.mutate({ agentId: "b", queues: ["settle"] }))!;
    expect([second.attempts, second.checkpoint]).toEqual([2, { pages: 40, next: "p41" }]);

    // A release saves one as it gives the task back; its repeat saves nothing either.
    const released = await api.tasks.release.mutate({ taskId: task.id, agentId: "b", leaseToken: second.leaseToken, checkpoint: { pages: 55 } });
    expect(released).toMatchObject({ status: "pending", checkpoint: { pages: 55 } });
    expect(await api.tasks.release.mutate({ taskId: task.id, agentId: "b", leaseToken: second.leaseToken, checkpoint: { pages: 1 } })).toEqual(released);
    // null clears it, with the fail that dead-letters it: a requeue starts from the beginning.
    const third = (await api.tasks.claim.mutate({ agentId: "c", queues: ["settle"] }))!;
    expect(third.checkpoint).toEqual({ pages: 55 });
    expect(await api.tasks.fail.mutate({ taskId: task.id, agentId: "c", error: "the input is wrong", retry: false, checkpoint: null })).toMatchObject({ status: "dead_letter", checkpoint: null, checkpointAt: null });
    expect(await eventsOf(api, task.id, ["task.checkpointed"])).toEqual([
      ["task.checkpointed", { taskId: task.id, queue: "settle", agentId: "a", attempt: 1, leaseToken: first.leaseToken, bytes: bytes({ pages: 40, next: "p41" }), cleared: false }],
      ["task.checkpointed", { taskId: task.id, queue: "settle", agentId: "b", attempt: 2, leaseToken: second.leaseToken, bytes: bytes({ pages: 55 }), cleared: false }],
      ["task.checkpointed", { taskId: task.id, queue: "settle", agentId: "c", attempt: 2, leaseToken: third.leaseToken, bytes: 0, cleared: true }],
    ]);

    // Over REST, the seed's fail route with no agentId (the current lease, whoever holds it) too; too large a 400 naming it.
    await api.tasks.requeue.mutate({ taskId: task.id });
    const fourth = (await api.tasks.claim.mutate({ agentId: "d", queues: ["settle"] }))!;
    const tooLarge = await fetch(`${t.url}/tasks/${task.id}/fail`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ error: "x", checkpoint: "x".repeat(MAX_CHECKPOINT_BYTES) }) });
    expect(tooLarge.status).toBe(400);
    expect(((await tooLarge.json()) as { message: string }).message).toMatch(/^checkpoint: /);
    const viaRest = await fetch(`${t.url}/tasks/${task.id}/fail`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ error: "x", checkpoint: { pages: 60 } }) });
    expect(await viaRest.json()).toMatchObject({ status: "pending", checkpoint: { pages: 60 }, settledLease: { agentId: "d", leaseToken: fourth.leaseToken } });

    // MCP: fail_task and release_task take checkpoint and clearCheckpoint, as heartbeat_task does.
    const mcp = await connectMcp(t.url, { "x-agent-id": "e" });
    const fifth = await callTool(mcp, "claim_task", { queues: ["settle"] });
    expect(fifth.checkpoint).toEqual({ pages: 60 });
    expect(await callTool(mcp, "release_task", { taskId: task.id, leaseToken: fifth.leaseToken, checkpoint: { pages: 70 } })).toMatchObject({ checkpoint: { pages: 70 } });
    const sixth = await callTool(mcp, "claim_task", { queues: ["settle"] });
    expect(await callTool(mcp, "fail_task", { taskId: task.id, leaseToken: sixth.leaseToken, error: "again", clearCheckpoint: true, checkpoint: null })).toMatchObject({ checkpoint: null });
  });

  it("a steal of an expired lease and a lease the sweeper takes back hand the checkpoint over", async () => {
    t = await startTestServerWithout("leaseSweeper");
    const api = t.api;
    const task = await api.tasks.enqueue.mutate({ queue: "q" });
    const lease = (await api.tasks.claim.mutate({ agentId: "gone", queues: ["q"], leaseMs: 200 }))!;
    const saved = await api.tasks.heartbeat.mutate({ taskId: task.id, agentId: "gone", leaseToken: lease.leaseToken, leaseMs: 200, checkpoint: { step: 3 } });
    // No more heartbeats (a crashed agent): once its lease ran out, a thief takes the task over at step 3.
    await vi.waitFor(() => expect(Date.now()).toBeGreaterThan(saved.leaseExpiresAt!.getTime() + 50), { timeout: 10_000, interval: 20 });
    const [stolen] = await api.tasks.steal.mutate({ agentId: "thief", limit: 1, leaseMs: 200 });
    expect(stolen).toMatchObject({ id: task.id, attempts: 2, leaseOwner: "thief", checkpoint: { step: 3 } });
    const thiefs = await api.tasks.heartbeat.mutate({ taskId: task.id, agentId: "thief", leaseToken: stolen!.leaseToken, leaseMs: 200, checkpoint: { step: 4 } });
    // The thief's lease runs out too: the sweeper puts it back, and the next claim resumes at step 4.
    await vi.waitFor(() => expect(Date.now()).toBeGreaterThan(thiefs.leaseExpiresAt!.getTime() + 50), { timeout: 10_000, interval: 20 });
    await t.server.services.jobs.leaseSweeper.runNow();
    expect(await api.tasks.get.query({ taskId: task.id })).toMatchObject({ status: "pending", checkpoint: { step: 4 } });
    expect(await api.tasks.claim.mutate({ agentId: "rescuer", queues: ["q"] })).toMatchObject({ id: task.id, attempts: 3, checkpoint: { step: 4 } });
  });

  it("only the lease's holder saves one: another agent, a stale token, a settled task are refused, and nothing changes", async () => {
    t = await startTestServer();
    const api = t.api;
    const task = await api.tasks.enqueue.mutate({});
    const first = (await api.tasks.claim.mutate({ agentId: "a" }))!;
    await api.tasks.heartbeat.mutate({ taskId: task.id, agentId: "a", checkpoint: "a's" });
    await expect(api.tasks.heartbeat.mutate({ taskId: task.id, agentId: "b", checkpoint: "b's" })).rejects.toMatchObject({ data: { code: "LEASE_CONFLICT", httpStatus: 409 } });
    await api.tasks.release.mutate({ taskId: task.id, agentId: "a" });
    const second = (await api.tasks.claim.mutate({ agentId: "a" }))!;
    // The first run's holder, fenced by its token: its save never lands on the second run.
    await expect(api.tasks.heartbeat.mutate({ taskId: task.id, agentId: "a", leaseToken: first.leaseToken, checkpoint: "stale" })).rejects.toMatchObject({ data: { code: "LEASE_CONFLICT" } });
    await api.tasks.complete.mutate({ taskId: task.id, agentId: "a", leaseToken: second.leaseToken });
    await expect(api.tasks.heartbeat.mutate({ taskId: task.id, agentId: "a", checkpoint: "late" })).rejects.toMatchObject({ data: { code: "LEASE_CONFLICT" } });
    expect((await api.tasks.get.query({ taskId: task.id })).checkpoint).toBe("a's");
    expect((await eventsOf(api, task.id, ["task.checkpointed"])).map(([, p]) => (p as { agentId: string; leaseToken: number }).leaseToken)).toEqual([first.leaseToken]);
  });

  it("an operator clears it: requeue's and update's checkpoint null, a payload replaced by update or by a dedupe replace", async () => {
    t = await startTestServer({ retryBaseMs: 60_000 });
    const api = t.api;
    /** A task of `queue` whose run saved `checkpoint`, then failed (`retry`: pending for its backoff; otherwise dead-lettered). */
    const failedWith = async (queue: string, checkpoint: unknown, retry: boolean, dedupe?: string) => {
      const task = await api.tasks.enqueue.mutate({ queue, payload: { v: 1 }, ...(dedupe ? { dedupe: { key: dedupe } } : {}) });
      const lease = (await api.tasks.claim.mutate({ agentId: "w", queues: [queue] }))!;
      await api.tasks.heartbeat.mutate({ taskId: task.id, agentId: "w", checkpoint: checkpoint as never });
      await api.tasks.fail.mutate({ taskId: task.id, agentId: "w", leaseToken: lease.leaseToken, error: "boom", retry });
      return task.id;
    };

    // A dead letter requeued keeps its checkpoint, unless asked: then it is cleared in the same write.
    const kept = await failedWith("dl-keep", { step: 2 }, false);
    expect(await api.tasks.requeue.mutate({ taskId: kept })).toMatchObject({ status: "pending", checkpoint: { step: 2 } });
    const poisoned = await failedWith("dl-clear", { step: 9 }, false);
    expect(await api.tasks.requeue.mutate({ taskId: poisoned, checkpoint: null })).toMatchObject({ status: "pending", checkpoint: null, checkpointAt: null });
    expect(await eventsOf(api, poisoned, ["task.requeued"])).toEqual([["task.requeued", expect.objectContaining({ taskId: poisoned, checkpointCleared: true })]]);
    expect((await eventsOf(api, kept, ["task.requeued"]))[0]![1]).not.toHaveProperty("checkpointCleared");

    // A retry waiting for its backoff: update's checkpoint null clears it, with a task.updated saying so.
    const retrying = await failedWith("retry", "halfway", true);
    const failedAt = (await api.tasks.get.query({ taskId: retrying })).updatedAt;
    // A clock tick on: the update is a write of its own (tasks.events finds it by the task's updatedAt).
    await vi.waitFor(() => expect(Date.now()).toBeGreaterThan(failedAt.getTime()), { timeout: 10_000, interval: 1 });
    const updated = await api.tasks.update.mutate({ taskId: retrying, checkpoint: null });
    expect(updated).toMatchObject({ status: "pending", checkpoint: null, checkpointAt: null });
    expect(updated.updatedAt.getTime()).toBeGreaterThan(failedAt.getTime());
    expect(await eventsOf(api, retrying, ["task.updated"])).toEqual([["task.updated", expect.objectContaining({ taskId: retrying, checkpointCleared: true })]]);
    // Asked again, nothing is kept to clear: the task as it is, no event.
    expect(await api.tasks.update.mutate({ taskId: retrying, checkpoint: null })).toEqual(updated);
    expect(await eventsOf(api, retrying, ["task.updated"])).toHaveLength(1);

    // A new payload clears the checkpoint saved for the old one.
    const replacedByUpdate = await failedWith("payload", { step: 5 }, true);
    expect(await api.tasks.update.mutate({ taskId: replacedByUpdate, payload: { v: 2 } })).toMatchObject({ payload: { v: 2 }, checkpoint: null, checkpointAt: null });
    expect(await eventsOf(api, replacedByUpdate, ["task.updated"])).toEqual([["task.updated", expect.objectContaining({ payloadReplaced: true, checkpointCleared: true })]]);
    const debounced = await failedWith("debounce", { step: 6 }, true, "reindex");
    const answered = await api.tasks.enqueue.mutate({ queue: "debounce", payload: { v: 3 }, dedupe: { key: "reindex", replace: true } });
    expect(answered).toMatchObject({ id: debounced, deduplicated: true, payload: { v: 3 }, checkpoint: null, checkpointAt: null });
    expect(await eventsOf(api, debounced, ["task.deduplicated"])).toEqual([["task.deduplicated", expect.objectContaining({ replaced: true, checkpointCleared: true })]]);
    // A dedupe replace with the payload the task has replaces nothing: the checkpoint stays.
    const same = await failedWith("same", { step: 8 }, true, "same-key");
    const unchanged = await api.tasks.enqueue.mutate({ queue: "same", payload: { v: 1 }, dedupe: { key: "same-key", replace: true } });
    expect(unchanged).toMatchObject({ id: same, deduplicated: true, checkpoint: { step: 8 }, replacedAt: null });
    expect(await eventsOf(api, same, ["task.deduplicated"])).toEqual([["task.deduplicated", expect.objectContaining({ replaced: false })]]);
    expect((await eventsOf(api, same, ["task.deduplicated"]))[0]![1]).not.toHaveProperty("checkpointCleared");
    // A bulk requeue clears them when asked, and says so for each that had one.
    const bulk = [await failedWith("bulk", { step: 1 }, false), await failedWith("bulk", null, false), await failedWith("bulk", { step: 3 }, false)];
    expect(await api.tasks.requeueMany.mutate({ queue: "bulk", checkpoint: null })).toEqual({ requeued: bulk, nextCursor: null });
    for (const id of bulk) expect(await api.tasks.get.query({ taskId: id })).toMatchObject({ status: "pending", checkpoint: null, checkpointAt: null });
    const cleared = await Promise.all(bulk.map(async (id) => (await eventsOf(api, id, ["task.requeued"]))[0]![1] as { checkpointCleared?: true }));
    expect(cleared.map((payload) => payload.checkpointCleared ?? false)).toEqual([true, false, true]);
    // An update that changes only the priority keeps it.
    const reprioritised = await failedWith("priority", { step: 7 }, true);
    expect(await api.tasks.update.mutate({ taskId: reprioritised, priority: 1 })).toMatchObject({ priority: 1, checkpoint: { step: 7 } });
  });

  it("over REST, and refusals: too large or too deep a 400 naming checkpoint; update and requeue take only null", async () => {
    t = await startTestServer({ maxJsonDepth: 8 });
    const api = t.api;
    const task = await api.tasks.enqueue.mutate({ queue: "q" });
    const lease = (await api.tasks.claim.mutate({ agentId: "rest-agent", queues: ["q"] }))!;
    const post = (path: string, body: unknown, method = "POST") => fetch(`${t!.url}${path}`, { method, headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

    const ok = await post(`/tasks/${task.id}/heartbeat`, { agentId: "rest-agent", leaseToken: lease.leaseToken, checkpoint: { rows: 1200 } });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ id: task.id, checkpoint: { rows: 1200 }, checkpointAt: expect.any(String) });
    const tooLarge = await post(`/tasks/${task.id}/heartbeat`, { agentId: "rest-agent", checkpoint: "x".repeat(MAX_CHECKPOINT_BYTES - 1) });
    expect(tooLarge.status).toBe(400);
    const refusal = (await tooLarge.json()) as { code: string; message: string };
    expect(refusal.code).toBe("INVALID_INPUT");
    expect(refusal.message).toContain(`checkpoint: must take at most ${MAX_CHECKPOINT_BYTES} bytes as JSON (it takes ${MAX_CHECKPOINT_BYTES + 1})`);
    // At the bound it is taken, multi-byte characters counted as bytes.
    const atBound = "é".repeat((MAX_CHECKPOINT_BYTES - 2) / 2);
    expect((await post(`/tasks/${task.id}/heartbeat`, { agentId: "rest-agent", checkpoint: atBound })).status).toBe(200);
    const tooDeep = await post(`/tasks/${task.id}/heartbeat`, { agentId: "rest-agent", checkpoint: { a: { b: { c: { d: { e: { f: { g: { h: { i: 1 } } } } } } } } } });
    expect(tooDeep.status).toBe(400);
    expect(((await tooDeep.json()) as { message: string }).message).toContain("checkpoint");
    expect((await api.tasks.get.query({ taskId: task.id })).checkpoint).toBe(atBound);

    // An operator clears, never writes, a checkpoint.
    await api.tasks.release.mutate({ taskId: task.id, agentId: "rest-agent" });
    const written = await post(`/tasks/${task.id}`, { checkpoint: { rows: 0 } }, "PATCH");
    expect(written.status).toBe(400);
    expect(((await written.json()) as { message: string }).message).toBe("checkpoint: must be null (got object)");
    const clearedOverRest = await post(`/tasks/${task.id}`, { checkpoint: null }, "PATCH");
    expect([clearedOverRest.status, ((await clearedOverRest.json()) as { checkpoint: unknown }).checkpoint]).toEqual([200, null]);
    const viaQuery = await fetch(`${t.url}/tasks/${task.id}?checkpoint=null`, { method: "PATCH", headers: { "content-type": "application/json" }, body: "{}" });
    expect(viaQuery.status).toBe(200);
    const notNullQuery = await fetch(`${t.url}/tasks/${task.id}?checkpoint=0`, { method: "PATCH", headers: { "content-type": "application/json" }, body: "{}" });
    expect([notNullQuery.status, ((await notNullQuery.json()) as { message: string }).message]).toEqual([400, 'checkpoint: must be null (got "0")']);
    const notNull = await post(`/tasks/${task.id}/requeue`, { checkpoint: "x" });
    expect(notNull.status).toBe(400);
    expect(((await notNull.json()) as { message: string }).message).toMatch(/^checkpoint: /);
    // Naming nothing to change is refused, and says checkpoint is one of the things it can.
    const nothing = await post(`/tasks/${task.id}`, {}, "PATCH");
    expect(((await nothing.json()) as { message: string }).message).toContain("payload or checkpoint");
  });


  it("a fail's or a release's checkpoint deeper than maxJsonDepth is refused as a heartbeat's is: a 400 naming it, the run not ended, nothing saved", async () => {
    t = await startTestServer({ maxJsonDepth: 8 });
    const api = t.api;
    const task = await api.tasks.enqueue.mutate({ queue: "q" });
    const lease = (await api.tasks.claim.mutate({ agentId: "w", queues: ["q"] }))!;
    const tooDeep = { a: { b: { c: { d: { e: { f: { g: { h: { i: 1 } } } } } } } } };
    const refusal = async (call: Promise<unknown>) => call.then(() => "taken", (error: { data?: { code?: string; httpStatus?: number }; message: string }) => [error.data?.code, error.data?.httpStatus, error.message]);
    const deep = "checkpoint: nests deeper than 8 levels (the server's maxJsonDepth); flatten it or store it as a string";
    expect(await refusal(api.tasks.fail.mutate({ taskId: task.id, agentId: "w", leaseToken: lease.leaseToken, error: "boom", checkpoint: tooDeep }))).toEqual(["INVALID_INPUT", 400, deep]);
    expect(await refusal(api.tasks.release.mutate({ taskId: task.id, agentId: "w", leaseToken: lease.leaseToken, checkpoint: tooDeep }))).toEqual(["INVALID_INPUT", 400, deep]);
    // Over REST alike, and the run goes on: still claimed under its lease, no checkpoint, no attempt charged.
    const rest = await fetch(`${t.url}/tasks/${task.id}/fail`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ agentId: "w", error: "boom", checkpoint: tooDeep }) });
    expect([rest.status, ((await rest.json()) as { message: string }).message]).toEqual([400, deep]);
    const after = await api.tasks.get.query({ taskId: task.id });
    expect([after.status, after.leaseToken, after.attempts, after.checkpoint, after.errorHistory]).toEqual(["claimed", lease.leaseToken, 1, null, []]);
  });
  it("an MCP agent saves one with heartbeat_task and is handed it by claim_task; a null from a strict-mode host is left out", async () => {
    t = await startTestServer({ retryBaseMs: 0 });
    const client = await connectMcp(t.url, { "x-agent-id": "mcp-agent" });
    const task = await callTool(client, "enqueue_task", { queue: "mcp" });
    const claimed = await callTool(client, "claim_task", { queues: ["mcp"] });
    expect(claimed).toMatchObject({ id: task.id, checkpoint: null });
    expect(await callTool(client, "heartbeat_task", { taskId: task.id, leaseToken: claimed.leaseToken, checkpoint: { sectionsDone: ["intro"] } })).toMatchObject({ checkpoint: { sectionsDone: ["intro"] } });
    expect(await callTool(client, "heartbeat_task", { taskId: task.id, leaseToken: claimed.leaseToken, leaseMs: null, progress: null, checkpoint: null })).toMatchObject({ checkpoint: { sectionsDone: ["intro"] } });
    await callTool(client, "fail_task", { taskId: task.id, leaseToken: claimed.leaseToken, error: "context window full" });
    const again = await callTool(client, "claim_task", { queues: ["mcp"] });
    expect(again).toMatchObject({ id: task.id, attempts: 2, checkpoint: { sectionsDone: ["intro"] } });
    // clearCheckpoint starts over; with a checkpoint beside it, it is refused and nothing changes.
    const both = await client.callTool({ name: "heartbeat_task", arguments: { taskId: task.id, leaseToken: again.leaseToken, checkpoint: { x: 1 }, clearCheckpoint: true } });
    expect(both.isError).toBe(true);
    expect(JSON.stringify(both.content)).toContain("give a checkpoint or clearCheckpoint, not both");
    expect(await callTool(client, "heartbeat_task", { taskId: task.id, leaseToken: again.leaseToken, checkpoint: null, clearCheckpoint: false })).toMatchObject({ checkpoint: { sectionsDone: ["intro"] } });
    expect(await callTool(client, "heartbeat_task", { taskId: task.id, leaseToken: again.leaseToken, clearCheckpoint: true })).toMatchObject({ checkpoint: null, checkpointAt: null });
  });

  it("a task's checkpoint weighs in the bounds on rows: a bulk requeue of dead letters holding large ones takes fewer a page", async () => {
    t = await startTestServer();
    const api = t.api;
    const big = "c".repeat(MAX_CHECKPOINT_BYTES - 2);
    await api.tasks.enqueueMany.mutate({ tasks: Array.from({ length: 100 }, () => ({ queue: "dl", maxAttempts: 1 })) });
    const leases = await api.tasks.claimMany.mutate({ agentId: "w", queues: ["dl"], limit: 100, context: false });
    for (const lease of leases) {
      await api.tasks.heartbeat.mutate({ taskId: lease.id, agentId: "w", leaseToken: lease.leaseToken, checkpoint: big });
      await api.tasks.fail.mutate({ taskId: lease.id, agentId: "w", leaseToken: lease.leaseToken, error: "no", retry: false });
    }
    // 4 MiB a page: about 64 rows of 64 KiB of checkpoint, not all 100.
    const first = await api.tasks.requeueMany.mutate({ queue: "dl", limit: 1000 });
    expect(first.requeued.length).toBeLessThanOrEqual(Math.floor((4 * 1024 * 1024) / MAX_CHECKPOINT_BYTES));
    expect(first.nextCursor).not.toBeNull();
    const rest = await api.tasks.requeueMany.mutate({ queue: "dl", limit: 1000, cursor: first.nextCursor! });
    expect(first.requeued.length + rest.requeued.length).toBe(100);
  });

  it("the operator's CLI shows it (tasks get) and clears it (tasks requeue and tasks update --clear-checkpoint)", async () => {
    t = await startTestServer({ retryBaseMs: 60_000 });
    const api = t.api;
    const env = { COORDINATION_URL: t.url };
    const task = await api.tasks.enqueue.mutate({ queue: "cli", maxAttempts: 1 });
    const idle = await api.tasks.enqueue.mutate({ queue: "cli-idle" });
    const lease = (await api.tasks.claim.mutate({ agentId: "w", queues: ["cli"] }))!;
    await api.tasks.heartbeat.mutate({ taskId: task.id, agentId: "w", checkpoint: { pagesDone: 40 } });
    const got = await runOperator({ args: ["tasks", "get", task.id], env });
    expect(got.code).toBe(0);
    expect(got.stdout).toMatch(/^checkpoint\s+\{"pagesDone":40\} \(\d+[smhd] ago, saved \d{4}-\d\d-\d\d \S+\)$/m);
    expect((await runOperator({ args: ["tasks", "get", idle.id], env })).stdout).toMatch(/^checkpoint\s+-$/m);
    await api.tasks.fail.mutate({ taskId: task.id, agentId: "w", leaseToken: lease.leaseToken, error: "bad page" });
    const requeued = await runOperator({ args: ["tasks", "requeue", task.id, "--clear-checkpoint"], env });
    expect(requeued.code).toBe(0);
    expect(requeued.stdout).toMatch(/^checkpoint\s+-$/m);
    expect(await api.tasks.get.query({ taskId: task.id })).toMatchObject({ status: "pending", checkpoint: null });

    const again = (await api.tasks.claim.mutate({ agentId: "w", queues: ["cli"] }))!;
    await api.tasks.heartbeat.mutate({ taskId: task.id, agentId: "w", checkpoint: 1 });
    await api.tasks.release.mutate({ taskId: task.id, agentId: "w", leaseToken: again.leaseToken, delayMs: 60_000 });
    const cleared = await runOperator({ args: ["tasks", "update", task.id, "--clear-checkpoint", "--json"], env });
    expect(cleared.code).toBe(0);
    expect(JSON.parse(cleared.stdout)).toMatchObject({ id: task.id, checkpoint: null, checkpointAt: null });
    // A long checkpoint is cut to 200 characters in the table; --json has it whole.
    const long = await api.tasks.enqueue.mutate({ queue: "cli-long" });
    await api.tasks.claim.mutate({ agentId: "w", queues: ["cli-long"] });
    await api.tasks.heartbeat.mutate({ taskId: long.id, agentId: "w", checkpoint: "x".repeat(5000) });
    expect((await runOperator({ args: ["tasks", "get", long.id], env })).stdout).toMatch(new RegExp(`^checkpoint\\s+"${"x".repeat(198)}… \\(`, "m"));
    expect(JSON.parse((await runOperator({ args: ["tasks", "get", long.id, "--json"], env })).stdout).checkpoint).toBe("x".repeat(5000));
    // In bulk: every dead letter of the queue back, checkpoints cleared.
    const dead = await api.tasks.enqueue.mutate({ queue: "cli-bulk" });
    const lease2 = (await api.tasks.claim.mutate({ agentId: "w", queues: ["cli-bulk"] }))!;
    await api.tasks.heartbeat.mutate({ taskId: dead.id, agentId: "w", checkpoint: 2 });
    await api.tasks.fail.mutate({ taskId: dead.id, agentId: "w", leaseToken: lease2.leaseToken, error: "bad page", retry: false });
    const all = await runOperator({ args: ["tasks", "requeue", "--all", "--queue", "cli-bulk", "--clear-checkpoint"], env });
    expect([all.code, all.stdout]).toEqual([0, "requeued 1 dead letters of queue cli-bulk\n"]);
    expect(await api.tasks.get.query({ taskId: dead.id })).toMatchObject({ status: "pending", checkpoint: null });
    // A flag of another command is refused, not dropped.
    const stray = await runOperator({ args: ["tasks", "get", task.id, "--clear-checkpoint"], env });
    expect(stray.code).toBe(2);
  });
});

describe("runWorker's run.saveCheckpoint", () => {
  it("a run that fails goes on from its checkpoint on the retry; a save not awaited when the handler throws is stored first", async () => {
    t = await startTestServer({ retryBaseMs: 0 });
    const api = t.api;
    const task = await api.tasks.enqueue.mutate({ queue: "resume", payload: { steps: 6 } });
    const runs: Array<{ from: unknown; did: number[] }> = [];
    const { worker, errors } = await workerOn(api, "resume", {
      handler: async (claimed, _signal, run) => {
        const from = claimed.checkpoint as { done: number } | null;
        const did: number[] = [];
        runs.push({ from, did });
        for (let step = (from?.done ?? 0) + 1; step <= 6; step++) {
          did.push(step);
          const saved = run.saveCheckpoint({ done: step });
          if (step === 3 && runs.length === 1) throw new Error("the model's API went away"); // step 3's save is under way
          expect(await saved).toBe(true);
        }
        return { steps: 6 };
      },
    });
    try {
      await vi.waitFor(async () => expect((await api.tasks.get.query({ taskId: task.id })).status).toBe("completed"), { timeout: 15_000, interval: 20 });
      expect(runs).toEqual([
        { from: null, did: [1, 2, 3] },
        { from: { done: 3 }, did: [4, 5, 6] },
      ]);
      expect(await api.tasks.get.query({ taskId: task.id })).toMatchObject({ attempts: 2, checkpoint: { done: 6 }, result: { steps: 6 } });
      expect(errors).toEqual([]);
    } finally {
      await worker.stop();
    }
  });

  it("saves go in the order made through a failed call, those made meanwhile as the last of them; undefined is none; after the run none is taken", async () => {
    t = await startTestServer();
    const api = t.api;
    const task = await api.tasks.enqueue.mutate({ queue: "order" });
    const sent: unknown[] = [];
    let failedOnce = false;
    let firstSent!: () => void;
    const underWay = new Promise<void>((resolve) => (firstSent = resolve));
    const flaky = withTaskCalls(api, {
      heartbeat: async (input: Parameters<typeof api.tasks.heartbeat.mutate>[0], options?: Parameters<typeof api.tasks.heartbeat.mutate>[1]) => {
        if (input.checkpoint === undefined) return api.tasks.heartbeat.mutate(input, options);
        sent.push(input.checkpoint);
        firstSent();
        // The first save's call fails as a dropped connection does, before it reaches the server.
        if (!failedOnce) {
          failedOnce = true;
          await new Promise((resolve) => setTimeout(resolve, 200));
          throw new Error("socket hang up");
        }
        return api.tasks.heartbeat.mutate(input, options);
      },
    });
    let late: (() => Promise<boolean>) | undefined;
    const answers: boolean[] = [];
    const { worker, errors } = await workerOn(flaky, "order", {
      handler: async (_task, _signal, run) => {
        answers.push(await run.saveCheckpoint(undefined as never));
        const one = run.saveCheckpoint("one");
        // While "one" is under way, "two" waits, and "three" replaces it: it answers for both.
        await underWay;
        const saves = [one, run.saveCheckpoint("two"), run.saveCheckpoint("three")];
        answers.push(...(await Promise.all(saves)));
        late = () => run.saveCheckpoint("after the run");
        return "done";
      },
    });
    try {
      await vi.waitFor(() => expect(worker.completed).toBe(1), { timeout: 15_000, interval: 20 });
      expect(answers).toEqual([false, true, true, true]);
      expect(sent).toEqual(["one", "one", "three"]);
      expect(await late!()).toBe(false);
      expect(await api.tasks.get.query({ taskId: task.id })).toMatchObject({ status: "completed", checkpoint: "three" });
      expect((await eventsOf(api, task.id, ["task.checkpointed"])).length).toBe(2);
      expect(errors.map(String)).toEqual(["Error: socket hang up"]);
    } finally {
      await worker.stop();
    }
  });

  it("a save the server refuses as the lease's end aborts the run at once; a value that is not JSON is refused by the client", async () => {
    t = await startTestServer();
    const api = t.api;
    const task = await api.tasks.enqueue.mutate({ queue: "gone" });
    const seen: Array<{ saved: boolean; aborted: boolean }> = [];
    let cancelled!: () => void;
    const cancel = new Promise<void>((resolve) => (cancelled = resolve));
    const { worker, errors } = await workerOn(api, "gone", {
      leaseMs: 60_000, // renewed every 20 s: no renewal finds the lease's end first
      handler: async (_task, signal, run) => {
        const state = { done: [1], log: () => undefined };
        seen.push({ saved: await run.saveCheckpoint(state as never), aborted: signal.aborted });
        seen.push({ saved: await run.saveCheckpoint({ done: [1] }), aborted: signal.aborted });
        cancelled();
        await vi.waitFor(async () => expect((await api.tasks.get.query({ taskId: task.id })).status).toBe("pending"), { timeout: 10_000, interval: 20 });
        seen.push({ saved: await run.saveCheckpoint({ done: [1, 2] }), aborted: signal.aborted });
        return "never stored";
      },
    });
    try {
      await cancel;
      // The lease ends with no word to the run (a cancel would stop it at once): given back in the agent's name, not due for an hour.
      await api.tasks.release.mutate({ taskId: task.id, agentId: "w-gone", delayMs: 3_600_000 });
      await vi.waitFor(() => expect(worker.lost).toBe(1), { timeout: 15_000, interval: 20 });
      expect(seen).toEqual([
        { saved: false, aborted: false },
        { saved: true, aborted: false },
        { saved: false, aborted: true },
      ]);
      expect(String(errors[0])).toMatch(new RegExp(`^Error: task "${task.id}"'s checkpoint was not saved: it is not JSON \\(`));
      expect(await api.tasks.get.query({ taskId: task.id })).toMatchObject({ status: "pending", checkpoint: { done: [1] } });
    } finally {
      await worker.stop();
    }
  });

  it("a server older than checkpoints refuses the field: the save answers false and onError says why, once; later saves are not sent", async () => {
    t = await startTestServer();
    const api = t.api;
    const task = await api.tasks.enqueue.mutate({ queue: "older" });
    let sent = 0;
    const older = withTaskCalls(api, {
      heartbeat: (input: Parameters<typeof api.tasks.heartbeat.mutate>[0], options?: Parameters<typeof api.tasks.heartbeat.mutate>[1]) => {
        if (input.checkpoint === undefined) return api.tasks.heartbeat.mutate(input, options);
        sent++;
        return asOlderServer(input, "checkpoint", (renamed) => api.tasks.heartbeat.mutate(renamed, options));
      },
    });
    const answers: boolean[] = [];
    const { worker, errors } = await workerOn(older, "older", {
      handler: async (_task, _signal, run) => {
        for (let step = 1; step <= 3; step++) answers.push(await run.saveCheckpoint({ step }));
        return "done anyway";
      },
    });
    try {
      await vi.waitFor(() => expect(worker.completed).toBe(1), { timeout: 15_000, interval: 20 });
      expect(answers).toEqual([false, false, false]);
      expect(sent).toBe(1);
      expect(errors.map(String)).toEqual([`Error: the server does not keep checkpoints (it is older than this client): task "${task.id}"'s checkpoint was not saved`]);
      expect(await api.tasks.get.query({ taskId: task.id })).toMatchObject({ status: "completed", checkpoint: null });
    } finally {
      await worker.stop();
    }
  });

  it("saves made faster than the server answers them cost a call a round, not one each: the settle waits for the last one only", async () => {
    t = await startTestServer();
    const api = t.api;
    const task = await api.tasks.enqueue.mutate({ queue: "burst" });
    const sent: unknown[] = [];
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    let firstSent!: () => void;
    const underWay = new Promise<void>((resolve) => (firstSent = resolve));
    const held = withTaskCalls(api, {
      heartbeat: async (input: Parameters<typeof api.tasks.heartbeat.mutate>[0], options?: Parameters<typeof api.tasks.heartbeat.mutate>[1]) => {
        if (input.checkpoint === undefined) return api.tasks.heartbeat.mutate(input, options);
        sent.push(structuredClone(input.checkpoint));
        firstSent();
        // The first save is answered only once the handler has made all of its own.
        await gate;
        return api.tasks.heartbeat.mutate(input, options);
      },
    });
    const answers: Array<Promise<boolean>> = [];
    const { worker, errors } = await workerOn(held, "burst", {
      handler: async (_task, _signal, run) => {
        // A growing list saved after each item, never awaited (as a tight loop over many items does).
        const done: number[] = [];
        for (let item = 1; item <= 500; item++) {
          done.push(item);
          answers.push(run.saveCheckpoint(done));
          if (item === 1) await underWay;
        }
        open();
        return done.length;
      },
    });
    try {
      await vi.waitFor(() => expect(worker.completed).toBe(1), { timeout: 15_000, interval: 20 });
      // The first, then the last in place of the 498 made while it was under way.
      expect(sent.map((value) => (value as number[]).length)).toEqual([1, 500]);
      expect(await Promise.all(answers)).toEqual(Array(500).fill(true));
      expect((await api.tasks.get.query({ taskId: task.id })).checkpoint).toHaveLength(500);
      expect((await eventsOf(api, task.id, ["task.checkpointed"])).length).toBe(2);
      expect(errors).toEqual([]);
    } finally {
      await worker.stop();
    }
  });

  it("a save still waiting when the lease is found lost (run out while the server could not be reached) is not sent: it would renew a lease the run gave up", async () => {
    // No sweeper: a lease run out stays claimed until a heartbeat renews it or the test ends.
    t = await startTestServerWithout("leaseSweeper");
    const api = t.api;
    const task = await api.tasks.enqueue.mutate({ queue: "outage" });
    const sent: unknown[] = [];
    let reachable = true;
    let answerFirst!: () => void;
    const firstAnswered = new Promise<void>((resolve) => (answerFirst = resolve));
    let firstSent!: () => void;
    const underWay = new Promise<void>((resolve) => (firstSent = resolve));
    const outage = withTaskCalls(api, {
      heartbeat: async (input: Parameters<typeof api.tasks.heartbeat.mutate>[0], options?: Parameters<typeof api.tasks.heartbeat.mutate>[1]) => {
        if (input.checkpoint === undefined) {
          if (!reachable) throw new Error("connect ECONNREFUSED");
          return api.tasks.heartbeat.mutate(input, options);
        }
        sent.push(input.checkpoint);
        firstSent();
        // The first save's call hangs through the outage, and fails as the server comes back.
        if (sent.length === 1) {
          await firstAnswered;
          throw new Error("socket hang up");
        }
        return api.tasks.heartbeat.mutate(input, options);
      },
    });
    const { worker } = await workerOn(outage, "outage", {
      leaseMs: 600,
      handler: async (_task, signal, run) => {
        reachable = false;
        void run.saveCheckpoint("first");
        await underWay;
        void run.saveCheckpoint("second");
        // The renewals fail until the lease may have run out: the run is told it lost the lease,
        // and the server is back at once.
        await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
        reachable = true;
        answerFirst();
        return "never settled";
      },
    });
    try {
      await vi.waitFor(() => expect(worker.lost).toBe(1), { timeout: 15_000, interval: 20 });
      expect(sent).toEqual(["first"]);
      const after = await api.tasks.get.query({ taskId: task.id });
      expect(after).toMatchObject({ status: "claimed", checkpoint: null });
      // The lease was not renewed after the run gave it up: it ran out as it was.
      expect(after.leaseExpiresAt!.getTime()).toBeLessThan(Date.now());
    } finally {
      await worker.stop();
    }
  });

  it("kill -9 of a worker process mid-task: the next worker is handed its last checkpoint and does only the rest", async () => {
    // A 3 s lease: after the kill, the sweeper takes it back and the second worker claims the task.
    t = await startTestServer({ leaseMs: 3000, leaseSweepMs: 100 });
    const api = t.api;
    const task = await api.tasks.enqueue.mutate({ queue: "crawl", payload: { site: "example.org" } });
    const script = fileURLToPath(new URL("./helpers/checkpoint-worker-process.mjs", import.meta.url));
    const doomed = spawn(process.execPath, [script, t.url, "doomed", "3"], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    doomed.stdout!.on("data", (chunk) => (out += chunk));
    try {
      await vi.waitFor(() => expect(out).toContain("saved 3"), { timeout: 30_000, interval: 20 });
    } finally {
      doomed.kill("SIGKILL");
    }
    await new Promise((resolve) => doomed.once("exit", resolve));
    expect(out).toBe("saved 1\nsaved 2\nsaved 3\n");
    const rescuer = spawn(process.execPath, [script, t.url, "rescuer", "never"], { stdio: ["ignore", "pipe", "inherit"] });
    let rescued = "";
    rescuer.stdout!.on("data", (chunk) => (rescued += chunk));
    try {
      await vi.waitFor(async () => expect((await api.tasks.get.query({ taskId: task.id })).status).toBe("completed"), { timeout: 30_000, interval: 50 });
    } finally {
      rescuer.kill("SIGKILL");
    }
    expect(rescued).toBe("saved 4\nsaved 5\n");
    expect(await api.tasks.get.query({ taskId: task.id })).toMatchObject({ attempts: 2, leaseOwner: "rescuer", result: { pages: 5 }, checkpoint: { pagesDone: 5 } });
  }, 90_000);
});

describe("a held lease's saves and renewals, both finding the lease gone", () => {
  type Heartbeat = Parameters<CoordinationApi["tasks"]["heartbeat"]["mutate"]>;
  /** A claimed task of a fresh queue, its lease held by `api` (renewals and saves through it) and watched: `lost` holds each onLost. */
  const held = async (api: CoordinationApi, through: CoordinationApi, leaseMs: number) => {
    const { id } = await api.tasks.enqueue.mutate({ queue: "held" });
    const receivedAt = momentNow();
    const claimed = (await api.tasks.claim.mutate({ agentId: "w", queues: ["held"], leaseMs, context: false }))!;
    const lost: unknown[] = [];
    const lease = new HeldLease(through, claimed, "w", leaseMs, () => undefined, receivedAt);
    lease.keepAlive((error) => lost.push(error));
    return { id, lease, lost };
  };

  it("a save refused while a renewal is under way: the run is told once, and no renewal is planned after", async () => {
    t = await startTestServer();
    const api = t.api;
    let renewals = 0;
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    let committed!: () => void;
    const renewed = new Promise<void>((resolve) => (committed = resolve));
    // The first renewal is stored, and its answer held until the save has found the lease gone.
    const slow = withTaskCalls(api, {
      heartbeat: async (input: Heartbeat[0], options?: Heartbeat[1]) => {
        if (input.checkpoint !== undefined) return api.tasks.heartbeat.mutate(input, options);
        renewals++;
        const answer = await api.tasks.heartbeat.mutate(input, options);
        if (renewals === 1) {
          committed();
          await gate;
        }
        return answer;
      },
    });
    const { id, lease, lost } = await held(api, slow, 3000);
    try {
      await renewed;
      await api.tasks.cancel.mutate({ taskId: id });
      expect(await lease.saveCheckpoint("after the cancel")).toBe(false);
      expect(lost).toHaveLength(1);
      open();
      // Until the lease the claim granted may have run out: a renewal planned from the held
      // answer (a third of the lease on) would have been sent before then.
      await vi.waitFor(() => expect(lease.mayBeValid).toBe(false), { timeout: 10_000, interval: 20 });
      expect([renewals, lost.length]).toEqual([1, 1]);
    } finally {
      lease.stop();
    }
  });

  it("a renewal refused while a save is under way: the save answers false, and the run is told once", async () => {
    t = await startTestServer();
    const api = t.api;
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    let sent!: () => void;
    const underWay = new Promise<void>((resolve) => (sent = resolve));
    // The save reaches the server only after the renewals have found the lease gone.
    const slow = withTaskCalls(api, {
      heartbeat: async (input: Heartbeat[0], options?: Heartbeat[1]) => {
        if (input.checkpoint === undefined) return api.tasks.heartbeat.mutate(input, options);
        sent();
        await gate;
        return api.tasks.heartbeat.mutate(input, options);
      },
    });
    const { id, lease, lost } = await held(api, slow, 900);
    try {
      const saved = lease.saveCheckpoint("before the cancel");
      await underWay;
      await api.tasks.cancel.mutate({ taskId: id });
      await vi.waitFor(() => expect(lost).toHaveLength(1), { timeout: 10_000, interval: 20 });
      open();
      expect(await saved).toBe(false);
      expect(lost).toHaveLength(1);
    } finally {
      lease.stop();
    }
  });
});
