// Retention: once events are pruned, every reader whose position is behind the pruned part gets
// an explicit EVENTS_PRUNED (412 on REST) instead of silently missing events.
import { TRPCClientError } from "@trpc/client";
import { describe, expect, it, vi } from "vitest";
import { collectEvents, range } from "./helpers/event-collector.js";
import { rest, startTestServer } from "./helpers/test-server.js";

const PRUNED = { data: { code: "PRECONDITION_FAILED", reason: "EVENTS_PRUNED" } };

describe("event retention", () => {
  it("keeps the newest eventRetentionCount events and refuses cursors behind the pruned part", async () => {
    // The pruner's timer never fires during the test: runNow() prunes exactly when we say.
    await using t = await startTestServer({ eventRetentionCount: 5, eventPruneMs: 3_600_000 });
    const { api } = t;
    await api.events.subscribe.mutate({ agentId: "lagger", types: ["job.*"] });
    await api.events.subscribe.mutate({ agentId: "current", types: ["job.*"] });
    for (const i of range(1, 4)) await api.events.publish.mutate({ type: "job.x", source: "t", payload: i });
    // "current" consumed up to seq 4, so it is still inside the retained log after pruning.
    expect((await api.events.poll.mutate({ agentId: "current" })).map((e) => e.seq)).toEqual(range(1, 4));
    for (const i of range(5, 10)) await api.events.publish.mutate({ type: "job.x", source: "t", payload: i });

    await t.server.services.jobs.eventPruner.runNow();
    expect(t.server.services.eventStore.prunedThroughSeq()).toBe(5);
    expect((await api.events.list.query({ afterSeq: 0 })).map((e) => e.seq)).toEqual(range(6, 10));

    // Behind: cursor 0 < 5.
    const pollError = await api.events.poll.mutate({ agentId: "lagger" }).catch((e: unknown) => e);
    expect(pollError).toBeInstanceOf(TRPCClientError);
    expect(pollError).toMatchObject(PRUNED);
    expect((pollError as Error).message).toContain("fromSeq >= 5");
    await expect(api.events.poll.mutate({ agentId: "lagger", ack: "manual" })).rejects.toMatchObject(PRUNED);
    const viaRest = await rest(t.url, "GET", "/events/lagger");
    expect(viaRest.status).toBe(412);

    // Cursor 4 < 5 as well: event 5 (which it never saw) is gone.
    await expect(api.events.poll.mutate({ agentId: "current" })).rejects.toMatchObject(PRUNED);

    await expect(api.events.list.query({ afterSeq: 3 })).rejects.toMatchObject(PRUNED);
    expect((await rest(t.url, "GET", "/events?afterSeq=4")).status).toBe(412);
    expect((await api.events.list.query({ afterSeq: 5 })).map((e) => e.seq)).toEqual(range(6, 10));

    await expect(api.events.subscribe.mutate({ agentId: "lagger", types: ["job.*"], fromSeq: 4 })).rejects.toMatchObject(PRUNED);
    // Re-subscribing at the boundary moves the cursor: the retained events follow, none missing.
    const resubscribed = await api.events.subscribe.mutate({ agentId: "lagger", types: ["job.*"], fromSeq: 5 });
    expect(resubscribed.cursor).toBe(5);
    expect((await api.events.poll.mutate({ agentId: "lagger" })).map((e) => e.seq)).toEqual(range(6, 10));
    expect((await api.events.subscribe.mutate({ agentId: "fresh", types: ["job.*"], fromSeq: 8 })).cursor).toBe(8);
    expect((await api.events.poll.mutate({ agentId: "fresh" })).map((e) => e.seq)).toEqual([9, 10]);
  });

  it("a stream resuming from a pruned lastEventId errors with EVENTS_PRUNED; from the boundary it gets the rest", async () => {
    await using t = await startTestServer({ eventRetentionCount: 5, eventPruneMs: 3_600_000 });
    const { api } = t;
    for (const i of range(1, 10)) await api.events.publish.mutate({ type: "job.x", source: "t", payload: i });
    await t.server.services.jobs.eventPruner.runNow();

    const behind = collectEvents(api, { types: ["job.*"], lastEventId: "2" });
    await vi.waitFor(() => expect(behind.errors).toHaveLength(1), { timeout: 5000, interval: 10 });
    expect(behind.errors[0]).toBeInstanceOf(TRPCClientError);
    expect(behind.errors[0]).toMatchObject(PRUNED);
    expect(behind.events).toEqual([]);

    const atBoundary = collectEvents(api, { types: ["job.*"], lastEventId: "5" });
    await atBoundary.started;
    const live = await api.events.publish.mutate({ type: "job.x", source: "t", payload: 11 });
    await vi.waitFor(() => expect(atBoundary.seqs().at(-1)).toBe(live.seq), { timeout: 5000, interval: 10 });
    expect(atBoundary.seqs()).toEqual(range(6, 11));
    expect(atBoundary.ids).toEqual(range(6, 11).map(String));
    expect(atBoundary.errors).toEqual([]);
    atBoundary.unsubscribe();
  });

  it("refuses positions beyond the newest event instead of silently skipping what comes next", async () => {
    await using t = await startTestServer();
    const { api } = t;
    await api.events.publish.mutate({ type: "job.x", source: "t" });
    await expect(api.events.subscribe.mutate({ agentId: "future", types: ["*"], fromSeq: 50 })).rejects.toMatchObject({
      data: { code: "BAD_REQUEST", reason: "INVALID_INPUT" },
    });
    const ahead = collectEvents(api, { types: ["*"], lastEventId: "50" });
    await vi.waitFor(() => expect(ahead.errors).toHaveLength(1), { timeout: 5000, interval: 10 });
    expect(ahead.errors[0]).toMatchObject({ data: { code: "BAD_REQUEST", reason: "INVALID_INPUT" } });
    // The head itself is a valid position: nothing to replay, live events follow.
    expect((await api.events.subscribe.mutate({ agentId: "head", types: ["*"], fromSeq: 1 })).cursor).toBe(1);
  });
});
