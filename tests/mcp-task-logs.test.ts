// Runs' logs through MCP tools alone (append_task_log, read_task_log), tried with the SDK's own
// client over Streamable HTTP against a real server: the lines are the session's agent's, under
// the lease it holds (refused as LEASE_CONFLICT once the run is over), one line or several a call;
// a read pages with nextAfter, and a follow (read_task_log with waitMs) waits at most
// MCP_MAX_WAIT_MS a call, woken by an append from another client or by the task's settle, and ends
// when the session is deleted.
import { afterEach, describe, expect, it, vi } from "vitest";
import { callTool, closeMcpClients, connectMcp } from "./helpers/mcp-client.js";
import { openMcpSession, parkedLongPolls, postToolCall } from "./helpers/mcp-http.js";
import { ADMIN_SECRET, startSecureServer } from "./helpers/secure-server.js";
import { LONG_WAIT_MS, promptly, WAKE_ONLY } from "./helpers/task-waits.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";
import { MCP_MAX_WAIT_MS } from "../src/mcp/mcp-tools.js";

let t: TestServer | undefined;
afterEach(async () => {
  vi.restoreAllMocks();
  await closeMcpClients();
  await t?.stop({ removeFiles: true });
  t = undefined;
});

/** An ISO time, as a tool's JSON carries a Date. */
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/** Resolves once the server at `url` has `count` log follows parked. */
const following = (url: string, count: number, token?: string) => vi.waitFor(async () => expect(await parkedLongPolls(url, "follow", token)).toBe(count), { timeout: 15_000, interval: 20 });

/** A tools/call's answer in an SSE response body: its result (content, isError). */
function resultOf(body: string): { isError?: boolean; content: Array<{ text: string }> } {
  return (JSON.parse(/^data: (.*)$/m.exec(body)![1]!) as { result: { isError?: boolean; content: Array<{ text: string }> } }).result;
}

/** A log line as read_task_log answers it. */
const logLine = (line: number, attempt: number, leaseToken: number, agentId: string, level: string, message: string, data: unknown = null) => ({
  line,
  at: expect.stringMatching(ISO),
  attempt,
  leaseToken,
  agentId,
  level,
  message,
  data,
});

describe("runs' logs through MCP tools", () => {
  it("append_task_log writes one line or several as the session's agent, under its lease; read_task_log reads them back, by page, run or level", async () => {
    t = await startTestServer();
    const client = await connectMcp(t.url, { "x-agent-id": "worker" });
    const { tools } = await client.listTools();
    expect(tools.find((tool) => tool.name === "append_task_log")!.inputSchema.required).toEqual(["taskId"]);
    expect(tools.find((tool) => tool.name === "read_task_log")!.inputSchema.required).toEqual(["taskId"]);
    const { id } = await t.api.tasks.enqueue.mutate({ queue: "logs" });
    const task = await callTool(client, "claim_task", { queues: ["logs"], context: false });
    expect(task.id).toBe(id);

    // One line: message, with its level and data.
    expect(await callTool(client, "append_task_log", { taskId: id, leaseToken: task.leaseToken, message: "fetching the page", level: "debug", data: { url: "https://example.com" } })).toEqual({
      taskId: id,
      firstLine: 1,
      lastLine: 1,
      dropped: 0,
    });
    // Several, in order; as a strict host sends them, every field filled in (null: left out), in the entries too.
    expect(
      await callTool(client, "append_task_log", {
        agentId: null,
        taskId: id,
        leaseToken: null,
        message: null,
        level: null,
        data: null,
        entries: [
          { message: "model answered", level: null, data: { tokens: 812 } },
          { message: "retrying\nwith a longer timeout", level: "warn", data: null },
        ],
        idempotencyKey: null,
      }),
    ).toEqual({ taskId: id, firstLine: 2, lastLine: 3, dropped: 0 });
    // Sent again with its idempotencyKey (a host that lost the answer): the lines it wrote, not written twice.
    const keyed = { taskId: id, leaseToken: task.leaseToken, message: "gave up: the page is gone", level: "error", idempotencyKey: "call-7" };
    expect(await callTool(client, "append_task_log", keyed)).toEqual({ taskId: id, firstLine: 4, lastLine: 4, dropped: 0 });
    expect(await callTool(client, "append_task_log", keyed)).toEqual({ taskId: id, firstLine: 4, lastLine: 4, dropped: 0 });

    const all = [
      logLine(1, 1, task.leaseToken, "worker", "debug", "fetching the page", { url: "https://example.com" }),
      logLine(2, 1, task.leaseToken, "worker", "info", "model answered", { tokens: 812 }),
      logLine(3, 1, task.leaseToken, "worker", "warn", "retrying\nwith a longer timeout"),
      logLine(4, 1, task.leaseToken, "worker", "error", "gave up: the page is gone"),
    ];
    expect(await callTool(client, "read_task_log", { taskId: id })).toEqual({ taskId: id, status: "claimed", lines: all, nextAfter: 4, more: false, dropped: 0 });
    // Pages: limit cuts with more, and nextAfter as after goes on; a strict host's nulls are left out.
    const first = await callTool(client, "read_task_log", { taskId: id, limit: 3 });
    expect(first).toEqual({ taskId: id, status: "claimed", lines: all.slice(0, 3), nextAfter: 3, more: true, dropped: 0 });
    expect(await callTool(client, "read_task_log", { taskId: id, after: first.nextAfter, limit: null, attempt: null, level: null, waitMs: null })).toEqual({
      taskId: id,
      status: "claimed",
      lines: all.slice(3),
      nextAfter: 4,
      more: false,
      dropped: 0,
    });
    expect(await callTool(client, "read_task_log", { taskId: id, level: "warn" })).toMatchObject({ lines: all.slice(2), nextAfter: 4 });
    expect(await callTool(client, "read_task_log", { taskId: id, attempt: 2 })).toMatchObject({ lines: [], nextAfter: 4, more: false });
    // The end of a long log first: the last lines, nextAfter the log's last.
    expect(await callTool(client, "read_task_log", { taskId: id, tail: 2 })).toEqual({ taskId: id, status: "claimed", lines: all.slice(2), nextAfter: 4, more: false, dropped: 0 });
    // The task.log events: the lines' numbers, each append once.
    const events = await t.api.events.list.query({ types: ["task.log"], limit: 10 });
    expect(events.map((event) => event.payload)).toEqual([
      { taskId: id, queue: "logs", agentId: "worker", attempt: 1, leaseToken: task.leaseToken, firstLine: 1, lastLine: 1 },
      { taskId: id, queue: "logs", agentId: "worker", attempt: 1, leaseToken: task.leaseToken, firstLine: 2, lastLine: 3 },
      { taskId: id, queue: "logs", agentId: "worker", attempt: 1, leaseToken: task.leaseToken, firstLine: 4, lastLine: 4 },
    ]);

    // What is refused: a line and entries both, or neither; a level or data beside entries; none of it written.
    expect((await callTool(client, "append_task_log", { taskId: id })).error).toMatchObject({ code: "INVALID_INPUT", message: "message: give the line to add as message, or several as entries" });
    expect((await callTool(client, "append_task_log", { taskId: id, message: "a", entries: [{ message: "b" }] })).error).toMatchObject({
      code: "INVALID_INPUT",
      message: "entries: give one line as message or several as entries, not both",
    });
    expect((await callTool(client, "append_task_log", { taskId: id, level: "warn", entries: [{ message: "b" }] })).error).toMatchObject({
      code: "INVALID_INPUT",
      message: "level: level and data go with message; each of entries has its own",
    });
    expect(await callTool(client, "append_task_log", { taskId: id, entries: [] })).toEqual({
      error: "MCP error -32602: Input validation error: Invalid arguments for tool append_task_log: Too small: expected array to have >=1 items at entries",
    });
    expect(await callTool(client, "append_task_log", { taskId: id, entries: [{ message: "b", colour: "red" }] })).toEqual({
      error: 'MCP error -32602: Input validation error: Invalid arguments for tool append_task_log: Unrecognized key: "colour" at entries[0]',
    });
    expect(await callTool(client, "read_task_log", { taskId: id })).toMatchObject({ nextAfter: 4 });

    // Only the run holding the lease writes: another agent, another lease, and the run once settled are refused.
    const intruder = await connectMcp(t.url, { "x-agent-id": "intruder" });
    expect((await callTool(intruder, "append_task_log", { taskId: id, message: "mine now" })).error).toMatchObject({
      code: "LEASE_CONFLICT",
      message: `agent "intruder" does not hold the lease on task "${id}": it is claimed by "worker" (lease ${task.leaseToken})`,
    });
    expect((await callTool(client, "append_task_log", { taskId: id, leaseToken: task.leaseToken + 1, message: "old lease" })).error).toMatchObject({ code: "LEASE_CONFLICT", message: `lease ${task.leaseToken + 1} of agent "worker" on task "${id}" is not the current one: the task is claimed by "worker" under lease ${task.leaseToken}` });
    await callTool(client, "complete_task", { taskId: id, leaseToken: task.leaseToken, result: { ok: false } });
    expect((await callTool(client, "append_task_log", { taskId: id, leaseToken: task.leaseToken, message: "too late" })).error).toMatchObject({ code: "LEASE_CONFLICT", message: `agent "worker" does not hold the lease on task "${id}": it is completed` });
    expect((await callTool(client, "append_task_log", { taskId: "no-such-task", message: "x" })).error).toEqual({ code: "TASK_NOT_FOUND", message: 'task "no-such-task" not found', details: { id: "no-such-task" } });
    expect((await callTool(client, "read_task_log", { taskId: "no-such-task" })).error).toEqual({ code: "TASK_NOT_FOUND", message: 'task "no-such-task" not found', details: { id: "no-such-task" } });
    // Settled, the log reads as it was left.
    expect(await callTool(intruder, "read_task_log", { taskId: id })).toEqual({ taskId: id, status: "completed", lines: all, nextAfter: 4, more: false, dropped: 0 });

    // A session that acts as no agent is told how to name one, and writes nothing; it reads.
    const nobody = await connectMcp(t.url, {});
    expect((await callTool(nobody, "append_task_log", { taskId: id, message: "x" })).error).toMatchObject({
      code: "INVALID_INPUT",
      message: "agentId: this session acts as no agent; send X-Agent-Id when connecting (coordination mcp: --agent), use an agent token, or give agentId",
    });
    expect(await callTool(nobody, "read_task_log", { taskId: id, after: 3 })).toMatchObject({ lines: all.slice(3) });
  });

  it("read_task_log with waitMs follows the log: woken by an append from another client and by the settle; a waitMs past 20 s is cut to it", async () => {
    t = await startTestServer(WAKE_ONLY);
    const [worker, watcher] = [await connectMcp(t.url, { "x-agent-id": "worker" }), await connectMcp(t.url, { "x-agent-id": "watcher" })];
    const { id } = await t.api.tasks.enqueue.mutate({ queue: "followed" });
    const task = await callTool(worker, "claim_task", { queues: ["followed"], context: false });
    await callTool(worker, "append_task_log", { taskId: id, leaseToken: task.leaseToken, message: "one" });
    // Lines there already answer at once.
    expect((await promptly(callTool(watcher, "read_task_log", { taskId: id, waitMs: 20_000 }))).lines).toEqual([logLine(1, 1, task.leaseToken, "worker", "info", "one")]);
    const next = callTool(watcher, "read_task_log", { taskId: id, after: 1, waitMs: 20_000 });
    await following(t.url, 1);
    await callTool(worker, "append_task_log", { taskId: id, leaseToken: task.leaseToken, entries: [{ message: "two" }, { message: "three", level: "warn" }] });
    // The append wakes it: well before MCP_MAX_WAIT_MS (20 s), twice promptly's bound, could answer it.
    expect(await promptly(next)).toEqual({
      taskId: id,
      status: "claimed",
      lines: [logLine(2, 1, task.leaseToken, "worker", "info", "two"), logLine(3, 1, task.leaseToken, "worker", "warn", "three")],
      nextAfter: 3,
      more: false,
      dropped: 0,
    });
    // The settle ends a follow: no run adds lines now.
    const end = callTool(watcher, "read_task_log", { taskId: id, after: 3, waitMs: 20_000 });
    await following(t.url, 1);
    await callTool(worker, "complete_task", { taskId: id, leaseToken: task.leaseToken });
    expect(await promptly(end)).toEqual({ taskId: id, status: "completed", lines: [], nextAfter: 3, more: false, dropped: 0 });
    expect(await parkedLongPolls(t.url, "follow")).toBe(0);

    // The wait each call asks of the service: waitMs cut to 20 s (left out: none), not the server's maxWaitMs.
    const asked: Array<number | undefined> = [];
    const read = t.server.services.taskLogs.read.bind(t.server.services.taskLogs);
    vi.spyOn(t.server.services.taskLogs, "read").mockImplementation((request, ...rest) => (asked.push(request.waitMs), read({ ...request, waitMs: 0 }, ...rest)));
    for (const waitMs of [LONG_WAIT_MS, undefined, 5_000, 0]) await callTool(watcher, "read_task_log", { taskId: id, after: 3, ...(waitMs === undefined ? {} : { waitMs }) });
    expect(asked).toEqual([MCP_MAX_WAIT_MS, 0, 5_000, 0]);
    expect(MCP_MAX_WAIT_MS).toBe(20_000);
  });

  it("a follow parked in a tool call ends when the session is deleted (a SHUTTING_DOWN tool error)", async () => {
    t = await startTestServer(WAKE_ONLY);
    const { id } = await t.api.tasks.enqueue.mutate({ queue: "followed" });
    await t.api.tasks.claim.mutate({ agentId: "worker", queues: ["followed"], context: false });
    const headers = { "x-agent-id": "watcher" };
    const session = await openMcpSession(t.url, headers);
    const parked = postToolCall(t.url, headers, session, 9, "read_task_log", { taskId: id, waitMs: 20_000 });
    await following(t.url, 1);
    expect((await fetch(`${t.url}/mcp`, { method: "DELETE", headers: { ...headers, "mcp-session-id": session } })).status).toBe(200);
    const answer = resultOf(await parked);
    expect(answer.isError).toBe(true);
    expect(JSON.parse(answer.content[0]!.text)).toMatchObject({ code: "SHUTTING_DOWN", message: expect.stringMatching(/^this MCP session was deleted by its client while the call was under way/) });
    // The answer goes out at the delete; the follow, aborted with it, stops waiting (its 20 s are far off).
    await following(t.url, 0);
  });

  it("with credentials: an agent token appends as its agent; a read token reads and follows, and has no append_task_log", async () => {
    const s = await startSecureServer();
    t = s;
    const agent = await connectMcp(s.url, { authorization: `Bearer ${await s.issue("agent", "tokened")}` });
    const reader = await connectMcp(s.url, { authorization: `Bearer ${await s.issue("read")}` });
    const { id } = await s.admin.tasks.enqueue.mutate({ queue: "sec" });
    const task = await callTool(agent, "claim_task", { queues: ["sec"], context: false });
    expect(await callTool(agent, "append_task_log", { taskId: id, leaseToken: task.leaseToken, message: "started" })).toEqual({ taskId: id, firstLine: 1, lastLine: 1, dropped: 0 });
    const follow = callTool(reader, "read_task_log", { taskId: id, after: 1, waitMs: 20_000 });
    await following(s.url, 1, ADMIN_SECRET);
    await callTool(agent, "append_task_log", { taskId: id, leaseToken: task.leaseToken, message: "halfway" });
    expect((await follow).lines).toEqual([logLine(2, 1, task.leaseToken, "tokened", "info", "halfway")]);
    // The read session has no writing tool: the SDK refuses the call by name.
    expect((await callTool(reader, "append_task_log", { taskId: id, message: "x" })).error).toMatch(/Tool append_task_log not found/);
    expect((await s.admin.tasks.log.query({ taskId: id })).lines.map((line) => line.message)).toEqual(["started", "halfway"]);
  });
});
