// The client's worker loop against a real server: claims, runs the handler, settles; stops
// gracefully, notices lost leases, times out hung handlers, retries a complete that hit a
// transient error, and renews leases the server capped.
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, expect, expectTypeOf, it, vi } from "vitest";
import { z } from "zod";
import { createCoordinationClient, DeadLetter, RetryLater, runWorker } from "../client/index.js";
import { failureText, MAX_ERROR_CHARS } from "../client/worker.js";
import { startTestServer } from "./helpers/test-server.js";

describe("runWorker", () => {
  it("processes tasks with concurrency, completes successes and fails errors, then deregisters", async () => {
    await using t = await startTestServer({ retryBaseMs: 0 });
    const seen: number[] = [];
    const worker = await runWorker({
      api: t.api,
      agentId: "worker-1",
      capabilities: ["math"],
      concurrency: 3,
      waitMs: 200,
      handler: async (task) => {
        const n = (task.payload as { n: number }).n;
        seen.push(n);
        if (n === 7) throw new Error("seven is unlucky");
        return { doubled: n * 2 };
      },
    });
    await t.api.tasks.enqueueMany.mutate({
      tasks: Array.from({ length: 10 }, (_, n) => ({ payload: { n }, capability: "math", maxAttempts: n === 7 ? 1 : 3 })),
    });
    await vi.waitFor(async () => {
      const stats = await t.api.tasks.stats.query();
      expect(stats.totals).toMatchObject({ completed: 9, dead_letter: 1, pending: 0, claimed: 0 });
      // The server commits a settle before its answer reaches the worker: its counters follow.
      expect([worker.completed, worker.failed]).toEqual([9, 1]);
    }, { timeout: 10_000, interval: 50 });
    expect([...seen].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const done = await t.api.tasks.list.query({ status: "completed", limit: 20 });
    expect(done.items.find((task) => (task.payload as { n: number }).n === 4)?.result).toEqual({ doubled: 8 });

    await worker.stop();
    await expect(t.api.agents.get.query({ agentId: "worker-1" })).rejects.toMatchObject({ data: { code: "AGENT_NOT_FOUND" } });
  });

  // It registers its agent, replacing what was there: an agent's A2A card was dropped with no way to keep it.
  it("registers its agent with the card it is given; the card's skills join the capabilities", async () => {
    await using t = await startTestServer();
    const card = { name: "Summarizer", description: "does summaries", skills: [{ id: "summarize", name: "Summarize" }] };
    await t.api.agents.register.mutate({ agentId: "carded", card });
    const worker = await runWorker({ api: t.api, agentId: "carded", capabilities: ["research"], card, handler: async () => null, sharedAgentId: true });
    await vi.waitFor(async () => expect((await t.api.agents.get.query({ agentId: "carded" })).capabilities).toEqual(["research", "summarize"]), { timeout: 10_000 });
    expect(await t.api.agents.card.query({ agentId: "carded" })).toEqual(card);
    await worker.stop();
  });

  it("parsePayload types the handler's payload; a payload it refuses is dead-lettered at once, naming why, and never reaches the handler", async () => {
    await using t = await startTestServer();
    const seen: number[] = [];
    const worker = await runWorker({
      api: t.api,
      agentId: "typed",
      waitMs: 200,
      parsePayload: z.object({ n: z.number().int() }).parse,
      handler: async (task) => {
        expectTypeOf(task.payload).toEqualTypeOf<{ n: number }>();
        seen.push(task.payload.n);
        return task.payload.n * 2;
      },
    });
    const good = await t.api.tasks.enqueue.mutate({ payload: { n: 21 }, maxAttempts: 5 });
    const poison = await t.api.tasks.enqueue.mutate({ payload: { n: "21" }, maxAttempts: 5 });
    await vi.waitFor(() => expect([worker.completed, worker.failed]).toEqual([1, 1]), { timeout: 10_000, interval: 20 });
    expect(seen).toEqual([21]);
    expect(await t.api.tasks.get.query({ taskId: good.id })).toMatchObject({ status: "completed", result: 42 });
    const dead = await t.api.tasks.get.query({ taskId: poison.id });
    expect([dead.status, dead.attempts]).toEqual(["dead_letter", 1]);
    expect(dead.lastError).toMatch(/^parsePayload refused the payload: .*expected number/s);
    await worker.stop();
  });

  it("one round trip a task: each complete claims the next (complete-and-claim); a long-poll claim only when none was left", async () => {
    await using t = await startTestServer();
    await t.api.tasks.enqueueMany.mutate({ tasks: Array.from({ length: 6 }, (_, n) => ({ queue: "chain", payload: { n } })) });
    const sent = t.server.services.db.sent;
    const claimsBefore = sent.get("tasks.claim") ?? 0;
    const worker = await runWorker({ api: t.api, agentId: "w-chain", queues: ["chain"], waitMs: 60_000, handler: async (task) => (task.payload as { n: number }).n });
    await vi.waitFor(() => expect(worker.completed).toBe(6), { timeout: 10_000, interval: 20 });
    // The first claim, then six complete-and-claims (the last finds none) and a long-poll parked for more.
    expect(sent.get("tasks.completeAndClaim")).toBe(6);
    expect(sent.get("tasks.complete") ?? 0).toBe(0);
    await vi.waitFor(() => expect((sent.get("tasks.claim") ?? 0) - claimsBefore).toBe(2), { timeout: 30_000, interval: 20 });
    const done = await t.api.tasks.list.query({ queue: "chain", status: "completed" });
    expect(done.items.map((task) => task.result).sort()).toEqual([0, 1, 2, 3, 4, 5]);
    await worker.stop();
  });

  it("stop() lets a running handler finish and complete it, claims nothing more, then deregisters", async () => {
    await using t = await startTestServer();
    const gate = deferred();
    const started: string[] = [];
    const worker = await runWorker({
      api: t.api,
      agentId: "w-stop",
      waitMs: 200,
      handler: async (task, signal) => {
        started.push(task.id);
        await Promise.race([gate.promise, untilAborted(signal)]);
        signal.throwIfAborted();
        return "done";
      },
    });
    const first = await t.api.tasks.enqueue.mutate({ payload: {}, maxAttempts: 1 });
    await vi.waitFor(() => expect(started).toEqual([first.id]), { timeout: 30_000, interval: 20 });
    const second = await t.api.tasks.enqueue.mutate({ payload: {} });

    const stopped = worker.stop();
    gate.open();
    await stopped;

    expect(await t.api.tasks.get.query({ taskId: first.id })).toMatchObject({ status: "completed", result: "done", attempts: 1, errorHistory: [] });
    expect(await t.api.tasks.get.query({ taskId: second.id })).toMatchObject({ status: "pending", attempts: 0, leaseOwner: null });
    expect(started).toEqual([first.id]);
    expect([worker.completed, worker.failed, worker.lost]).toEqual([1, 0, 0]);
    await expect(t.api.agents.get.query({ agentId: "w-stop" })).rejects.toMatchObject({ data: { code: "AGENT_NOT_FOUND" } });
  });

  it("stop() past stopTimeoutMs aborts the handlers and releases their tasks without charging an attempt", async () => {
    await using t = await startTestServer();
    const reasons: string[] = [];
    const worker = await runWorker({
      api: t.api,
      agentId: "w-stop-timeout",
      concurrency: 2,
      waitMs: 200,
      stopTimeoutMs: 200,
      handler: async (task, signal) => {
        signal.addEventListener("abort", () => reasons.push((signal.reason as Error).message));
        // One handler honours the signal, the other ignores it and never returns.
        if ((task.payload as { polite: boolean }).polite) return untilAborted(signal).then(() => signal.throwIfAborted());
        return new Promise(() => undefined);
      },
    });
    const tasks = await t.api.tasks.enqueueMany.mutate({ tasks: [{ payload: { polite: true }, maxAttempts: 1 }, { payload: { polite: false }, maxAttempts: 1 }] });
    await vi.waitFor(async () => expect((await t.api.tasks.stats.query()).totals.claimed).toBe(2), { timeout: 30_000, interval: 20 });

    await worker.stop();

    expect(reasons).toEqual(["worker stopped", "worker stopped"]);
    for (const task of tasks) {
      expect(await t.api.tasks.get.query({ taskId: task.id })).toMatchObject({ status: "pending", attempts: 0, leaseOwner: null, errorHistory: [] });
    }
    expect([worker.completed, worker.failed, worker.lost]).toEqual([0, 0, 0]);
    await expect(t.api.agents.get.query({ agentId: "w-stop-timeout" })).rejects.toMatchObject({ data: { code: "AGENT_NOT_FOUND" } });
  });

  it("a lease lost while the handler runs aborts its signal; the task is neither completed nor failed", async () => {
    await using t = await startTestServer();
    const reasons: string[] = [];
    const errors: string[] = [];
    const worker = await runWorker({
      api: t.api,
      agentId: "w-lost",
      waitMs: 200,
      onError: (error) => errors.push((error as Error).message),
      leaseMs: 600, // renewed every 200 ms
      handler: async (task, signal) => {
        if ((task.payload as { n: number }).n === 2) return "second";
        await untilAborted(signal);
        reasons.push((signal.reason as Error).message);
        return "duplicate work"; // ignored: the run is over
      },
    });
    const first = await t.api.tasks.enqueue.mutate({ payload: { n: 1 } });
    await vi.waitFor(async () => expect((await t.api.tasks.get.query({ taskId: first.id })).status).toBe("claimed"), { timeout: 30_000, interval: 20 });
    // The lease ends under the run, for a while: given back in the agent's name (an operator on an open server), not due for an hour.
    await t.api.tasks.release.mutate({ taskId: first.id, agentId: "w-lost", delayMs: 3_600_000 });

    await vi.waitFor(() => expect(worker.lost).toBe(1), { timeout: 30_000, interval: 20 });
    expect(reasons).toEqual([`lease lost: agent "w-lost" does not hold the lease on task "${first.id}": it is pending`]);
    // The worker says so (onError: "a lease lost"), once.
    expect(errors).toEqual([
      `runWorker: lost the lease on task "${first.id}" (lease 1), so its run's outcome was not stored: lease lost: agent "w-lost" does not hold the lease on task "${first.id}": it is pending`,
    ]);
    expect(await t.api.tasks.get.query({ taskId: first.id })).toMatchObject({ status: "pending", result: null, attempts: 0, errorHistory: [] });

    // The slot is free again.
    const second = await t.api.tasks.enqueue.mutate({ payload: { n: 2 } });
    await vi.waitFor(() => expect(worker.completed).toBe(1), { timeout: 30_000, interval: 20 });
    expect(await t.api.tasks.get.query({ taskId: second.id })).toMatchObject({ status: "completed", result: "second" });
    expect([worker.completed, worker.failed, worker.lost]).toEqual([1, 0, 1]);
    await worker.stop();
  });

  it("a newer lease on a task it is running (given back by an admin, claimed again by this worker) ends the old run and runs the new one", async () => {
    await using t = await startTestServer();
    const runs: string[] = [];
    const worker = await runWorker({
      api: t.api,
      agentId: "w-twice",
      concurrency: 2,
      waitMs: 5_000,
      leaseMs: 60_000, // renewed every 20 s: the old lease's end is not found by a renewal here
      handler: async (task, signal) => {
        if (task.leaseToken === 2) return void runs.push("lease 2 ran");
        await untilAborted(signal);
        runs.push(`lease ${task.leaseToken} ended: ${(signal.reason as Error).message}`);
        return "stale work"; // ignored: the run is over
      },
      onError: () => undefined,
    });
    const task = await t.api.tasks.enqueue.mutate({ payload: {} });
    await vi.waitFor(async () => expect(await t.api.tasks.get.query({ taskId: task.id })).toMatchObject({ status: "claimed", leaseToken: 1 }), { timeout: 30_000, interval: 20 });
    // Given back uncharged (as the README's token rotation does); the worker's idle loop claims it again.
    await t.api.tasks.release.mutate({ taskId: task.id, agentId: "w-twice", leaseToken: 1 });
    await vi.waitFor(() => expect(worker.completed).toBe(1), { timeout: 30_000, interval: 20 });
    expect(runs).toEqual(["lease 1 ended: lease 1 is over: the server handed this worker lease 2 on the task", "lease 2 ran"]);
    expect(await t.api.tasks.get.query({ taskId: task.id })).toMatchObject({ status: "completed", leaseToken: 2, attempts: 1 });
    expect([worker.completed, worker.failed, worker.lost]).toEqual([1, 0, 1]);
    await worker.stop();
  });

  it("a newer lease ends the old run's settle at once (a complete hanging on a server that does not answer), not at the old lease's end", async () => {
    await using t = await startTestServer();
    const proxy = await startHoldingProxy(t.url, "tasks.completeAndClaim");
    const client = createCoordinationClient({ url: proxy.url });
    const errors: string[] = [];
    const worker = await runWorker({ api: client.api, agentId: "w-held", concurrency: 2, waitMs: 5_000, leaseMs: 60_000, onError: (e) => errors.push((e as Error).message), handler: async (task) => `lease ${task.leaseToken}` });
    try {
      const task = await t.api.tasks.enqueue.mutate({ payload: {} });
      // Lease 1's run finished; its complete hangs in the proxy (a server that stopped answering).
      await vi.waitFor(() => expect(proxy.held()).toBe(1), { timeout: 30_000, interval: 20 });
      await t.api.tasks.release.mutate({ taskId: task.id, agentId: "w-held", leaseToken: 1 });
      // Lease 2, claimed by the idle loop, ends lease 1's settle and runs: completed within moments, not after 60 s.
      await vi.waitFor(() => expect(worker.completed).toBe(1), { timeout: 30_000, interval: 20 });
      expect(await t.api.tasks.get.query({ taskId: task.id })).toMatchObject({ status: "completed", leaseToken: 2, result: "lease 2" });
      expect([worker.completed, worker.lost]).toEqual([1, 1]);
      expect(errors).toContain(`runWorker: lost the lease on task "${task.id}" (lease 1), so its run's outcome was not stored: lease 1 is over: the server handed this worker lease 2 on the task`);
    } finally {
      await worker.stop();
      await client.close();
      await proxy.close();
    }
  });

  it("its registration removed under it (an admin, a replica stopping under the same id), it registers again: tasks needing its capabilities still reach it", async () => {
    await using t = await startTestServer();
    const worker = await runWorker({ api: t.api, agentId: "w-caps", capabilities: ["summarize"], metadata: { pod: "a" }, heartbeatMs: 100, waitMs: 1_000, handler: async () => "summed" });
    await t.api.agents.deregister.mutate({ agentId: "w-caps" });
    // Its next sign of life registers it bare; its heartbeat finds that and registers it as it was.
    await vi.waitFor(async () => expect(await t.api.agents.get.query({ agentId: "w-caps" })).toMatchObject({ capabilities: ["summarize"], metadata: { pod: "a" } }), { timeout: 30_000, interval: 20 });
    const task = await t.api.tasks.enqueue.mutate({ payload: {}, capability: "summarize" });
    await vi.waitFor(async () => expect(await t.api.tasks.get.query({ taskId: task.id })).toMatchObject({ status: "completed", result: "summed" }), { timeout: 30_000, interval: 20 });
    await worker.stop();
  });

  it("a handler that throws RetryLater gives its task back uncharged, claimable again after the delay; closed settles after stop()", async () => {
    await using t = await startTestServer();
    const runs: number[] = [];
    const worker = await runWorker({
      api: t.api,
      agentId: "w-later",
      waitMs: 200,
      handler: async (task) => {
        runs.push(Date.now());
        if (runs.length === 1) throw new RetryLater(300, "rate limited: 429");
        return { attempts: task.attempts };
      },
    });
    const task = await t.api.tasks.enqueue.mutate({ payload: {} });
    await vi.waitFor(() => expect(worker.completed).toBe(1), { timeout: 30_000, interval: 20 });
    // No attempt charged, no error kept: the second run is attempt 1 still, and ran after the delay.
    expect(await t.api.tasks.get.query({ taskId: task.id })).toMatchObject({ status: "completed", attempts: 1, leaseToken: 2, errorHistory: [], lastError: null, result: { attempts: 1 } });
    expect(runs[1]! - runs[0]!).toBeGreaterThanOrEqual(300);
    expect([worker.completed, worker.failed, worker.lost, worker.deferred]).toEqual([1, 0, 0, 1]);
    const released = (await t.api.events.list.query({ types: ["task.released"], limit: 5 })).map((e) => e.payload);
    expect(released).toEqual([expect.objectContaining({ taskId: task.id, agentId: "w-later" })]);
    let closed = false;
    void worker.closed.then(() => (closed = true));
    await worker.stop();
    await vi.waitFor(() => expect(closed).toBe(true), { timeout: 15_000, interval: 10 });
    expect(new RetryLater(-5).delayMs).toBe(0);
    expect(new RetryLater(Number.NaN).delayMs).toBe(0);
    expect(new RetryLater(1e12).delayMs).toBe(7 * 24 * 3_600_000);
    // "Not before forever" is the longest wait, not none: Infinity was taken as NaN is, 0, and the
    // task ran again at once, in a loop, against the API that asked it to wait.
    expect(new RetryLater(Number.POSITIVE_INFINITY).delayMs).toBe(7 * 24 * 3_600_000);
    expect(new RetryLater(Number.NEGATIVE_INFINITY).delayMs).toBe(0);
  });

  it("a handler that throws DeadLetter fails its task to the dead-letter queue at once, with attempts left; another error is retried", async () => {
    await using t = await startTestServer({ retryBaseMs: 1 });
    const worker = await runWorker({
      api: t.api,
      agentId: "w-dead",
      waitMs: 200,
      handler: async (task) => {
        if ((task.payload as { kind: string }).kind === "bad-request") throw new DeadLetter("400 from the API: no retry can mend it");
        if (task.attempts === 1) throw new Error("503 from the API");
        return "done";
      },
    });
    const dead = await t.api.tasks.enqueue.mutate({ payload: { kind: "bad-request" }, maxAttempts: 5 });
    const retried = await t.api.tasks.enqueue.mutate({ payload: { kind: "flaky" }, maxAttempts: 5 });
    await vi.waitFor(() => expect([worker.failed, worker.completed]).toEqual([2, 1]), { timeout: 30_000, interval: 20 });
    expect(await t.api.tasks.get.query({ taskId: dead.id })).toMatchObject({ status: "dead_letter", attempts: 1, lastError: "400 from the API: no retry can mend it" });
    expect(await t.api.tasks.get.query({ taskId: retried.id })).toMatchObject({ status: "completed", attempts: 2, lastError: "503 from the API" });
    expect(worker.lost).toBe(0);
    await worker.stop();
  });

  it("a complete answered with CONFLICT counts the task as lost instead of failing it", async () => {
    await using t = await startTestServer();
    const gate = deferred();
    const errors: string[] = [];
    const worker = await runWorker({
      api: t.api,
      agentId: "w-late",
      onError: (error) => errors.push((error as Error).message),
      waitMs: 200,
      leaseMs: 60_000, // no renewal during the test: only complete finds out
      handler: async () => {
        await gate.promise;
        return "late";
      },
    });
    const task = await t.api.tasks.enqueue.mutate({ payload: {} });
    await vi.waitFor(async () => expect((await t.api.tasks.get.query({ taskId: task.id })).status).toBe("claimed"), { timeout: 30_000, interval: 20 });
    // The lease ends under the run without a word to it: given back in the agent's name, not due for an hour.
    await t.api.tasks.release.mutate({ taskId: task.id, agentId: "w-late", delayMs: 3_600_000 });
    gate.open();

    await vi.waitFor(() => expect(worker.lost).toBe(1), { timeout: 30_000, interval: 20 });
    expect([worker.completed, worker.failed, worker.lost]).toEqual([0, 0, 1]);
    // Not silent: onError hears which task's result was dropped, and why.
    expect(errors).toEqual([
      `runWorker: lost the lease on task "${task.id}" (lease 1), so its run's outcome was not stored: agent "w-late" does not hold the lease on task "${task.id}": it is pending`,
    ]);
    expect(await t.api.tasks.get.query({ taskId: task.id })).toMatchObject({ status: "pending", result: null, attempts: 0, errorHistory: [] });
    await worker.stop();
  });

  it("what the server would refuse is made fit to store: an empty or huge error, a result too large, each fails its task with the reason", async () => {
    await using t = await startTestServer({ maxBodyBytes: 64 * 1024 });
    const huge = "x".repeat(MAX_ERROR_CHARS - 20) + "😀".repeat(50) + "y".repeat(20_000);
    const worker = await runWorker({
      api: t.api,
      agentId: "w-refused",
      waitMs: 200,
      onError: () => undefined,
      handler: async (task) => {
        const kind = (task.payload as { kind: string }).kind;
        if (kind === "empty") throw new Error();
        if (kind === "huge") throw new Error(huge);
        if (kind === "lone") throw new Error("bad \ud800 text");
        return { text: "z".repeat(100 * 1024) };
      },
    });
    const tasks = await t.api.tasks.enqueueMany.mutate({ tasks: ["empty", "huge", "lone", "large"].map((kind) => ({ payload: { kind }, maxAttempts: 1 })) });
    await vi.waitFor(async () => expect((await t.api.tasks.stats.query()).totals).toMatchObject({ dead_letter: 4, pending: 0, claimed: 0 }), { timeout: 30_000, interval: 50 });
    const [empty, longOne, lone, large] = await Promise.all(tasks.map((task) => t.api.tasks.get.query({ taskId: task.id })));
    expect(empty!.lastError).toBe("Error with no message");
    expect(longOne!.lastError!.length).toBe(MAX_ERROR_CHARS);
    expect(longOne!.lastError!.startsWith("x".repeat(MAX_ERROR_CHARS - 100))).toBe(true);
    expect(longOne!.lastError!.endsWith(` … (${huge.length} characters, cut)`)).toBe(true);
    expect(lone!.lastError).toBe("bad \ufffd text");
    expect(large!.lastError).toMatch(/^the server refused the handler's result: .*65536 bytes/);
    // Every one a failure the server took, none a lease left to run out.
    expect(large!.errorHistory.map((entry) => entry.agentId)).toEqual(["w-refused"]);
    expect([worker.completed, worker.failed, worker.lost]).toEqual([0, 4, 0]);
    await worker.stop();
  });

  it("failureText never exceeds what the server stores and never cuts a character in two", () => {
    expect(failureText("plain")).toBe("plain");
    expect(failureText(new TypeError(""))).toBe("TypeError with no message");
    expect(failureText("   ")).toBe("string with no message");
    for (let shift = 0; shift < 4; shift++) {
      const text = failureText("a".repeat(MAX_ERROR_CHARS - 40 + shift) + "😀".repeat(100));
      expect(text.length).toBeLessThanOrEqual(MAX_ERROR_CHARS);
      expect(text.isWellFormed()).toBe(true);
    }
  });

  it("workers sharing an agentId (sharedAgentId): one stopping leaves the other's task alone, also after a failed claim", async () => {
    await using t = await startTestServer();
    const gate = deferred();
    const busy = await runWorker({ api: t.api, agentId: "replica", queues: ["r"], waitMs: 200, sharedAgentId: true, handler: async () => (await gate.promise, "done") });
    const task = await t.api.tasks.enqueue.mutate({ queue: "r" });
    await vi.waitFor(async () => expect((await t.api.tasks.get.query({ taskId: task.id })).status).toBe("claimed"), { timeout: 30_000, interval: 20 });
    // The other replica's first claim fails without an answer (as across a server restart): it
    // must not adopt the first replica's task as an orphan of its own.
    let claims = 0;
    const flaky = createCoordinationClient({
      url: t.url,
      fetch: (async (url: string, init: RequestInit) => {
        if (String(url).includes("tasks.claim") && ++claims === 1) throw new TypeError("fetch failed");
        return fetch(url, init);
      }) as never,
    });
    let idleRuns = 0;
    const idle = await runWorker({ api: flaky.api, agentId: "replica", queues: ["other"], waitMs: 200, sharedAgentId: true, onError: () => undefined, handler: async () => (idleRuns++, null) });
    await vi.waitFor(() => expect(claims).toBeGreaterThanOrEqual(3), { timeout: 30_000, interval: 20 });
    await idle.stop();
    await flaky.close();
    expect(idleRuns).toBe(0);
    expect(await t.api.tasks.get.query({ taskId: task.id })).toMatchObject({ status: "claimed", attempts: 1 });
    gate.open();
    await vi.waitFor(() => expect(busy.completed).toBe(1), { timeout: 30_000, interval: 20 });
    expect((await t.api.tasks.get.query({ taskId: task.id })).status).toBe("completed");
    await busy.stop();
    expect((await t.api.agents.get.query({ agentId: "replica" })).agentId).toBe("replica");
  });

  it("taskTimeoutMs aborts a hung handler and fails its task, and the worker moves on", async () => {
    await using t = await startTestServer();
    const reasons: string[] = [];
    const worker = await runWorker({
      api: t.api,
      agentId: "w-timeout",
      waitMs: 200,
      taskTimeoutMs: 300,
      handler: async (task, signal) => {
        signal.addEventListener("abort", () => reasons.push((signal.reason as Error).message));
        if ((task.payload as { n: number }).n === 1) return new Promise(() => undefined); // hangs, ignores the signal
        return "ok";
      },
    });
    const [hung, next] = await t.api.tasks.enqueueMany.mutate({ tasks: [{ payload: { n: 1 }, maxAttempts: 1 }, { payload: { n: 2 } }] });

    await vi.waitFor(
      async () => {
        expect((await t.api.tasks.get.query({ taskId: next!.id })).status).toBe("completed");
        // The server commits the complete before its answer reaches the worker: its counter follows.
        expect(worker.completed).toBe(1);
      },
      { timeout: 30_000, interval: 20 },
    );
    const failed = await t.api.tasks.get.query({ taskId: hung!.id });
    expect(failed).toMatchObject({ status: "dead_letter", attempts: 1, lastError: "handler timed out after 300 ms" });
    expect(failed.errorHistory.map((e) => [e.attempt, e.agentId, e.error])).toEqual([[1, "w-timeout", "handler timed out after 300 ms"]]);
    expect(reasons).toEqual(["handler timed out after 300 ms"]);
    expect([worker.completed, worker.failed, worker.lost]).toEqual([1, 1, 0]);
    await worker.stop();
  });

  it("a complete that meets a dropped connection and a 503 is retried, not turned into a failure", async () => {
    await using t = await startTestServer();
    const proxy = await startFlakyProxy(t.url, ["reset", 503]);
    const client = createCoordinationClient({ url: proxy.url });
    const errors: unknown[] = [];
    const worker = await runWorker({ api: client.api, agentId: "w-flaky", waitMs: 200, onError: (e) => errors.push(e), handler: async () => ({ ok: true }) });
    try {
      const task = await t.api.tasks.enqueue.mutate({ payload: {}, maxAttempts: 1 });
      await vi.waitFor(() => expect(worker.completed).toBe(1), { timeout: 30_000, interval: 20 });
      expect(await t.api.tasks.get.query({ taskId: task.id })).toMatchObject({ status: "completed", result: { ok: true }, attempts: 1, errorHistory: [] });
      expect([worker.completed, worker.failed, worker.lost]).toEqual([1, 0, 0]);
      expect(proxy.completeCalls()).toBe(3);
      expect(errors).toHaveLength(2);
    } finally {
      await worker.stop();
      await client.close();
      await proxy.close();
    }
  });

  it("a claim whose answer is lost after the server leased is sent again with its key: the same lease, its context with it, one attempt", async () => {
    await using t = await startTestServer();
    const note = await t.api.memory.remember.mutate({ kind: "note", content: "invoices from acme need the eu vat rule" });
    const proxy = await startAnswerDroppingProxy(t.url, "tasks.claim");
    const client = createCoordinationClient({ url: proxy.url });
    const errors: unknown[] = [];
    const given: Array<{ id: string; leaseToken: number; context: string[] }> = [];
    const worker = await runWorker({
      api: client.api,
      agentId: "w-lost-answer",
      waitMs: 200,
      onError: (e) => errors.push(e),
      handler: async (task) => {
        given.push({ id: task.id, leaseToken: task.leaseToken, context: task.context.map((m) => m.memory.id) });
        return { ok: true };
      },
    });
    try {
      const task = await t.api.tasks.enqueue.mutate({ payload: { customer: "acme", kind: "invoices" } });
      await vi.waitFor(() => expect(worker.completed).toBe(1), { timeout: 30_000, interval: 20 });
      // The lost answer had leased the task: the worker ran that lease, with the context its claim recalled.
      expect(proxy.dropped()).toBe(1);
      expect(given).toEqual([{ id: task.id, leaseToken: 1, context: [note.id] }]);
      expect(await t.api.tasks.get.query({ taskId: task.id })).toMatchObject({ status: "completed", attempts: 1, leaseToken: 1 });
      expect(errors).toHaveLength(1);
    } finally {
      await worker.stop();
      await client.close();
      await proxy.close();
    }
  });

  it("stopped while the claim sent again after a lost answer hangs: the lease the lost answer took is given back uncharged", async () => {
    await using t = await startTestServer();
    const proxy = await startAnswerDroppingProxy(t.url, "tasks.claim", { holdAfterDrop: true });
    const client = createCoordinationClient({ url: proxy.url });
    const ran: string[] = [];
    const worker = await runWorker({ api: client.api, agentId: "w-stopped", waitMs: 200, stopTimeoutMs: 5000, onError: () => undefined, handler: async (task) => void ran.push(task.id) });
    try {
      const task = await t.api.tasks.enqueue.mutate({ payload: {} });
      await vi.waitFor(() => expect(proxy.held()).toBe(1), { timeout: 30_000, interval: 20 });
      expect(await t.api.tasks.get.query({ taskId: task.id })).toMatchObject({ status: "claimed", leaseOwner: "w-stopped", attempts: 1 });
      await worker.stop();
      expect(ran).toEqual([]);
      // Back to its queue as a release gives it back (no attempt charged), not as a lease ended by the agent's deregistration.
      expect(await t.api.tasks.get.query({ taskId: task.id })).toMatchObject({ status: "pending", attempts: 0, errorHistory: [] });
    } finally {
      await client.close();
      await proxy.close();
    }
  });

  it("against a server older than claim keys (it refuses idempotencyKey as unknown), claims go without it, losing nothing", async () => {
    await using t = await startTestServer();
    await t.api.tasks.enqueueMany.mutate({ tasks: Array.from({ length: 3 }, (_, n) => ({ queue: "old", payload: { n } })) });
    const sentKeys: unknown[] = [];
    // The older server's answer to the field: a real refusal of an unknown field, named as that server would name it.
    const claim = async (input: Parameters<typeof t.api.tasks.claim.mutate>[0], options?: Parameters<typeof t.api.tasks.claim.mutate>[1]) => {
      sentKeys.push(input.idempotencyKey);
      if (input.idempotencyKey === undefined) return t.api.tasks.claim.mutate(input, options);
      const { idempotencyKey, ...rest } = input;
      try {
        return await t.api.tasks.claim.mutate({ ...rest, notInThisVersion: idempotencyKey } as never, options);
      } catch (error) {
        for (const issue of (error as { data: { details: { issues: Array<{ path: string }> } } }).data.details.issues) if (issue.path === "notInThisVersion") issue.path = "idempotencyKey";
        throw error;
      }
    };
    const olderServer = new Proxy(t.api, {
      get: (api, key) => (key !== "tasks" ? Reflect.get(api, key) : new Proxy(api.tasks, { get: (tasks, name) => (name === "claim" ? { mutate: claim } : Reflect.get(tasks, name)) })),
    });
    const errors: unknown[] = [];
    const worker = await runWorker({ api: olderServer, agentId: "w-old-claims", queues: ["old"], waitMs: 200, onError: (e) => errors.push(e), handler: async (task) => (task.payload as { n: number }).n });
    try {
      await vi.waitFor(() => expect(worker.completed).toBe(3), { timeout: 15_000, interval: 20 });
      const done = await t.api.tasks.list.query({ queue: "old", status: "completed" });
      expect(done.items.map((task) => task.result).sort()).toEqual([0, 1, 2]);
      // One claim with a key, refused; every one after without, and nothing told to onError.
      expect(typeof sentKeys[0]).toBe("string");
      expect(sentKeys.slice(1).every((key) => key === undefined)).toBe(true);
      expect(errors).toEqual([]);
    } finally {
      await worker.stop();
    }
  });

  it("renews a lease the server capped below the one asked for, from the expiry the server returned", async () => {
    await using t = await startTestServer({ leaseMs: 900, maxLeaseMs: 900, leaseSweepMs: 50 });
    const gate = deferred();
    let claimed: { leaseToken: number; leaseExpiresAt: Date | null } | undefined;
    const worker = await runWorker({
      api: t.api,
      agentId: "w-capped",
      waitMs: 200,
      leaseMs: 30_000, // the server grants 900 ms
      handler: async (task) => {
        claimed = task;
        await gate.promise;
        return "kept";
      },
    });
    const task = await t.api.tasks.enqueue.mutate({ payload: {}, maxAttempts: 5 });
    await vi.waitFor(() => expect(claimed).toBeDefined(), { timeout: 30_000, interval: 20 });
    const firstExpiry = claimed!.leaseExpiresAt!.getTime();
    // Still ours, under the same lease, well past the 900 ms first granted.
    await vi.waitFor(
      async () => {
        const now = await t.api.tasks.get.query({ taskId: task.id });
        expect(now).toMatchObject({ status: "claimed", leaseOwner: "w-capped", leaseToken: claimed!.leaseToken, attempts: 1 });
        expect(now.leaseExpiresAt!.getTime()).toBeGreaterThan(firstExpiry + 1000);
      },
      { timeout: 30_000, interval: 50 },
    );
    gate.open();
    await vi.waitFor(() => expect(worker.completed).toBe(1), { timeout: 30_000, interval: 20 });
    expect(await t.api.tasks.get.query({ taskId: task.id })).toMatchObject({ status: "completed", result: "kept", attempts: 1, errorHistory: [] });
    await worker.stop();
  });
});

function deferred(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

function untilAborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => (signal.aborted ? resolve() : signal.addEventListener("abort", () => resolve(), { once: true })));
}

/**
 * A real HTTP proxy in front of the server that lets the first `procedure` call with an answer
 * that is not null reach the server and read its whole answer, then cuts the client's connection
 * instead of passing it on: an answer lost after the server sent it (delivery confirmation cannot see it).
 */
async function startAnswerDroppingProxy(target: string, procedure: string, { holdAfterDrop = false } = {}) {
  let dropped = 0;
  let held = 0;
  const server = createServer((req, res) => {
    // holdAfterDrop: the calls of `procedure` after the dropped answer never reach the server (a server that hangs).
    if (holdAfterDrop && dropped > 0 && req.url?.includes(procedure)) return void held++;
    const upstream = request(`${target}${req.url}`, { method: req.method, headers: req.headers }, (answer) => {
      const chunks: Buffer[] = [];
      answer.on("data", (chunk: Buffer) => chunks.push(chunk));
      answer.on("end", () => {
        const body = Buffer.concat(chunks);
        if (dropped === 0 && req.url?.includes(procedure) && !body.toString().includes('"data":null')) {
          dropped++;
          return void req.socket.destroy();
        }
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        res.end(body);
      });
    });
    upstream.on("error", () => res.destroy());
    req.pipe(upstream);
  });
  return { ...(await onLoopback(server)), dropped: () => dropped, held: () => held };
}

/** A real HTTP proxy in front of the server that breaks the first tasks.complete requests: "reset" drops the connection, 503 answers like an overloaded load balancer. */
async function startFlakyProxy(target: string, faults: Array<"reset" | 503>) {
  let completeCalls = 0;
  const server = createServer((req, res) => {
    if (req.url?.includes("tasks.complete")) {
      completeCalls++;
      const fault = faults.shift();
      if (fault === "reset") return void req.socket.destroy();
      if (fault === 503) return void res.writeHead(503, { "content-type": "text/plain", connection: "close" }).end("Service Unavailable");
    }
    const upstream = request(`${target}${req.url}`, { method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on("error", () => res.destroy());
    req.pipe(upstream);
  });
  return { ...(await onLoopback(server)), completeCalls: () => completeCalls };
}

/** A real HTTP proxy in front of the server that holds the first `procedure` call, unanswered and never sent on (a server that stopped answering it). */
async function startHoldingProxy(target: string, procedure: string) {
  let held = 0;
  const server = createServer((req, res) => {
    if (held === 0 && req.url?.includes(procedure)) return void held++;
    const upstream = request(`${target}${req.url}`, { method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on("error", () => res.destroy());
    req.pipe(upstream);
  });
  return { ...(await onLoopback(server)), held: () => held };
}

/** Listens on a free loopback port: the server's URL, and its close (its connections cut). */
async function onLoopback(server: Server): Promise<{ url: string; close: () => Promise<void> }> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))),
  };
}
