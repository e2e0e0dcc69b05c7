// tasks.claimOutlook (GET /agents/{agentId}/claim-outlook): why an agent's claim answers no task
// while work waits, for the operator whose worker sits idle and the agent that wants to know.
import { afterEach, describe, expect, it } from "vitest";
import { runOperator } from "./helpers/cli-process.js";
import { claimOutlookNote } from "../src/tasks/claim-outlook-reasons.js";
import { rest, startTestServer, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
afterEach(async () => {
  await t?.stop({ removeFiles: true });
  t = undefined;
});

describe("tasks.claimOutlook", () => {
  it("answers over REST and tRPC what keeps the waiting tasks from the claimer, looking at 100 due tasks at most", async () => {
    t = await startTestServer({ memoryContextLimit: 0 });
    const api = t.api;
    await api.agents.register.mutate({ agentId: "w1", capabilities: ["python", "cuda"] });
    const nothing = { claimable: false, paused: [], fullQueues: [], rateLimited: [], looked: 0, needCapabilities: [], forOtherAgents: 0, offered: ["cuda", "python"], nextRunAt: null };
    expect(await api.tasks.claimOutlook.query({ agentId: "w1" })).toEqual(nothing);

    await api.queues.pause.mutate({ queue: "frozen" });
    await api.tasks.enqueueMany.mutate({
      tasks: [
        ...Array.from({ length: 150 }, (_, i) => ({ queue: "gpu", payload: i, capability: "a100" })),
        ...Array.from({ length: 150 }, (_, i) => ({ queue: "gpu", payload: i, targetAgentId: "w2" })),
      ],
    });
    // One look at most 100 due tasks, whatever the backlog; each of them one the claimer may not run.
    const outlook = await api.tasks.claimOutlook.query({ agentId: "w1", queues: ["gpu", "frozen"] });
    expect(outlook.paused).toEqual(["frozen"]);
    expect(outlook.looked).toBe(100);
    expect(outlook.needCapabilities.reduce((sum, need) => sum + need.tasks, 0) + outlook.forOtherAgents).toBe(100);
    for (const need of outlook.needCapabilities) expect(need.capability).toBe("a100");
    // And it is right: w1 claims none of them; w2 claims its own.
    expect(await api.tasks.claim.mutate({ agentId: "w1", queues: ["gpu"] })).toBeNull();
    expect(await api.tasks.claim.mutate({ agentId: "w2", queues: ["gpu"] })).toMatchObject({ targetAgentId: "w2" });

    // The same over REST: the queues and capabilities as a comma-separated list, times as ISO text.
    const runAt = new Date(Date.now() + 600_000);
    await api.tasks.enqueue.mutate({ queue: "later", payload: 0, runAt });
    const answer = await rest(t.url, "GET", "/agents/w3/claim-outlook?queues=later,frozen&capabilities=arm64");
    expect(answer).toEqual({ status: 200, body: { ...nothing, paused: ["frozen"], offered: ["arm64"], nextRunAt: runAt.toISOString() } });

    // Bad input: a 400 naming the field, as a claim's.
    const empty = await rest(t.url, "GET", "/agents/w3/claim-outlook?queues=");
    expect(empty.status).toBe(400);
    expect(JSON.stringify(empty.body)).toContain("queues");
    const unknown = await rest(t.url, "GET", "/agents/w3/claim-outlook?queue=later");
    expect(unknown.status).toBe(400);
    expect(JSON.stringify(unknown.body)).toContain("queue");
  });

  it("coordination agents why-idle says it in lines, or that nothing waits for the agent; --json the outlook", async () => {
    t = await startTestServer({ memoryContextLimit: 0 });
    const env = { COORDINATION_URL: t.url };
    expect(await runOperator({ args: ["agents", "why-idle", "w1"], env })).toMatchObject({ code: 0, stdout: "agent w1: nothing waits that its claims could take (its queues hold no task for it)\n", stderr: "" });
    await t.api.queues.pause.mutate({ queue: "frozen" });
    await t.api.tasks.enqueueMany.mutate({ tasks: [{ queue: "gpu", payload: 1, capability: "a100" }, { queue: "gpu", payload: 2, capability: "a100" }] });
    expect(await runOperator({ args: ["agents", "why-idle", "w1", "--queue", "gpu,frozen", "--capability", "cuda,rocm"], env })).toMatchObject({
      code: 0,
      stdout:
        "agent w1 takes no task now, though work waits:\n" +
        '  - queue "frozen" is paused by an operator (its tasks wait until it is resumed)\n' +
        '  - 2 of the 2 due tasks looked at need a capability this agent does not offer: "a100" (2); it offers "cuda", "rocm"\n',
      stderr: "",
    });
    const json = await runOperator({ args: ["agents", "why-idle", "w1", "--queue", "gpu", "--json"], env });
    expect(JSON.parse(json.stdout)).toEqual({ claimable: false, paused: [], fullQueues: [], rateLimited: [], looked: 2, needCapabilities: [{ capability: "a100", tasks: 2 }], forOtherAgents: 0, offered: [], nextRunAt: null });
    // A workflow's next step waiting on its inputs is no claim's, but it is work: said so, not "nothing waits".
    const input = await t.api.tasks.enqueue.mutate({ queue: "research", delayMs: 3_600_000 });
    await t.api.tasks.enqueueMany.mutate({ tasks: [{ queue: "report", dependsOn: [input.id] }, { queue: "report", dependsOn: ["tasks[0]"] }] });
    expect(await runOperator({ args: ["agents", "why-idle", "w1", "--queue", "report"], env })).toMatchObject({
      code: 0,
      stdout:
        "agent w1 takes no task now, though work waits:\n" +
        "  - 2 tasks of its queues wait for their dependencies to complete or for their turn behind a task of their ordering key (tasks list --status waiting): no claim takes them until then\n",
      stderr: "",
    });
    // A queue named twice is counted once.
    expect((await runOperator({ args: ["agents", "why-idle", "w1", "--queue", "report,report"], env })).stdout).toContain("  - 2 tasks of its queues wait for their dependencies");
    expect(JSON.parse((await runOperator({ args: ["agents", "why-idle", "w1", "--queue", "report", "--json"], env })).stdout)).toMatchObject({ claimable: false, looked: 0 });
    expect(await runOperator({ args: ["agents", "why-idle"], env })).toMatchObject({ code: 2, stderr: expect.stringContaining("agents why-idle needs an AGENT_ID") });
    expect(await runOperator({ args: ["agents", "why-idle", "w1", "--reason", "x"], env })).toMatchObject({ code: 2, stderr: expect.stringContaining("--reason") });
  });
});

describe("tasks.claimOutlook when a claim would be handed a task", () => {
  it("says so (claimable), so an idle agent's outlook does not read as work kept from it", async () => {
    t = await startTestServer({ memoryContextLimit: 0 });
    const api = t.api;
    const env = { COORDINATION_URL: t.url };
    // The claimer may run the gpu task (it offers gpu), beside one for another agent: its claim
    // takes a task now. The outlook said "takes no task now, though work waits", naming the other
    // agent's task as the reason: an operator looked for what kept work from a worker that is
    // simply not claiming.
    await api.tasks.enqueueMany.mutate({ tasks: [{ queue: "gpu", payload: 1, capability: "gpu" }, { queue: "gpu", payload: 2, targetAgentId: "w2" }] });
    expect(await api.tasks.claimOutlook.query({ agentId: "w1", capabilities: ["gpu"] })).toMatchObject({ claimable: true, forOtherAgents: 1 });
    expect(await api.tasks.claimOutlook.query({ agentId: "w1" })).toMatchObject({ claimable: false, needCapabilities: [{ capability: "gpu", tasks: 1 }] });
    const cli = await runOperator({ args: ["agents", "why-idle", "w1", "--capability", "gpu"], env });
    expect(cli).toMatchObject({ code: 0, stderr: "" });
    expect(cli.stdout).toBe(
      "agent w1 may take a task now: its claim would be handed one (an idle agent with work waiting for it is not claiming)\n" +
        "  other tasks wait that it may not take now:\n" +
        "  - 1 of the 2 due tasks looked at is for another agent\n",
    );

    // A limited queue with a free slot, and a rate with room, hand a task too; full, none.
    await api.queues.setLimit.mutate({ queue: "narrow", maxLeased: 1 });
    await api.tasks.enqueueMany.mutate({ tasks: [1, 2].map((n) => ({ queue: "narrow", payload: n })) });
    expect(await api.tasks.claimOutlook.query({ agentId: "w3", queues: ["narrow"] })).toMatchObject({ claimable: true, fullQueues: [] });
    expect(await api.tasks.claim.mutate({ agentId: "w4", queues: ["narrow"] })).toMatchObject({ queue: "narrow" });
    expect(await api.tasks.claimOutlook.query({ agentId: "w3", queues: ["narrow"] })).toMatchObject({ claimable: false, fullQueues: ["narrow"] });
    await api.queues.setRate.mutate({ queue: "metered", maxClaims: 1, perMs: 3_600_000 });
    await api.tasks.enqueueMany.mutate({ tasks: [1, 2].map((n) => ({ queue: "metered", payload: n })) });
    expect(await api.tasks.claimOutlook.query({ agentId: "w3", queues: ["metered"] })).toMatchObject({ claimable: true, rateLimited: [] });
    expect(await api.tasks.claim.mutate({ agentId: "w4", queues: ["metered"] })).toMatchObject({ queue: "metered" });
    expect(await api.tasks.claimOutlook.query({ agentId: "w3", queues: ["metered"] })).toMatchObject({ claimable: false, rateLimited: [{ queue: "metered" }] });
  });

  it("agents why-idle names the agent's cordon: no claim hands it a task, whatever waits", async () => {
    t = await startTestServer({ memoryContextLimit: 0 });
    const env = { COORDINATION_URL: t.url };
    await t.api.tasks.enqueue.mutate({ queue: "work", payload: 1 });
    await t.api.agents.register.mutate({ agentId: "w1" });
    await t.api.agents.cordon.mutate({ agentId: "w1", reason: "bad deploy" });
    const cli = await runOperator({ args: ["agents", "why-idle", "w1"], env });
    expect(cli).toMatchObject({ code: 0, stderr: "" });
    // The task waits for it, and the outlook alone sees nothing keeping it: the cordon is why.
    expect(cli.stdout).toMatch(/^agent w1 takes no task while it is cordoned \(since [^\n]*, until uncordoned: bad deploy\): no claim hands it one, whatever waits\n$/);
  });
});

describe("claim_task's note when a task came due as its claim answered", () => {
  it("tells the model to claim again, not to wait out the other tasks' reasons", () => {
    const outlook = { claimable: true, paused: ["frozen"], fullQueues: [], rateLimited: [], looked: 0, needCapabilities: [], forOtherAgents: 0, offered: [], nextRunAt: null };
    expect(claimOutlookNote(outlook)).toBe(
      'A task this agent may run is due now (it came as this claim answered): claim again. Other tasks wait that it may not take now: queue "frozen" is paused by an operator (its tasks wait until it is resumed).',
    );
    expect(claimOutlookNote({ ...outlook, paused: [] })).toBe("A task this agent may run is due now (it came as this claim answered): claim again.");
    expect(claimOutlookNote({ ...outlook, claimable: false, paused: [] })).toBeUndefined();
  });
});

describe("tasks.claimOutlook of a rate whose window emptied with no claim since", () => {
  it("reads the claims in the window now, not the count the last claim left", async () => {
    t = await startTestServer({ memoryContextLimit: 0 });
    const api = t.api;
    // One claim a second: the window is full after one claim, and empty a second later. Nothing
    // claims after (the count of claims is only brought up to date by a claim's write): the
    // outlook counted the claim that had left the window, and said, for ever, that the next
    // claim may be made 100 ms from now.
    await api.queues.setRate.mutate({ queue: "metered", maxClaims: 1, perMs: 1000 });
    await api.tasks.enqueueMany.mutate({ tasks: [1, 2].map((n) => ({ queue: "metered", payload: n })) });
    expect(await api.tasks.claim.mutate({ agentId: "w1", queues: ["metered"] })).toMatchObject({ queue: "metered" });
    // (Whether the window is still full when it is next read depends on the machine's speed: not asserted.)
    await expect.poll(async () => api.tasks.claimOutlook.query({ agentId: "w2", queues: ["metered"] }), { timeout: 15_000, interval: 100 }).toMatchObject({ claimable: true, rateLimited: [] });
    // And it was so: the claim takes the task.
    expect(await api.tasks.claim.mutate({ agentId: "w2", queues: ["metered"] })).toMatchObject({ queue: "metered" });
  });
});

describe("tasks.claimOutlook of a delayed task that fell due with no claim since", () => {
  it("counts it claimable: a claim makes it due and takes it", async () => {
    t = await startTestServer({ memoryContextLimit: 0 });
    const api = t.api;
    // Only a claim's write moves a delayed task that fell due into the claim indexes. Nobody
    // claimed (the worker the operator asks about is down): the outlook saw neither a due task
    // nor a delayed one ahead, and why-idle said nothing waits for the agent.
    await api.tasks.enqueue.mutate({ queue: "later", payload: 1, delayMs: 300 });
    await expect.poll(async () => api.tasks.claimOutlook.query({ agentId: "w1", queues: ["later"] }), { timeout: 15_000, interval: 100 }).toMatchObject({ claimable: true, nextRunAt: null });
    expect(await api.tasks.claim.mutate({ agentId: "w1", queues: ["later"] })).toMatchObject({ queue: "later" });
  });

  it("names what keeps it from the claimer: the capability it needs, or another agent it is for", async () => {
    t = await startTestServer({ memoryContextLimit: 0 });
    const api = t.api;
    // A retry's backoff is a delay too: the task a dead worker failed falls due with no claim since.
    await api.tasks.enqueue.mutate({ queue: "later", payload: 1, capability: "gpu", delayMs: 300 });
    await api.tasks.enqueue.mutate({ queue: "later", payload: 2, targetAgentId: "w2", delayMs: 300 });
    await expect
      .poll(async () => api.tasks.claimOutlook.query({ agentId: "w1", queues: ["later"], capabilities: [] }), { timeout: 15_000, interval: 100 })
      .toMatchObject({ claimable: false, looked: 2, needCapabilities: [{ capability: "gpu", tasks: 1 }], forOtherAgents: 1, nextRunAt: null });
  });
});
