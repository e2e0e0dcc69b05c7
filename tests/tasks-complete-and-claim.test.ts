// complete-and-claim: a worker's complete and its next claim in one write and one round trip,
// over tRPC, REST and in-process. The claim runs only if the complete succeeded; an answer that
// does not reach the agent gives the next task back uncharged, and the complete stands.
import net from "node:net";
import { describe, expect, it, vi } from "vitest";
import { rest, startTestServer, withDatabase } from "./helpers/test-server.js";

describe("complete-and-claim", () => {
  it("with next left out claims with the defaults: any queue", async () => {
    await using t = await startTestServer();
    const first = await t.api.tasks.enqueue.mutate({ queue: "jobs", payload: { n: 1 } });
    const other = await t.api.tasks.enqueue.mutate({ queue: "other", payload: { n: 2 } });
    const claimed = await rest(t.url, "GET", "/tasks/claim/w?queue=jobs");
    expect(claimed.body.id).toBe(first.id);
    const done = await rest(t.url, "POST", `/tasks/${first.id}/complete-and-claim`, { agentId: "w", leaseToken: 1, result: { ok: true } });
    expect(done).toMatchObject({ status: 200, body: { completed: { id: first.id, status: "completed" }, next: { id: other.id, status: "claimed", leaseOwner: "w" } } });
  });

  it("completes the task and claims the agent's next one, best first, with its context; null when none is left", async () => {
    await using t = await startTestServer();
    const earlier = await t.api.tasks.enqueue.mutate({ queue: "q", payload: { summarize: "quarterly report" }, priority: 0 });
    const low = await t.api.tasks.enqueue.mutate({ queue: "q", payload: { summarize: "yearly report" }, priority: 7 });
    const high = await t.api.tasks.enqueue.mutate({ queue: "q", payload: { translate: "memo" }, priority: 1 });
    const run0 = await t.api.tasks.claim.mutate({ agentId: "w1", queues: ["q"] });
    await t.api.tasks.complete.mutate({ taskId: earlier.id, agentId: "w1", leaseToken: run0!.leaseToken });
    const first = await t.api.tasks.claim.mutate({ agentId: "w1", queues: ["q"] });
    expect(first?.id).toBe(high.id);

    const done = await t.api.tasks.completeAndClaim.mutate({ taskId: high.id, agentId: "w1", leaseToken: first!.leaseToken, result: { ok: 1 }, next: { queues: ["q"] } });
    expect(done.completed).toMatchObject({ id: high.id, status: "completed", result: { ok: 1 }, settledLease: { agentId: "w1", leaseToken: 1 } });
    expect(done.next).toMatchObject({ id: low.id, status: "claimed", leaseOwner: "w1", leaseToken: 1, attempts: 1 });
    // The next task's context is recalled as for a claim, from runs committed before this call.
    expect(done.next!.context.map((m) => m.memory.taskId)).toContain(earlier.id);

    const last = await t.api.tasks.completeAndClaim.mutate({ taskId: low.id, agentId: "w1", leaseToken: 1 });
    expect(last).toMatchObject({ completed: { id: low.id, status: "completed", result: null }, next: null });
    // One write each: the log has the complete and the next claim in order.
    const types = (await t.api.events.list.query({ limit: 50 })).map((e) => `${e.type}:${(e.payload as { taskId?: string }).taskId}`);
    expect(types.filter((x) => x.startsWith("task.completed") || x.startsWith("task.claimed")).slice(2)).toEqual([
      `task.claimed:${high.id}`,
      `task.completed:${high.id}`,
      `task.claimed:${low.id}`,
      `task.completed:${low.id}`,
    ]);
  });

  it("sent again (its answer lost), hands out the same next task under the same lease, not another; claims anew once that lease ended", async () => {
    await using t = await startTestServer();
    const [a, b, c, d] = await t.api.tasks.enqueueMany.mutate({ tasks: [1, 2, 3, 4].map((n) => ({ queue: "cacq", payload: n })) });
    expect((await rest(t.url, "POST", "/tasks/claim", { agentId: "w", queues: ["cacq"] })).body).toMatchObject({ id: a!.id, leaseToken: 1 });
    const call = { agentId: "w", leaseToken: 1, result: "ok", next: { queues: ["cacq"] } };
    const first = await rest(t.url, "POST", `/tasks/${a!.id}/complete-and-claim`, call);
    expect(first).toMatchObject({ status: 200, body: { completed: { id: a!.id, status: "completed" }, next: { id: b!.id, leaseToken: 1, attempts: 1 } } });
    // The same request again, as a client does after a timeout: the same answer, no second task.
    const again = await rest(t.url, "POST", `/tasks/${a!.id}/complete-and-claim`, call);
    expect(again).toMatchObject({ status: 200, body: { completed: { id: a!.id, status: "completed" }, next: { id: b!.id, status: "claimed", leaseOwner: "w", leaseToken: 1, attempts: 1 } } });
    expect(await t.api.tasks.get.query({ taskId: c!.id })).toMatchObject({ status: "pending", attempts: 0 });
    const claimedEvents = async () => (await t.api.events.list.query({ types: ["task.claimed"], limit: 50 })).map((e) => (e.payload as { taskId: string }).taskId);
    expect(await claimedEvents()).toEqual([a!.id, b!.id]);
    // Through the typed client too, with its context.
    const typed = await t.api.tasks.completeAndClaim.mutate({ taskId: a!.id, ...call });
    expect(typed.next).toMatchObject({ id: b!.id, leaseToken: 1, attempts: 1 });
    expect(typed.next!.context.map((m) => m.memory.taskId)).toEqual([a!.id]);
    // A different result is not a repeat: a conflict, and nothing claimed.
    await expect(t.api.tasks.completeAndClaim.mutate({ taskId: a!.id, ...call, result: "other" })).rejects.toMatchObject({ data: { code: "INVALID_STATE" } });
    // Once the next task's lease ended (here: completed), a late repeat claims anew.
    await t.api.tasks.complete.mutate({ taskId: b!.id, agentId: "w", leaseToken: 1 });
    const late = await rest(t.url, "POST", `/tasks/${a!.id}/complete-and-claim`, call);
    expect(late.body).toMatchObject({ completed: { id: a!.id }, next: { id: c!.id, leaseToken: 1 } });
    expect(await claimedEvents()).toEqual([a!.id, b!.id, c!.id]);
    expect(await t.api.tasks.get.query({ taskId: d!.id })).toMatchObject({ status: "pending", attempts: 0 });
  });

    it("a complete that fails (a stale lease) claims nothing", async () => {
    await using t = await startTestServer();
    const a = await t.api.tasks.enqueue.mutate({ payload: { n: 1 } });
    const b = await t.api.tasks.enqueue.mutate({ payload: { n: 2 } });
    await t.api.tasks.claim.mutate({ agentId: "w1" });
    await expect(t.api.tasks.completeAndClaim.mutate({ taskId: a.id, agentId: "w1", leaseToken: 7 })).rejects.toMatchObject({
      data: { code: "LEASE_CONFLICT", httpStatus: 409 },
      message: `lease 7 of agent "w1" on task "${a.id}" is not the current one: the task is claimed by "w1" under lease 1`,
    });
    expect(await t.api.tasks.get.query({ taskId: a.id })).toMatchObject({ status: "claimed", leaseToken: 1 });
    expect(await t.api.tasks.get.query({ taskId: b.id })).toMatchObject({ status: "pending", attempts: 0, leaseOwner: null });
  });

  it("over REST: POST /tasks/{taskId}/complete-and-claim, snake_case accepted, next limited to the queues asked for", async () => {
    await using t = await startTestServer();
    const a = await t.api.tasks.enqueue.mutate({ queue: "q1", payload: { n: 1 } });
    await t.api.tasks.enqueue.mutate({ queue: "q1", payload: { n: 2 }, priority: 0 });
    const other = await t.api.tasks.enqueue.mutate({ queue: "q2", payload: { n: 3 } });
    const first = await t.api.tasks.claim.mutate({ agentId: "w1", queues: ["q1"] });
    const answer = await rest(t.url, "POST", `/tasks/${first!.id}/complete-and-claim`, { agent_id: "w1", lease_token: first!.leaseToken, result: "ok", next: { queues: ["q2"], context: false } });
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ completed: { id: first!.id, status: "completed", result: "ok" }, next: { id: other.id, queue: "q2", context: [] } });
    expect(first!.id).not.toBe(a.id);
    const refused = await rest(t.url, "POST", `/tasks/${other.id}/complete-and-claim`, { agentId: "w1", next: { queue: "q1" } });
    expect(refused).toMatchObject({ status: 400, body: { code: "INVALID_INPUT" } });
    expect(refused.body.message).toContain("queue");
    // Inside next too, snake_case is read as its camelCase field; the task id given twice says where each came from.
    const third = await t.api.tasks.enqueue.mutate({ queue: "q3", payload: { n: 4 } });
    const snake = await rest(t.url, "POST", `/tasks/${other.id}/complete-and-claim`, { agent_id: "w1", next: { queues: ["q3"], lease_ms: 60_000 } });
    expect(snake.status).toBe(200);
    expect(snake.body.next).toMatchObject({ id: third.id });
    expect(new Date(snake.body.next.leaseExpiresAt).getTime() - new Date(snake.body.next.updatedAt).getTime()).toBe(60_000);
    // OpenAPI says which bodies must be sent: this one names its agent; a plain complete need not (the seed's anonymous settles).
    const paths = (await rest(t.url, "GET", "/openapi.json")).body.paths;
    expect(paths["/tasks/{taskId}/complete-and-claim"].post.requestBody.required).toBe(true);
    expect(paths["/tasks/{taskId}/complete"].post.requestBody.required).toBe(false);
    const twice = await rest(t.url, "POST", `/tasks/${third.id}/complete-and-claim`, { agentId: "w1", taskId: other.id });
    expect(twice.body.message).toBe("taskId: taskId (path) and taskId (body) give different values; give one, or the same in both");
  });

  it("an answer that never reaches the agent gives the next task back uncharged; the complete stands", async () => {
    await using t = await startTestServer({ logLevel: "silent" });
    const a = await t.api.tasks.enqueue.mutate({ payload: { n: 1 } });
    const b = await t.api.tasks.enqueue.mutate({ payload: { n: 2 } });
    const first = await t.api.tasks.claim.mutate({ agentId: "w1" });
    expect(first?.id).toBe(a.id);
    // The request is sent whole, then its socket destroyed: the server may see the complete, never the agent its answer.
    const body = JSON.stringify({ agentId: "w1", leaseToken: 1 });
    const { port } = new URL(t.url);
    const socket = net.connect(Number(port), "127.0.0.1");
    socket.on("error", () => undefined);
    await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
    socket.write(`POST /tasks/${a.id}/complete-and-claim HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    socket.destroy();
    // The request arrived whole, so the complete is done; the next task, claimed or not (the server may have seen
    // the socket go first), is never left held by w1: a claim whose answer was not delivered is released.
    await vi.waitFor(async () => {
      expect(await t.api.tasks.get.query({ taskId: a.id })).toMatchObject({ status: "completed" });
      expect(await t.api.tasks.get.query({ taskId: b.id })).toMatchObject({ status: "pending", attempts: 0, leaseOwner: null });
      const count = (type: string) => withDatabase(t, (db) => db.prepare("SELECT COUNT(*) FROM events WHERE type = ?").pluck().get(type));
      expect(count("task.released")).toBe((count("task.claimed") as number) - 1);
    }, { timeout: 30_000, interval: 20 });
    // The agent, sending its complete again with the same result, learns it stands.
    expect(await t.api.tasks.complete.mutate({ taskId: a.id, agentId: "w1", leaseToken: 1 })).toMatchObject({ status: "completed" });
  });

  it("in-process: coordination.tasks.completeAndClaim", async () => {
    const { openCoordination } = await import("../src/in-process-api.js");
    const { makeTempDir } = await import("./helpers/test-server.js");
    const coordination = await openCoordination({ settings: { dbPath: `${makeTempDir()}/c.db`, logLevel: "silent" } });
    try {
      const a = await coordination.tasks.enqueue({ payload: { n: 1 } });
      const b = await coordination.tasks.enqueue({ payload: { n: 2 } });
      const first = await coordination.tasks.claim("w1");
      const done = await coordination.tasks.completeAndClaim(a.id, "w1", { leaseToken: first!.leaseToken, result: 5 });
      expect(done.completed).toMatchObject({ id: a.id, status: "completed", result: 5 });
      expect(done.next).toMatchObject({ id: b.id, leaseOwner: "w1" });
    } finally {
      await coordination.close();
    }
  });

  it("the completed task, the next one and its context share one answer's maxResponseBytes", async () => {
    await using t = await startTestServer({ maxResponseBytes: 65_536 });
    // Five notes of 12 kB that the next task's words match: alone they would fill most of an answer.
    for (let i = 0; i < 5; i++) await t.api.memory.remember.mutate({ kind: "note", content: `quarterly report lesson ${i} ${"x".repeat(12_000)}` });
    const first = await t.api.tasks.enqueue.mutate({ payload: { job: "translate memo" } });
    await t.api.tasks.enqueue.mutate({ payload: { job: "quarterly report" } });
    const claimed = await t.api.tasks.claim.mutate({ agentId: "w1", context: false });
    expect(claimed?.id).toBe(first.id);
    const answer = await rest(t.url, "POST", `/tasks/${first.id}/complete-and-claim`, { agentId: "w1", result: { text: "y".repeat(30_000) } });
    expect(answer.status).toBe(200);
    const { next } = answer.body as { next: { context: unknown[] } };
    // Without the completed task's share, all five would have been handed out (5 x 12 kB beside the next task).
    expect(next.context.length).toBeGreaterThan(0);
    expect(next.context.length).toBeLessThan(5);
    expect(JSON.stringify(answer.body).length).toBeLessThan(65_536);
  });

  it("a worker against a server without complete-and-claim (an older one) completes alone, losing nothing", async () => {
    await using t = await startTestServer();
    await t.api.tasks.enqueueMany.mutate({ tasks: Array.from({ length: 3 }, (_, n) => ({ queue: "old", payload: { n } })) });
    // The older server's answer to a procedure it does not have: its own 404, through the real client.
    const olderServer = new Proxy(t.api, {
      get: (api, key) =>
        key !== "tasks" ? Reflect.get(api, key) : new Proxy(api.tasks, { get: (tasks, name) => Reflect.get(tasks, name === "completeAndClaim" ? "notInThisVersion" : name) }),
    });
    const { runWorker } = await import("../client/index.js");
    const worker = await runWorker({ api: olderServer, agentId: "w-old", queues: ["old"], waitMs: 200, handler: async (task) => (task.payload as { n: number }).n });
    try {
      await vi.waitFor(() => expect(worker.completed).toBe(3), { timeout: 10_000, interval: 20 });
      expect([worker.completed, worker.failed, worker.lost]).toEqual([3, 0, 0]);
      const done = await t.api.tasks.list.query({ queue: "old", status: "completed" });
      expect(done.items.map((task) => task.result).sort()).toEqual([0, 1, 2]);
      expect(t.server.services.db.sent.get("tasks.complete")).toBe(3);
    } finally {
      await worker.stop();
    }
  });
});
