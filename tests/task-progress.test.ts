// Progress of a run: a heartbeat's `progress` (tRPC, REST, MCP, in-process, runWorker's
// run.reportProgress) is kept as the task's `progress` until its next claim and published as a
// task.progress event; only the lease's holder reports it; the CLI and dashboard show it.
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { CoordinationApi } from "../client/index.js";
import { PROGRESS_EVERY_MS } from "../client/lease-calls.js";
import { MAX_PROGRESS_BYTES } from "../src/tasks/task-schemas.js";
import { killAllCli, runOperator } from "./helpers/cli-process.js";
import { callTool, closeMcpClients, connectMcp } from "./helpers/mcp-client.js";
import { asOlderServer, withTaskCalls } from "./helpers/task-calls.js";
import { workerOn } from "./helpers/worker-on.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

const run = promisify(execFile);
let t: TestServer | undefined;
afterEach(async () => {
  await killAllCli();
  await closeMcpClients();
  await t?.stop({ removeFiles: true });
  t = undefined;
});

/** The task.progress events of a task in the log, their payloads oldest first. */
const progressEvents = async (api: CoordinationApi, taskId: string) =>
  (await api.events.list.query({ types: ["task.progress"], limit: 1000 })).filter((e) => (e.payload as { taskId?: string }).taskId === taskId).map((e) => e.payload);

describe("task progress", () => {
  it("a heartbeat's progress is kept on the task and published; a heartbeat without it keeps it; the next claim clears it", async () => {
    t = await startTestServer({ retryBaseMs: 0 });
    const api = t.api;
    const task = await api.tasks.enqueue.mutate({ queue: "reports", payload: { sections: 3 } });
    expect(task).toMatchObject({ progress: null, progressAt: null });
    const lease = (await api.tasks.claim.mutate({ agentId: "writer", queues: ["reports"], leaseMs: 10_000 }))!;
    expect(lease).toMatchObject({ progress: null, progressAt: null });

    const before = Date.now();
    const reported = await api.tasks.heartbeat.mutate({ taskId: task.id, agentId: "writer", leaseToken: lease.leaseToken, leaseMs: 20_000, progress: { step: "drafting", done: 1, of: 3 } });
    expect(reported).toMatchObject({ status: "claimed", progress: { step: "drafting", done: 1, of: 3 } });
    // A report renews the lease as any heartbeat does.
    expect(reported.leaseExpiresAt!.getTime()).toBe(reported.progressAt!.getTime() + 20_000);
    expect(reported.progressAt!.getTime()).toBeGreaterThanOrEqual(before - 1000);
    expect(await api.tasks.get.query({ taskId: task.id })).toEqual(reported);
    expect(await progressEvents(api, task.id)).toEqual([{ taskId: task.id, queue: "reports", agentId: "writer", attempt: 1, leaseToken: lease.leaseToken, progress: { step: "drafting", done: 1, of: 3 } }]);

    // A plain heartbeat renews the lease and leaves the progress as reported, with no event.
    const plain = await api.tasks.heartbeat.mutate({ taskId: task.id, agentId: "writer", leaseToken: lease.leaseToken });
    expect(plain).toMatchObject({ progress: { step: "drafting", done: 1, of: 3 }, progressAt: reported.progressAt });
    // A newer report replaces it; JSON null is a report too.
    await api.tasks.heartbeat.mutate({ taskId: task.id, agentId: "writer", progress: "two of three" });
    expect((await api.tasks.get.query({ taskId: task.id })).progress).toBe("two of three");
    const nulled = await api.tasks.heartbeat.mutate({ taskId: task.id, agentId: "writer", progress: null });
    expect(nulled.progress).toBeNull();
    expect(nulled.progressAt).not.toBeNull();
    expect((await progressEvents(api, task.id)).map((p) => (p as { progress: unknown }).progress)).toEqual([{ step: "drafting", done: 1, of: 3 }, "two of three", null]);

    // A failed run keeps where it got; the next run starts with none.
    await api.tasks.heartbeat.mutate({ taskId: task.id, agentId: "writer", progress: { step: "citations" } });
    const failed = await api.tasks.fail.mutate({ taskId: task.id, agentId: "writer", leaseToken: lease.leaseToken, error: "model timed out" });
    expect(failed).toMatchObject({ status: "pending", progress: { step: "citations" } });
    const again = (await api.tasks.claim.mutate({ agentId: "writer-2", queues: ["reports"] }))!;
    expect(again).toMatchObject({ id: task.id, attempts: 2, progress: null, progressAt: null });
    expect(await api.tasks.get.query({ taskId: task.id })).toMatchObject({ progress: null, progressAt: null });
    // A complete-and-claim's next task starts with none either.
    await api.tasks.heartbeat.mutate({ taskId: task.id, agentId: "writer-2", progress: 0.9 });
    const completed = await api.tasks.completeAndClaim.mutate({ taskId: task.id, agentId: "writer-2", leaseToken: again.leaseToken, result: "done" });
    expect(completed.completed).toMatchObject({ status: "completed", progress: 0.9 });
  });

  it("a task's history lists its transitions, not its reports: a run that reported all along still shows how it ended", async () => {
    t = await startTestServer();
    const api = t.api;
    const task = await api.tasks.enqueue.mutate({ queue: "long" });
    const lease = (await api.tasks.claim.mutate({ agentId: "w", queues: ["long"] }))!;
    for (let i = 1; i <= 250; i++) await api.tasks.heartbeat.mutate({ taskId: task.id, agentId: "w", leaseToken: lease.leaseToken, progress: i });
    await api.tasks.complete.mutate({ taskId: task.id, agentId: "w", leaseToken: lease.leaseToken, result: "done" });
    expect((await api.tasks.events.query({ taskId: task.id })).map((e) => e.type)).toEqual(["task.enqueued", "task.claimed", "task.completed"]);
    expect((await api.tasks.events.query({ taskId: task.id, limit: 2 })).map((e) => e.type)).toEqual(["task.enqueued", "task.claimed"]);
    // Every report is in the log.
    expect((await progressEvents(api, task.id)).map((p) => (p as { progress: unknown }).progress)).toEqual(Array.from({ length: 250 }, (_, i) => i + 1));
  });

  it("only the lease's holder reports: another agent, a stale token, a settled task are refused and change nothing", async () => {
    t = await startTestServer();
    const api = t.api;
    const task = await api.tasks.enqueue.mutate({});
    const first = (await api.tasks.claim.mutate({ agentId: "a" }))!;
    await api.tasks.heartbeat.mutate({ taskId: task.id, agentId: "a", progress: "a's" });
    await expect(api.tasks.heartbeat.mutate({ taskId: task.id, agentId: "b", progress: "b's" })).rejects.toMatchObject({ data: { code: "LEASE_CONFLICT", httpStatus: 409 } });
    await api.tasks.release.mutate({ taskId: task.id, agentId: "a" });
    const second = (await api.tasks.claim.mutate({ agentId: "a" }))!;
    expect(second.leaseToken).toBe(first.leaseToken + 1);
    // The first run's holder, fenced by its token: its report never lands on the second run.
    await expect(api.tasks.heartbeat.mutate({ taskId: task.id, agentId: "a", leaseToken: first.leaseToken, progress: "stale" })).rejects.toMatchObject({ data: { code: "LEASE_CONFLICT" } });
    await api.tasks.complete.mutate({ taskId: task.id, agentId: "a", leaseToken: second.leaseToken });
    await expect(api.tasks.heartbeat.mutate({ taskId: task.id, agentId: "a", progress: "late" })).rejects.toMatchObject({ data: { code: "LEASE_CONFLICT" } });
    expect(await api.tasks.get.query({ taskId: task.id })).toMatchObject({ status: "completed", progress: null, progressAt: null });
    expect(await progressEvents(api, task.id)).toEqual([{ taskId: task.id, queue: "default", agentId: "a", attempt: 1, leaseToken: first.leaseToken, progress: "a's" }]);
  });

  it("REST and MCP report it; too large, too deep or not JSON is a 400 naming progress, and the lease stays as it was", async () => {
    t = await startTestServer({ maxJsonDepth: 8 });
    const api = t.api;
    const task = await api.tasks.enqueue.mutate({ queue: "q" });
    const lease = (await api.tasks.claim.mutate({ agentId: "rest-agent", queues: ["q"] }))!;
    const post = (body: unknown) => fetch(`${t!.url}/tasks/${task.id}/heartbeat`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

    const ok = await post({ agentId: "rest-agent", leaseToken: lease.leaseToken, progress: { pct: 40 } });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ id: task.id, progress: { pct: 40 }, progressAt: expect.any(String) });

    const big = "x".repeat(MAX_PROGRESS_BYTES - 1); // two quotes make it one byte too many
    const tooLarge = await post({ agentId: "rest-agent", progress: big });
    expect(tooLarge.status).toBe(400);
    expect(JSON.stringify(await tooLarge.json())).toContain(`must take at most ${MAX_PROGRESS_BYTES} bytes as JSON (it takes ${MAX_PROGRESS_BYTES + 1})`);
    // Exactly at the bound it is taken (multi-byte characters counted as bytes).
    const atBound = "é".repeat((MAX_PROGRESS_BYTES - 2) / 2);
    expect((await post({ agentId: "rest-agent", progress: atBound })).status).toBe(200);
    const tooDeep = await post({ agentId: "rest-agent", progress: { a: { b: { c: { d: { e: { f: { g: { h: { i: 1 } } } } } } } } } });
    expect(tooDeep.status).toBe(400);
    expect(JSON.stringify(await tooDeep.json())).toContain("progress");
    await expect(api.tasks.heartbeat.mutate({ taskId: task.id, agentId: "rest-agent", progress: { when: new Date() } as never })).rejects.toMatchObject({
      data: { code: "INVALID_INPUT", httpStatus: 400 },
      message: expect.stringContaining("progress"),
    });
    const kept = await api.tasks.get.query({ taskId: task.id });
    expect(kept.progress).toBe(atBound);

    // An MCP agent reports with heartbeat_task.
    const client = await connectMcp(t.url, { "x-agent-id": "mcp-agent" });
    const other = await callTool(client, "enqueue_task", { queue: "mcp" });
    const claimed = await callTool(client, "claim_task", { queues: ["mcp"] });
    expect(claimed.id).toBe(other.id);
    expect(await callTool(client, "heartbeat_task", { taskId: other.id, leaseToken: claimed.leaseToken, progress: { step: "reading" } })).toMatchObject({ progress: { step: "reading" } });
    // A strict-mode host sends null for the arguments it leaves out: a renewal, not a report.
    expect(await callTool(client, "heartbeat_task", { taskId: other.id, leaseToken: claimed.leaseToken, leaseMs: null, progress: null })).toMatchObject({ progress: { step: "reading" } });
    expect(await progressEvents(api, other.id)).toEqual([{ taskId: other.id, queue: "mcp", agentId: "mcp-agent", attempt: 1, leaseToken: claimed.leaseToken, progress: { step: "reading" } }]);
  });

  it("a task's progress weighs in the bounds on rows: a bulk requeue of dead letters that reported much takes fewer a page", async () => {
    t = await startTestServer();
    const api = t.api;
    const big = "p".repeat(MAX_PROGRESS_BYTES - 2);
    await api.tasks.enqueueMany.mutate({ tasks: Array.from({ length: 400 }, () => ({ queue: "dl", maxAttempts: 1 })) });
    for (let round = 0; round < 4; round++) {
      const leases = await api.tasks.claimMany.mutate({ agentId: "w", queues: ["dl"], limit: 100, context: false });
      for (const lease of leases) {
        await api.tasks.heartbeat.mutate({ taskId: lease.id, agentId: "w", leaseToken: lease.leaseToken, progress: big });
        await api.tasks.fail.mutate({ taskId: lease.id, agentId: "w", leaseToken: lease.leaseToken, error: "no", retry: false });
      }
    }
    expect((await api.tasks.stats.query()).totals.dead_letter).toBe(400);
    // 4 MiB a page: about 250 rows of 16 KiB of progress, not all 400.
    const first = await api.tasks.requeueMany.mutate({ queue: "dl", limit: 1000 });
    expect(first.requeued.length).toBeLessThanOrEqual(Math.floor((4 * 1024 * 1024) / MAX_PROGRESS_BYTES));
    expect(first.nextCursor).not.toBeNull();
    const rest = await api.tasks.requeueMany.mutate({ queue: "dl", limit: 1000, cursor: first.nextCursor! });
    expect(first.requeued.length + rest.requeued.length).toBe(400);
  });

  it("the operator's CLI shows a run's progress: tasks get, and a column of tasks list", async () => {
    t = await startTestServer();
    const api = t.api;
    const task = await api.tasks.enqueue.mutate({ queue: "cli" });
    const idle = await api.tasks.enqueue.mutate({ queue: "cli" });
    await api.tasks.claim.mutate({ agentId: "w", queues: ["cli"] });
    const long = { step: "summarising the forty-two sources found", done: 7, of: 42 };
    await api.tasks.heartbeat.mutate({ taskId: task.id, agentId: "w", progress: long });
    const env = { COORDINATION_URL: t.url };
    const got = await runOperator({ args: ["tasks", "get", task.id], env });
    expect(got.code).toBe(0);
    expect(got.stdout).toMatch(new RegExp(`^progress\\s+${escape(JSON.stringify(long))} \\(\\d+[smhd] ago\\), reported \\d{4}-\\d\\d-\\d\\d \\S+$`, "m"));
    expect((await runOperator({ args: ["tasks", "get", idle.id], env })).stdout).toMatch(/^progress\s+-$/m);
    const list = (await runOperator({ args: ["tasks", "list", "--queue", "cli"], env })).stdout;
    expect(list.split("\n")[0]).toMatch(/\sPROGRESS$/);
    // Cut to 40 characters in the table.
    expect(list).toMatch(new RegExp(`^${task.id}\\s.*\\s${escape(JSON.stringify(long).slice(0, 39))}… \\(\\d+[smhd] ago\\)$`, "m"));
    expect(list).toMatch(new RegExp(`^${idle.id}\\s.*\\s-$`, "m"));
    expect(JSON.parse((await runOperator({ args: ["tasks", "get", task.id, "--json"], env })).stdout)).toMatchObject({ progress: long });
  });
});

describe("runWorker's run.reportProgress", () => {
  it("reports ride on lease renewals: a burst of reports is one write with the last; each resolves true once recorded", async () => {
    t = await startTestServer();
    const api = t.api;
    const task = await api.tasks.enqueue.mutate({ queue: "burst" });
    const results: boolean[] = [];
    const { worker, errors } = await workerOn(api, "burst", {
      handler: async (_task, _signal, run) => {
        // A thousand reports in one go, none awaited but the last: the server gets the last.
        const sent = Array.from({ length: 1000 }, (_, i) => run.reportProgress({ done: i + 1, of: 1000 }));
        results.push(...(await Promise.all(sent)));
        return "ok";
      },
    });
    try {
      await vi.waitFor(async () => expect((await api.tasks.get.query({ taskId: task.id })).status).toBe("completed"), { timeout: 15_000, interval: 20 });
      expect(results).toEqual(Array.from({ length: 1000 }, () => true));
      expect(await progressEvents(api, task.id)).toEqual([{ taskId: task.id, queue: "burst", agentId: "w-burst", attempt: 1, leaseToken: 1, progress: { done: 1000, of: 1000 } }]);
      expect((await api.tasks.get.query({ taskId: task.id })).progress).toEqual({ done: 1000, of: 1000 });
      expect(errors).toEqual([]);
    } finally {
      await worker.stop();
    }
  });

  it("with a lease renewed more often than a second, reports still go at most one a second; undefined is no report", async () => {
    t = await startTestServer();
    const api = t.api;
    // Attempts to spare: a run whose 300 ms lease ran out (a loaded machine) is charged one.
    const task = await api.tasks.enqueue.mutate({ queue: "short", maxAttempts: 20 });
    // Each run's sends and the length of its loop, by its lease: on a loaded machine a 300 ms lease
    // may run out, and another run of the task reports too (each run is bounded on its own).
    const runs = new Map<number, { sends: number; elapsed: number }>();
    let undefinedReport: boolean | undefined;
    const { worker, errors } = await workerOn(api, "short", {
      leaseMs: 300, // renewed every 100 ms
      handler: async (claimed, _signal, run) => {
        undefinedReport = await run.reportProgress(undefined as never);
        const started = Date.now();
        let n = 0;
        while (Date.now() - started < 2500) {
          void run.reportProgress(++n);
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        const last = run.reportProgress("last");
        runs.set(claimed.leaseToken, { sends: n, elapsed: Date.now() - started });
        expect(await last).toBe(true);
        return "done";
      },
    });
    try {
      await vi.waitFor(async () => expect((await api.tasks.get.query({ taskId: task.id })).status).toBe("completed"), { timeout: 30_000, interval: 20 });
      expect(undefinedReport).toBe(false);
      const reports = (await progressEvents(api, task.id)) as Array<{ leaseToken: number; progress: unknown }>;
      // Each report went at least PROGRESS_EVERY_MS after the one before in its run (less a timer's
      // few ms of slack), the first at once and the last within PROGRESS_EVERY_MS of the loop's end.
      for (const [leaseToken, { sends, elapsed }] of runs) {
        const ofRun = reports.filter((report) => report.leaseToken === leaseToken);
        expect(ofRun.length).toBeLessThanOrEqual(Math.floor((elapsed + PROGRESS_EVERY_MS) / (PROGRESS_EVERY_MS - 5)) + 1);
        expect(ofRun.length).toBeLessThan(sends);
      }
      expect(reports.every((report) => runs.has(report.leaseToken))).toBe(true);
      expect(reports.at(-1)?.progress).toBe("last");
      // A lease that ran out is told (its run's outcome not stored); nothing else went wrong.
      expect(errors.filter((error) => !String(error).includes("runWorker: lost the lease"))).toEqual([]);
    } finally {
      await worker.stop();
    }
  });

  it("reports refused one after another never hold back the lease's renewals: the run ends under its first lease", async () => {
    t = await startTestServer({ leaseMs: 3000 });
    const api = t.api;
    const task = await api.tasks.enqueue.mutate({ queue: "refused-loop" });
    let refused = 0;
    let elapsed = 0;
    const { worker, errors } = await workerOn(api, "refused-loop", {
      handler: async (_task, signal, run) => {
        const started = Date.now();
        // Twice the lease's length, each report refused (too large) and awaited.
        while (Date.now() - started < 6000 && !signal.aborted) if (!(await run.reportProgress("x".repeat(MAX_PROGRESS_BYTES)))) refused++;
        elapsed = Date.now() - started;
        return "done";
      },
    });
    try {
      // The run settled, or its outcome was lost with its lease.
      await vi.waitFor(() => expect(worker.completed + worker.lost).toBe(1), { timeout: 30_000, interval: 50 });
      expect(worker.lost).toBe(0);
      expect(await api.tasks.get.query({ taskId: task.id })).toMatchObject({ status: "completed", result: "done", attempts: 1, leaseToken: 1 });
      // Each refused report went PROGRESS_EVERY_MS after the one before, at most.
      expect(refused).toBeLessThanOrEqual(Math.floor((elapsed + PROGRESS_EVERY_MS) / (PROGRESS_EVERY_MS - 5)) + 1);
      expect(errors).toHaveLength(refused);
    } finally {
      await worker.stop();
    }
  });

  it("a report in flight when the handler returns, whose call fails on the way, is not sent again after the run", async () => {
    t = await startTestServer();
    const api = t.api;
    const task = await api.tasks.enqueue.mutate({ queue: "in-flight" });
    const sent: Array<{ progress: unknown; afterReturn: boolean }> = [];
    let returned = false;
    let failedOnce = false;
    // The first report's call is slow and then fails as a dropped connection does (a transient error).
    const heartbeat = async (input: Parameters<typeof api.tasks.heartbeat.mutate>[0], options?: Parameters<typeof api.tasks.heartbeat.mutate>[1]) => {
      if (input.progress !== undefined) sent.push({ progress: input.progress, afterReturn: returned });
      if (input.progress !== undefined && !failedOnce) {
        failedOnce = true;
        await new Promise((resolve) => setTimeout(resolve, 500));
        throw new Error("socket hang up");
      }
      return api.tasks.heartbeat.mutate(input, options);
    };
    // The settle is slow too: the failure comes while it is under way, with the lease still renewed.
    const completeAndClaim = async (input: Parameters<typeof api.tasks.completeAndClaim.mutate>[0], options?: Parameters<typeof api.tasks.completeAndClaim.mutate>[1]) => {
      await new Promise((resolve) => setTimeout(resolve, 1500));
      return api.tasks.completeAndClaim.mutate(input, options);
    };
    const flaky = withTaskCalls(api, { heartbeat, completeAndClaim });
    let report: Promise<boolean> | undefined;
    const { worker, errors } = await workerOn(flaky, "in-flight", {
      leaseMs: 30_000,
      handler: async (_task, _signal, taskRun) => {
        report = taskRun.reportProgress("X");
        // Until the report's call is under way (it goes at once: the first report waits for no one).
        await vi.waitFor(() => expect(sent).toHaveLength(1), { timeout: 10_000, interval: 5 });
        returned = true;
        return "done";
      },
    });
    try {
      await vi.waitFor(() => expect(worker.completed).toBe(1), { timeout: 15_000, interval: 20 });
      expect(await report).toBe(false);
      // Well past the failed call and a retry's delay: nothing more went.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect(sent).toEqual([{ progress: "X", afterReturn: false }]);
      expect(await api.tasks.get.query({ taskId: task.id })).toMatchObject({ status: "completed", progress: null });
      expect(errors.map(String)).toEqual(["Error: socket hang up"]);
    } finally {
      await worker.stop();
    }
  });

  it("a wall clock stepped back mid-run does not hold back the renewals a report brings forward (a process of its own)", async () => {
    t = await startTestServer();
    const task = await t.api.tasks.enqueue.mutate({ queue: "clock-step" });
    const script = fileURLToPath(new URL("./helpers/clock-step-worker.mjs", import.meta.url));
    const { stdout } = await run(process.execPath, [script, t.url], { timeout: 60_000 });
    expect(JSON.parse(stdout)).toEqual({ completed: 1, lost: 0, errors: [] });
    expect(await t.api.tasks.get.query({ taskId: task.id })).toMatchObject({ status: "completed", attempts: 1, leaseToken: 1, progress: "after the step" });
  });

  it("a wall clock stepped back while the server cannot be reached does not keep the run going past its lease (a process of its own)", async () => {
    t = await startTestServer({ leaseSweepMs: 100 });
    await t.api.tasks.enqueue.mutate({ queue: "clock-step" });
    const script = fileURLToPath(new URL("./helpers/clock-step-worker.mjs", import.meta.url));
    const { stdout } = await run(process.execPath, [script, t.url, "cut"], { timeout: 60_000 });
    // Told within its 3 s lease's end (on a clock that never steps), not 10 minutes later.
    expect(JSON.parse(stdout)).toEqual({ completed: 0, lost: 1, aborted: "yes" });
  });

  it("a report still waiting when the handler returns, or made after, is dropped (false), and the complete goes through", async () => {
    t = await startTestServer();
    const api = t.api;
    const task = await api.tasks.enqueue.mutate({ queue: "late" });
    let waiting: Promise<boolean> | undefined;
    let later: (() => Promise<boolean>) | undefined;
    const { worker, errors } = await workerOn(api, "late", {
      handler: async (_task, _signal, run) => {
        expect(await run.reportProgress("first")).toBe(true);
        // Sent no sooner than PROGRESS_EVERY_MS after the first: still waiting when the handler returns.
        waiting = run.reportProgress("second");
        later = () => run.reportProgress("after the run");
        return "done";
      },
    });
    try {
      await vi.waitFor(async () => expect((await api.tasks.get.query({ taskId: task.id })).status).toBe("completed"), { timeout: 15_000, interval: 20 });
      expect(await waiting).toBe(false);
      expect(await later!()).toBe(false);
      expect(await api.tasks.get.query({ taskId: task.id })).toMatchObject({ result: "done", progress: "first" });
      expect((await progressEvents(api, task.id)).map((p) => (p as { progress: unknown }).progress)).toEqual(["first"]);
      expect(errors).toEqual([]);
      expect(worker.completed).toBe(1);
      expect(PROGRESS_EVERY_MS).toBe(1000);
    } finally {
      await worker.stop();
    }
  });

  it("a report the server refuses resolves false and says why; later reports go, and the run completes under its first lease", async () => {
    t = await startTestServer({ leaseMs: 3000 });
    const api = t.api;
    const task = await api.tasks.enqueue.mutate({ queue: "refused" });
    const outcomes: boolean[] = [];
    const { worker, errors } = await workerOn(api, "refused", {
      handler: async (_task, _signal, run) => {
        outcomes.push(await run.reportProgress("x".repeat(MAX_PROGRESS_BYTES)));
        outcomes.push(await run.reportProgress("fits"));
        return "done";
      },
    });
    try {
      await vi.waitFor(async () => expect((await api.tasks.get.query({ taskId: task.id })).status).toBe("completed"), { timeout: 15_000, interval: 20 });
      expect(outcomes).toEqual([false, true]);
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatchObject({ data: { code: "INVALID_INPUT" }, message: expect.stringContaining(`must take at most ${MAX_PROGRESS_BYTES} bytes`) });
      expect(await api.tasks.get.query({ taskId: task.id })).toMatchObject({ progress: "fits", attempts: 1, leaseToken: 1 });
    } finally {
      await worker.stop();
    }
  });

  it("against a server older than progress (it refuses the field as unknown), reports resolve false, said once, and the run goes on", async () => {
    t = await startTestServer();
    const api = t.api;
    const task = await api.tasks.enqueue.mutate({ queue: "old" });
    let sentWithProgress = 0;
    // The older server's answer to the field: a real refusal of an unknown field, named as that server would name it.
    const heartbeat = async (input: Parameters<typeof api.tasks.heartbeat.mutate>[0], options?: Parameters<typeof api.tasks.heartbeat.mutate>[1]) => {
      if (input.progress === undefined) return api.tasks.heartbeat.mutate(input, options);
      sentWithProgress++;
      // A round trip long enough for the handler's next report to be made meanwhile.
      await new Promise((resolve) => setTimeout(resolve, 300));
      return asOlderServer(input, "progress", (renamed) => api.tasks.heartbeat.mutate(renamed, options));
    };
    const olderServer = withTaskCalls(api, { heartbeat });
    const outcomes: boolean[] = [];
    const { worker, errors } = await workerOn(olderServer, "old", {
      handler: async (_task, _signal, run) => {
        const one = run.reportProgress("one");
        await new Promise((resolve) => setTimeout(resolve, 50));
        outcomes.push(...(await Promise.all([one, run.reportProgress("two")])));
        outcomes.push(await run.reportProgress("three"));
        return "done";
      },
    });
    try {
      await vi.waitFor(async () => expect((await api.tasks.get.query({ taskId: task.id })).status).toBe("completed"), { timeout: 15_000, interval: 20 });
      expect(outcomes).toEqual([false, false, false]);
      expect(sentWithProgress).toBe(1);
      expect(errors).toHaveLength(1);
      expect(String(errors[0])).toContain("the server does not record progress (it is older than this client)");
    } finally {
      await worker.stop();
    }
  });
});

/** A worker on queue `name` as agent "w-NAME" (long-polls of 200 ms), and the errors it told onError. */

/** `text` as a literal in a regular expression. */
const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
