// An LLM agent whose claim_task answers no task while work waits is told what keeps it from the
// work: a null alone reads as an empty queue, and the model claims again and again (or gives up)
// while a paused queue, a full limit, a rate window or a capability it never offered holds it off.
import { afterEach, describe, expect, it } from "vitest";
import { closeMcpClients, connectMcp, toolTexts as texts } from "./helpers/mcp-client.js";
import { startTestServer, withDatabase, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
afterEach(async () => {
  await closeMcpClients();
  await t?.stop({ removeFiles: true });
  t = undefined;
});


describe("claim_task's note when work waits that the agent may not take", () => {
  it("names paused, full and rate-limited queues, the capabilities and targets of the due tasks, and the next delayed one", async () => {
    t = await startTestServer({ memoryContextLimit: 0 });
    const api = t.api;
    const client = await connectMcp(t.url, { "x-agent-id": "llm" });
    await api.agents.register.mutate({ agentId: "llm", capabilities: ["python"] });
    // Nothing waits: the null alone.
    expect(await texts(client, "claim_task", {})).toEqual({ isError: false, texts: ["null"] });

    await api.queues.pause.mutate({ queue: "frozen", reason: "incident" });
    await api.tasks.enqueue.mutate({ queue: "frozen", payload: 1 });
    await api.queues.setLimit.mutate({ queue: "narrow", maxLeased: 1 });
    await api.tasks.enqueueMany.mutate({ tasks: [1, 2].map((n) => ({ queue: "narrow", payload: n })) });
    await api.queues.setRate.mutate({ queue: "metered", maxClaims: 1, perMs: 3_600_000 });
    await api.tasks.enqueueMany.mutate({ tasks: [1, 2].map((n) => ({ queue: "metered", payload: n })) });
    for (const queue of ["narrow", "metered"]) expect(await api.tasks.claim.mutate({ agentId: "busy", queues: [queue] })).toMatchObject({ queue });
    await api.tasks.enqueueMany.mutate({
      tasks: [
        { queue: "gpu-work", payload: 1, capability: "gpu" },
        { queue: "gpu-work", payload: 2, capability: "gpu" },
        { queue: "gpu-work", payload: 3, capability: "arm64" },
        { queue: "gpu-work", payload: 4, capability: "python", targetAgentId: "someone-else" },
      ],
    });
    const runAt = new Date(Date.now() + 3_600_000);
    await api.tasks.enqueue.mutate({ queue: "later", payload: 1, runAt });
    const rateWindowStart = withDatabase(t, (db) => db.prepare("SELECT at FROM queue_rate_starts WHERE queue = 'metered'").pluck().get() as number);

    const note =
      'No task for this agent now, though work waits: queue "frozen" is paused by an operator (its tasks wait until it is resumed); ' +
      'queue "narrow" runs as many tasks at once as its limit allows (one starts when a run of it ends); ' +
      `queue "metered" took its 1 claim per 3600000 ms: the next may be made at ${new Date(rateWindowStart + 3_600_000).toISOString()}; ` +
      '3 of the 4 due tasks looked at need a capability this agent does not offer: "gpu" (2), "arm64" (1); it offers "python"; ' +
      "1 of the 4 due tasks looked at is for another agent; " +
      `the next task this agent may run falls due at ${runAt.toISOString()} (claim again then, or wait for it with waitMs).`;
    expect(await texts(client, "claim_task", {})).toEqual({ isError: false, texts: ["null", note] });

    // Asked for some queues, the note speaks of those only; capabilities offered by the claim are its own.
    const gpuOnly = await texts(client, "claim_task", { queues: ["gpu-work", "frozen"], capabilities: ["cuda"] });
    expect(gpuOnly.texts).toEqual([
      "null",
      'No task for this agent now, though work waits: queue "frozen" is paused by an operator (its tasks wait until it is resumed); ' +
        '3 of the 4 due tasks looked at need a capability this agent does not offer: "gpu" (2), "arm64" (1); it offers "cuda"; 1 of the 4 due tasks looked at is for another agent.',
    ]);
    // A queue that holds nothing for anyone: the null alone.
    expect(await texts(client, "claim_task", { queues: ["empty"] })).toEqual({ isError: false, texts: ["null"] });

    // complete_task's next says the same of what it was asked to claim.
    await api.queues.resume.mutate({ queue: "frozen" });
    const own = JSON.parse((await texts(client, "claim_task", { queues: ["frozen"] })).texts[0]!) as { id: string; leaseToken: number };
    const done = await texts(client, "complete_task", { taskId: own.id, leaseToken: own.leaseToken, result: "ok", next: { queues: ["gpu-work"], capabilities: [] } });
    expect(JSON.parse(done.texts[0]!)).toMatchObject({ completed: { id: own.id, status: "completed" }, next: null });
    expect(done.texts[1]).toBe(
      'No task for this agent now, though work waits: 3 of the 4 due tasks looked at need a capability this agent does not offer: "gpu" (2), "arm64" (1); it offers none; 1 of the 4 due tasks looked at is for another agent.',
    );
  });
});
