// null is a JSON value like any other: a field that takes any JSON keeps a null as sent (left
// out, it has its default), and a keyed repeat of a call that sent null is the same call.
import { describe, expect, it } from "vitest";
import { rest, startTestServer } from "./helpers/test-server.js";

describe("null as a JSON value", () => {
  it("is kept by an event's payload, a task's payload and result and a memory's data; a keyed publish of it sent again is the same event", async () => {
    await using t = await startTestServer();
    const published = await rest(t.url, "POST", "/events", { type: "odd.null", source: "x", payload: null, idempotencyKey: "k-null" });
    expect(published).toMatchObject({ status: 200, body: { payload: null } });
    const again = await rest(t.url, "POST", "/events", { type: "odd.null", source: "x", payload: null, idempotencyKey: "k-null" });
    expect(again).toEqual({ status: 200, body: published.body });
    expect((await t.api.events.publish.mutate({ type: "odd.null", source: "y", payload: null })).payload).toBeNull();
    expect((await t.api.events.publish.mutate({ type: "odd.left-out", source: "y" })).payload).toEqual({});
    expect((await t.api.events.list.query({ types: ["odd.*"] })).map((e) => e.payload)).toEqual([null, null, {}]);

    const task = await t.api.tasks.enqueue.mutate({ queue: "q", payload: null });
    expect(task.payload).toBeNull();
    await t.api.tasks.claim.mutate({ agentId: "a1" });
    expect((await t.api.tasks.complete.mutate({ taskId: task.id, agentId: "a1", result: null })).result).toBeNull();

    const memory = await t.api.memory.remember.mutate({ content: "a note with null data", data: null });
    expect(memory.data).toBeNull();
    expect((await t.api.memory.recall.query({ query: "null data" }))[0]!.memory.data).toBeNull();
    expect((await t.api.memory.remember.mutate({ content: "a note with no data" })).data).toEqual({});
  });
});
