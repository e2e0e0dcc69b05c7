// A run's log (tasks.appendLog, POST /tasks/{taskId}/logs; tasks.log, GET /tasks/{taskId}/logs):
// lines the agent holding a task adds while it runs it, numbered per task across its runs, read
// a page at a time or followed as they come, bounded per task by maxTaskLogBytes, deleted with
// their task.
import { afterEach, describe, expect, it, vi } from "vitest";
import { refusal } from "./helpers/refusal.js";
import { parkedLongPolls } from "./helpers/mcp-http.js";
import { LONG_WAIT_MS, promptly, WAKE_ONLY } from "./helpers/task-waits.js";
import { makeTempDir, rest, startTestServer, withDatabase, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
let other: TestServer | undefined;
afterEach(async () => {
  await other?.stop();
  await t?.stop({ removeFiles: true });
  t = other = undefined;
});

/** A task enqueued in `queue` and claimed by `agentId`. */
async function claimed(server: TestServer, agentId = "agent-1", queue = "logs") {
  const { id } = await server.api.tasks.enqueue.mutate({ queue, payload: { step: 1 } });
  const task = await server.api.tasks.claim.mutate({ agentId, queues: [queue], context: false });
  expect(task?.id).toBe(id);
  return task!;
}

/** A JSON value `depth` arrays deep. */
const nested = (depth: number): unknown => (depth === 0 ? 1 : [nested(depth - 1)]);

/**
 * Writes lines `from` to `to` of `taskId`'s log as appends do (rows and head), straight into the
 * file: a long log without thousands of calls. `level` for each line; agent "agent-1", attempt 1.
 */
function writeLines(server: TestServer, taskId: string, from: number, to: number, level: (line: number) => string = () => "debug"): void {
  withDatabase(server, (db) => {
    const seq = db.prepare("SELECT seq FROM tasks WHERE id = ?").pluck().get(taskId) as number;
    const insert = db.prepare("INSERT INTO task_logs (taskSeq, line, at, attempt, leaseToken, agentId, level, message, data, bytes, appendKey) VALUES (?, ?, ?, 1, 1, 'agent-1', ?, ?, NULL, ?, NULL)");
    db.transaction(() => {
      let bytes = 0;
      for (let line = from; line <= to; line++) {
        const message = `line ${line}`;
        insert.run(seq, line, Date.now(), level(line), message, message.length + 7 + 64);
        bytes += message.length + 7 + 64;
      }
      db.prepare(
        `INSERT INTO task_log_heads (taskSeq, lastLine, firstKept, keptBytes) VALUES (?, ?, ?, ?)
         ON CONFLICT(taskSeq) DO UPDATE SET lastLine = excluded.lastLine, keptBytes = keptBytes + excluded.keptBytes`,
      ).run(seq, to, from, bytes);
    })();
  });
}

/** The task.log events of the log, their payloads oldest first. */
const logEvents = async (server: TestServer) => (await server.api.events.list.query({ types: ["task.log"], limit: 1000 })).map((event) => event.payload);

/** Resolves once the server at `url` has `count` log follows parked. */
const following = (url: string, count: number) => vi.waitFor(async () => expect(await parkedLongPolls(url, "follow")).toBe(count), { timeout: 15_000, interval: 20 });

describe("a run's log", () => {
  it("the holder's lines are numbered per task across runs, read back in order with who wrote them, when and in which run, each append with its task.log", async () => {
    t = await startTestServer();
    const { api } = t;
    const task = await claimed(t);
    const before = Date.now();
    const first = await api.tasks.appendLog.mutate({
      taskId: task.id,
      agentId: "agent-1",
      leaseToken: task.leaseToken,
      entries: [{ message: "fetching the page" }, { message: "model answered", level: "debug", data: { tokens: { in: 812, out: 64 } } }],
    });
    expect(first).toEqual({ taskId: task.id, firstLine: 1, lastLine: 2, dropped: 0 });
    // The run fails and retries; the second run's lines follow the first's.
    await api.tasks.fail.mutate({ taskId: task.id, agentId: "agent-1", error: "timeout", retryAfterMs: 0 });
    const again = await api.tasks.claim.mutate({ agentId: "agent-2", queues: ["logs"], context: false });
    expect(again?.id).toBe(task.id);
    expect(await api.tasks.appendLog.mutate({ taskId: task.id, agentId: "agent-2", entries: [{ message: "retrying\nwith a longer timeout", level: "warn" }] })).toEqual({
      taskId: task.id,
      firstLine: 3,
      lastLine: 3,
      dropped: 0,
    });

    const page = await api.tasks.log.query({ taskId: task.id });
    expect(page).toEqual({
      taskId: task.id,
      status: "claimed",
      lines: [
        { line: 1, at: expect.any(Date), attempt: 1, leaseToken: task.leaseToken, agentId: "agent-1", level: "info", message: "fetching the page", data: null },
        { line: 2, at: expect.any(Date), attempt: 1, leaseToken: task.leaseToken, agentId: "agent-1", level: "debug", message: "model answered", data: { tokens: { in: 812, out: 64 } } },
        { line: 3, at: expect.any(Date), attempt: 2, leaseToken: again!.leaseToken, agentId: "agent-2", level: "warn", message: "retrying\nwith a longer timeout", data: null },
      ],
      nextAfter: 3,
      more: false,
      dropped: 0,
    });
    expect(page.lines[0]!.at.getTime()).toBeGreaterThanOrEqual(before);
    // Filters: one run's lines, or the urgent ones; nextAfter is the last line there is, so a follower skips what the filter left out.
    expect((await api.tasks.log.query({ taskId: task.id, attempt: 1 })).lines.map((l) => l.line)).toEqual([1, 2]);
    expect(await api.tasks.log.query({ taskId: task.id, level: "info" })).toMatchObject({ lines: [{ line: 1 }, { line: 3 }], nextAfter: 3 });
    expect(await api.tasks.log.query({ taskId: task.id, level: "error" })).toMatchObject({ lines: [], nextAfter: 3, more: false });
    // Pages: limit cuts with more, and nextAfter goes on from there.
    const one = await api.tasks.log.query({ taskId: task.id, limit: 2 });
    expect(one).toMatchObject({ lines: [{ line: 1 }, { line: 2 }], nextAfter: 2, more: true });
    expect(await api.tasks.log.query({ taskId: task.id, after: one.nextAfter, limit: 2 })).toMatchObject({ lines: [{ line: 3 }], nextAfter: 3, more: false });
    expect(await api.tasks.log.query({ taskId: task.id, after: 3 })).toMatchObject({ lines: [], nextAfter: 3, more: false });
    // The last lines, where a reader of a long log starts: oldest first, nextAfter the log's last.
    expect(await api.tasks.log.query({ taskId: task.id, tail: 2 })).toMatchObject({ lines: [{ line: 2 }, { line: 3 }], nextAfter: 3, more: false });
    expect(await api.tasks.log.query({ taskId: task.id, tail: 2, level: "info" })).toMatchObject({ lines: [{ line: 1 }, { line: 3 }], nextAfter: 3 });
    expect(await api.tasks.log.query({ taskId: task.id, tail: 10, attempt: 1 })).toMatchObject({ lines: [{ line: 1 }, { line: 2 }], nextAfter: 3 });

    expect(await logEvents(t)).toEqual([
      { taskId: task.id, queue: "logs", agentId: "agent-1", attempt: 1, leaseToken: task.leaseToken, firstLine: 1, lastLine: 2 },
      { taskId: task.id, queue: "logs", agentId: "agent-2", attempt: 2, leaseToken: again!.leaseToken, firstLine: 3, lastLine: 3 },
    ]);
    // A task's own events are its transitions: its log's appends are not among them.
    expect((await api.tasks.events.query({ taskId: task.id })).map((event) => event.type)).toEqual(["task.enqueued", "task.claimed", "task.failed", "task.retried", "task.claimed"]);

    // Over REST: the same, times as ISO text.
    const posted = await rest(t.url, "POST", `/tasks/${task.id}/logs`, { agentId: "agent-2", entries: [{ message: "done", level: "info" }] });
    expect(posted).toMatchObject({ status: 200, body: { taskId: task.id, firstLine: 4, lastLine: 4, dropped: 0 } });
    const read = await rest(t.url, "GET", `/tasks/${task.id}/logs?after=3&level=info`);
    expect(read.status).toBe(200);
    expect(read.body).toEqual({
      taskId: task.id,
      status: "claimed",
      lines: [{ line: 4, at: expect.stringMatching(/^\d{4}-\d\d-\d\dT.*Z$/), attempt: 2, leaseToken: again!.leaseToken, agentId: "agent-2", level: "info", message: "done", data: null }],
      nextAfter: 4,
      more: false,
      dropped: 0,
    });
    // Operators see how much agents log.
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    expect(/^coordination_task_log_lines_total (\d+)$/m.exec(metrics)?.[1]).toBe("4");
  });

  it("only the agent holding the current lease appends: another agent, an older lease, a run that ended and an unknown task are refused, and nothing is written", async () => {
    t = await startTestServer();
    const { api } = t;
    const task = await claimed(t);
    expect(await refusal(api.tasks.appendLog.mutate({ taskId: task.id, agentId: "intruder", entries: [{ message: "x" }] }))).toMatchObject({
      code: "LEASE_CONFLICT",
      details: { status: "claimed", leaseOwner: "agent-1", leaseToken: task.leaseToken },
    });
    expect(await refusal(api.tasks.appendLog.mutate({ taskId: task.id, agentId: "agent-1", leaseToken: task.leaseToken + 1, entries: [{ message: "x" }] }))).toMatchObject({ code: "LEASE_CONFLICT" });
    await api.tasks.complete.mutate({ taskId: task.id, agentId: "agent-1", leaseToken: task.leaseToken });
    const late = await refusal(api.tasks.appendLog.mutate({ taskId: task.id, agentId: "agent-1", leaseToken: task.leaseToken, entries: [{ message: "x" }] }));
    expect(late).toMatchObject({ code: "LEASE_CONFLICT", details: { status: "completed" } });
    expect(await refusal(api.tasks.appendLog.mutate({ taskId: "no-such-task", agentId: "agent-1", entries: [{ message: "x" }] }))).toMatchObject({ code: "TASK_NOT_FOUND" });
    expect(await refusal(api.tasks.log.query({ taskId: "no-such-task" }))).toMatchObject({ code: "TASK_NOT_FOUND" });
    expect(await api.tasks.log.query({ taskId: task.id })).toEqual({ taskId: task.id, status: "completed", lines: [], nextAfter: 0, more: false, dropped: 0 });
    expect(await logEvents(t)).toEqual([]);
  });

  it("an append sent again with its idempotencyKey gets its first answer, even once its run ended; with other entries it is refused", async () => {
    t = await startTestServer();
    const { api } = t;
    const task = await claimed(t);
    const entries = [{ message: "step 1" }, { message: "step 2", level: "error" as const, data: [1, "two"] }];
    const first = await api.tasks.appendLog.mutate({ taskId: task.id, agentId: "agent-1", entries, idempotencyKey: "flush-1" });
    expect(first).toEqual({ taskId: task.id, firstLine: 1, lastLine: 2, dropped: 0 });
    expect(await api.tasks.appendLog.mutate({ taskId: task.id, agentId: "agent-1", entries, idempotencyKey: "flush-1" })).toEqual(first);
    // The level defaults to info: sent again with it named, the same lines.
    await api.tasks.appendLog.mutate({ taskId: task.id, agentId: "agent-1", entries: [{ message: "step 3" }], idempotencyKey: "flush-2" });
    expect(await api.tasks.appendLog.mutate({ taskId: task.id, agentId: "agent-1", entries: [{ message: "step 3", level: "info" }], idempotencyKey: "flush-2" })).toMatchObject({ firstLine: 3, lastLine: 3 });
    const mismatch = await refusal(api.tasks.appendLog.mutate({ taskId: task.id, agentId: "agent-1", entries: [{ message: "step 1" }], idempotencyKey: "flush-1" }));
    expect(mismatch).toMatchObject({ code: "IDEMPOTENCY_MISMATCH", details: { taskId: task.id, firstLine: 1, lastLine: 2 } });
    expect(mismatch.message).toContain('idempotencyKey "flush-1" wrote lines 1 to 2 with other entries');
    // Its entries with others added in front are another append too (the log dropped none of its
    // lines), not answered as written with a first line before line 1 while the added ones never are.
    const grown = await refusal(api.tasks.appendLog.mutate({ taskId: task.id, agentId: "agent-1", entries: [{ message: "step 0" }, { message: "step 0.5" }, ...entries], idempotencyKey: "flush-1" }));
    expect(grown).toMatchObject({ code: "IDEMPOTENCY_MISMATCH", details: { taskId: task.id, firstLine: 1, lastLine: 2 } });
    // Its run ended meanwhile: the resend is still its answer, not a LEASE_CONFLICT.
    await api.tasks.complete.mutate({ taskId: task.id, agentId: "agent-1" });
    expect(await api.tasks.appendLog.mutate({ taskId: task.id, agentId: "agent-1", entries, idempotencyKey: "flush-1" })).toEqual(first);
    // Another agent's same key is not this append.
    expect(await refusal(api.tasks.appendLog.mutate({ taskId: task.id, agentId: "agent-2", entries, idempotencyKey: "flush-1" }))).toMatchObject({ code: "LEASE_CONFLICT" });
    expect((await api.tasks.log.query({ taskId: task.id })).lines.map((l) => l.message)).toEqual(["step 1", "step 2", "step 3"]);
    expect((await logEvents(t)).length).toBe(2);
  });

  it("past maxTaskLogBytes the oldest lines are deleted, whichever run wrote them, and reads say how many went", async () => {
    t = await startTestServer({ maxTaskLogBytes: 65_536 });
    const { api } = t;
    const task = await claimed(t);
    // Each line weighs its message (10,000 bytes), its agent (7) and 64: six fit in 65,536, not seven.
    const line = (i: number) => ({ message: `${i}`.padEnd(10_000, ".") });
    expect(await api.tasks.appendLog.mutate({ taskId: task.id, agentId: "agent-1", entries: [1, 2, 3, 4, 5, 6].map(line) })).toEqual({ taskId: task.id, firstLine: 1, lastLine: 6, dropped: 0 });
    expect(await api.tasks.appendLog.mutate({ taskId: task.id, agentId: "agent-1", entries: [7, 8].map(line) })).toEqual({ taskId: task.id, firstLine: 7, lastLine: 8, dropped: 2 });
    const page = await api.tasks.log.query({ taskId: task.id });
    expect(page).toMatchObject({ nextAfter: 8, more: false, dropped: 2 });
    expect(page.lines.map((l) => l.line)).toEqual([3, 4, 5, 6, 7, 8]);
    expect(withDatabase(t, (db) => db.prepare("SELECT count(*) FROM task_logs").pluck().get())).toBe(6);
    // One append larger than the bound keeps its newest lines.
    const bigEntries = Array.from({ length: 10 }, (_, i) => line(9 + i));
    const big = await api.tasks.appendLog.mutate({ taskId: task.id, agentId: "agent-1", entries: bigEntries, idempotencyKey: "big" });
    expect(big).toEqual({ taskId: task.id, firstLine: 9, lastLine: 18, dropped: 12 });
    // Sent again, its answer whatever of it the log dropped; with an entry added, another append.
    expect(await api.tasks.appendLog.mutate({ taskId: task.id, agentId: "agent-1", entries: bigEntries, idempotencyKey: "big" })).toEqual(big);
    expect(await refusal(api.tasks.appendLog.mutate({ taskId: task.id, agentId: "agent-1", entries: [...bigEntries, line(19)], idempotencyKey: "big" }))).toMatchObject({ code: "IDEMPOTENCY_MISMATCH" });
    expect((await api.tasks.log.query({ taskId: task.id })).lines.map((l) => l.line)).toEqual([13, 14, 15, 16, 17, 18]);
  });

  it("a read with waitMs follows the log: answered by the next append or the task's settle, from another server process on the file too", async () => {
    const dir = makeTempDir();
    t = await startTestServer(WAKE_ONLY, dir);
    const { api } = t;
    const task = await claimed(t);
    await api.tasks.appendLog.mutate({ taskId: task.id, agentId: "agent-1", entries: [{ message: "one" }] });
    // Lines there already answer at once.
    expect((await api.tasks.log.query({ taskId: task.id, waitMs: LONG_WAIT_MS })).lines.map((l) => l.line)).toEqual([1]);
    const follow = api.tasks.log.query({ taskId: task.id, after: 1, waitMs: LONG_WAIT_MS });
    await following(t.url, 1);
    await api.tasks.appendLog.mutate({ taskId: task.id, agentId: "agent-1", entries: [{ message: "two" }, { message: "three" }] });
    expect(await promptly(follow)).toMatchObject({ lines: [{ line: 2, message: "two" }, { line: 3, message: "three" }], nextAfter: 3, status: "claimed" });
    // A filter that leaves the new lines out keeps waiting.
    const urgent = api.tasks.log.query({ taskId: task.id, after: 3, level: "error", waitMs: LONG_WAIT_MS });
    await following(t.url, 1);
    await api.tasks.appendLog.mutate({ taskId: task.id, agentId: "agent-1", entries: [{ message: "four" }] });
    await api.tasks.appendLog.mutate({ taskId: task.id, agentId: "agent-1", entries: [{ message: "five", level: "error" }] });
    expect(await promptly(urgent)).toMatchObject({ lines: [{ line: 5, message: "five" }], nextAfter: 5 });
    // The settle ends a follow: no run adds lines now.
    const end = api.tasks.log.query({ taskId: task.id, after: 5, waitMs: LONG_WAIT_MS });
    await following(t.url, 1);
    await api.tasks.complete.mutate({ taskId: task.id, agentId: "agent-1" });
    expect(await promptly(end)).toEqual({ taskId: task.id, status: "completed", lines: [], nextAfter: 5, more: false, dropped: 0 });
    // A follow that runs out answers as it is.
    const next = await claimed(t);
    expect(await api.tasks.log.query({ taskId: next.id, waitMs: 200 })).toEqual({ taskId: next.id, status: "claimed", lines: [], nextAfter: 0, more: false, dropped: 0 });

    // Another process on the file: its append wakes this one's follow (the event, read from the file).
    await t.stop();
    t = await startTestServer({}, dir);
    other = await startTestServer({}, dir);
    const remote = t.api.tasks.log.query({ taskId: next.id, waitMs: LONG_WAIT_MS });
    await following(t.url, 1);
    await other.api.tasks.appendLog.mutate({ taskId: next.id, agentId: "agent-1", entries: [{ message: "from the other process" }] });
    expect(await promptly(remote)).toMatchObject({ lines: [{ line: 1, message: "from the other process" }] });
  });

  it("bad input is a 400 naming the field", async () => {
    t = await startTestServer();
    const task = await claimed(t);
    const post = (body: Record<string, unknown>) => rest(t!.url, "POST", `/tasks/${task.id}/logs`, { agentId: "agent-1", ...body });
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ entries: [] }, "entries: must have at least 1 item"],
      [{ entries: Array.from({ length: 101 }, () => ({ message: "x" })) }, "entries: must have at most 100 items"],
      [{ entries: [{ message: "" }] }, "entries[0].message: must be at least 1 character long"],
      [{ entries: [{ message: "x".repeat(16_385) }] }, "entries[0].message: must be at most 16384 characters long"],
      [{ entries: [{ message: "x", level: "fatal" }] }, 'entries[0].level: must be one of "debug", "info", "warn", "error"'],
      [{ entries: [{ message: "x", data: "y".repeat(16_400) }] }, "entries[0].data: must take at most 16384 bytes as JSON (it takes 16402)"],
      [{ entries: [{ message: "x", colour: "red" }] }, 'entries[0]: unknown field "colour"'],
      [{ entries: [{ message: "x" }], leaseToken: -1 }, "leaseToken: must be at least 0"],
      // Too deep is named as every other entry's problem is (entries[i]), so a client can tell which line it was.
      [{ entries: [{ message: "x" }, { message: "y", data: nested(65) }] }, "entries[1].data: nests deeper than 64 levels (the server's maxJsonDepth); flatten it or store it as a string"],
    ];
    for (const [body, message] of cases) {
      const answer = await post(body);
      expect(answer.status, message).toBe(400);
      expect(answer.body).toMatchObject({ code: "INVALID_INPUT", message });
    }
    const queries: Array<[string, string]> = [
      ["limit=0", "limit: must be at least 1"],
      ["limit=1001", "limit: must be at most 1000"],
      ["after=-1", "after: must be at least 0"],
      ["attempt=0", "attempt: must be at least 1"],
      ["level=fatal", 'level: must be one of "debug", "info", "warn", "error"'],
      ["waitMs=-5", "waitMs: must be at least 0"],
      ["tail=0", "tail: must be at least 1"],
      ["after=1", "after: is past the log's last line (0): lines after 1 are lines that do not exist yet, and the ones before them would be skipped; read from 0, or from a nextAfter"],
      ["after=1&waitMs=60000", "after: is past the log's last line (0): lines after 1 are lines that do not exist yet, and the ones before them would be skipped; read from 0, or from a nextAfter"],
      ["tail=5&after=2", "tail: give after or tail, not both: tail reads the last lines, after those that follow a line"],
    ];
    for (const [query, message] of queries) {
      const answer = await rest(t.url, "GET", `/tasks/${task.id}/logs?${query}`);
      expect(answer.status, query).toBe(400);
      expect(answer.body).toMatchObject({ code: "INVALID_INPUT", message });
    }
    expect((await t.api.tasks.log.query({ taskId: task.id })).lines).toEqual([]);
  });

  it("retention deletes a settled task's log with it", async () => {
    t = await startTestServer({ settledTaskRetentionMs: 60_000, retentionPruneMs: 3_600_000 });
    const { api, server } = t;
    const old = await claimed(t);
    await api.tasks.appendLog.mutate({ taskId: old.id, agentId: "agent-1", entries: [{ message: "old" }, { message: "older" }] });
    await api.tasks.complete.mutate({ taskId: old.id, agentId: "agent-1" });
    const kept = await claimed(t);
    await api.tasks.appendLog.mutate({ taskId: kept.id, agentId: "agent-1", entries: [{ message: "kept" }] });
    await api.tasks.complete.mutate({ taskId: kept.id, agentId: "agent-1" });
    // The first settled long ago, as retention sees it.
    withDatabase(t, (db) => db.prepare("UPDATE tasks SET finishedAt = finishedAt - 120000 WHERE id = ?").run(old.id));
    expect(await server.services.retention.prune()).toBe(1);
    expect(await refusal(api.tasks.log.query({ taskId: old.id }))).toMatchObject({ code: "TASK_NOT_FOUND" });
    expect(withDatabase(t, (db) => db.prepare("SELECT message FROM task_logs ORDER BY taskSeq, line").pluck().all())).toEqual(["kept"]);
    expect(withDatabase(t, (db) => db.prepare("SELECT count(*) FROM task_log_heads").pluck().get())).toBe(1);
  });

  it("an idempotencyKey is its run's: the same key in the agent's next run is a new append, and each run's resend gets its own lines", async () => {
    t = await startTestServer();
    const { api } = t;
    const task = await claimed(t);
    // A handler that keys its appends by step, as a resend after a lost answer needs.
    const step1 = (leaseToken: number | undefined, message: string) =>
      api.tasks.appendLog.mutate({ taskId: task.id, agentId: "agent-1", ...(leaseToken === undefined ? {} : { leaseToken }), entries: [{ message }], idempotencyKey: "step-1" });
    expect(await step1(task.leaseToken, "step 1")).toEqual({ taskId: task.id, firstLine: 1, lastLine: 1, dropped: 0 });
    await api.tasks.fail.mutate({ taskId: task.id, agentId: "agent-1", error: "timeout", retryAfterMs: 0 });
    const again = await api.tasks.claim.mutate({ agentId: "agent-1", queues: ["logs"], context: false });
    expect(again?.leaseToken).toBeGreaterThan(task.leaseToken);
    // The second run's step 1 is its own line, whatever it says: not the first run's answered again with nothing written, nor a mismatch.
    expect(await step1(again!.leaseToken, "step 1, with a longer timeout")).toEqual({ taskId: task.id, firstLine: 2, lastLine: 2, dropped: 0 });
    // Each resend finds its own run's lines: under its lease, or (naming none) the lease its agent holds.
    expect(await step1(again!.leaseToken, "step 1, with a longer timeout")).toEqual({ taskId: task.id, firstLine: 2, lastLine: 2, dropped: 0 });
    expect(await step1(undefined, "step 1, with a longer timeout")).toEqual({ taskId: task.id, firstLine: 2, lastLine: 2, dropped: 0 });
    expect(await step1(task.leaseToken, "step 1")).toEqual({ taskId: task.id, firstLine: 1, lastLine: 1, dropped: 0 });
    expect(await refusal(step1(again!.leaseToken, "something else"))).toMatchObject({ code: "IDEMPOTENCY_MISMATCH", details: { taskId: task.id, firstLine: 2, lastLine: 2 } });
    expect((await api.tasks.log.query({ taskId: task.id })).lines.map((l) => [l.line, l.attempt, l.leaseToken, l.message])).toEqual([
      [1, 1, task.leaseToken, "step 1"],
      [2, 2, again!.leaseToken, "step 1, with a longer timeout"],
    ]);
    expect(await logEvents(t)).toEqual([
      expect.objectContaining({ firstLine: 1, lastLine: 1, leaseToken: task.leaseToken }),
      expect.objectContaining({ firstLine: 2, lastLine: 2, leaseToken: again!.leaseToken }),
    ]);
  });

  it("retention deletes at most 20,000 log lines a write: tasks with long logs go over several writes", async () => {
    t = await startTestServer({ settledTaskRetentionMs: 60_000, retentionPruneMs: 3_600_000, maxTaskLogBytes: 8 * 1024 * 1024 });
    const { api, server } = t;
    // Three settled long ago, oldest first (30,000, 8,000 and 8,000 lines), and one settled now.
    const tasks: Array<{ id: string }> = [];
    for (let i = 0; i < 4; i++) {
      const task = await claimed(t, "agent-1", `retained-${i}`);
      await api.tasks.complete.mutate({ taskId: task.id, agentId: "agent-1" });
      tasks.push(task);
    }
    [30_000, 8_000, 8_000, 1].forEach((lines, i) => writeLines(t!, tasks[i]!.id, 1, lines));
    withDatabase(t, (db) => tasks.slice(0, 3).forEach((task, i) => db.prepare("UPDATE tasks SET finishedAt = ? WHERE id = ?").run(Date.now() - 600_000 + i, task.id)));
    const lineCount = () => withDatabase(t!, (db) => db.prepare("SELECT count(*) FROM task_logs").pluck().get() as number);
    // What each of retention's writes of settled tasks deleted of the logs.
    const deleted: number[] = [];
    const write = server.services.db.write.bind(server.services.db) as (op: string, args: unknown) => Promise<unknown>;
    vi.spyOn(server.services.db, "write").mockImplementation((async (op: string, args: { what?: string }) => {
      if (op !== "retention.prune" || args.what !== "settledTasks") return write(op, args);
      const before = lineCount();
      const answer = await write(op, args);
      deleted.push(before - lineCount());
      return answer;
    }) as never);
    expect(await server.services.retention.prune()).toBe(3);
    // The first write cut the oldest log short (the task stayed); the next took it with the second; the last, the third.
    expect(deleted).toEqual([20_000, 18_000, 8_000]);
    for (const task of tasks.slice(0, 3)) expect(await refusal(api.tasks.log.query({ taskId: task.id }))).toMatchObject({ code: "TASK_NOT_FOUND" });
    expect(await api.tasks.log.query({ taskId: tasks[3]!.id })).toMatchObject({ lines: [{ line: 1, message: "line 1" }], dropped: 0 });
    expect(lineCount()).toBe(1);
    expect(withDatabase(t, (db) => db.prepare("SELECT count(*) FROM task_log_heads").pluck().get())).toBe(1);
  });

  it("a filtered read looks at 10,000 lines at most: on a long log it answers where it stopped, with more, and a follow does not park", async () => {
    t = await startTestServer({ ...WAKE_ONLY, maxTaskLogBytes: 8 * 1024 * 1024 });
    const { api } = t;
    const task = await claimed(t);
    // 25,000 debug lines but a warning at line 2, then one error.
    writeLines(t, task.id, 1, 25_001, (line) => (line === 25_001 ? "error" : line === 2 ? "warn" : "debug"));
    expect(await api.tasks.log.query({ taskId: task.id, level: "error" })).toEqual({ taskId: task.id, status: "claimed", lines: [], nextAfter: 10_000, more: true, dropped: 0 });
    expect(await api.tasks.log.query({ taskId: task.id, level: "error", after: 10_000 })).toMatchObject({ lines: [], nextAfter: 20_000, more: true });
    const last = await api.tasks.log.query({ taskId: task.id, level: "error", after: 20_000 });
    expect(last).toMatchObject({ lines: [{ line: 25_001, level: "error", message: "line 25001" }], nextAfter: 25_001, more: false });
    // The window counts lines from the first kept (after 0 starts there), and one run's lines are filtered as a level is.
    expect(await api.tasks.log.query({ taskId: task.id, attempt: 2 })).toMatchObject({ lines: [], nextAfter: 10_000, more: true });
    // A follow with a filter answers at once while it has lines to look at: it parks only at the log's end.
    expect(await promptly(api.tasks.log.query({ taskId: task.id, level: "error", waitMs: LONG_WAIT_MS }))).toMatchObject({ lines: [], nextAfter: 10_000, more: true });
    // A filtered tail looks at the last 10,000 lines: the warning at line 2 is not among them.
    expect(await api.tasks.log.query({ taskId: task.id, tail: 5, level: "warn" })).toMatchObject({ lines: [{ line: 25_001 }], nextAfter: 25_001, more: false });
    expect((await api.tasks.log.query({ taskId: task.id, tail: 3, attempt: 1 })).lines.map((l) => l.line)).toEqual([24_999, 25_000, 25_001]);
    // Unfiltered reads are pages as before.
    expect(await api.tasks.log.query({ taskId: task.id, after: 24_998 })).toMatchObject({ lines: [{ line: 24_999 }, { line: 25_000 }, { line: 25_001 }], nextAfter: 25_001, more: false });
  });
});
