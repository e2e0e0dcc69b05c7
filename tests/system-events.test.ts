// The server's own events, as the typed client narrows them (client/system-events.ts): every
// event the server appends is one of the declared types, from the server, and its payload has the
// declared fields; an event an agent publishes is not one, whatever its type.
import { describe, expect, expectTypeOf, it, vi } from "vitest";
import { isSystemEvent, SYSTEM_EVENT_TYPES, type RouterOutputs, type SystemEvent } from "../client/index.js";
import { rest, startTestServer } from "./helpers/test-server.js";
import { startReceiver } from "./helpers/webhook-receiver.js";

describe("system events", () => {
  it("every transition's event is a declared system event with its declared payload; a published one is not", async () => {
    await using t = await startTestServer({ retryBaseMs: 0, agentStaleMs: 1000, agentOfflineMs: 2000, agentStartupGraceMs: 0, agentHealthCheckMs: 60_000, webhookMaxBackoffMs: 20 });
    const { api } = t;
    await api.agents.register.mutate({ agentId: "a1", capabilities: ["x"] });
    await api.agents.register.mutate({ agentId: "a1", capabilities: ["y"] });
    const [one, two, three] = await api.tasks.enqueueMany.mutate({ tasks: [{ priority: 0 }, { priority: 1, maxAttempts: 1 }, { priority: 2 }] });
    const first = (await api.tasks.claim.mutate({ agentId: "a1" }))!;
    await api.tasks.release.mutate({ taskId: first.id, agentId: "a1", leaseToken: first.leaseToken });
    const again = (await api.tasks.claim.mutate({ agentId: "a1" }))!;
    await api.tasks.fail.mutate({ taskId: again.id, agentId: "a1", error: "flaky", retry: true });
    const third = (await api.tasks.claim.mutate({ agentId: "a1" }))!;
    await api.tasks.heartbeat.mutate({ taskId: third.id, agentId: "a1", leaseToken: third.leaseToken, progress: { done: 1, of: 2 }, checkpoint: { done: 1 } });
    await api.tasks.appendLog.mutate({ taskId: third.id, agentId: "a1", leaseToken: third.leaseToken, entries: [{ message: "halfway" }] });
    await api.tasks.complete.mutate({ taskId: third.id, agentId: "a1", leaseToken: third.leaseToken, result: 1 });
    const dying = (await api.tasks.claim.mutate({ agentId: "a1" }))!;
    expect(dying.id).toBe(two!.id);
    await api.tasks.fail.mutate({ taskId: dying.id, agentId: "a1", error: "fatal", retry: false });
    await api.tasks.requeue.mutate({ taskId: two!.id });
    await api.tasks.cancel.mutate({ taskId: three!.id });
    // stale, then offline (its claim goes back: lease_expired), then healthy again by a heartbeat.
    const held = (await api.tasks.claim.mutate({ agentId: "a1" }))!;
    const beat = (await api.agents.get.query({ agentId: "a1" })).lastHeartbeatAt.getTime();
    // Health checks as of given times (their writer command), so nothing waits on the clock.
    await t.server.services.db.write("agents.checkHealth", { asOf: beat + 1000, limit: 500 });
    await t.server.services.db.write("agents.checkHealth", { asOf: beat + 2000, limit: 500 });
    await api.agents.heartbeat.mutate({ agentId: "a1", status: "busy" });
    await api.agents.cordon.mutate({ agentId: "a1", reason: "bad deploy" });
    await api.agents.uncordon.mutate({ agentId: "a1" });
    // A lock acquired and released; one whose lease runs out, taken over by another agent.
    await api.locks.acquire.mutate({ name: "repo", agentId: "a1" });
    await api.locks.release.mutate({ name: "repo", agentId: "a1" });
    await api.locks.acquire.mutate({ name: "repo", agentId: "a1", leaseMs: 1 });
    await vi.waitFor(async () => expect((await api.locks.get.query({ name: "repo" })).held).toBe(false), { timeout: 10_000, interval: 10 });
    await api.locks.acquire.mutate({ name: "repo", agentId: "a2" });
    // A semaphore's permits: acquired and released, one whose lease runs out.
    const { permit } = await api.semaphores.acquire.mutate({ name: "pool", agentId: "a1", limit: 2 });
    await api.semaphores.release.mutate({ name: "pool", agentId: "a1", fencingToken: permit!.fencingToken });
    await api.semaphores.acquire.mutate({ name: "pool", agentId: "a1", limit: 2, leaseMs: 1 });
    await vi.waitFor(async () => expect((await api.semaphores.get.query({ name: "pool" })).held).toBe(0), { timeout: 10_000, interval: 10 });
    await api.semaphores.acquire.mutate({ name: "pool", agentId: "a2", limit: 2 });
    // A key of shared state set, deleted, and one that expires.
    await api.kv.set.mutate({ key: "plan", value: { step: 1 }, agentId: "a1" });
    await api.kv.delete.mutate({ key: "plan" });
    await api.kv.set.mutate({ key: "presence", value: 1, ttlMs: 1 });
    await vi.waitFor(async () => expect(await t!.server.services.kv.expire()).toBe(1), { timeout: 10_000, interval: 10 });
    await api.agents.deregister.mutate({ agentId: "a1" });
    await api.queues.pause.mutate({ queue: "default", reason: "maintenance" });
    await api.queues.resume.mutate({ queue: "default" });
    await api.queues.setLimit.mutate({ queue: "default", maxLeased: 3 });
    await api.queues.removeLimit.mutate({ queue: "default" });
    await api.queues.setRate.mutate({ queue: "default", maxClaims: 60, perMs: 60_000 });
    await api.queues.removeRate.mutate({ queue: "default" });
    await api.schedules.set.mutate({ scheduleId: "hourly", everyMs: 3_600_000 });
    await api.schedules.pause.mutate({ scheduleId: "hourly" });
    await api.schedules.resume.mutate({ scheduleId: "hourly" });
    await api.schedules.remove.mutate({ scheduleId: "hourly" });
    // A run due at once, the schedule's only one: its claim ends the schedule.
    await api.schedules.set.mutate({ scheduleId: "once", everyMs: 3_600_000, startAt: new Date(0), maxRuns: 1, task: { queue: "once" } });
    await api.tasks.claim.mutate({ agentId: "a", queues: ["once"], context: false });
    // A delayed task made due now; a schedule run now (its pending run promoted).
    await api.tasks.promote.mutate({ taskId: (await api.tasks.enqueue.mutate({ queue: "later", delayMs: 3_600_000 })).id });
    // A task given another priority and time.
    await api.tasks.update.mutate({ taskId: (await api.tasks.enqueue.mutate({ queue: "later" })).id, priority: 1, delayMs: 3_600_000 });
    // An enqueue answered with the task holding its dedupe key, which takes its payload.
    await api.tasks.enqueue.mutate({ queue: "later", dedupe: { key: "doc" } });
    await api.tasks.enqueue.mutate({ queue: "later", payload: { v: 2 }, dedupe: { key: "doc", replace: true } });
    await api.schedules.set.mutate({ scheduleId: "nightly", everyMs: 3_600_000, task: { queue: "nightly" } });
    await api.schedules.trigger.mutate({ scheduleId: "nightly" });
    // A task waiting for another: its dependency's complete makes it ready.
    const gate = await api.tasks.enqueue.mutate({ queue: "chain" });
    await api.tasks.enqueue.mutate({ queue: "chain", dependsOn: [gate.id] });
    const gateRun = (await api.tasks.claim.mutate({ agentId: "a2", queues: ["chain"] }))!;
    await api.tasks.complete.mutate({ taskId: gateRun.id, agentId: "a2", leaseToken: gateRun.leaseToken, result: null });
    // A webhook created, failing once then delivering again, changed, disabled, enabled, removed.
    const receiver = await startReceiver();
    let refused = false;
    receiver.answer = (response) => {
      response.writeHead(refused ? 200 : 500).end();
      refused = true;
    };
    const { webhook } = await api.webhooks.create.mutate({ url: receiver.url, types: ["ping"] });
    await api.events.publish.mutate({ type: "ping", source: "pinger" });
    await receiver.waitFor(2);
    await vi.waitFor(async () => expect((await api.webhooks.get.query({ id: webhook.id })).delivered).toBe(1), { timeout: 10_000, interval: 10 });
    await api.webhooks.update.mutate({ id: webhook.id, description: "pings" });
    await api.webhooks.update.mutate({ id: webhook.id, enabled: false });
    await api.webhooks.update.mutate({ id: webhook.id, enabled: true });
    await api.webhooks.rotateSecret.mutate({ id: webhook.id });
    await api.webhooks.remove.mutate({ id: webhook.id });
    await receiver.close();
    await api.events.publish.mutate({ type: "task.claimed", source: "impostor", payload: { taskId: held.id } });

    const events = await api.events.list.query({ afterSeq: 0, limit: 1000 });
    const fromServer = events.filter((event) => event.source === "coordination");
    expect(fromServer.every((event) => isSystemEvent(event))).toBe(true);
    // Every type the client knows is one the server writes, and no other.
    expect([...new Set(fromServer.map((event) => event.type))].sort()).toEqual([...SYSTEM_EVENT_TYPES].sort());
    expect(events.filter((event) => !isSystemEvent(event)).map((event) => event.source)).toEqual(["pinger", "impostor"]);

    const claimed = fromServer.find((event) => isSystemEvent(event, "task.claimed") && event.payload.taskId === one!.id);
    expect(claimed?.payload).toEqual({
      taskId: one!.id,
      queue: "default",
      agentId: "a1",
      attempt: 1,
      leaseToken: 1,
      leaseExpiresAt: expect.any(String),
      waitedMs: expect.any(Number),
    });
    const offline = fromServer.find((event) => isSystemEvent(event, "agent.offline"));
    expect(offline?.payload).toMatchObject({ agentId: "a1", health: "offline", previousHealth: "stale", releasedTasks: 1 });
    expect(fromServer.filter((event) => isSystemEvent(event, "task.lease_expired", "task.dead_lettered")).map((event) => event.type)).toEqual([
      "task.dead_lettered",
      // The requeued task, held by the agent that went offline, had no attempt left.
      "task.lease_expired",
      "task.dead_lettered",
    ]);
  });

  // An admin (or anyone, on a server without credentials) may publish the server's kinds of
  // events; the server's own listeners (metrics, the operator log, parked claims) read them too.
  // task.completed with a null payload crashed the process (a review).
  it("a published event of the server's kinds carries an object payload; whatever its fields hold, the server reads on", async () => {
    await using t = await startTestServer();
    const claim = t.api.tasks.claim.mutate({ agentId: "parked", waitMs: 20_000 });
    for (const type of SYSTEM_EVENT_TYPES) {
      for (const payload of [null, 5, "x", [1]]) {
        expect(await rest(t.url, "POST", "/events", { type, source: "x", payload }), `${type} ${JSON.stringify(payload)}`).toMatchObject({ status: 400, body: { code: "INVALID_INPUT" } });
      }
      const odd = { queue: { a: 1 }, agentId: null, taskId: [1], waitedMs: "x", ranMs: null, runAt: 7, reason: { r: 1 }, implicit: "yes", targetAgentId: 3, capability: 9, msg: "forged", level: 60 };
      for (const payload of [{}, odd]) expect((await rest(t.url, "POST", "/events", { type, source: "x", payload })).status, type).toBe(200);
    }
    expect((await fetch(`${t.url}/health`)).status).toBe(200);
    expect((await fetch(`${t.url}/metrics`)).status).toBe(200);
    // The parked claim was not woken into a wrong answer: it takes the task enqueued now.
    const task = await t.api.tasks.enqueue.mutate({ payload: {} });
    expect((await claim)?.id).toBe(task.id);
  });

  it("narrows an event's type and payload", () => {
    const event = {} as RouterOutputs["events"]["list"][number];
    if (isSystemEvent(event, "task.claimed", "task.completed")) {
      expectTypeOf(event.type).toEqualTypeOf<"task.claimed" | "task.completed">();
      expectTypeOf(event.payload.taskId).toEqualTypeOf<string>();
      if (event.type === "task.claimed") expectTypeOf(event.payload.leaseExpiresAt).toEqualTypeOf<string>();
    }
    expectTypeOf<SystemEvent<"agent.offline">["payload"]["releasedTasks"]>().toEqualTypeOf<number | undefined>();
  });
});
