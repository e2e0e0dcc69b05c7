// Waiting for several tasks at once (tasks.waitMany, GET /tasks/wait, in-process tasks.waitMany,
// MCP wait_for_tasks): what an orchestrator that fanned work out to other agents waits on, all of
// it or the first result. Each test parks a wait (seen parked on /metrics, not after a sleep),
// settles tasks another way, and checks the answer exactly; none depends on the machine's speed.
import { afterEach, describe, expect, it, vi } from "vitest";
import { killAllCli, runOperator } from "./helpers/cli-process.js";
import { callTool, closeMcpClients, connectMcp } from "./helpers/mcp-client.js";
import { parkedLongPolls } from "./helpers/mcp-http.js";
import { LONG_WAIT_MS, parked, promptly, WAKE_ONLY } from "./helpers/task-waits.js";
import { ADMIN_SECRET, http, startSecureServer, type SecureServer } from "./helpers/secure-server.js";
import { makeTempDir, rest, startTestServer, type TestServer } from "./helpers/test-server.js";
import { openCoordination } from "../src/index.js";
import { LONG_POLLING, WAITS_UNNAMED } from "../client/long-polling.js";

let t: TestServer | undefined;
let t2: TestServer | undefined;
let secure: SecureServer | undefined;
afterEach(async () => {
  await killAllCli();
  await closeMcpClients();
  await t2?.stop();
  await t?.stop({ removeFiles: true });
  await secure?.stop({ removeFiles: true });
  t = t2 = secure = undefined;
});

/** Claims the only task of `queue` as `agentId` and completes it with `result`. */
async function runTask(server: TestServer, queue: string, result: unknown, agentId = "worker"): Promise<void> {
  const claimed = await server.api.tasks.claim.mutate({ agentId, queues: [queue], context: false });
  await server.api.tasks.complete.mutate({ taskId: claimed!.id, agentId, leaseToken: claimed!.leaseToken, result: result as never });
}

describe("tasks.waitMany", () => {
  it("until all, over REST: parked while any is unsettled, then every task in the order asked, results with them", async () => {
    t = await startTestServer(WAKE_ONLY);
    const a = await t.api.tasks.enqueue.mutate({ queue: "a", payload: { part: 1 } });
    const b = await t.api.tasks.enqueue.mutate({ queue: "b", payload: { part: 2 }, maxAttempts: 1 });
    const c = await t.api.tasks.enqueue.mutate({ queue: "c", payload: { part: 3 }, delayMs: 3_600_000 });
    const waiting = rest(t.url, "GET", `/tasks/wait?taskIds=${c.id},${a.id}&taskIds=${b.id}&waitMs=${LONG_WAIT_MS}`);
    await parked(t.url, 1);
    await runTask(t, "a", { summary: "first" });
    const run = await t.api.tasks.claim.mutate({ agentId: "worker", queues: ["b"], context: false });
    await t.api.tasks.fail.mutate({ taskId: b.id, agentId: "worker", leaseToken: run!.leaseToken, error: "no source" });
    // Two of three settled: the wait is still parked (its wake-ups looked, and parked again).
    await vi.waitFor(async () => expect((await t!.api.tasks.get.query({ taskId: b.id })).status).toBe("dead_letter"), { timeout: 15_000, interval: 20 });
    expect(await parkedLongPolls(t.url, "wait")).toBe(1);
    await t.api.tasks.cancel.mutate({ taskId: c.id, reason: "enough" });
    const answer = await promptly(waiting);
    expect(answer.status).toBe(200);
    expect(answer.body.done).toBe(true);
    expect(answer.body.omitted).toEqual([]);
    expect(answer.body.tasks.map((task: { id: string; status: string }) => [task.id, task.status])).toEqual([
      [c.id, "cancelled"],
      [a.id, "completed"],
      [b.id, "dead_letter"],
    ]);
    expect(answer.body.tasks[1]).toMatchObject({ result: { summary: "first" }, payload: { part: 1 } });
    expect(answer.body.tasks[2]).toMatchObject({ lastError: "no source" });
    expect(await parkedLongPolls(t.url, "wait")).toBe(0);
  });

  it("until any: the first to settle answers, the others as they are; through another server on the file too", async () => {
    // The bus reads the other server's commits every 50 ms; a wait's own re-look is 30 s away.
    t = await startTestServer({ crossProcessPollMs: 50, maxWaitMs: 300_000 });
    t2 = await startTestServer({ crossProcessPollMs: 50 }, t.dir);
    const slow = await t.api.tasks.enqueue.mutate({ queue: "slow", payload: {} });
    const fast = await t.api.tasks.enqueue.mutate({ queue: "fast", payload: {} });
    const waiting = t.api.tasks.waitMany.query({ taskIds: [slow.id, fast.id], until: "any", waitMs: LONG_WAIT_MS });
    await parked(t.url, 1);
    await runTask(t2, "fast", 7);
    const answer = await promptly(waiting);
    expect(answer).toMatchObject({ done: true, omitted: [] });
    expect(answer.tasks.map((task) => [task.id, task.status, task.result])).toEqual([
      [slow.id, "pending", null],
      [fast.id, "completed", 7],
    ]);
    // Settled already: answered at once (far past the test's own timeout otherwise).
    expect((await t.api.tasks.waitMany.query({ taskIds: [slow.id, fast.id], until: "any", waitMs: 3_600_000 })).done).toBe(true);
  });

  it("answers at once when settled, as they are when waitMs runs out (done false), and reads without waiting at waitMs 0; refuses what it cannot wait on", async () => {
    t = await startTestServer();
    const done = await t.api.tasks.enqueue.mutate({ queue: "done", payload: {} });
    await runTask(t, "done", "ok");
    const later = await t.api.tasks.enqueue.mutate({ payload: {}, delayMs: 3_600_000 });
    expect(await t.api.tasks.waitMany.query({ taskIds: [done.id], waitMs: 3_600_000 })).toMatchObject({ done: true, tasks: [{ id: done.id, status: "completed", result: "ok" }] });
    const ranOut = await t.api.tasks.waitMany.query({ taskIds: [done.id, later.id], waitMs: 200 });
    expect(ranOut.done).toBe(false);
    expect(ranOut.tasks.map((task) => task.status)).toEqual(["completed", "pending"]);
    expect((await t.api.tasks.waitMany.query({ taskIds: [later.id, done.id], waitMs: 0 })).tasks.map((task) => task.id)).toEqual([later.id, done.id]);
    // Left out, waitMs is the server's maxWaitMs: the wait parks.
    const byDefault = t.api.tasks.waitMany.query({ taskIds: [later.id] });
    await parked(t.url, 1);
    await t.api.tasks.cancel.mutate({ taskId: later.id });
    expect((await byDefault).tasks[0]!.status).toBe("cancelled");

    expect(await rest(t.url, "GET", `/tasks/wait?taskIds=${done.id},nope&waitMs=60000`)).toMatchObject({ status: 404, body: { code: "TASK_NOT_FOUND", message: 'task "nope" not found' } });
    expect(await rest(t.url, "GET", `/tasks/wait?taskIds=nope,${done.id},gone,lost`)).toMatchObject({
      status: 404,
      body: { code: "TASK_NOT_FOUND", message: 'tasks "nope", "gone", "lost" not found', details: { id: "nope", missing: ["nope", "gone", "lost"] } },
    });
    const refusals: Array<[string, string]> = [
      [`taskIds=${done.id},${done.id}`, `taskIds[1]: names task "${done.id}" twice`],
      ["waitMs=100", "taskIds"],
      [`taskIds=${Array.from({ length: 101 }, (_, i) => `t${i}`).join(",")}`, "taskIds"],
      [`taskIds=${done.id}&until=every`, "until"],
      [`taskIds=${done.id}&waitMs=-1`, "waitMs"],
    ];
    for (const [query, named] of refusals) {
      const refused = await rest(t.url, "GET", `/tasks/wait?${query}`);
      expect(refused.status, query).toBe(400);
      expect(refused.body.code).toBe("INVALID_INPUT");
      expect(refused.body.message).toContain(named);
    }
    // A task's own wait route is still the task's: /tasks/{id}/wait.
    expect(await rest(t.url, "GET", `/tasks/${done.id}/wait?waitMs=0`)).toMatchObject({ status: 200, body: { id: done.id } });
  });

  it("an answer past maxResponseBytes is packed, settled tasks first, and names those left out in omitted, in the order asked; settledOnly sends the settled alone", async () => {
    t = await startTestServer({ maxResponseBytes: 65_536 });
    const small = await t.api.tasks.enqueue.mutate({ queue: "open", payload: { n: 1 } });
    const bigPending = await t.api.tasks.enqueue.mutate({ queue: "held", payload: "p".repeat(40_000), delayMs: 3_600_000 });
    const second = await t.api.tasks.enqueue.mutate({ queue: "big-1", payload: { n: 2 } });
    const third = await t.api.tasks.enqueue.mutate({ queue: "big-2", payload: { n: 3 } });
    await runTask(t, "big-1", "x".repeat(40_000));
    await runTask(t, "big-2", "y".repeat(40_000));
    // Settled first: the second (40 kB) goes in before the pending 40 kB one asked ahead of it;
    // the third would pass 64 KiB, the small pending one still fits.
    const answer = await t.api.tasks.waitMany.query({ taskIds: [small.id, bigPending.id, second.id, third.id], until: "any", waitMs: 0 });
    expect(answer.done).toBe(true);
    expect(answer.tasks.map((task) => [task.id, task.status])).toEqual([
      [small.id, "pending"],
      [second.id, "completed"],
    ]);
    expect(answer.tasks[1]!.result).toBe("x".repeat(40_000));
    expect(answer.omitted).toEqual([bigPending.id, third.id]);
    const all = await t.api.tasks.waitMany.query({ taskIds: [third.id, second.id, small.id], waitMs: 0 });
    expect(all).toMatchObject({ done: false, omitted: [second.id] });
    expect(all.tasks.map((task) => task.id)).toEqual([third.id, small.id]);
    // settledOnly: the settled alone (the pending ones are in neither list).
    const settled = await t.api.tasks.waitMany.query({ taskIds: [small.id, bigPending.id, second.id, third.id], settledOnly: true, waitMs: 0 });
    expect(settled).toMatchObject({ done: false, omitted: [third.id] });
    expect(settled.tasks.map((task) => task.id)).toEqual([second.id]);
    // Sizes are bytes as sent, not characters: two 20,000-character results of "é" (40 kB each) do not fit together.
    const wide = await t.api.tasks.enqueueMany.mutate({ tasks: [{ queue: "wide", payload: 1 }, { queue: "wide", payload: 2 }] });
    await runTask(t, "wide", "é".repeat(20_000));
    await runTask(t, "wide", "é".repeat(20_000));
    expect(await t.api.tasks.waitMany.query({ taskIds: wide.map((task) => task.id), waitMs: 0 })).toMatchObject({ done: true, tasks: [{ id: wide[0]!.id }], omitted: [wide[1]!.id] });
    // Alone, a task larger than the budget is still answered: an answer always makes progress.
    const huge = await t.api.tasks.enqueue.mutate({ queue: "huge", payload: "z".repeat(100_000) });
    const alone = await t.api.tasks.waitMany.query({ taskIds: [huge.id, small.id], waitMs: 0 });
    expect(alone.tasks.map((task) => task.id)).toEqual([huge.id]);
    expect(alone.omitted).toEqual([small.id]);
  });

  it("with credentials: any credential may wait; one waitMany is one parked place however many tasks it names", async () => {
    secure = await startSecureServer({ maxParkedPerAgent: 1 });
    const tasks = await secure.admin.tasks.enqueueMany.mutate({ tasks: [{ payload: {}, delayMs: 3_600_000 }, { payload: {}, delayMs: 3_600_000 }] });
    const ids = tasks.map((task) => task.id);
    const readToken = await secure.issue("read");
    expect((await http(secure.url, "GET", `/tasks/wait?taskIds=${ids.join(",")}`)).status).toBe(401);
    const first = http(secure.url, "GET", `/tasks/wait?taskIds=${ids.join(",")}&waitMs=60000`, { token: readToken });
    await parked(secure.url, 1, ADMIN_SECRET);
    const second = await http(secure.url, "GET", `/tasks/wait?taskIds=${ids[0]}&waitMs=60000`, { token: readToken });
    expect(second).toMatchObject({ status: 429, body: { code: "LIMIT_EXCEEDED" } });
    expect(second.body.message).toContain("(setting maxParkedPerAgent)");
    // Waiting for nothing, it parks nothing: never refused for the bound.
    expect(await http(secure.url, "GET", `/tasks/wait?taskIds=${ids[0]}&waitMs=0`, { token: readToken })).toMatchObject({ status: 200, body: { done: false } });
    for (const id of ids) await secure.admin.tasks.cancel.mutate({ taskId: id });
    expect(await first).toMatchObject({ status: 200, body: { done: true, tasks: [{ status: "cancelled" }, { status: "cancelled" }] } });
  });

  it("a wait parked when the server stops is answered 503 SHUTTING_DOWN", async () => {
    t = await startTestServer();
    const task = await t.api.tasks.enqueue.mutate({ payload: {}, delayMs: 3_600_000 });
    const waiting = rest(t.url, "GET", `/tasks/wait?taskIds=${task.id}&waitMs=60000`);
    await parked(t.url, 1);
    const stopping = t.server.stop();
    expect(await waiting).toMatchObject({ status: 503, body: { code: "SHUTTING_DOWN" } });
    await stopping;
  });

  it("in-process and over MCP; the typed client sends it on its own request and allows it the longest server wait", async () => {
    expect(LONG_POLLING.has("tasks.waitMany") && WAITS_UNNAMED.has("tasks.waitMany")).toBe(true);
    const coordination = await openCoordination({ settings: { dbPath: `${makeTempDir()}/local.db`, logLevel: "silent", ...WAKE_ONLY } });
    try {
      const [one, two] = await coordination.tasks.enqueueMany([{ payload: { q: 1 } }, { payload: { q: 2 } }]);
      const waiting = coordination.tasks.waitMany([one!.id, two!.id], { waitMs: LONG_WAIT_MS });
      for (const _ of [one, two]) {
        const run = await coordination.tasks.claim("agent-1", { context: false });
        await coordination.tasks.complete(run!.id, "agent-1", { from: run!.payload }, { leaseToken: run!.leaseToken });
      }
      expect(await promptly(waiting)).toMatchObject({ done: true, tasks: [{ id: one!.id, result: { from: { q: 1 } } }, { id: two!.id, result: { from: { q: 2 } } }], omitted: [] });
      await expect(coordination.tasks.waitMany(["nope"])).rejects.toMatchObject({ code: "TASK_NOT_FOUND" });
    } finally {
      await coordination.close();
    }

    t = await startTestServer(WAKE_ONLY);
    const mcp = await connectMcp(t.url, { "x-agent-id": "orchestrator" });
    const handed = [await callTool(mcp, "enqueue_task", { queue: "research", payload: { topic: "a" } }), await callTool(mcp, "enqueue_task", { queue: "research", payload: { topic: "b" } })];
    const waiting = callTool(mcp, "wait_for_tasks", { taskIds: handed.map((task: { id: string }) => task.id) });
    await parked(t.url, 1);
    await runTask(t, "research", { summary: "a" }, "researcher");
    await runTask(t, "research", { summary: "b" }, "researcher");
    // MCP cuts a tool's wait to 20 s: twice promptly's bound.
    const answer = await promptly(waiting);
    expect(answer).toMatchObject({ done: true, omitted: [] });
    expect(answer.tasks.map((task: { result: unknown }) => task.result)).toEqual([{ summary: "a" }, { summary: "b" }]);
    const unsettled = await t.api.tasks.enqueue.mutate({ payload: {}, delayMs: 3_600_000 });
    expect(await callTool(mcp, "wait_for_tasks", { taskIds: [unsettled.id], until: "any", waitMs: 0 })).toMatchObject({ done: false, tasks: [{ id: unsettled.id, status: "pending" }] });
  });

  it("from the command line: `tasks wait ID ID…` waits for all (or --any), exit 0 when they completed, 3 as soon as one did not, 4 when not in time", async () => {
    t = await startTestServer(WAKE_ONLY);
    const env = { COORDINATION_URL: t.url };
    const [a, b] = await t.api.tasks.enqueueMany.mutate({ tasks: [{ queue: "a", payload: {} }, { queue: "b", payload: {} }] });
    expect(await runOperator({ args: ["tasks", "wait", a!.id, b!.id, "--timeout", "500ms"], env })).toMatchObject({ code: 4, stderr: "coordination: 2 of 2 tasks had not settled in 500ms\n" });
    expect(await runOperator({ args: ["tasks", "wait", a!.id, b!.id, "--any", "--timeout", "500ms"], env })).toMatchObject({ code: 4, stderr: "coordination: none of the tasks had settled in 500ms\n" });
    const all = runOperator({ args: ["tasks", "wait", a!.id, b!.id, "--json"], env }, 60_000);
    await parked(t.url, 1);
    await runTask(t, "a", { pages: 3 });
    const any = await runOperator({ args: ["tasks", "wait", b!.id, a!.id, "--any"], env });
    expect(any).toMatchObject({ code: 0, stderr: "" });
    expect(any.stdout).toMatch(new RegExp(`^${b!.id} +pending +- +-$`, "m"));
    expect(any.stdout).toMatch(new RegExp(`^${a!.id} +completed +\\S+ \\S+ +\\{"pages":3\\}$`, "m"));
    // The first command asks again for b alone, and parks: a round that asked for a too, settled,
    // would be answered at once, each second (the server's answers are counted).
    await parked(t.url, 1);
    const answersBefore = t.server.services.db.sent.get("tasks.getMany") ?? 0;
    await new Promise((resolve) => setTimeout(resolve, 3000));
    expect(await parkedLongPolls(t.url, "wait")).toBe(1);
    expect((t.server.services.db.sent.get("tasks.getMany") ?? 0) - answersBefore).toBeLessThanOrEqual(1);
    await runTask(t, "b", "r".repeat(100));
    const answered = await all;
    expect(answered).toMatchObject({ code: 0, stderr: "" });
    const printed = JSON.parse(answered.stdout);
    expect(printed.done).toBe(true);
    expect(printed.tasks.map((task: { id: string; status: string }) => [task.id, task.status])).toEqual([
      [a!.id, "completed"],
      [b!.id, "completed"],
    ]);

    // A task dead-lettered ends the wait at once, exit 3, whatever the others do; long results are cut in the table.
    const [dead, later] = await t.api.tasks.enqueueMany.mutate({ tasks: [{ queue: "dead", payload: {}, maxAttempts: 1 }, { queue: "later", payload: {}, delayMs: 3_600_000 }] });
    const run = await t.api.tasks.claim.mutate({ agentId: "worker", queues: ["dead"], context: false });
    await t.api.tasks.fail.mutate({ taskId: dead!.id, agentId: "worker", leaseToken: run!.leaseToken, error: "no source" });
    const failed = await runOperator({ args: ["tasks", "wait", b!.id, later!.id, dead!.id, "--timeout", "10m"], env });
    expect(failed).toMatchObject({ code: 3, stderr: `coordination: task ${dead!.id} was dead-lettered\n` });
    const failedJson = await runOperator({ args: ["tasks", "wait", later!.id, dead!.id, "--json"], env });
    expect(failedJson).toMatchObject({ code: 3 });
    // done as the API says it: not all settled.
    expect(JSON.parse(failedJson.stdout)).toMatchObject({ done: false, tasks: [{ id: later!.id, status: "pending" }, { id: dead!.id, status: "dead_letter" }] });
    expect(failed.stdout).toMatch(new RegExp(`^${b!.id} +completed +\\S+ \\S+ +"${"r".repeat(58)}…$`, "m"));
    expect(failed.stdout).toMatch(new RegExp(`^${later!.id} +pending +- +-$`, "m"));
    expect(failed.stdout).toMatch(new RegExp(`^${dead!.id} +dead_letter +\\S+ \\S+ +no source$`, "m"));
    expect(await runOperator({ args: ["tasks", "wait", a!.id, b!.id, "--timeout", "soon"], env })).toMatchObject({ code: 2, stderr: expect.stringContaining('--timeout "soon" is not a duration') });
    expect(await runOperator({ args: ["tasks", "wait", a!.id, "nope"], env })).toMatchObject({ code: 1, stderr: 'coordination: TASK_NOT_FOUND: task "nope" not found\n' });
  });

  it("from the command line, what it prints is the tasks as they are when it ends: done as the API says it, and the ids it could not read then", async () => {
    // One answer holds one 40 kB result: the first round stops at the dead letter before it saw C.
    t = await startTestServer({ ...WAKE_ONLY, maxResponseBytes: 65_536 });
    const env = { COORDINATION_URL: t.url };
    const [a, d, c] = await t.api.tasks.enqueueMany.mutate({ tasks: [{ queue: "a", payload: {} }, { queue: "d", payload: {}, maxAttempts: 1 }, { queue: "c", payload: {} }] });
    await runTask(t, "a", "a".repeat(40_000));
    const run = await t.api.tasks.claim.mutate({ agentId: "worker", queues: ["d"], context: false });
    await t.api.tasks.fail.mutate({ taskId: d!.id, agentId: "worker", leaseToken: run!.leaseToken, error: "broken" });
    await runTask(t, "c", "c".repeat(40_000));
    const stopped = await runOperator({ args: ["tasks", "wait", a!.id, d!.id, c!.id, "--json"], env });
    expect(stopped).toMatchObject({ code: 3, stderr: `coordination: task ${d!.id} was dead-lettered\n` });
    const printed = JSON.parse(stopped.stdout);
    expect(printed.done).toBe(true);
    expect(printed.notSeen).toBeUndefined();
    expect(printed.tasks.map((task: { status: string }) => task.status)).toEqual(["completed", "dead_letter", "completed"]);

    // The server stops while the command waits for B: at its --timeout, B as not seen, exit 4.
    const b = await t.api.tasks.enqueue.mutate({ queue: "b", payload: {} });
    const waiting = runOperator({ args: ["tasks", "wait", a!.id, b.id, "--timeout", "5s", "--json"], env }, 60_000);
    await parked(t.url, 1);
    await t.server.stop();
    const cut = await waiting;
    expect(cut.code).toBe(4);
    expect(cut.stderr).toMatch(/asking again for up to [1-5] s\n/);
    expect(cut.stderr).toContain("coordination: 1 of 2 tasks had not settled in 5s\n");
    expect(JSON.parse(cut.stdout)).toMatchObject({ done: false, tasks: [{ id: a!.id, status: "completed" }], notSeen: [b.id] });
  });
});
