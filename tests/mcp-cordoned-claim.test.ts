// An LLM agent whose claims answer no task because it is cordoned (an operator's cordon, or the
// server's quarantine after failures in a row) is told so by claim_task and complete_task's
// `next`: a null alone reads as an empty queue, and the model would claim again and again.
import { afterEach, describe, expect, it } from "vitest";
import { closeMcpClients, connectMcp, toolTexts as texts } from "./helpers/mcp-client.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
afterEach(async () => {
  await closeMcpClients();
  await t?.stop({ removeFiles: true });
  t = undefined;
});


describe("a cordoned agent's empty claims", () => {
  it("claim_task and complete_task's next answer null with why beside it; once uncordoned, the task; an empty queue's null alone", async () => {
    t = await startTestServer();
    const client = await connectMcp(t.url, { "x-agent-id": "worker-1" });
    // Not cordoned, nothing queued: null alone, as ever.
    expect(await texts(client, "claim_task", {})).toEqual({ isError: false, texts: ["null"] });

    const first = await t.api.tasks.enqueue.mutate({ queue: "q", payload: 1 });
    const second = await t.api.tasks.enqueue.mutate({ queue: "q", payload: 2 });
    const held = JSON.parse((await texts(client, "claim_task", {})).texts[0]!) as { id: string; leaseToken: number };
    expect(held.id).toBe(first.id);
    await t.api.agents.cordon.mutate({ agentId: "worker-1", reason: "bad deploy" });

    const why =
      "No task for this agent: it is cordoned by an operator (bad deploy), and no claim hands it a task until an operator lifts it, whatever waits in the queues. " +
      "The tasks it holds run on: finish and settle them (complete_task, fail_task or release_task), and tell whoever runs you rather than claiming again.";
    expect(await texts(client, "claim_task", {})).toEqual({ isError: false, texts: ["null", why] });
    // The task it holds settles as usual; its next is none, and says why.
    const done = await texts(client, "complete_task", { taskId: held.id, leaseToken: held.leaseToken, result: "ok", next: {} });
    expect(done.isError).toBe(false);
    expect(JSON.parse(done.texts[0]!)).toMatchObject({ completed: { id: first.id, status: "completed" }, next: null });
    expect(done.texts[1]).toBe(why);

    // A cordon that lifts by itself says until when.
    const cordoned = await t.api.agents.cordon.mutate({ agentId: "worker-1", forMs: 3_600_000 });
    const until = cordoned.cordon!.until!.toISOString();
    expect((await texts(client, "claim_task", {})).texts[1]).toContain(`no claim hands it a task until ${until}`);

    await t.api.agents.uncordon.mutate({ agentId: "worker-1" });
    const claimed = await texts(client, "claim_task", {});
    expect(claimed.texts).toHaveLength(1);
    expect(JSON.parse(claimed.texts[0]!)).toMatchObject({ id: second.id, leaseOwner: "worker-1" });
  });
});
