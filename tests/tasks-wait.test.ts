// Waiting for a task to settle (tasks.wait, GET /tasks/{taskId}/wait, in-process tasks.wait, MCP
// wait_for_task, `coordination tasks wait`): what a producer that handed work out waits on. Each
// test parks a wait (seen parked on /metrics, not after a sleep), settles the task another way,
// and checks the wait's answer exactly; none depends on how fast the machine is.
import { afterEach, describe, expect, it, vi } from "vitest";
import { killAllCli, runOperator } from "./helpers/cli-process.js";
import { callTool, closeMcpClients, connectMcp } from "./helpers/mcp-client.js";
import { parkedLongPolls } from "./helpers/mcp-http.js";
import { LONG_WAIT_MS, parked, promptly, WAKE_ONLY } from "./helpers/task-waits.js";
import { ADMIN_SECRET, http, startSecureServer, type SecureServer } from "./helpers/secure-server.js";
import { makeTempDir, rest, startTestServer, type TestServer } from "./helpers/test-server.js";
import { openCoordination } from "../src/index.js";
import { runOperatorCommand } from "../src/cli-operator.js";
import { LONG_POLLING, LONGEST_SERVER_WAIT_MS } from "../client/long-polling.js";
import { loadConfig } from "../src/config.js";
import { PROCEDURES } from "../src/trpc/app-router.js";

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


describe("tasks.wait", () => {
  it("over REST: a wait parked on a pending task answers the completed task, its result with it, once an agent completes it", async () => {
    t = await startTestServer(WAKE_ONLY);
    const task = await t.api.tasks.enqueue.mutate({ queue: "jobs", payload: { n: 1 } });
    const waiting = rest(t.url, "GET", `/tasks/${task.id}/wait?waitMs=${LONG_WAIT_MS}`);
    await parked(t.url, 1);
    const claimed = await t.api.tasks.claim.mutate({ agentId: "a", context: false });
    // A claim is no settle: the wait stays parked.
    await t.api.tasks.heartbeat.mutate({ taskId: task.id, agentId: "a", leaseToken: claimed!.leaseToken });
    expect(await parkedLongPolls(t.url, "wait")).toBe(1);
    await t.api.tasks.complete.mutate({ taskId: task.id, agentId: "a", leaseToken: claimed!.leaseToken, result: { answer: 42 } });
    const answer = await promptly(waiting);
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ id: task.id, status: "completed", result: { answer: 42 }, attempts: 1 });
    expect(await parkedLongPolls(t.url, "wait")).toBe(0);
  });

  it("a task settled already is answered at once; one still running when waitMs runs out is answered as it is; an unknown one is a 404; a bad waitMs a 400", async () => {
    t = await startTestServer();
    const done = await t.api.tasks.enqueue.mutate({ payload: {} });
    const claimed = await t.api.tasks.claim.mutate({ agentId: "a", context: false });
    await t.api.tasks.complete.mutate({ taskId: done.id, agentId: "a", leaseToken: claimed!.leaseToken, result: "ok" });
    // Far longer than the test's own timeout: only an answer without waiting passes.
    expect(await t.api.tasks.wait.query({ taskId: done.id, waitMs: 3_600_000 })).toMatchObject({ id: done.id, status: "completed", result: "ok" });
    const pending = await t.api.tasks.enqueue.mutate({ payload: {}, delayMs: 3_600_000 });
    expect(await t.api.tasks.wait.query({ taskId: pending.id, waitMs: 200 })).toMatchObject({ id: pending.id, status: "pending" });
    expect(await t.api.tasks.wait.query({ taskId: pending.id, waitMs: 0 })).toMatchObject({ id: pending.id, status: "pending" });
    // Left out, waitMs is the server's maxWaitMs: the wait parks.
    const byDefault = t.api.tasks.wait.query({ taskId: pending.id });
    await parked(t.url, 1);
    // tRPC's own GET (its handler and middleware chain, not the typed client's POST).
    const input = encodeURIComponent(JSON.stringify({ json: { taskId: pending.id, waitMs: 200 } }));
    expect(await rest(t.url, "GET", `/trpc/tasks.wait?input=${input}`)).toMatchObject({ status: 200, body: { result: { data: { json: { id: pending.id, status: "pending" } } } } });
    expect(await rest(t.url, "GET", "/tasks/nope/wait?waitMs=1000")).toMatchObject({ status: 404, body: { code: "TASK_NOT_FOUND" } });
    for (const bad of ["-1", "soon", "3600001"]) {
      const refused = await rest(t.url, "GET", `/tasks/${pending.id}/wait?waitMs=${bad}`);
      expect(refused.status).toBe(400);
      expect(refused.body.code).toBe("INVALID_INPUT");
      expect(refused.body.message).toContain("waitMs");
    }
    await t.api.tasks.cancel.mutate({ taskId: pending.id });
    expect((await byDefault).status).toBe("cancelled");
  });

  it("a dead letter and a cancel settle it too; several waits on one task all wake; a wait on another task does not", async () => {
    t = await startTestServer(WAKE_ONLY);
    const failing = await t.api.tasks.enqueue.mutate({ payload: {}, maxAttempts: 1 });
    const stopped = await t.api.tasks.enqueue.mutate({ payload: {}, delayMs: 3_600_000 });
    const other = await t.api.tasks.enqueue.mutate({ payload: {}, delayMs: 3_600_000 });
    const onFailing = [t.api.tasks.wait.query({ taskId: failing.id, waitMs: LONG_WAIT_MS }), t.api.tasks.wait.query({ taskId: failing.id, waitMs: LONG_WAIT_MS })];
    const onStopped = t.api.tasks.wait.query({ taskId: stopped.id, waitMs: LONG_WAIT_MS });
    const onOther = t.api.tasks.wait.query({ taskId: other.id, waitMs: LONG_WAIT_MS });
    await parked(t.url, 4);
    const claimed = await t.api.tasks.claim.mutate({ agentId: "a", context: false });
    expect(claimed!.id).toBe(failing.id);
    await t.api.tasks.fail.mutate({ taskId: failing.id, agentId: "a", leaseToken: claimed!.leaseToken, error: "boom" });
    for (const answer of await promptly(Promise.all(onFailing))) expect(answer).toMatchObject({ id: failing.id, status: "dead_letter", lastError: "boom" });
    await t.api.tasks.cancel.mutate({ taskId: stopped.id, reason: "not needed" });
    expect(await promptly(onStopped)).toMatchObject({ id: stopped.id, status: "cancelled", lastError: "not needed" });
    expect(await parkedLongPolls(t.url, "wait")).toBe(1);
    await t.api.tasks.cancel.mutate({ taskId: other.id });
    expect((await promptly(onOther)).status).toBe("cancelled");
  });

  it("two servers on one file: a wait through one answers a complete through the other", async () => {
    // The bus reads the other server's commits every 50 ms; a wait's own re-look is 30 s away.
    t = await startTestServer({ crossProcessPollMs: 50, maxWaitMs: 300_000 });
    t2 = await startTestServer({ crossProcessPollMs: 50 }, t.dir);
    const task = await t.api.tasks.enqueue.mutate({ payload: {} });
    const waiting = t.api.tasks.wait.query({ taskId: task.id, waitMs: LONG_WAIT_MS });
    await parked(t.url, 1);
    const claimed = await t2.api.tasks.claim.mutate({ agentId: "b", context: false });
    await t2.api.tasks.complete.mutate({ taskId: task.id, agentId: "b", leaseToken: claimed!.leaseToken, result: [1, 2] });
    expect(await promptly(waiting)).toMatchObject({ id: task.id, status: "completed", result: [1, 2] });
  });

  it("a wait never holds up the calls sent beside it: the typed client sends it alone, as it does every call that long-polls", async () => {
    t = await startTestServer();
    const task = await t.api.tasks.enqueue.mutate({ payload: {}, delayMs: 3_600_000 });
    const waiting = t.api.tasks.wait.query({ taskId: task.id, waitMs: 60_000 });
    // Sent in the same tick: batched with the wait, it would wait for the wait.
    const got = t.api.tasks.get.query({ taskId: task.id });
    expect((await got).status).toBe("pending");
    expect(await parkedLongPolls(t.url, "wait")).toBe(1);
    await t.api.tasks.cancel.mutate({ taskId: task.id });
    expect((await waiting).status).toBe("cancelled");
    // Every procedure whose input takes a waitMs is one the client sends alone.
    const longPolls = [...PROCEDURES].filter(([, def]) => (def.inputs[0] as { shape?: Record<string, unknown> } | undefined)?.shape?.waitMs !== undefined).map(([path]) => path);
    expect(longPolls).toContain("tasks.wait");
    expect(longPolls.filter((path) => !LONG_POLLING.has(path))).toEqual([]);
    // What the client allows a long-poll (one that names no waitMs, or a longer one) is the longest maxWaitMs a server takes.
    const longest = LONGEST_SERVER_WAIT_MS;
    expect(loadConfig({ env: {}, overrides: { maxWaitMs: longest } }).maxWaitMs).toBe(longest);
    expect(() => loadConfig({ env: {}, overrides: { maxWaitMs: longest + 1 } })).toThrow(/maxWaitMs/);
  });

  it("with credentials: any credential may wait, each with maxParkedPerAgent waits parked, apart from its agent's claims; a settled task is answered whatever is parked; a client that leaves gives its place back", async () => {
    secure = await startSecureServer({ maxParkedPerAgent: 1 });
    const task = await secure.admin.tasks.enqueue.mutate({ payload: {}, delayMs: 3_600_000 });
    const done = await secure.admin.tasks.enqueue.mutate({ payload: {}, queue: "done" });
    const run = await secure.admin.tasks.claim.mutate({ agentId: "a", queues: ["done"], context: false });
    await secure.admin.tasks.complete.mutate({ taskId: done.id, agentId: "a", leaseToken: run!.leaseToken });
    const readToken = await secure.issue("read");
    const agentToken = await secure.issue("agent", "worker-1");
    expect((await http(secure.url, "GET", `/tasks/${task.id}/wait`)).status).toBe(401);
    // The read credential's one place: a second wait beside it is refused, naming the setting.
    const leaving = new AbortController();
    const first = fetch(`${secure.url}/tasks/${task.id}/wait?waitMs=60000`, { headers: { authorization: `Bearer ${readToken}` }, signal: leaving.signal }).catch((error: Error) => error.name);
    await parked(secure.url, 1, ADMIN_SECRET);
    const second = await http(secure.url, "GET", `/tasks/${task.id}/wait?waitMs=60000`, { token: readToken });
    expect(second.status).toBe(429);
    expect(second.body).toMatchObject({ code: "LIMIT_EXCEEDED" });
    expect(second.body.message).toBe(`too many task waits, key watches and log follows parked for credential ${JSON.stringify(second.body.message.match(/"(.*)"/)[1])}: the limit is 1 (setting maxParkedPerAgent)`);
    // A wait that parks nothing is never refused for the bound: a settled task, an unknown one.
    expect(await http(secure.url, "GET", `/tasks/${done.id}/wait?waitMs=60000`, { token: readToken })).toMatchObject({ status: 200, body: { id: done.id, status: "completed" } });
    expect(await http(secure.url, "GET", `/tasks/nope/wait?waitMs=60000`, { token: readToken })).toMatchObject({ status: 404, body: { code: "TASK_NOT_FOUND" } });
    // Another credential has places of its own; an agent's wait leaves its claims their room.
    const agent = secure.as(agentToken);
    const agentWait = agent.tasks.wait.query({ taskId: task.id, waitMs: 60_000 });
    await parked(secure.url, 2, ADMIN_SECRET);
    const agentClaim = agent.tasks.claim.mutate({ agentId: "worker-1", queues: ["later"], waitMs: 60_000 });
    await vi.waitFor(async () => expect(await parkedLongPolls(secure!.url, "claim", ADMIN_SECRET)).toBe(1), { timeout: 15_000, interval: 20 });
    leaving.abort();
    expect(await first).toBe("AbortError");
    await parked(secure.url, 1, ADMIN_SECRET);
    const again = http(secure.url, "GET", `/tasks/${task.id}/wait?waitMs=60000`, { token: readToken });
    await parked(secure.url, 2, ADMIN_SECRET);
    await secure.admin.tasks.cancel.mutate({ taskId: task.id });
    expect((await again).body).toMatchObject({ id: task.id, status: "cancelled" });
    expect((await agentWait).status).toBe("cancelled");
    const later = await secure.admin.tasks.enqueue.mutate({ payload: {}, queue: "later" });
    expect((await agentClaim)?.id).toBe(later.id);
  });

  it("a wait parked when the server stops is answered 503 SHUTTING_DOWN, not with the task as if it had not settled", async () => {
    t = await startTestServer();
    const task = await t.api.tasks.enqueue.mutate({ payload: {}, delayMs: 3_600_000 });
    const waiting = rest(t.url, "GET", `/tasks/${task.id}/wait?waitMs=60000`);
    await parked(t.url, 1);
    const stopping = t.server.stop();
    expect(await waiting).toMatchObject({ status: 503, body: { code: "SHUTTING_DOWN" } });
    await stopping;
  });

  it("in-process, over MCP, and from the command line", async () => {
    const coordination = await openCoordination({ settings: { dbPath: `${makeTempDir()}/local.db`, logLevel: "silent", ...WAKE_ONLY } });
    try {
      const task = await coordination.tasks.enqueue({ payload: { q: "local" } });
      const waiting = coordination.tasks.wait(task.id, { waitMs: LONG_WAIT_MS });
      const run = await coordination.tasks.claim("agent-1", { context: false });
      await coordination.tasks.complete(task.id, "agent-1", { done: true }, { leaseToken: run!.leaseToken });
      expect(await promptly(waiting)).toMatchObject({ id: task.id, status: "completed", result: { done: true } });
      await expect(coordination.tasks.wait("nope")).rejects.toMatchObject({ code: "TASK_NOT_FOUND" });
    } finally {
      await coordination.close();
    }

    t = await startTestServer(WAKE_ONLY);
    const mcp = await connectMcp(t.url, { "x-agent-id": "orchestrator" });
    const handed = await callTool(mcp, "enqueue_task", { queue: "research", payload: { topic: "queues" } });
    const waiting = callTool(mcp, "wait_for_task", { taskId: handed.id });
    await parked(t.url, 1);
    const claimed = await t.api.tasks.claim.mutate({ agentId: "researcher", context: false });
    await t.api.tasks.complete.mutate({ taskId: handed.id, agentId: "researcher", leaseToken: claimed!.leaseToken, result: { summary: "done" } });
    // MCP cuts a tool's wait to 20 s: twice promptly's bound.
    expect(await promptly(waiting)).toMatchObject({ id: handed.id, status: "completed", result: { summary: "done" } });
    const unsettled = await t.api.tasks.enqueue.mutate({ payload: {}, delayMs: 3_600_000 });
    expect(await callTool(mcp, "wait_for_task", { taskId: unsettled.id, waitMs: 0 })).toMatchObject({ id: unsettled.id, status: "pending" });

    const env = { COORDINATION_URL: t.url };
    // Completed: exit 0 and the task's table. Dead-lettered or cancelled: exit 3. Not settled in time: exit 4 naming its state.
    const completed = await runOperator({ args: ["tasks", "wait", handed.id], env });
    expect(completed).toMatchObject({ code: 0, stderr: "" });
    expect(completed.stdout).toMatch(/^status +completed$/m);
    expect(await runOperator({ args: ["tasks", "wait", unsettled.id, "--timeout", "500ms"], env })).toMatchObject({ code: 4, stderr: `coordination: task ${unsettled.id} had not settled in 500ms (it is pending)\n` });
    const cli = runOperator({ args: ["tasks", "wait", unsettled.id, "--json"], env }, 60_000);
    await parked(t.url, 1);
    await t.api.tasks.cancel.mutate({ taskId: unsettled.id });
    const cancelled = await cli;
    expect(cancelled).toMatchObject({ code: 3, stderr: `coordination: task ${unsettled.id} was cancelled\n` });
    expect(JSON.parse(cancelled.stdout)).toMatchObject({ id: unsettled.id, status: "cancelled" });
    expect(await runOperator({ args: ["tasks", "wait", unsettled.id, "--timeout", "soon"], env })).toMatchObject({ code: 2, stderr: expect.stringContaining('--timeout "soon" is not a duration') });
    expect(await runOperator({ args: ["tasks", "wait", "nope"], env })).toMatchObject({ code: 1, stderr: 'coordination: TASK_NOT_FOUND: task "nope" not found\n' });
  });

  it("the command interrupted before the server answered says the task was not seen settled, not that it was not seen: it exists, an enqueue --wait printed it", async () => {
    t = await startTestServer(WAKE_ONLY);
    const task = await t.api.tasks.enqueue.mutate({ payload: {}, delayMs: 3_600_000 });
    const other = await t.api.tasks.enqueue.mutate({ payload: {}, delayMs: 3_600_000 });
    const interrupted = async (args: string[]) => {
      const stop = new AbortController();
      let stderr = "";
      const code = runOperatorCommand(args, { COORDINATION_URL: t!.url }, { stdout: () => {}, stderr: (text) => void (stderr += text) }, stop.signal);
      await parked(t!.url, 1);
      stop.abort();
      return { code: await code, stderr };
    };
    expect(await interrupted(["tasks", "wait", task.id])).toEqual({ code: 4, stderr: `coordination: interrupted before the server answered: task ${task.id} not seen settled (tasks get ${task.id}: where it is now)\n` });
    expect(await interrupted(["tasks", "wait", task.id, other.id])).toEqual({ code: 4, stderr: "coordination: interrupted before the server answered: none of the 2 tasks seen settled\n" });
  });

  it("the command asks no more than once a second of a server that answers at once (maxWaitMs 0), and waits through a restart", async () => {
    t = await startTestServer({ maxWaitMs: 0 });
    const task = await t.api.tasks.enqueue.mutate({ payload: {}, delayMs: 3_600_000 });
    const answered = async () => Number(/^coordination_http_responses_total\{status="200"\} (\d+)$/m.exec(await (await fetch(`${t!.url}/metrics`)).text())?.[1] ?? 0);
    const before = await answered();
    expect(await runOperator({ args: ["tasks", "wait", task.id, "--timeout", "2s"], env: { COORDINATION_URL: t.url } }, 60_000)).toMatchObject({ code: 4 });
    // At 0, 1 and 2 s at most (a slow machine asks fewer times); the scrape above is one more.
    expect((await answered()) - before - 1).toBeLessThanOrEqual(3);

    // A server stopped and started again on the same port and file under a parked wait: the command waits on.
    const { dir, url } = t;
    const port = Number(new URL(url).port);
    await t.stop();
    t = await startTestServer({ port }, dir);
    const cli = runOperator({ args: ["tasks", "wait", task.id], env: { COORDINATION_URL: url } }, 100_000);
    await parked(url, 1);
    await t.stop();
    t = await startTestServer({ port }, dir);
    await t.api.tasks.cancel.mutate({ taskId: task.id });
    const waited = await cli;
    expect(waited.code).toBe(3);
    // Said once, that it waits through the outage; then the outcome.
    expect(waited.stderr).toMatch(new RegExp(`^coordination: [^\\n]*; asking again for up to 60 s\\ncoordination: task ${task.id} was cancelled\\n$`));

    // Its --timeout running out while the server is down: the task as last seen (rounds of a
    // second, the server's maxWaitMs here), not the outage.
    await t.stop();
    t = await startTestServer({ port, maxWaitMs: 1000 }, dir);
    const pending = await t.api.tasks.enqueue.mutate({ payload: {}, delayMs: 3_600_000 });
    const reads = () => t!.server.services.db.sent.get("tasks.get") ?? 0;
    const readsBefore = reads();
    const timed = runOperator({ args: ["tasks", "wait", pending.id, "--timeout", "6s"], env: { COORDINATION_URL: url } }, 100_000);
    // A round answered and the next one asked: the first round's read when it parked and its last
    // read when its second ran out, then the next round's first (sent once the answer arrived).
    await vi.waitFor(() => expect(reads()).toBeGreaterThanOrEqual(readsBefore + 3), { timeout: 15_000, interval: 20 });
    await t.stop();
    const outcome = await timed;
    expect(outcome.code).toBe(4);
    // For what is left of its --timeout, not the 60 s a wait with none is given.
    expect(outcome.stderr).toMatch(new RegExp(`asking again for up to [1-6] s\\ncoordination: task ${pending.id} had not settled in 6s \\(it is pending\\)\\n$`));
  });
});
