// An agent cancels the tasks it enqueued: a planner that fanned work out and got its answer from
// the first, or whose user changed their mind, stops the rest without an admin credential. An
// agent credential cancels only what its agent enqueued (the task's key scope); an admin any task;
// a read credential none. Over tRPC, REST, MCP and the command line, with the server's events.
import { afterEach, describe, expect, it } from "vitest";
import { isSystemEvent, TRPCClientError, type SystemEvent } from "../client/index.js";
import { killAllCli, runOperator } from "./helpers/cli-process.js";
import { callTool, closeMcpClients, connectMcp } from "./helpers/mcp-client.js";
import { http, startSecureServer, type SecureServer } from "./helpers/secure-server.js";
import { startTestServer, withDatabase, type TestServer } from "./helpers/test-server.js";
import { ENQUEUER_WINDOW, listQuery } from "../src/tasks/task-store.js";

let t: SecureServer | TestServer | undefined;
afterEach(async () => {
  await closeMcpClients();
  await killAllCli();
  await t?.stop({ removeFiles: true });
  t = undefined;
});

/** The domain code and message of a rejected typed-client call. */
async function refusal(call: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await call;
  } catch (error) {
    if (error instanceof TRPCClientError) return { code: (error.data as { code: string }).code, message: error.message };
    throw error;
  }
  throw new Error("the call succeeded");
}

/** The task.cancelled events among `events`, typed. */
const cancels = (events: Array<{ type: string; source: string }>): Array<SystemEvent<"task.cancelled">> => events.filter((event) => isSystemEvent(event, "task.cancelled"));

const notEnqueuedBy = (taskId: string, agentId: string) =>
  `task "${taskId}" was not enqueued by agent "${agentId}": an agent credential cancels only the tasks its agent enqueued (an admin's, any task)`;

async function withPlanner() {
  const s = await startSecureServer();
  t = s;
  const [plannerToken, otherToken, readToken] = await Promise.all([s.issue("agent", "planner"), s.issue("agent", "other"), s.issue("read")]);
  return { s, tokens: { planner: plannerToken!, other: otherToken!, read: readToken! }, planner: s.as(plannerToken!), other: s.as(otherToken!), reader: s.as(readToken!) };
}

describe("an agent cancels what it enqueued", () => {
  it("its own tasks in every state but completed, the tasks waiting on them with them; another's, an admin's or a schedule's is a 403 that changes nothing", async () => {
    const { s, planner, other, reader } = await withPlanner();
    // A fan-out: three searches, a summary waiting on them, and one already running elsewhere.
    const searches = await Promise.all(["a", "b", "c"].map((topic) => planner.tasks.enqueue.mutate({ queue: "search", payload: { topic } })));
    const summary = await planner.tasks.enqueue.mutate({ queue: "summary", dependsOn: searches.map((task) => task.id) });
    const running = (await other.tasks.claim.mutate({ agentId: "other", queues: ["search"], leaseMs: 60_000, context: false }))!;
    expect(running.id).toBe(searches[0]!.id);

    // Not the planner's: another agent's task, an admin's, a task of a schedule.
    const others = await other.tasks.enqueue.mutate({ queue: "search" });
    const admins = await s.admin.tasks.enqueue.mutate({ queue: "search" });
    const schedule = await s.admin.schedules.set.mutate({ scheduleId: "nightly", everyMs: 3_600_000, task: { queue: "reports" } });
    for (const taskId of [others.id, admins.id, schedule.schedule.nextTaskId!]) {
      expect(await refusal(planner.tasks.cancel.mutate({ taskId, reason: "mine now" }))).toEqual({ code: "FORBIDDEN", message: notEnqueuedBy(taskId, "planner") });
      expect((await s.admin.tasks.get.query({ taskId })).status).toBe("pending");
    }
    // Nor does the other agent cancel the planner's, or a read credential anyone's; an unknown task is a 404.
    expect(await refusal(other.tasks.cancel.mutate({ taskId: searches[1]!.id }))).toEqual({ code: "FORBIDDEN", message: notEnqueuedBy(searches[1]!.id, "other") });
    expect((await refusal(reader.tasks.cancel.mutate({ taskId: searches[1]!.id }))).code).toBe("FORBIDDEN");
    expect((await refusal(planner.tasks.cancel.mutate({ taskId: "no-such-task" }))).code).toBe("TASK_NOT_FOUND");

    // The planner got its answer: it stops the run under way (the holder's heartbeat is refused
    // then), the search not started, and the summary with them.
    const stopped = await planner.tasks.cancel.mutate({ taskId: running.id, reason: "answer found" });
    expect([stopped.status, stopped.lastError]).toEqual(["cancelled", "answer found"]);
    expect((await refusal(other.tasks.heartbeat.mutate({ agentId: "other", taskId: running.id, leaseToken: running.leaseToken }))).code).toBe("LEASE_CONFLICT");
    expect((await planner.tasks.cancel.mutate({ taskId: searches[1]!.id })).status).toBe("cancelled");
    expect((await s.admin.tasks.get.query({ taskId: summary.id })).status).toBe("cancelled");
    // Cancelling a cancelled task of its own answers it as it is; a completed one is INVALID_STATE.
    expect((await planner.tasks.cancel.mutate({ taskId: running.id })).lastError).toBe("answer found");
    const last = (await other.tasks.claim.mutate({ agentId: "other", queues: ["search"], context: false }))!;
    expect(last.id).toBe(searches[2]!.id);
    await other.tasks.complete.mutate({ taskId: last.id, leaseToken: last.leaseToken, result: { found: true } });
    expect((await refusal(planner.tasks.cancel.mutate({ taskId: last.id }))).code).toBe("INVALID_STATE");

    // The events name who cancelled: the planner's two, not the summary cancelled with them.
    const events = cancels(await s.admin.events.list.query({ types: ["task.cancelled"], limit: 100 }));
    expect(events.map((event) => [event.payload.taskId, event.payload.cancelledBy ?? null, event.payload.previousStatus])).toEqual([
      [running.id, "planner", "claimed"],
      [summary.id, null, "waiting"],
      [searches[1]!.id, "planner", "pending"],
    ]);
    // An admin cancels any task, named by no agent.
    expect((await s.admin.tasks.cancel.mutate({ taskId: others.id })).status).toBe("cancelled");
    const byAdmin = cancels(await s.admin.events.list.query({ types: ["task.cancelled"], afterSeq: events.at(-1)!.seq, limit: 10 }));
    expect(byAdmin.map((event) => [event.payload.taskId, "cancelledBy" in event.payload])).toEqual([[others.id, false]]);
  });

  it("a dead letter of its own is discarded; over REST, MCP and the command line with the agent's token", async () => {
    const { s, tokens, planner, other } = await withPlanner();
    const failing = await planner.tasks.enqueue.mutate({ queue: "q", maxAttempts: 1 });
    const held = (await other.tasks.claim.mutate({ agentId: "other", queues: ["q"], context: false }))!;
    await other.tasks.fail.mutate({ taskId: held.id, leaseToken: held.leaseToken, error: "broken" });
    expect((await planner.tasks.cancel.mutate({ taskId: failing.id, reason: "not needed" })).status).toBe("cancelled");

    // REST: the same rule, the same message.
    const [viaRest, notMine] = await Promise.all([planner.tasks.enqueue.mutate({ queue: "q" }), other.tasks.enqueue.mutate({ queue: "q" })]);
    expect(await http(s.url, "POST", `/tasks/${notMine.id}/cancel`, { token: tokens.planner, body: {} })).toMatchObject({
      status: 403,
      body: { code: "FORBIDDEN", message: notEnqueuedBy(notMine.id, "planner") },
    });
    expect(await http(s.url, "POST", `/tasks/${viaRest.id}/cancel`, { token: tokens.planner, body: { reason: "over REST" } })).toMatchObject({
      status: 200,
      body: { id: viaRest.id, status: "cancelled", lastError: "over REST" },
    });
    expect((await http(s.url, "POST", `/tasks/${notMine.id}/cancel`, { token: tokens.read, body: {} })).status).toBe(403);

    // MCP: cancel_task, for an LLM that enqueued through enqueue_task.
    const mcp = await connectMcp(s.url, { authorization: `Bearer ${tokens.planner}` });
    const fromMcp = await callTool(mcp, "enqueue_task", { queue: "q" });
    expect(await callTool(mcp, "cancel_task", { taskId: fromMcp.id, reason: "the user changed their mind" })).toMatchObject({ id: fromMcp.id, status: "cancelled", lastError: "the user changed their mind" });
    expect(await callTool(mcp, "cancel_task", { taskId: notMine.id })).toEqual({ error: { code: "FORBIDDEN", message: notEnqueuedBy(notMine.id, "planner") } });

    // The command line with the agent's token.
    const viaCli = await planner.tasks.enqueue.mutate({ queue: "q" });
    const env = { COORDINATION_URL: s.url, COORDINATION_TOKEN: tokens.planner };
    const cancelled = await runOperator({ args: ["tasks", "cancel", viaCli.id, "--json"], env }, 120_000);
    expect([cancelled.code, JSON.parse(cancelled.stdout).status, cancelled.stderr]).toEqual([0, "cancelled", ""]);
    expect(await runOperator({ args: ["tasks", "cancel", notMine.id], env }, 120_000)).toMatchObject({ code: 1, stdout: "", stderr: `coordination: FORBIDDEN: ${notEnqueuedBy(notMine.id, "planner")}\n` });
    expect((await s.admin.tasks.get.query({ taskId: notMine.id })).status).toBe("pending");
  });

  it("in bulk: cancelMany with enqueuedBy calls off its own fan-out in a queue, page by page, from an index; any other filter is a 403", async () => {
    const { s, tokens, planner, other } = await withPlanner();
    // The planner's fan-out: five searches and a summary waiting on them; one search already runs.
    const searches = (await planner.tasks.enqueueMany.mutate({ tasks: Array.from({ length: 5 }, (_, i) => ({ queue: "search", payload: { i } })) }));
    const summary = await planner.tasks.enqueue.mutate({ queue: "summary", dependsOn: searches.map((task) => task.id) });
    const running = (await other.tasks.claim.mutate({ agentId: "other", queues: ["search"], context: false }))!;
    expect(running.id).toBe(searches[0]!.id);
    // Beside it: another agent's and an admin's search, the planner's task of another queue.
    const [others, admins, elsewhere] = await Promise.all([other.tasks.enqueue.mutate({ queue: "search" }), s.admin.tasks.enqueue.mutate({ queue: "search" }), planner.tasks.enqueue.mutate({ queue: "translate" })]);

    // An agent names itself; none, or another agent, is refused before anything is read.
    const mustName = (named?: string) => `an agent credential cancels in bulk only the tasks its agent enqueued: give enqueuedBy "planner"${named === undefined ? "" : ` (not "${named}")`}`;
    expect(await refusal(planner.tasks.cancelMany.mutate({ queue: "search" }))).toEqual({ code: "FORBIDDEN", message: mustName() });
    expect(await refusal(planner.tasks.cancelMany.mutate({ queue: "search", enqueuedBy: "other" }))).toEqual({ code: "FORBIDDEN", message: mustName("other") });

    // Two a page: the waiting ones (pending by default) of its own, oldest first, the summary with them.
    const cancelled: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await planner.tasks.cancelMany.mutate({ queue: "search", enqueuedBy: "planner", reason: "answer found", limit: 2, ...(cursor === undefined ? {} : { cursor }) });
      cancelled.push(...page.cancelled);
      cursor = page.nextCursor ?? undefined;
    } while (cursor !== undefined);
    expect(cancelled).toEqual(searches.slice(1).map((task) => task.id));
    expect(await Promise.all([running.id, summary.id, others.id, admins.id, elsewhere.id].map(async (taskId) => (await s.admin.tasks.get.query({ taskId })).status))).toEqual(["claimed", "cancelled", "pending", "pending", "pending"]);
    // With claimed: the run under way too, over REST with the agent's token.
    expect(await http(s.url, "POST", "/tasks/cancel", { token: tokens.planner, body: { queue: "search", enqueuedBy: "planner", statuses: ["claimed"] } })).toMatchObject({ status: 200, body: { cancelled: [running.id], nextCursor: null } });
    expect(await http(s.url, "POST", "/tasks/cancel", { token: tokens.planner, body: { queue: "search" } })).toMatchObject({ status: 403, body: { code: "FORBIDDEN", message: mustName() } });
    // The events name the planner as who cancelled; the summary, cancelled with them, names its dependency.
    const events = cancels(await s.admin.events.list.query({ types: ["task.cancelled"], limit: 100 }));
    expect(events.filter((event) => event.payload.cancelledBy === "planner").map((event) => event.payload.taskId)).toEqual([...searches.slice(1).map((task) => task.id), running.id]);
    expect(events.find((event) => event.payload.taskId === summary.id)?.payload.cancelledBy).toBeUndefined();

    // The command line with the agent's token; an admin may name any agent.
    const more = await planner.tasks.enqueue.mutate({ queue: "translate" });
    const env = { COORDINATION_URL: s.url, COORDINATION_TOKEN: tokens.planner };
    const viaCli = await runOperator({ args: ["tasks", "cancel", "--all", "--queue", "translate", "--enqueued-by", "planner"], env }, 120_000);
    expect([viaCli.code, viaCli.stdout, viaCli.stderr]).toEqual([0, 'cancelled 2 tasks of queue translate enqueued by planner (and any waiting on them)\n', ""]);
    expect((await s.admin.tasks.get.query({ taskId: more.id })).status).toBe("cancelled");
    expect((await s.admin.tasks.cancelMany.mutate({ queue: "search", enqueuedBy: "other" })).cancelled).toEqual([others.id]);
    expect((await s.admin.tasks.get.query({ taskId: admins.id })).status).toBe("pending");

    // Its window is a range of the agent's index, not a walk of every task.
    expect(withDatabase(s, (db) => db.prepare(`EXPLAIN QUERY PLAN ${ENQUEUER_WINDOW}`).all("search", "planner", 0, 100, 5000).map((row) => (row as { detail: string }).detail))).toEqual([
      "SEARCH tasks USING INDEX tasks_enqueuer_idx (idempotencyScope=? AND seq>? AND seq<?)",
    ]);
  });

  it("a task names its enqueuer (enqueuedBy), and tasks.list finds an agent's enqueues from an index: REST, CLI, MCP", async () => {
    const { s, tokens, planner, other } = await withPlanner();
    const mine = [
      await planner.tasks.enqueue.mutate({ queue: "search" }),
      ...(await planner.tasks.enqueueMany.mutate({ tasks: [{ queue: "search" }, { queue: "summary" }] })),
      await planner.tasks.enqueue.mutate({ queue: "search", idempotencyKey: "k-1" }),
    ];
    const others = await other.tasks.enqueue.mutate({ queue: "search" });
    const admins = await s.admin.tasks.enqueue.mutate({ queue: "search" });
    expect(mine.map((task) => task.enqueuedBy)).toEqual(["planner", "planner", "planner", "planner"]);
    expect([others.enqueuedBy, admins.enqueuedBy]).toEqual(["other", null]);
    // Every answer holding the task says so: a claim, a get, a list.
    const claimed = (await other.tasks.claim.mutate({ agentId: "other", queues: ["search"], context: false }))!;
    expect([claimed.id, claimed.enqueuedBy]).toEqual([mine[0]!.id, "planner"]);
    expect((await s.admin.tasks.get.query({ taskId: admins.id })).enqueuedBy).toBeNull();
    // A dedupe answered with the first enqueuer's task: it stays the first enqueuer's.
    const first = await other.tasks.enqueue.mutate({ queue: "search", dedupe: { key: "reindex" } });
    const again = await planner.tasks.enqueue.mutate({ queue: "search", dedupe: { key: "reindex" } });
    expect([again.id, again.deduplicated, again.enqueuedBy]).toEqual([first.id, true, "other"]);

    const ids = mine.map((task) => task.id);
    expect((await planner.tasks.list.query({ enqueuedBy: "planner" })).items.map((task) => task.id)).toEqual(ids);
    expect((await planner.tasks.list.query({ enqueuedBy: "planner", order: "desc", limit: 2 })).items.map((task) => task.id)).toEqual([ids[3], ids[2]]);
    expect((await planner.tasks.list.query({ enqueuedBy: "planner", queue: "summary" })).items.map((task) => task.id)).toEqual([ids[2]]);
    expect((await planner.tasks.list.query({ enqueuedBy: "planner", status: "claimed" })).items.map((task) => task.id)).toEqual([ids[0]]);
    const page = await planner.tasks.list.query({ enqueuedBy: "planner", limit: 3 });
    expect((await planner.tasks.list.query({ enqueuedBy: "planner", limit: 3, cursor: page.nextCursor! })).items.map((task) => task.id)).toEqual([ids[3]]);
    expect((await planner.tasks.list.query({ enqueuedBy: "nobody" })).items).toEqual([]);
    // A range of the index in seq order, not a walk of the table, nor a sort.
    const { sql, params } = listQuery({ enqueuedBy: "planner", order: "asc" }, 50);
    expect(withDatabase(s, (db) => db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params).map((row) => (row as { detail: string }).detail))).toEqual([
      "SEARCH tasks USING INDEX tasks_enqueuer_idx (idempotencyScope=?)",
    ]);

    // REST, the CLI and MCP name it alike.
    const rest = await http(s.url, "GET", "/tasks?enqueuedBy=planner", { token: tokens.read });
    expect([rest.status, (rest.body as { items: Array<{ id: string; enqueuedBy: string }> }).items.map((task) => [task.id, task.enqueuedBy])]).toEqual([200, ids.map((id) => [id, "planner"])]);
    const env = { COORDINATION_URL: s.url, COORDINATION_TOKEN: tokens.read };
    const listed = await runOperator({ args: ["tasks", "list", "--enqueued-by", "planner", "--json"], env }, 120_000);
    expect([listed.code, (JSON.parse(listed.stdout) as { items: Array<{ id: string }> }).items.map((task) => task.id)]).toEqual([0, ids]);
    const shown = await runOperator({ args: ["tasks", "get", ids[1]!], env }, 120_000);
    expect(shown.stdout).toMatch(/^enqueued by\s+planner$/m);
    expect((await runOperator({ args: ["tasks", "get", admins.id], env }, 120_000)).stdout).toMatch(/^enqueued by\s+-$/m);
    const mcp = await connectMcp(s.url, { authorization: `Bearer ${tokens.planner}` });
    expect((await callTool(mcp, "list_tasks", { enqueuedBy: "planner", queue: "search" })).items.map((task: { id: string }) => task.id)).toEqual([ids[0], ids[1], ids[3]]);
  });

  it("an MCP session without an agent credential (an open server's, an admin's) enqueues as its agent: list_tasks' enqueuedBy finds its fan-out", async () => {
    const open = await startTestServer();
    t = open;
    // On an open server, X-Agent-Id names the agent; the tool descriptions tell it to find what it
    // asked for with list_tasks' enqueuedBy, its own id. Its enqueues were recorded as nobody's.
    const planner = await connectMcp(open.url, { "x-agent-id": "planner" });
    const other = await connectMcp(open.url, { "x-agent-id": "other" });
    const fanned = [await callTool(planner, "enqueue_task", { queue: "search", payload: 1 }), await callTool(planner, "enqueue_task", { queue: "search", payload: 2, idempotencyKey: "k-1" })];
    await callTool(other, "enqueue_task", { queue: "search", payload: 3 });
    await open.api.tasks.enqueue.mutate({ queue: "search" });
    expect(fanned.map((task) => task.enqueuedBy)).toEqual(["planner", "planner"]);
    expect((await callTool(planner, "list_tasks", { enqueuedBy: "planner" })).items.map((task: { id: string }) => task.id)).toEqual(fanned.map((task) => task.id));
    // Sent again with its key (its answer lost), the same task, still the planner's.
    expect(await callTool(planner, "enqueue_task", { queue: "search", payload: 2, idempotencyKey: "k-1" })).toMatchObject({ id: fanned[1].id, replayed: true, enqueuedBy: "planner" });
    // It grants nothing on an open server that was not granted: anyone still cancels any task.
    expect(await callTool(other, "cancel_task", { taskId: fanned[0].id })).toMatchObject({ status: "cancelled", enqueuedBy: "planner" });
    await open.stop({ removeFiles: true });

    // An admin credential's session acting as an agent (X-Agent-Id) enqueues as that agent too.
    const s = await startSecureServer();
    t = s;
    const admin = await connectMcp(s.url, { authorization: `Bearer ${await s.issue("admin")}`, "x-agent-id": "orchestrator" });
    const task = await callTool(admin, "enqueue_task", { queue: "q", payload: 1 });
    expect(task.enqueuedBy).toBe("orchestrator");
    expect((await s.admin.tasks.list.query({ enqueuedBy: "orchestrator" })).items.map((item) => item.id)).toEqual([task.id]);
  });

  it("on an open server, as in-process, anyone cancels any task, as before", async () => {
    const open = await startTestServer();
    t = open;
    const task = await open.api.tasks.enqueue.mutate({ queue: "q" });
    expect((await open.api.tasks.cancel.mutate({ taskId: task.id })).status).toBe("cancelled");
    const mcp = await connectMcp(open.url, { "x-agent-id": "someone" });
    const another = await open.api.tasks.enqueue.mutate({ queue: "q" });
    expect(await callTool(mcp, "cancel_task", { taskId: another.id })).toMatchObject({ id: another.id, status: "cancelled" });
    const events = cancels(await open.api.events.list.query({ types: ["task.cancelled"], limit: 10 }));
    expect(events.map((event) => "cancelledBy" in event.payload)).toEqual([false, false]);
  });
});
