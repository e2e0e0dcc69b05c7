// Every agent has a mailbox: events targeted at it are delivered by poll and by the live stream,
// subscription or not, from the oldest retained one it has not consumed.
import { describe, expect, it, vi } from "vitest";
import { collectEvents } from "./helpers/event-collector.js";
import { rest, startTestServer } from "./helpers/test-server.js";

describe("mailboxes", () => {
  it("a direct message to an agent that never subscribed is read by its poll, once", async () => {
    await using t = await startTestServer();
    const dm = await t.api.events.publish.mutate({ type: "chat.dm", source: "boss", target: "agent-x", payload: { text: "hi" } });
    const other = await t.api.events.publish.mutate({ type: "chat.dm", source: "boss", target: "someone-else" });
    const polled = await rest(t.url, "GET", "/events/agent-x");
    expect(polled.status).toBe(200);
    expect(polled.body).toEqual([expect.objectContaining({ seq: dm.seq, type: "chat.dm", target: "agent-x", payload: { text: "hi" } })]);
    expect(await rest(t.url, "GET", "/events/agent-x")).toEqual({ status: 200, body: [] });
    // The empty poll moved past what is not for it, up to the head.
    expect(await t.api.events.subscription.query({ agentId: "agent-x" })).toMatchObject({ types: [], mailboxCursor: other.seq });
  });

  it("a publish sent again with its idempotencyKey (its answer lost) is the event it stored: one message in the mailbox; keys are each source's own", async () => {
    await using t = await startTestServer();
    const message = { type: "chat.dm", source: "boss", target: "agent-k", payload: { text: "ship it" }, idempotencyKey: "dm-1" };
    const first = await rest(t.url, "POST", "/events", message);
    expect(first).toMatchObject({ status: 200, body: { type: "chat.dm", target: "agent-k", payload: { text: "ship it" } } });
    // Over REST and tRPC, keys of the payload in any order: the same event.
    expect(await rest(t.url, "POST", "/events", message)).toEqual(first);
    expect(await t.api.events.publish.mutate({ ...message, payload: { text: "ship it" } })).toMatchObject({ seq: first.body.seq });
    // The same key for another message is a conflict naming what differs; another source's key is its own.
    expect(await rest(t.url, "POST", "/events", { ...message, payload: { text: "hold it" } })).toMatchObject({ status: 409, body: { code: "IDEMPOTENCY_MISMATCH", details: { seq: first.body.seq, differs: ["payload"] } } });
    const other = await rest(t.url, "POST", "/events", { ...message, source: "deputy" });
    expect(other.status).toBe(200);
    expect(other.body.seq).toBeGreaterThan(first.body.seq);
    const polled = await rest(t.url, "GET", "/events/agent-k");
    expect(polled.body.map((e: { seq: number; source: string }) => [e.seq, e.source])).toEqual([
      [first.body.seq, "boss"],
      [other.body.seq, "deputy"],
    ]);
  });

  it("an agent that subscribes after a message was sent to it still reads it, before the events it subscribed to", async () => {
    await using t = await startTestServer();
    await t.api.events.publish.mutate({ type: "news.old", source: "desk" });
    const dm = await t.api.events.publish.mutate({ type: "task.assigned", source: "boss", target: "late" });
    const subscription = await t.api.events.subscribe.mutate({ agentId: "late", types: ["news.*"] });
    // The subscription starts at the head for its types; the mailbox from the oldest retained message.
    expect(subscription).toMatchObject({ cursor: dm.seq, mailboxCursor: 0 });
    const news = await t.api.events.publish.mutate({ type: "news.new", source: "desk" });
    expect((await t.api.events.poll.mutate({ agentId: "late" })).map((e) => e.seq)).toEqual([dm.seq, news.seq]);
    expect(await t.api.events.poll.mutate({ agentId: "late" })).toEqual([]);
  });

  it("manual ack covers the mailbox too; a cut page never skips a message behind the last one read", async () => {
    await using t = await startTestServer();
    await t.api.events.subscribe.mutate({ agentId: "m", types: ["a.*"] });
    const seqs: number[] = [];
    for (let i = 0; i < 6; i++) {
      seqs.push((await t.api.events.publish.mutate(i % 2 === 0 ? { type: "a.x", source: "s" } : { type: "dm", source: "s", target: "m" })).seq);
    }
    expect((await t.api.events.poll.mutate({ agentId: "m", ack: "manual", limit: 3 })).map((e) => e.seq)).toEqual(seqs.slice(0, 3));
    expect((await t.api.events.poll.mutate({ agentId: "m", ack: "manual", limit: 3 })).map((e) => e.seq)).toEqual(seqs.slice(0, 3));
    await t.api.events.ack.mutate({ agentId: "m", seq: seqs[2]! });
    expect((await t.api.events.poll.mutate({ agentId: "m", limit: 2 })).map((e) => e.seq)).toEqual(seqs.slice(3, 5));
    expect((await t.api.events.poll.mutate({ agentId: "m" })).map((e) => e.seq)).toEqual([seqs[5]]);
  });

  // An agent that never polled had no position: retention pruning its unread message left no
  // trace, and the next poll answered [] as if nothing had ever come.
  it("a direct message pruned before its registered target polled it is EVENTS_PRUNED for its poll, never a silent gap", async () => {
    await using t = await startTestServer({ eventRetentionCount: 2, eventPruneMs: 3_600_000 });
    await t.api.agents.register.mutate({ agentId: "away" });
    const dm = await t.api.events.publish.mutate({ type: "chat.dm", source: "boss", target: "away", payload: { important: true } });
    // A name the registry does not know gets no row: any name may be a target.
    await t.api.events.publish.mutate({ type: "chat.dm", source: "boss", target: "nobody" });
    await expect(t.api.events.subscription.query({ agentId: "nobody" })).rejects.toMatchObject({ data: { code: "SUBSCRIPTION_NOT_FOUND" } });
    for (let i = 0; i < 3; i++) await t.api.events.publish.mutate({ type: "noise.x", source: "s" });
    await t.server.services.jobs.eventPruner.runNow();
    expect((await t.api.events.head.query()).prunedThrough).toBeGreaterThanOrEqual(dm.seq);

    const polled = await rest(t.url, "GET", "/events/away");
    expect([polled.status, polled.body.code]).toEqual([412, "EVENTS_PRUNED"]);
    expect(polled.body.message).toMatch(/^mailboxCursor 0 is behind the retained event log/);
    // A live stream does not consume: it starts at the oldest retained message, as an observer would need.
    const stream = collectEvents(t.api, { agentId: "away" });
    await stream.started;
    const live = await t.api.events.publish.mutate({ type: "chat.dm", source: "boss", target: "away" });
    await vi.waitFor(() => expect(stream.seqs()).toEqual([live.seq]), { timeout: 10_000 });
    expect(stream.errors).toEqual([]);
    stream.unsubscribe();
    // The way out the error names: acknowledge what is gone; then it reads on.
    await t.api.events.ack.mutate({ agentId: "away", seq: (await t.api.events.head.query()).prunedThrough });
    const next = await t.api.events.publish.mutate({ type: "chat.dm", source: "boss", target: "away" });
    expect((await t.api.events.poll.mutate({ agentId: "away" })).map((e) => e.seq)).toEqual([live.seq, next.seq]);
    // An agent that never got a message has nothing it could have missed: [].
    expect(await rest(t.url, "GET", "/events/never-written-to")).toEqual({ status: 200, body: [] });
  });

  it("a fresh live stream for an agent starts with its unconsumed mailbox, then follows live events", async () => {
    await using t = await startTestServer();
    const consumed = await t.api.events.publish.mutate({ type: "dm", source: "s", target: "live" });
    await t.api.events.poll.mutate({ agentId: "live" });
    const waiting = await t.api.events.publish.mutate({ type: "dm", source: "s", target: "live" });
    await t.api.events.publish.mutate({ type: "dm", source: "s", target: "other" });
    const stream = collectEvents(t.api, { agentId: "live", types: ["news.*"] });
    await stream.started;
    const news = await t.api.events.publish.mutate({ type: "news.flash", source: "desk" });
    const next = await t.api.events.publish.mutate({ type: "dm", source: "s", target: "live" });
    await vi.waitFor(() => expect(stream.seqs()).toEqual([waiting.seq, news.seq, next.seq]), { timeout: 30_000, interval: 10 });
    expect(stream.seqs()).not.toContain(consumed.seq);
    stream.unsubscribe();
  });

  // The mailbox replay was tracked by its messages' seqs: a client that reconnected after it
  // resumed from the last message's seq, and got every older event its patterns matched, which
  // the stream had skipped on purpose (no lastEventId: new events only).
  it("a fresh agent stream's mailbox replay resumes where it was, and the events it skipped stay skipped", async () => {
    await using t = await startTestServer();
    await t.api.events.subscribe.mutate({ agentId: "ms", types: ["ms.*"] });
    const dms: number[] = [];
    for (let i = 0; i < 3; i++) dms.push((await t.api.events.publish.mutate({ type: "dm", source: "boss", target: "ms" })).seq);
    let edge = 0;
    for (let i = 0; i < 3; i++) edge = (await t.api.events.publish.mutate({ type: "ms.old", source: "s" })).seq;

    const fresh = collectEvents(t.api, { agentId: "ms" });
    await vi.waitFor(() => expect(fresh.seqs()).toEqual(dms), { timeout: 10_000 });
    expect(fresh.ids).toEqual(dms.map((seq) => `${seq}:${edge}`));
    fresh.unsubscribe();

    // Resumed after the first message, as the client does on a reconnect: the rest of the mailbox, then what is new.
    const resumed = collectEvents(t.api, { agentId: "ms", lastEventId: fresh.ids[0] });
    await resumed.started;
    const fresh2 = await t.api.events.publish.mutate({ type: "ms.new", source: "s" });
    await vi.waitFor(() => expect(resumed.seqs()).toEqual([dms[1], dms[2], fresh2.seq]), { timeout: 10_000 });
    expect(resumed.ids.at(-1)).toBe(String(fresh2.seq));
    resumed.unsubscribe();

    // Such an id is a position in one agent's mailbox: without the agent it means nothing.
    const stray = collectEvents(t.api, { lastEventId: fresh.ids[0] });
    await vi.waitFor(() => expect(stray.errors).toMatchObject([{ data: { code: "INVALID_INPUT" } }]), { timeout: 10_000 });
  });

  it("concurrent auto-ack polls by one agent never receive the same event, and together receive every one", async () => {
    await using t = await startTestServer();
    await t.api.events.subscribe.mutate({ agentId: "busy", types: ["job.*"] });
    const published: number[] = [];
    for (let i = 0; i < 60; i++) {
      const event = i % 3 === 0 ? { type: "dm", source: "s", target: "busy" } : { type: "job.run", source: "s" };
      published.push((await t.api.events.publish.mutate(event)).seq);
    }
    const received: number[] = [];
    await Promise.all(
      Array.from({ length: 8 }, async (_, i) => {
        for (;;) {
          const batch = await rest(t.url, "GET", `/events/busy?limit=${1 + (i % 4)}`);
          if (batch.body.length === 0) return;
          received.push(...batch.body.map((e: { seq: number }) => e.seq));
        }
      }),
    );
    expect(received.length).toBe(new Set(received).size);
    expect(received.sort((a, b) => a - b)).toEqual(published);
  });
});
