// A claim sent again after its answer was lost (a client's timeout, a proxy's reset) must not lease
// a second task while the first waits out its lease and is charged an attempt. With an
// idempotencyKey, the same agent's same key answers the leases that claim took, while it holds
// them; a complete-and-claim is keyed by the task it completed (tasks-complete-and-claim.test.ts).
import { describe, expect, it } from "vitest";
import { rest, startTestServer } from "./helpers/test-server.js";

describe("claims with an idempotencyKey", () => {
  it("sent again, a claim answers the same task under the same lease, with no event and no attempt charged", async () => {
    await using t = await startTestServer();
    const [a, b] = await t.api.tasks.enqueueMany.mutate({ tasks: [1, 2].map((n) => ({ queue: "ik", payload: n })) });
    const body = { agentId: "py", queues: ["ik"], idempotencyKey: "claim-0001" };
    const first = await rest(t.url, "POST", "/tasks/claim", body);
    expect(first.body).toMatchObject({ id: a!.id, leaseToken: 1, attempts: 1 });
    const again = await rest(t.url, "POST", "/tasks/claim", body);
    expect(again).toEqual(first);
    // The seed's route takes the key in its query string: the same lease again.
    const seed = await rest(t.url, "GET", "/tasks/claim/py?queue=ik&idempotencyKey=claim-0001");
    expect(seed.body).toMatchObject({ id: a!.id, leaseToken: 1, attempts: 1 });
    const claimed = (await t.api.events.list.query({ types: ["task.claimed"] })).map((e) => (e.payload as { taskId: string }).taskId);
    expect(claimed).toEqual([a!.id]);
    expect(await t.api.tasks.get.query({ taskId: b!.id })).toMatchObject({ status: "pending", attempts: 0 });

    // Another key, or no key: another task. The same key from another agent is that agent's own.
    expect((await rest(t.url, "POST", "/tasks/claim", { ...body, idempotencyKey: "claim-0002" })).body).toMatchObject({ id: b!.id });
    expect(await rest(t.url, "POST", "/tasks/claim", { ...body, agentId: "other" })).toEqual({ status: 200, body: null });

    // Once the agent holds none of that claim's tasks, the key claims anew.
    await t.api.tasks.complete.mutate({ taskId: a!.id, agentId: "py", leaseToken: 1 });
    const c = await t.api.tasks.enqueue.mutate({ queue: "ik", payload: 3 });
    expect((await rest(t.url, "POST", "/tasks/claim", body)).body).toMatchObject({ id: c.id, leaseToken: 1 });
  });

  it("claimMany answers the tasks it leased that the agent still holds; a long-poll keys the lease it takes when a task arrives", async () => {
    await using t = await startTestServer();
    const tasks = await t.api.tasks.enqueueMany.mutate({ tasks: [1, 2, 3, 4].map((n) => ({ queue: "many", payload: n })) });
    const first = await t.api.tasks.claimMany.mutate({ agentId: "m", queues: ["many"], limit: 3, idempotencyKey: "batch-1" });
    expect(first.map((task) => task.id)).toEqual(tasks.slice(0, 3).map((task) => task.id));
    await t.api.tasks.complete.mutate({ taskId: first[1]!.id, agentId: "m", leaseToken: 1 });
    const again = await t.api.tasks.claimMany.mutate({ agentId: "m", queues: ["many"], limit: 3, idempotencyKey: "batch-1" });
    expect(again.map((task) => [task.id, task.leaseToken])).toEqual([first[0]!, first[2]!].map((task) => [task.id, 1]));
    expect(await t.api.tasks.get.query({ taskId: tasks[3]!.id })).toMatchObject({ status: "pending" });

    const waiting = t.api.tasks.claim.mutate({ agentId: "lp", queues: ["late"], waitMs: 20_000, idempotencyKey: "poll-1" });
    const late = await t.api.tasks.enqueue.mutate({ queue: "late", payload: "x" });
    expect(await waiting).toMatchObject({ id: late.id, leaseToken: 1 });
    expect(await t.api.tasks.claim.mutate({ agentId: "lp", queues: ["late"], idempotencyKey: "poll-1" })).toMatchObject({ id: late.id, leaseToken: 1 });
  });
});
