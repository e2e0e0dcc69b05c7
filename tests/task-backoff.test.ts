// A task's own retry backoff (tasks.enqueue's `backoff`: exponential or fixed, a longest wait,
// jitter) and a failure's own wait (tasks.fail's `retryAfterMs`), over tRPC, REST, MCP and the
// in-process API; the CLI and the dashboard show a task's backoff. A failed run's wait is read
// exactly as the server stored it (runAt − updatedAt), so no verdict depends on the machine's speed.
import { afterEach, describe, expect, it, vi } from "vitest";
import { backoffText } from "../client/backoff-text.js";
import { RetryLater, runWorker, type CoordinationApi } from "../client/index.js";
import { openCoordination } from "../src/in-process-api.js";
import { retryDelayMs } from "../src/tasks/retry-backoff.js";
import { killAllCli, runOperator } from "./helpers/cli-process.js";
import { callTool, closeMcpClients, connectMcp } from "./helpers/mcp-client.js";
import { asOlderServer, withTaskCalls } from "./helpers/task-calls.js";
import { makeTempDir, rest, startTestServer, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
afterEach(async () => {
  await killAllCli();
  await closeMcpClients();
  await t?.stop({ removeFiles: true });
  t = undefined;
});

const WEEK_MS = 7 * 24 * 3_600_000;
const badRequest = (field: string) => ({ data: { code: "INVALID_INPUT", httpStatus: 400 }, message: expect.stringContaining(field) });
/** How long a retried task waits, as its fail stored it: from the fail (updatedAt) to its next run (runAt). */
const waitOf = (task: { runAt: Date; updatedAt: Date }) => task.runAt.getTime() - task.updatedAt.getTime();

/** Claims `taskId` (once it is due: polled, not timed) and fails its run; the task as the fail left it. */
async function claimAndFail(api: CoordinationApi, taskId: string, queue: string, extra: { retryAfterMs?: number } = {}) {
  const lease = await vi.waitFor(
    async () => {
      const claimed = await api.tasks.claim.mutate({ agentId: "w", queues: [queue] });
      if (!claimed) throw new Error("not due yet");
      return claimed;
    },
    { timeout: 20_000, interval: 20 },
  );
  expect(lease.id).toBe(taskId);
  return api.tasks.fail.mutate({ taskId, agentId: "w", leaseToken: lease.leaseToken, error: `run ${lease.attempts} broke`, ...extra });
}

describe("retry backoff", () => {
  it("the wait after each failure, by the formula: exponential doubles to its longest wait, fixed never changes, jitter draws from [wait × (1 − jitter), wait]", () => {
    const server = { retryBaseMs: 1000, retryMaxMs: 300_000 };
    const exponential = { type: "exponential" as const, delayMs: 100, maxDelayMs: 250, jitter: 0 };
    expect([1, 2, 3, 4, 1000].map((attempt) => retryDelayMs(exponential, attempt, server))).toEqual([100, 200, 250, 250, 250]);
    expect([1, 2, 9].map((attempt) => retryDelayMs({ type: "fixed", delayMs: 150, maxDelayMs: 150, jitter: 0 }, attempt, server))).toEqual([150, 150, 150]);
    // None of its own: the server's, as before (retryBaseMs doubling to retryMaxMs).
    expect([1, 2, 3, 10].map((attempt) => retryDelayMs(null, attempt, server))).toEqual([1000, 2000, 4000, 300_000]);
    // A delay of 0 stays 0 however many doublings (0 × 2^1024 would be NaN).
    expect(retryDelayMs({ type: "exponential", delayMs: 0, maxDelayMs: WEEK_MS, jitter: 0 }, 1000, server)).toBe(0);
    const jittered = { type: "fixed" as const, delayMs: 10_000, maxDelayMs: 10_000, jitter: 0.25 };
    expect([0, 0.5, 0.999_999].map((draw) => retryDelayMs(jittered, 1, server, () => draw))).toEqual([10_000, 8750, 7500]);
    expect(retryDelayMs({ ...exponential, jitter: 1 }, 9, server, () => 0.5)).toBe(125);
  });

  it("a task's own exponential and fixed backoffs set each retry's wait; a task without one keeps the server's", async () => {
    t = await startTestServer({ retryBaseMs: 40, retryMaxMs: 70 });
    const api = t.api;
    const [exponential, fixed, plain] = await api.tasks.enqueueMany.mutate({
      tasks: [
        { queue: "exp", maxAttempts: 5, backoff: { delayMs: 100, maxDelayMs: 250 } },
        { queue: "fixed", maxAttempts: 4, backoff: { type: "fixed", delayMs: 150 } },
        { queue: "plain", maxAttempts: 4 },
      ],
    });
    expect(exponential!.backoff).toEqual({ type: "exponential", delayMs: 100, maxDelayMs: 250, jitter: 0 });
    expect(fixed!.backoff).toEqual({ type: "fixed", delayMs: 150, maxDelayMs: 150, jitter: 0 });
    expect(plain!.backoff).toBeNull();
    // A backoff as a task answers it may be sent back as it is: a copy of a task is the same policy.
    for (const task of [exponential!, fixed!]) expect((await api.tasks.enqueue.mutate({ queue: "copies", backoff: task.backoff! })).backoff).toEqual(task.backoff);

    const waits: Record<string, number[]> = { exp: [], fixed: [], plain: [] };
    for (const [task, queue, runs] of [[exponential!, "exp", 4], [fixed!, "fixed", 3], [plain!, "plain", 3]] as const) {
      for (let run = 0; run < runs; run++) {
        const failed = await claimAndFail(api, task.id, queue);
        expect(failed).toMatchObject({ status: "pending", attempts: run + 1 });
        waits[queue]!.push(waitOf(failed));
      }
    }
    expect(waits).toEqual({ exp: [100, 200, 250, 250], fixed: [150, 150, 150], plain: [40, 70, 70] });
    // The task.retried events say when each retry falls due, and after how long (no retryAfterMs: the backoff's).
    const retried = (await api.tasks.events.query({ taskId: exponential!.id })).filter((e) => e.type === "task.retried");
    const stored = await api.tasks.get.query({ taskId: exponential!.id });
    expect(retried.map((e) => (e.payload as { delayMs: number }).delayMs)).toEqual([100, 200, 250, 250]);
    expect(retried.at(-1)!.payload).toMatchObject({ attempt: 4, runAt: stored.runAt.toISOString() });
    expect(retried.at(-1)!.payload).not.toHaveProperty("retryAfterMs");
    // Its last attempt dead-letters, whatever the backoff.
    expect(await claimAndFail(api, exponential!.id, "exp")).toMatchObject({ status: "dead_letter", attempts: 5 });
    // A requeued dead letter keeps its backoff, and starts its doubling again.
    await api.tasks.requeue.mutate({ taskId: exponential!.id });
    expect(waitOf(await claimAndFail(api, exponential!.id, "exp"))).toBe(100);
  });

  it("a lease that runs out retries at once, whatever the backoff: its task.retried says a delay of 0", async () => {
    t = await startTestServer({ leaseSweepMs: 60_000 });
    const task = await t.api.tasks.enqueue.mutate({ queue: "expiring", backoff: { type: "fixed", delayMs: 3_600_000 } });
    await t.api.tasks.claim.mutate({ agentId: "gone", queues: ["expiring"], leaseMs: 1 });
    // Past its end (polled, not timed), the sweep takes it back.
    await vi.waitFor(async () => expect(await t!.server.services.tasks.expireLeases()).toBe(1), { timeout: 10_000, interval: 20 });
    const expired = await t.api.tasks.get.query({ taskId: task.id });
    expect(expired).toMatchObject({ status: "pending", attempts: 1 });
    expect(waitOf(expired)).toBe(0);
    const retried = (await t.api.tasks.events.query({ taskId: task.id })).find((e) => e.type === "task.retried");
    expect(retried!.payload).toMatchObject({ attempt: 1, delayMs: 0, runAt: expired.runAt.toISOString() });
  });

  it("jitter spreads the retries of tasks that failed together over [wait × (1 − jitter), wait]", async () => {
    t = await startTestServer();
    const api = t.api;
    const tasks = await api.tasks.enqueueMany.mutate({ tasks: Array.from({ length: 30 }, () => ({ queue: "spread", backoff: { type: "fixed" as const, delayMs: 60_000, jitter: 0.5 } })) });
    const leases = await api.tasks.claimMany.mutate({ agentId: "w", queues: ["spread"], limit: 30 });
    expect(leases).toHaveLength(30);
    const waits = await Promise.all(leases.map(async (lease) => waitOf(await api.tasks.fail.mutate({ taskId: lease.id, agentId: "w", leaseToken: lease.leaseToken, error: "the provider is down" }))));
    for (const wait of waits) {
      expect(wait).toBeGreaterThanOrEqual(30_000);
      expect(wait).toBeLessThanOrEqual(60_000);
    }
    // Thirty draws from 30,000 ms of room: all alike would mean no jitter at all.
    expect(new Set(waits).size).toBeGreaterThan(1);
    expect(tasks[0]!.backoff).toEqual({ type: "fixed", delayMs: 60_000, maxDelayMs: 60_000, jitter: 0.5 });
  });

  it("retryAfterMs: a fail's own wait instead of the backoff, the attempt charged; dead-lettered all the same at the last attempt; refused with retry false", async () => {
    t = await startTestServer();
    const api = t.api;
    const task = await api.tasks.enqueue.mutate({ queue: "later", maxAttempts: 2, backoff: { type: "fixed", delayMs: 100 } });
    const hour = await claimAndFail(api, task.id, "later", { retryAfterMs: 3_600_000 });
    expect(hour).toMatchObject({ status: "pending", attempts: 1 });
    expect(waitOf(hour)).toBe(3_600_000);
    const retried = (await api.tasks.events.query({ taskId: task.id })).find((e) => e.type === "task.retried");
    expect(retried!.payload).toMatchObject({ attempt: 1, runAt: hour.runAt.toISOString(), delayMs: 3_600_000, retryAfterMs: 3_600_000 });
    // The same fail sent again (its answer lost) gets the same answer; with another wait it is a conflict saying so.
    const again = await api.tasks.fail.mutate({ taskId: task.id, agentId: "w", leaseToken: hour.leaseToken, error: "run 1 broke", retryAfterMs: 3_600_000 });
    expect([again.status, again.runAt.getTime(), again.attempts]).toEqual(["pending", hour.runAt.getTime(), 1]);
    // Another wait, or none (the backoff's) where it asked for one, is another call: a conflict saying so.
    for (const otherWait of [{ retryAfterMs: 60_000 }, {}]) {
      await expect(api.tasks.fail.mutate({ taskId: task.id, agentId: "w", leaseToken: hour.leaseToken, error: "run 1 broke", ...otherWait })).rejects.toMatchObject({
        data: { code: "LEASE_CONFLICT", httpStatus: 409 },
        message: expect.stringContaining("this fail differs (retryAfterMs)"),
      });
    }
    // The wait it asked for is kept with the failed run, not answered.
    expect((await api.tasks.get.query({ taskId: task.id })).errorHistory).toEqual([{ attempt: 1, agentId: "w", error: "run 1 broke", at: hour.updatedAt }]);
    expect((await api.tasks.get.query({ taskId: task.id })).runAt).toEqual(hour.runAt);

    // retryAfterMs 0 retries at once, whatever the backoff says.
    const now = await api.tasks.enqueue.mutate({ queue: "now", maxAttempts: 2, backoff: { delayMs: 3_600_000 } });
    const atOnce = await claimAndFail(api, now.id, "now", { retryAfterMs: 0 });
    expect(waitOf(atOnce)).toBe(0);
    // The last attempt: dead-lettered whatever retryAfterMs says; sent again, the same wait is the same call, another is not.
    const dead = await claimAndFail(api, now.id, "now", { retryAfterMs: 5000 });
    expect(dead).toMatchObject({ status: "dead_letter", attempts: 2 });
    expect(await api.tasks.fail.mutate({ taskId: now.id, agentId: "w", leaseToken: dead.leaseToken, error: "run 2 broke", retryAfterMs: 5000 })).toMatchObject({ status: "dead_letter", finishedAt: dead.finishedAt });
    await expect(api.tasks.fail.mutate({ taskId: now.id, agentId: "w", leaseToken: dead.leaseToken, error: "run 2 broke" })).rejects.toMatchObject({ data: { code: "LEASE_CONFLICT" } });

    const held = await api.tasks.enqueue.mutate({ queue: "contradiction" });
    const lease = (await api.tasks.claim.mutate({ agentId: "w", queues: ["contradiction"] }))!;
    await expect(api.tasks.fail.mutate({ taskId: held.id, agentId: "w", leaseToken: lease.leaseToken, error: "x", retry: false, retryAfterMs: 1000 })).rejects.toMatchObject(badRequest("retryAfterMs"));
    await expect(api.tasks.fail.mutate({ taskId: held.id, agentId: "w", error: "x", retryAfterMs: WEEK_MS + 1 })).rejects.toMatchObject(badRequest("retryAfterMs"));
    expect(await api.tasks.get.query({ taskId: held.id })).toMatchObject({ status: "claimed", attempts: 1 });
  });

  it("runWorker: RetryLater with chargeAttempt fails the run with retryAfterMs (the attempt counted, the last one dead-lettered); against an older server, after the backoff", async () => {
    t = await startTestServer();
    const api = t.api;
    const errors: unknown[] = [];
    const runs: number[] = [];
    const start = (on: CoordinationApi, queue: string) =>
      runWorker({
        api: on,
        agentId: `w-${queue}`,
        queues: [queue],
        waitMs: 200,
        onError: (error) => errors.push(error),
        handler: async (task) => {
          runs.push(task.attempts);
          throw new RetryLater(task.attempts === 1 ? 250 : 3_600_000, `503 from the search API (run ${task.attempts})`, { chargeAttempt: true });
        },
      });
    const worker = await start(api, "charged");
    try {
      const task = await api.tasks.enqueue.mutate({ queue: "charged", maxAttempts: 2, backoff: { type: "fixed", delayMs: 3_600_000 } });
      await vi.waitFor(async () => expect((await api.tasks.get.query({ taskId: task.id })).status).toBe("dead_letter"), { timeout: 20_000, interval: 20 });
      const dead = await api.tasks.get.query({ taskId: task.id });
      // The first run's 250 ms, not the backoff's hour: it ran again, and its last attempt dead-lettered.
      expect(runs).toEqual([1, 2]);
      expect(dead).toMatchObject({ attempts: 2, lastError: "503 from the search API (run 2)" });
      expect(dead.errorHistory.map((e) => e.error)).toEqual(["503 from the search API (run 1)", "503 from the search API (run 2)"]);
      const retried = (await api.tasks.events.query({ taskId: task.id })).find((e) => e.type === "task.retried")!;
      const failedAt = dead.errorHistory[0]!.at.getTime();
      expect(Date.parse((retried.payload as { runAt: string }).runAt) - failedAt).toBe(250);
      // Each failed run counts (the server commits before the worker hears its answer: waited for).
      await vi.waitFor(() => expect([worker.failed, worker.deferred, worker.lost]).toEqual([2, 0, 0]), { timeout: 10_000, interval: 20 });
    } finally {
      await worker.stop();
    }
    // A server older than retryAfterMs refuses the field by name: the run fails all the same, after the task's backoff, and onError says so.
    let sentWithRetryAfter = 0;
    const olderServer = withTaskCalls(api, {
      fail: (input: Record<string, unknown>, options?: never) =>
        input.retryAfterMs === undefined ? api.tasks.fail.mutate(input as never, options) : (sentWithRetryAfter++, asOlderServer(input, "retryAfterMs", (renamed) => api.tasks.fail.mutate(renamed, options))),
    });
    const older = await start(olderServer, "older");
    try {
      // Two tasks, one after the other: the second run's fail no longer sends the field.
      const tasks = await api.tasks.enqueueMany.mutate({ tasks: [1, 2].map(() => ({ queue: "older", backoff: { type: "fixed" as const, delayMs: 90_000 } })) });
      for (const task of tasks) {
        const failed = await vi.waitFor(
          async () => {
            const now = await api.tasks.get.query({ taskId: task.id });
            expect([now.status, now.attempts]).toEqual(["pending", 1]);
            return now;
          },
          { timeout: 20_000, interval: 20 },
        );
        expect(waitOf(failed)).toBe(90_000);
      }
      await vi.waitFor(() => expect(older.failed).toBe(2), { timeout: 10_000, interval: 20 });
      expect(sentWithRetryAfter).toBe(1);
      // The refusal as the server worded it, then what the worker did about it, once.
      expect(errors.map(String)).toEqual([expect.stringContaining("unknown field"), expect.stringContaining("the server does not take retryAfterMs (it is older than this client)")]);
    } finally {
      await older.stop();
    }
  });

  it("a backoff the server cannot follow is a 400 naming its field, and stores nothing", async () => {
    t = await startTestServer();
    const api = t.api;
    const refused: Array<[unknown, string]> = [
      [{ type: "fixed", delayMs: 1000, maxDelayMs: 5000 }, "backoff.maxDelayMs"],
      [{ delayMs: 5000, maxDelayMs: 1000 }, "backoff.maxDelayMs"],
      [{ delayMs: 1000, jitter: 1.5 }, "backoff.jitter"],
      [{ delayMs: -1 }, "backoff.delayMs"],
      [{ delayMs: WEEK_MS + 1 }, "backoff.delayMs"],
      [{ delayMs: 1.5 }, "backoff.delayMs"],
      [{ type: "linear", delayMs: 1000 }, "backoff.type"],
      [{}, "backoff.delayMs"],
      [{ delayMs: 1000, factor: 3 }, "factor"],
    ];
    for (const [backoff, field] of refused) {
      await expect(api.tasks.enqueue.mutate({ queue: "bad", backoff: backoff as never })).rejects.toMatchObject(badRequest(field));
      const viaRest = await rest(t.url, "POST", "/tasks", { queue: "bad", backoff });
      expect([viaRest.status, viaRest.body.code, JSON.stringify(viaRest.body).includes(field)]).toEqual([400, "INVALID_INPUT", true]);
    }
    expect((await api.tasks.stats.query({})).totals.pending).toBe(0);
  });

  it("an idempotencyKey sent again compares the backoff: the same policy, however spelled, is the same task; another, or none, is a 409", async () => {
    t = await startTestServer();
    const api = t.api;
    const task = await api.tasks.enqueue.mutate({ queue: "keyed", idempotencyKey: "k", backoff: { delayMs: 1000 } });
    // The defaults written out are the same policy.
    expect((await api.tasks.enqueue.mutate({ queue: "keyed", idempotencyKey: "k", backoff: { jitter: 0, maxDelayMs: WEEK_MS, delayMs: 1000, type: "exponential" } })).id).toBe(task.id);
    for (const other of [{ delayMs: 2000 }, { type: "fixed" as const, delayMs: 1000 }, undefined]) {
      await expect(api.tasks.enqueue.mutate({ queue: "keyed", idempotencyKey: "k", ...(other ? { backoff: other } : {}) })).rejects.toMatchObject({
        data: { code: "IDEMPOTENCY_MISMATCH", httpStatus: 409, details: { taskId: task.id, differs: ["backoff"] } },
      });
    }
    // An exponential backoff whose longest wait is its delay waits as the fixed one: the same policy.
    const capped = await api.tasks.enqueue.mutate({ queue: "keyed", idempotencyKey: "capped", backoff: { delayMs: 1000, maxDelayMs: 1000 } });
    expect((await api.tasks.enqueue.mutate({ queue: "keyed", idempotencyKey: "capped", backoff: { type: "fixed", delayMs: 1000 } })).id).toBe(capped.id);
    const zero = await api.tasks.enqueue.mutate({ queue: "keyed", idempotencyKey: "zero", backoff: { type: "fixed", delayMs: 0 } });
    for (const never of [{ delayMs: 0 }, { delayMs: 0, jitter: 0.5 }, { type: "fixed" as const, delayMs: 0, jitter: 1 }]) {
      expect((await api.tasks.enqueue.mutate({ queue: "keyed", idempotencyKey: "zero", backoff: never })).id).toBe(zero.id);
    }
    const plain = await api.tasks.enqueue.mutate({ queue: "keyed", idempotencyKey: "none" });
    await expect(api.tasks.enqueue.mutate({ queue: "keyed", idempotencyKey: "none", backoff: { delayMs: 1000 } })).rejects.toMatchObject({ data: { details: { taskId: plain.id, differs: ["backoff"] } } });
  });

  it("over REST (snake_case too), MCP (a strict-mode host's nulls left out) and the in-process API", async () => {
    t = await startTestServer();
    const viaRest = await rest(t.url, "POST", "/tasks", { queue: "rest", max_attempts: 3, backoff: { type: "exponential", delay_ms: 500, max_delay_ms: 2000, jitter: 0 } });
    expect([viaRest.status, viaRest.body.backoff]).toEqual([200, { type: "exponential", delayMs: 500, maxDelayMs: 2000, jitter: 0 }]);
    const many = await rest(t.url, "POST", "/tasks/batch", { tasks: [{ queue: "rest", backoff: { type: "fixed", delay_ms: 700 } }] });
    expect([many.status, many.body[0]?.backoff ?? many.body]).toEqual([200, { type: "fixed", delayMs: 700, maxDelayMs: 700, jitter: 0 }]);
    const claimed = await rest(t.url, "POST", "/tasks/claim", { agentId: "curl", queues: ["rest"] });
    expect(claimed.body.id).toBe(viaRest.body.id);
    const failed = await rest(t.url, "POST", `/tasks/${viaRest.body.id}/fail`, { agentId: "curl", error: "429 from the model", retry_after_ms: 90_000 });
    expect(failed.status).toBe(200);
    expect(Date.parse(failed.body.runAt) - Date.parse(failed.body.updatedAt)).toBe(90_000);

    const client = await connectMcp(t.url, { "x-agent-id": "llm" });
    const made = await callTool(client, "enqueue_task", { queue: "mcp", backoff: { type: "exponential", delayMs: 250, maxDelayMs: null, jitter: null }, maxAttempts: null });
    expect(made.backoff).toEqual({ type: "exponential", delayMs: 250, maxDelayMs: WEEK_MS, jitter: 0 });
    const lease = await callTool(client, "claim_task", { queues: ["mcp"] });
    const later = await callTool(client, "fail_task", { taskId: made.id, leaseToken: lease.leaseToken, error: "the site is down", retryAfterMs: 600_000 });
    expect(Date.parse(later.runAt) - Date.parse(later.updatedAt)).toBe(600_000);
    const tools = await client.listTools();
    expect(tools.tools.find((tool) => tool.name === "enqueue_task")!.inputSchema.properties).toHaveProperty("backoff");
    expect(tools.tools.find((tool) => tool.name === "fail_task")!.inputSchema.properties).toHaveProperty("retryAfterMs");

    const local = await openCoordination({ settings: { dbPath: `${makeTempDir()}/local.db`, logLevel: "silent" } });
    try {
      const own = await local.tasks.enqueue({ queue: "local", backoff: { type: "fixed", delayMs: 5000 } });
      await local.tasks.claim("in-process", { queues: ["local"] });
      // The seed's positional form takes retryAfterMs among its options.
      const seedForm = await local.tasks.fail(own.id, "in-process", "the disk is full", { retryAfterMs: 120_000 });
      expect(waitOf(seedForm)).toBe(120_000);
      const second = await local.tasks.claim("in-process", { queues: ["local"] });
      expect(second).toBeNull();
    } finally {
      await local.close();
    }
  });

  it("the operator's CLI and the backoff's text: tasks get shows the task's own, or the server's", async () => {
    expect(backoffText({ type: "exponential", delayMs: 1000, maxDelayMs: 600_000, jitter: 0.2 })).toBe("exponential from 1s, doubling up to 10m, jitter 20%");
    expect(backoffText({ type: "fixed", delayMs: 90_000, maxDelayMs: 90_000, jitter: 0 })).toBe("fixed 90s");
    expect(backoffText({ type: "fixed", delayMs: 0, maxDelayMs: 0, jitter: 0 })).toBe("fixed 0s");
    expect(backoffText({ type: "fixed", delayMs: 1500, maxDelayMs: 1500, jitter: 0.004 })).toBe("fixed 1500ms, jitter 0.4%");
    expect([backoffText(null), backoffText(undefined)]).toEqual(["the server's", "-"]);
    t = await startTestServer();
    const own = await t.api.tasks.enqueue.mutate({ queue: "cli", backoff: { delayMs: 30_000, maxDelayMs: 3_600_000, jitter: 0.1 } });
    const plain = await t.api.tasks.enqueue.mutate({ queue: "cli" });
    const env = { COORDINATION_URL: t.url };
    expect((await runOperator({ args: ["tasks", "get", own.id], env })).stdout).toMatch(/^retry backoff\s+exponential from 30s, doubling up to 1h, jitter 10%$/m);
    expect((await runOperator({ args: ["tasks", "get", plain.id], env })).stdout).toMatch(/^retry backoff\s+the server's$/m);
  });
});
