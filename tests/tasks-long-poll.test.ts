// Long-polling claims: waiting claimers wake as soon as a task is enqueued, without a sleep loop.
import { getEventListeners } from "node:events";
import { describe, expect, it, vi } from "vitest";
import { createCoordinationClient } from "../client/index.js";
import { rest, startTestServer } from "./helpers/test-server.js";

/** Lets a request reach the server and start waiting before the test acts. */
const settle = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("long-poll claim", () => {
  it("wakes on the enqueue, not on the cross-process poll", async () => {
    await using t = await startTestServer({ crossProcessPollMs: 10_000, memoryContextLimit: 0 });
    // Warm up connections and prepared statements, then measure several rounds.
    await t.api.tasks.enqueue.mutate({ payload: {} });
    await t.api.tasks.claim.mutate({ agentId: "warm-up" });
    const latencies: number[] = [];
    for (let round = 0; round < 5; round++) {
      const waiting = t.api.tasks.claim.mutate({ agentId: "a1", waitMs: 10_000 }).then((task) => ({ task, at: performance.now() }));
      await settle(100);
      const task = await t.api.tasks.enqueue.mutate({ payload: { round } });
      const acknowledgedAt = performance.now();
      const claimed = await waiting;
      expect(claimed.task?.id).toBe(task.id);
      latencies.push(claimed.at - acknowledgedAt);
    }
    latencies.sort((a, b) => a - b);
    console.info(`long-poll claim returned ${latencies.map((l) => l.toFixed(1)).join(", ")} ms after the enqueue was acknowledged`);
    // crossProcessPollMs is 10 s here, so only the in-process wake-up can explain a return well
    // before it. The bound is generous on purpose: on a loaded machine a few ms can be a few hundred;
    // the wake-up latency itself is measured by the benchmark, not asserted here.
    expect(latencies[4]).toBeLessThan(5000);
  });

  it("many waiting claimers: one task wakes one winner, the rest keep waiting", async () => {
    await using t = await startTestServer({ crossProcessPollMs: 10_000 });
    const claims = Array.from({ length: 8 }, (_, i) => rest(t.url, "GET", `/tasks/claim/agent-${i}?waitMs=1500`));
    await settle(200);
    const task = await t.api.tasks.enqueue.mutate({ payload: {} });
    const results = await Promise.all(claims);
    expect(results.filter((r) => r.status === 200).map((r) => r.body.id)).toEqual([task.id]);
    expect(results.filter((r) => r.status === 204)).toHaveLength(7);
  });

  it("returns null (REST: 204) when the wait ends with nothing to claim", async () => {
    await using t = await startTestServer();
    const started = performance.now();
    expect(await t.api.tasks.claim.mutate({ agentId: "a1", waitMs: 300 })).toBeNull();
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
    const viaRest = await rest(t.url, "GET", "/tasks/claim/a1?waitMs=100");
    expect(viaRest.status).toBe(204);
    expect(viaRest.body).toBeNull();
  });

  it("leaves nothing attached to shutdown after long-polls end, and parks many without a listener warning", async () => {
    await using t = await startTestServer();
    const { shutdownSignal, shutdownWaiters } = t.server.services;
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(warning.name);
    process.on("warning", onWarning);
    try {
      await Promise.all(Array.from({ length: 50 }, (_, i) => t.api.tasks.claim.mutate({ agentId: `a${i}`, waitMs: 200 })));
      await t.api.events.subscribe.mutate({ agentId: "p", types: ["*"] });
      await Promise.all(Array.from({ length: 20 }, () => t.api.events.poll.mutate({ agentId: "p", waitMs: 200 })));
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off("warning", onWarning);
    }
    expect(warnings).toEqual([]);
    expect(shutdownWaiters.size).toBe(0);
    expect(getEventListeners(shutdownSignal, "abort")).toHaveLength(1);
  });

  it("a long-poll whose client went away claims nothing (REST and tRPC)", async () => {
    await using t = await startTestServer({ crossProcessPollMs: 10_000 });
    const parked = () => t.server.services.shutdownWaiters.size;

    const viaRest = new AbortController();
    const restClaim = fetch(`${t.url}/tasks/claim/ghost-rest?waitMs=600000`, { signal: viaRest.signal }).catch((e: unknown) => e);
    const viaTrpc = new AbortController();
    const trpcClaim = t.api.tasks.claim.mutate({ agentId: "ghost-trpc", waitMs: 600_000 }, { signal: viaTrpc.signal }).catch((e: unknown) => e);
    await vi.waitFor(() => expect(parked()).toBe(2), { timeout: 30_000, interval: 10 });
    viaRest.abort();
    viaTrpc.abort();
    await Promise.all([restClaim, trpcClaim]);
    // Both server-side long-polls have returned once nothing waits on the shutdown signal.
    await vi.waitFor(() => expect(parked()).toBe(0), { timeout: 30_000, interval: 10 });

    const task = await t.api.tasks.enqueue.mutate({ payload: {} });
    expect(await t.api.tasks.get.query({ taskId: task.id })).toMatchObject({ status: "pending", attempts: 0, leaseToken: 0 });
    expect(await t.api.tasks.claim.mutate({ agentId: "present" })).toMatchObject({ id: task.id, attempts: 1, leaseToken: 1 });
  });
  // A parked long-poll answered empty at shutdown read as "no task" or "no events": the claimer
  // asked the same server again, and could not tell a restart from an idle queue.
  it("parked claims and polls are answered 503 SHUTTING_DOWN when the server stops (REST and tRPC)", async () => {
    const t = await startTestServer({ crossProcessPollMs: 10_000 });
    // The server's answer as it comes: a client that waits for its server would send the claim again.
    const once = createCoordinationClient({ url: t.url, waitForServerMs: 0 });
    try {
      const parked = () => t.server.services.shutdownWaiters.size;
      await t.api.events.subscribe.mutate({ agentId: "poller", types: ["nothing.*"] });
      const restClaim = fetch(`${t.url}/tasks/claim/lp-0?queue=empty&waitMs=60000`);
      const restPoll = fetch(`${t.url}/events/poller?waitMs=60000`);
      const trpcClaim = once.api.tasks.claim.mutate({ agentId: "lp-1", queues: ["empty"], waitMs: 60_000 }).catch((e: unknown) => e);
      await vi.waitFor(() => expect(parked()).toBe(3), { timeout: 30_000, interval: 10 });
      const stopped = t.server.stop();
      for (const answer of await Promise.all([restClaim, restPoll])) {
        expect([answer.status, answer.headers.get("retry-after"), ((await answer.json()) as { code: string }).code]).toEqual([503, "1", "SHUTTING_DOWN"]);
      }
      expect(await trpcClaim).toMatchObject({ data: { code: "SHUTTING_DOWN", httpStatus: 503 } });
      await stopped;
    } finally {
      await once.close();
      await t.stop({ removeFiles: true });
    }
  });
});
