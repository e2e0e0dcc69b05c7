// Cordoned agents (agents.cordon / uncordon, POST /agents/{agentId}/cordon, `coordination agents
// cordon`) and the server's quarantine (quarantineAfterFailures): an operator stops one agent
// from being handed work (a bad deploy, a model that answers junk) while it finishes what it
// holds, without revoking its credential; and an agent that fails every run it takes is stopped
// before it drains its queues into dead letters.
import { afterEach, describe, expect, it, vi } from "vitest";
import { killAllCli, runOperator } from "./helpers/cli-process.js";
import { http, startSecureServer, type SecureServer } from "./helpers/secure-server.js";
import { rest, startTestServer, withDatabase, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
let secure: SecureServer | undefined;
afterEach(async () => {
  await killAllCli();
  await t?.stop({ removeFiles: true });
  await secure?.stop({ removeFiles: true });
  t = secure = undefined;
});

/** The cordon events of the log, as [type, payload]. */
async function cordonEvents(server: TestServer): Promise<Array<[string, unknown]>> {
  const events = await server.api.events.list.query({ types: ["agent.cordoned", "agent.uncordoned"], limit: 100 });
  return events.map((event) => [event.type, event.payload]);
}

describe("agent cordons", () => {
  it("a cordoned agent is handed nothing by any claim or steal; what it holds runs on and settles; others take the work; uncordoned, it claims again", async () => {
    t = await startTestServer({ leaseSweepMs: 60_000 });
    const api = t.api;
    await api.agents.register.mutate({ agentId: "w1", capabilities: ["gpu"] });
    const first = await api.tasks.enqueue.mutate({ payload: { n: 1 } });
    const held = (await api.tasks.claim.mutate({ agentId: "w1", context: false }))!;
    expect(held.id).toBe(first.id);
    const waiting = await api.tasks.enqueueMany.mutate({ tasks: [{ payload: { n: 2 } }, { payload: { n: 3 } }, { payload: { n: 4 } }] });

    const cordoned = await api.agents.cordon.mutate({ agentId: "w1", reason: "bad deploy v42" });
    expect(cordoned.cordon).toEqual({ reason: "bad deploy v42", cordonedBy: null, cordonedAt: expect.any(Date), until: null, automatic: false });
    expect((await api.agents.get.query({ agentId: "w1" })).cordon).toEqual(cordoned.cordon);

    // Every way of claiming takes nothing: claim, claimMany, the seed's GET, complete-and-claim's next.
    expect(await api.tasks.claim.mutate({ agentId: "w1" })).toBeNull();
    expect(await api.tasks.claimMany.mutate({ agentId: "w1", limit: 10 })).toEqual([]);
    expect((await rest(t.url, "GET", "/tasks/claim/w1")).status).toBe(204);
    // Its lease runs on: a heartbeat renews it, and its complete settles it (the next: none).
    await api.tasks.heartbeat.mutate({ taskId: held.id, agentId: "w1", leaseToken: held.leaseToken });
    const done = await api.tasks.completeAndClaim.mutate({ taskId: held.id, agentId: "w1", leaseToken: held.leaseToken, result: "ok" });
    expect(done.completed.status).toBe("completed");
    expect(done.next).toBeNull();

    // A steal takes nothing either, and leaves the victim's lease alone.
    const victim = (await api.tasks.claim.mutate({ agentId: "w2", leaseMs: 1000, context: false }))!;
    await vi.waitFor(async () => expect((await api.tasks.get.query({ taskId: victim.id })).leaseExpiresAt!.getTime()).toBeLessThan(Date.now()), { timeout: 10_000, interval: 50 });
    expect(await api.tasks.steal.mutate({ agentId: "w1", limit: 5 })).toEqual([]);
    expect(await api.tasks.get.query({ taskId: victim.id })).toMatchObject({ status: "claimed", leaseOwner: "w2", attempts: 1 });

    // The others take the work.
    expect((await api.tasks.claim.mutate({ agentId: "w3", context: false }))?.id).toBe(waiting[1]!.id);

    // Lists and finds: the filter; findByCapability leaves it out (no claim would hand it a task).
    expect((await api.agents.list.query({ cordoned: true })).map((a) => a.agentId)).toEqual(["w1"]);
    expect((await api.agents.list.query({ cordoned: false })).map((a) => a.agentId)).toEqual(["w2", "w3"]);
    expect(await api.agents.findByCapability.query({ capability: "gpu" })).toEqual([]);
    expect((await rest(t.url, "GET", "/agents?cordoned=true")).body.map((a: { agentId: string }) => a.agentId)).toEqual(["w1"]);
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    expect(metrics).toMatch(/^coordination_agents_cordoned\{by="operator"\} 1$/m);
    expect(metrics).toMatch(/^coordination_agents_cordoned\{by="quarantine"\} 0$/m);

    // The same cordon again changes nothing; another reason replaces it.
    await api.agents.cordon.mutate({ agentId: "w1", reason: "bad deploy v42" });
    const replaced = await api.agents.cordon.mutate({ agentId: "w1", reason: "bad deploy v43" });
    expect(replaced.cordon?.reason).toBe("bad deploy v43");

    // It outlives a deregistration: registered again, the agent is still cordoned.
    await api.agents.deregister.mutate({ agentId: "w1" });
    expect((await api.agents.register.mutate({ agentId: "w1", capabilities: ["gpu"] })).cordon?.reason).toBe("bad deploy v43");
    expect(await api.tasks.claim.mutate({ agentId: "w1" })).toBeNull();

    const lifted = await api.agents.uncordon.mutate({ agentId: "w1" });
    expect(lifted.cordon).toBeNull();
    expect((await api.tasks.claim.mutate({ agentId: "w1", context: false }))?.id).toBe(waiting[2]!.id);
    expect((await api.agents.findByCapability.query({ capability: "gpu" })).map((a) => a.agentId)).toEqual(["w1"]);
    // Uncordoning one not cordoned answers it as it is, no event.
    expect((await api.agents.uncordon.mutate({ agentId: "w1" })).cordon).toBeNull();

    expect(await cordonEvents(t)).toEqual([
      ["agent.cordoned", { agentId: "w1", reason: "bad deploy v42", cordonedBy: null, until: null, automatic: false }],
      ["agent.cordoned", { agentId: "w1", reason: "bad deploy v43", cordonedBy: null, until: null, automatic: false }],
      ["agent.uncordoned", { agentId: "w1", uncordonedBy: null, cordonedAt: replaced.cordon!.cordonedAt.toISOString() }],
    ]);
  });

  it("refuses what it cannot do: an unknown agent is a 404, a cordon shorter than a second a 400 naming forMs", async () => {
    t = await startTestServer();
    expect(await rest(t.url, "POST", "/agents/nobody/cordon", {})).toMatchObject({ status: 404, body: { code: "AGENT_NOT_FOUND" } });
    expect(await rest(t.url, "POST", "/agents/nobody/uncordon", {})).toMatchObject({ status: 404, body: { code: "AGENT_NOT_FOUND" } });
    await t.api.agents.register.mutate({ agentId: "w1" });
    const short = await rest(t.url, "POST", "/agents/w1/cordon", { forMs: 10 });
    expect(short.status).toBe(400);
    expect(short.body.message).toContain("forMs");
    const stray = await rest(t.url, "POST", "/agents/w1/cordon", { colour: "red" });
    expect(stray.status).toBe(400);
    expect(stray.body.message).toContain("colour");
    expect((await t.api.agents.get.query({ agentId: "w1" })).cordon).toBeNull();
    // Over REST, the cordon as the agent shows it.
    const cordon = await rest(t.url, "POST", "/agents/w1/cordon", { reason: "r", forMs: 60_000 });
    expect(cordon.status).toBe(200);
    expect(cordon.body.cordon).toEqual({ reason: "r", cordonedBy: null, cordonedAt: expect.any(String), until: expect.any(String), automatic: false });
    expect(Date.parse(cordon.body.cordon.until) - Date.parse(cordon.body.cordon.cordonedAt)).toBe(60_000);
  });

  it("a cordoned agent's parked claim takes no task's wake-up from the others, and wakes at its uncordon", async () => {
    t = await startTestServer();
    const api = t.api;
    await api.agents.register.mutate({ agentId: "bad" });
    await api.agents.cordon.mutate({ agentId: "bad" });
    // Parked first: a task any waiter may take wakes one waiter, the longest waiting.
    const badClaim = api.tasks.claim.mutate({ agentId: "bad", waitMs: 20_000, context: false });
    await vi.waitFor(() => expect(t!.server.services.waiters.claims.size).toBe(1), { timeout: 10_000, interval: 10 });
    const goodClaim = api.tasks.claim.mutate({ agentId: "good", waitMs: 20_000, context: false });
    await vi.waitFor(() => expect(t!.server.services.waiters.claims.size).toBe(2), { timeout: 10_000, interval: 10 });
    const task = await api.tasks.enqueue.mutate({ payload: { n: 1 } });
    // The waiters look again after 30 s at the latest: past the good claim's 20 s, so only a wake-up gives it the task.
    expect((await goodClaim)?.id).toBe(task.id);

    // Uncordoned with nothing to take, it waits on as any claim does: a task enqueued after wakes it.
    await api.agents.uncordon.mutate({ agentId: "bad" });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const later = await api.tasks.enqueue.mutate({ payload: { n: 2 } });
    expect((await badClaim)?.id).toBe(later.id);
  });

  it("an agent cordoned while its claim is parked hands on the wake-up it takes; a cordon changed to lift sooner wakes its claim then", async () => {
    t = await startTestServer();
    const api = t.api;
    await api.agents.register.mutate({ agentId: "bad" });
    const badClaim = api.tasks.claim.mutate({ agentId: "bad", waitMs: 20_000, context: false });
    await vi.waitFor(() => expect(t!.server.services.waiters.claims.size).toBe(1), { timeout: 10_000, interval: 10 });
    const goodClaim = api.tasks.claim.mutate({ agentId: "good", waitMs: 20_000, context: false });
    await vi.waitFor(() => expect(t!.server.services.waiters.claims.size).toBe(2), { timeout: 10_000, interval: 10 });
    await api.agents.cordon.mutate({ agentId: "bad" });
    const task = await api.tasks.enqueue.mutate({ payload: { n: 1 } });
    expect((await goodClaim)?.id).toBe(task.id);

    // Cordoned for good, then for a second: its parked claim learns the new end, and takes the task then.
    const next = await api.tasks.enqueue.mutate({ payload: { n: 2 } });
    const cordon = await api.agents.cordon.mutate({ agentId: "bad", forMs: 1000 });
    expect((await badClaim)?.id).toBe(next.id);
    expect(Date.now()).toBeGreaterThanOrEqual(cordon.cordon!.until!.getTime());
  });

  it("a cordoned agent's parked claims each look once at their agent's change (no chain of wake-ups handed on); uncordoned, each takes a task", async () => {
    t = await startTestServer();
    const { api, server } = t;
    const db = server.services.db;
    let claims = 0;
    const handOut = db.handOut.bind(db);
    db.handOut = ((name: Parameters<typeof handOut>[0], args: Parameters<typeof handOut>[1]) => {
      if (name === "tasks.claim") claims++;
      return handOut(name, args);
    }) as typeof db.handOut;
    await api.agents.register.mutate({ agentId: "bad" });
    await api.agents.cordon.mutate({ agentId: "bad" });
    const parked = Array.from({ length: 16 }, () => api.tasks.claim.mutate({ agentId: "bad", waitMs: 20_000, context: false }));
    /** Waits until the parked claims are as many as `n` and the claims' writes stopped for three looks in a row. */
    const settled = async (n: number) => {
      let last = -1;
      let still = 0;
      await vi.waitFor(
        () => {
          still = claims === last && server.services.waiters.claims.size === n ? still + 1 : 0;
          last = claims;
          expect(still).toBeGreaterThanOrEqual(3);
        },
        { timeout: 20_000, interval: 50 },
      );
    };
    await settled(16);
    const before = claims;
    // A status change is an agent.updated event: each of its claims looks once, and parks again.
    await api.agents.heartbeat.mutate({ agentId: "bad", status: "draining" });
    await settled(16);
    expect(claims - before).toBe(16);

    // Uncordoned, every one of them takes a task as it comes.
    await api.agents.uncordon.mutate({ agentId: "bad" });
    const tasks = await api.tasks.enqueueMany.mutate({ tasks: Array.from({ length: 16 }, (_, n) => ({ payload: { n } })) });
    expect((await Promise.all(parked)).map((task) => task?.id).sort()).toEqual(tasks.map((task) => task.id).sort());
  });

  it("a task's wake-up a cordoned agent's claim took goes to a waiter that can take the task", async () => {
    t = await startTestServer();
    const { api, server } = t;
    await api.agents.register.mutate({ agentId: "bad" });
    const bad = api.tasks.claim.mutate({ agentId: "bad", waitMs: 20_000, context: false });
    await vi.waitFor(() => expect(server.services.waiters.claims.size).toBe(1), { timeout: 10_000, interval: 10 });
    const u = api.tasks.claim.mutate({ agentId: "u", queues: ["other"], waitMs: 20_000, context: false });
    await vi.waitFor(() => expect(server.services.waiters.claims.size).toBe(2), { timeout: 10_000, interval: 10 });
    const v = api.tasks.claim.mutate({ agentId: "v", queues: ["q1"], waitMs: 20_000, context: false });
    await vi.waitFor(() => expect(server.services.waiters.claims.size).toBe(3), { timeout: 10_000, interval: 10 });
    // Sent together (one write batch, as from two callers at once): the task wakes the longest
    // waiting claim that could take it, "bad" (any queue), whose attempt finds its agent cordoned.
    const [task] = await Promise.all([
      server.services.tasks.enqueue({ queue: "q1", payload: {}, priority: 5, targetAgentId: undefined }),
      server.services.agents.cordon({ agentId: "bad" }, null),
    ]);
    // The waiters look again after 30 s at the latest: past v's 20 s, so only the wake-up handed on gives it the task.
    expect((await v)?.id).toBe(task.id);
    await api.tasks.enqueue.mutate({ queue: "other", payload: {} });
    expect(await u).not.toBeNull();
    await api.agents.uncordon.mutate({ agentId: "bad" });
    await api.tasks.enqueue.mutate({ payload: {} });
    expect(await bad).not.toBeNull();
  });

  it("a claim that leaves (its time ran out) after its agent was cordoned hands on the task's wake-up it took", async () => {
    t = await startTestServer();
    const { api, server } = t;
    const db = server.services.db;
    const handOut = db.handOut.bind(db);
    let badLooks = 0;
    // The cordoned claim's second look answers after its time ran out, as from a slow writer.
    db.handOut = (async (name: Parameters<typeof handOut>[0], args: Parameters<typeof handOut>[1]) => {
      const answer = await handOut(name, args);
      if (name === "tasks.claim" && (args as unknown as { request: { agentId: string } }).request.agentId === "bad" && badLooks++ === 1) await new Promise((resolve) => setTimeout(resolve, 1600));
      return answer;
    }) as typeof db.handOut;
    await api.agents.register.mutate({ agentId: "bad" });
    const bad = api.tasks.claim.mutate({ agentId: "bad", waitMs: 1500, context: false });
    await vi.waitFor(() => expect(server.services.waiters.claims.size).toBe(1), { timeout: 10_000, interval: 10 });
    const good = api.tasks.claim.mutate({ agentId: "good", waitMs: 20_000, context: false });
    await vi.waitFor(() => expect(server.services.waiters.claims.size).toBe(2), { timeout: 10_000, interval: 10 });
    const [task] = await Promise.all([
      server.services.tasks.enqueue({ queue: "default", payload: {}, priority: 5, targetAgentId: undefined }),
      server.services.agents.cordon({ agentId: "bad" }, null),
    ]);
    expect((await good)?.id).toBe(task.id);
    expect(await bad).toBeNull();
  });

  it("a cordon that lapsed is lifted with its event by whichever write meets it first", async () => {
    t = await startTestServer({ agentHealthCheckMs: 60_000 });
    const { api } = t;
    for (const agentId of ["w", "x"]) {
      await api.agents.register.mutate({ agentId });
      await api.agents.cordon.mutate({ agentId, forMs: 1000 });
    }
    await vi.waitFor(async () => expect((await api.agents.list.query({ cordoned: true })).length).toBe(0), { timeout: 10_000, interval: 100 });
    await api.agents.cordon.mutate({ agentId: "w", reason: "again" });
    await api.agents.uncordon.mutate({ agentId: "x" });
    expect((await cordonEvents(t)).map(([type, payload]) => [type, (payload as { agentId: string }).agentId, (payload as { lapsed?: boolean }).lapsed ?? false])).toEqual([
      ["agent.cordoned", "w", false],
      ["agent.cordoned", "x", false],
      ["agent.uncordoned", "w", true],
      ["agent.cordoned", "w", false],
      ["agent.uncordoned", "x", true],
    ]);
  });

  it("a cordon given forMs lifts by itself: a parked claim wakes then, and the agent shows none", async () => {
    t = await startTestServer();
    const api = t.api;
    await api.agents.register.mutate({ agentId: "w1" });
    const task = await api.tasks.enqueue.mutate({ payload: {} });
    const cordoned = await api.agents.cordon.mutate({ agentId: "w1", forMs: 1500 });
    const until = cordoned.cordon!.until!.getTime();
    const claimed = await api.tasks.claim.mutate({ agentId: "w1", waitMs: 20_000, context: false });
    expect(claimed?.id).toBe(task.id);
    expect(Date.now()).toBeGreaterThanOrEqual(until);
    expect((await api.agents.get.query({ agentId: "w1" })).cordon).toBeNull();
    expect(await api.agents.list.query({ cordoned: true })).toEqual([]);
    // The health monitor lifts it with its event (claims read it lapsed before that), and the
    // table keeps the cordons in force only.
    await t.server.services.jobs.healthMonitor.runNow();
    expect(await cordonEvents(t)).toEqual([
      ["agent.cordoned", { agentId: "w1", reason: null, cordonedBy: null, until: cordoned.cordon!.until!.toISOString(), automatic: false }],
      ["agent.uncordoned", { agentId: "w1", uncordonedBy: null, cordonedAt: cordoned.cordon!.cordonedAt.toISOString(), lapsed: true }],
    ]);
    expect(withDatabase(t, (db) => db.prepare(`SELECT count(*) FROM agent_cordons`).pluck().get())).toBe(0);
  });

  it("quarantine: an agent that fails quarantineAfterFailures runs in a row is cordoned for quarantineMs; a complete starts the count over; an operator's cordon stays", async () => {
    t = await startTestServer({ quarantineAfterFailures: 3, quarantineMs: 600_000 });
    const api = t.api;
    const tasks = await api.tasks.enqueueMany.mutate({ tasks: Array.from({ length: 8 }, (_, n) => ({ payload: { n }, maxAttempts: 1 })) });
    const run = async (agentId: string, outcome: "fail" | "complete", error = "no API key") => {
      const task = (await api.tasks.claim.mutate({ agentId, context: false }))!;
      if (outcome === "fail") await api.tasks.fail.mutate({ taskId: task.id, agentId, leaseToken: task.leaseToken, error });
      else await api.tasks.complete.mutate({ taskId: task.id, agentId, leaseToken: task.leaseToken, result: null });
      return task;
    };
    await run("broken", "fail");
    await run("broken", "fail");
    await run("broken", "complete");
    await run("broken", "fail");
    await run("broken", "fail");
    expect((await api.agents.get.query({ agentId: "broken" })).cordon).toBeNull();
    const last = await run("broken", "fail", "401 Unauthorized");
    const agent = await api.agents.get.query({ agentId: "broken" });
    expect(agent.cordon).toEqual({
      reason: `quarantined: failed 3 runs in a row, the last of task ${last.id}: 401 Unauthorized`,
      cordonedBy: null,
      cordonedAt: expect.any(Date),
      until: expect.any(Date),
      automatic: true,
    });
    expect(agent.cordon!.until!.getTime() - agent.cordon!.cordonedAt.getTime()).toBe(600_000);
    expect(await api.tasks.claim.mutate({ agentId: "broken" })).toBeNull();
    // The rest of the queue is left for the others.
    expect((await api.tasks.claim.mutate({ agentId: "healthy", context: false }))?.id).toBe(tasks[6]!.id);
    expect(await (await fetch(`${t.url}/metrics`)).text()).toMatch(/^coordination_agents_cordoned\{by="quarantine"\} 1$/m);
    const [event] = await cordonEvents(t);
    expect(event).toEqual(["agent.cordoned", { agentId: "broken", reason: agent.cordon!.reason, cordonedBy: null, until: agent.cordon!.until!.toISOString(), automatic: true, failures: 3 }]);

    // An operator's cordon is not replaced by a quarantine: an agent cordoned while it holds runs, failing them all.
    await api.tasks.enqueueMany.mutate({ tasks: Array.from({ length: 3 }, () => ({ queue: "slow", payload: {}, maxAttempts: 1 })) });
    const runs = await api.tasks.claimMany.mutate({ agentId: "slow", queues: ["slow"], limit: 3, context: false });
    expect(runs).toHaveLength(3);
    await api.agents.cordon.mutate({ agentId: "slow", reason: "watching it" });
    for (const task of runs) await api.tasks.fail.mutate({ taskId: task.id, agentId: "slow", leaseToken: task.leaseToken, error: "x" });
    expect((await api.agents.get.query({ agentId: "slow" })).cordon).toMatchObject({ reason: "watching it", automatic: false, until: null });
    // A fail sent for an agent (no agentId: the seed's routes, an orchestrator) is not the agent's own: it does not count.
    await api.tasks.enqueueMany.mutate({ tasks: Array.from({ length: 3 }, () => ({ queue: "others", payload: {}, maxAttempts: 1 })) });
    for (const task of await api.tasks.claimMany.mutate({ agentId: "innocent", queues: ["others"], limit: 3, context: false })) {
      expect((await rest(t.url, "POST", `/tasks/${task.id}/fail`, { error: "stopped by the orchestrator" })).status).toBe(200);
    }
    expect((await api.agents.get.query({ agentId: "innocent" })).cordon).toBeNull();
    expect((await cordonEvents(t)).map(([type, payload]) => [type, (payload as { agentId: string }).agentId])).toEqual([
      ["agent.cordoned", "broken"],
      ["agent.cordoned", "slow"],
    ]);
  });

  it("quarantine counts each fail once, though its write batch is run again (a write beside it failed after changing rows)", async () => {
    t = await startTestServer({ quarantineAfterFailures: 2, quarantineMs: 600_000 });
    const { api } = t;
    const tasks = t.server.services.tasks;
    await api.tasks.enqueueMany.mutate({ tasks: [{ queue: "q", maxAttempts: 1 }, { queue: "q", maxAttempts: 1 }] });
    const [one, two] = await api.tasks.claimMany.mutate({ agentId: "w", queues: ["q"], limit: 2, context: false });
    await api.tasks.fail.mutate({ taskId: one!.id, agentId: "w", leaseToken: one!.leaseToken, error: "e" });
    // Sent together, they share a write batch: the enqueue inserts its first task, then fails on
    // the second's unknown dependency, and the batch runs again with a savepoint around each write.
    const [failed, refused] = await Promise.allSettled([
      tasks.fail({ taskId: two!.id, agentId: "w", leaseToken: two!.leaseToken, error: "e", retry: true }),
      tasks.enqueueMany([
        { queue: "other", payload: {}, priority: 5, targetAgentId: undefined },
        { queue: "other", payload: {}, priority: 5, targetAgentId: undefined, dependsOn: ["no-such-task"] },
      ]),
    ]);
    expect([failed.status, refused.status]).toEqual(["fulfilled", "rejected"]);
    expect((await api.agents.get.query({ agentId: "w" })).cordon).toMatchObject({ automatic: true, reason: expect.stringContaining("failed 2 runs in a row") });
    expect((await cordonEvents(t)).length).toBe(1);
  });

  it("retention, removing an agent gone that long, takes its cordon with it", async () => {
    t = await startTestServer({ agentStartupGraceMs: 0 });
    await t.api.agents.register.mutate({ agentId: "gone" });
    await t.api.agents.cordon.mutate({ agentId: "gone" });
    await t.server.services.db.write("agents.checkHealth", { asOf: Date.now() + 3_600_000, limit: 500 });
    expect(await t.server.services.db.write("agents.pruneGone", { before: Date.now() + 1, limit: 10 })).toBe(1);
    expect(withDatabase(t, (db) => db.prepare(`SELECT count(*) FROM agent_cordons`).pluck().get())).toBe(0);
  });

  it("with credentials: cordons are an admin's, and name the credential", async () => {
    secure = await startSecureServer();
    const agentToken = await secure.issue("agent", "w1");
    const readToken = await secure.issue("read");
    expect((await http(secure.url, "POST", "/agents/w1/heartbeat", { token: agentToken, body: {} })).status).toBe(200);
    for (const token of [agentToken, readToken]) {
      expect((await http(secure.url, "POST", "/agents/w1/cordon", { token, body: {} })).status).toBe(403);
      expect((await http(secure.url, "POST", "/agents/w1/uncordon", { token, body: {} })).status).toBe(403);
    }
    const admin = await secure.issue("admin");
    const adminId = (await http(secure.url, "GET", "/tokens", { token: admin })).body.find((row: { role: string; revokedAt: unknown }) => row.role === "admin" && row.revokedAt === null).id;
    const cordoned = await http(secure.url, "POST", "/agents/w1/cordon", { token: admin, body: { reason: "r" } });
    expect(cordoned.status).toBe(200);
    expect(cordoned.body.cordon.cordonedBy).toBe(adminId);
    // The agent itself cannot publish its way out: agent.* events are the server's.
    const forged = await http(secure.url, "POST", "/events", { token: agentToken, body: { type: "agent.uncordoned", source: "w1", payload: { agentId: "w1" } } });
    expect(forged.status).toBe(403);
    expect((await http(secure.url, "POST", "/tasks/claim", { token: agentToken, body: { agentId: "w1" } })).body).toBeNull();
  });

  it("the CLI cordons, lists and uncordons", async () => {
    t = await startTestServer();
    await t.api.agents.register.mutate({ agentId: "w1" });
    await t.api.agents.register.mutate({ agentId: "w2" });
    const env = { COORDINATION_URL: t.url };
    const cordon = await runOperator({ args: ["agents", "cordon", "w1", "--reason", "bad deploy", "--for", "2h"], env });
    expect(cordon.code).toBe(0);
    expect(cordon.stdout).toMatch(/^agent w1 cordoned: since .+, until .+: bad deploy\n$/);
    const until = (await t.api.agents.get.query({ agentId: "w1" })).cordon!;
    expect(until.until!.getTime() - until.cordonedAt.getTime()).toBe(2 * 3_600_000);
    const listed = await runOperator({ args: ["agents", "--cordoned"], env });
    expect(listed.code).toBe(0);
    expect(listed.stdout).toContain("w1");
    expect(listed.stdout).not.toContain("w2");
    expect(await runOperator({ args: ["agents", "uncordon", "w1"], env })).toMatchObject({ code: 0, stdout: "agent w1 takes tasks\n" });
    expect(await runOperator({ args: ["agents", "cordon", "w1", "--for", "soon"], env })).toMatchObject({ code: 2, stderr: expect.stringContaining("--for must be a length of time") });
    expect(await runOperator({ args: ["agents", "cordon"], env })).toMatchObject({ code: 2, stderr: expect.stringContaining("agents cordon needs an AGENT_ID") });
    expect(await runOperator({ args: ["agents", "cordon", "w1", "w2"], env })).toMatchObject({ code: 2, stderr: expect.stringContaining("agents cordon takes one AGENT_ID (got 2)") });
    expect(await runOperator({ args: ["agents", "cordon", "w1", "--for", "400d"], env })).toMatchObject({ code: 2, stderr: expect.stringContaining("--for must be a length of time from 1s to 366d") });
    // A flag is there or not: --cordoned=false listed the cordoned agents.
    expect(await runOperator({ args: ["agents", "--cordoned=false"], env })).toMatchObject({ code: 2, stderr: expect.stringContaining('--cordoned takes no value (got "--cordoned=false"') });
    expect((await t.api.agents.get.query({ agentId: "w1" })).cordon).toBeNull();
  });
});
