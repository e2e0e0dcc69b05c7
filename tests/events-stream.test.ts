// The live WebSocket stream (events.onEvent): complete, ordered fan-out to several clients, and
// resuming by lastEventId after a disconnect with no gap and no duplicate.
import { describe, expect, it, vi } from "vitest";
import { createCoordinationClient, type CoordinationClient } from "../client/index.js";
import { collectEvents, range, type Collector } from "./helpers/event-collector.js";
import { startTestServer } from "./helpers/test-server.js";

/** Publishes `count` events of `type` from `publishers` concurrent loops; returns every seq, sorted. */
async function publishConcurrently(api: CoordinationClient["api"], type: string, count: number, publishers = 4): Promise<number[]> {
  const seqs: number[] = [];
  let next = 0;
  await Promise.all(
    range(1, publishers).map(async (publisher) => {
      while (next < count) {
        const i = next++;
        seqs.push((await api.events.publish.mutate({ type, source: `publisher-${publisher}`, payload: { i } })).seq);
      }
    }),
  );
  return seqs.sort((a, b) => a - b);
}

describe("a subscription the server refuses", () => {
  it("gets its error at once while another subscription keeps the socket open", async () => {
    await using t = await startTestServer();
    const live = collectEvents(t.api, { types: ["tick"] });
    await live.started;
    const refused = collectEvents(t.api, { types: [""] });
    // The refusal comes on the socket the live subscription keeps open, and that subscription goes
    // on. (Not "before the next event": the publish goes over HTTP, and on a loaded machine it was
    // served before the client had sent the refused subscription on the socket.)
    await vi.waitFor(() => expect(refused.errors.map((error) => (error as { data: { code: string } }).data.code)).toEqual(["INVALID_INPUT"]), { timeout: 10_000, interval: 10 });
    await t.api.events.publish.mutate({ type: "tick", source: "test" });
    await vi.waitFor(() => expect(live.events).toHaveLength(1), { timeout: 10_000, interval: 10 });
    expect(refused.events).toEqual([]);
    live.unsubscribe();
  });
});

describe("events.onEvent over WebSocket", () => {
  it("three clients each receive all 1,000 events, in seq order, as tracked { id, data } envelopes", async () => {
    await using t = await startTestServer({ durability: "normal" });
    const clients = range(1, 3).map(() => createCoordinationClient({ url: t.url }));
    try {
      const streams = clients.map((c) => collectEvents(c.api, { types: ["load.*"] }));
      await Promise.all(streams.map((s) => s.started));
      const noise = t.api.events.publish.mutate({ type: "noise.x", source: "t" });
      const seqs = await publishConcurrently(t.api, "load.tick", 1000, 8);
      await noise;
      expect(seqs).toHaveLength(1000);
      expect(new Set(seqs).size).toBe(1000);

      for (const stream of streams) {
        await vi.waitFor(() => expect(stream.events.length).toBeGreaterThanOrEqual(1000), { timeout: 10_000, interval: 20 });
        expect(stream.seqs()).toEqual(seqs);
        expect(stream.ids).toEqual(seqs.map(String));
        expect(stream.events.every((e) => e.type === "load.tick" && e.createdAt instanceof Date)).toBe(true);
        expect(stream.errors).toEqual([]);
      }
      // Every publisher's events arrive in the order it published them, and every payload is there once.
      const payloads = streams[0]!.events.map((e) => (e.payload as { i: number }).i);
      expect([...payloads].sort((a, b) => a - b)).toEqual(range(0, 999));
      for (const source of new Set(streams[0]!.events.map((e) => e.source))) {
        const own = streams[0]!.events.filter((e) => e.source === source).map((e) => (e.payload as { i: number }).i);
        expect(own).toEqual([...own].sort((a, b) => a - b));
      }
      for (const stream of streams) stream.unsubscribe();
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
  });

  it("resumes after a disconnect with lastEventId: exactly the events published after the last one seen", async () => {
    await using t = await startTestServer();
    const { api } = t;
    const first = createCoordinationClient({ url: t.url });
    const N = 20;
    let lastSeen = 0;
    const seenBeforeDisconnect: number[] = [];
    let reachedN!: () => void;
    const gotN = new Promise<void>((resolve) => (reachedN = resolve));
    const stream = collectEvents(first.api, { types: ["job.*"] }, (event, c) => {
      // The consumer stops after N events, as if it crashed: later deliveries are never processed.
      if (seenBeforeDisconnect.length === N) return;
      seenBeforeDisconnect.push(event.seq);
      lastSeen = event.seq;
      if (seenBeforeDisconnect.length === N) {
        c.unsubscribe();
        reachedN();
      }
    });
    await stream.started;
    const before = await publishConcurrently(api, "job.before", 50);
    await gotN;
    await first.close();
    expect(seenBeforeDisconnect).toEqual(before.slice(0, N));

    const whileAway = await publishConcurrently(api, "job.away", 30);
    await api.events.publish.mutate({ type: "other.noise", source: "t" });
    const second = createCoordinationClient({ url: t.url });
    try {
      const resumed = collectEvents(second.api, { types: ["job.*"], lastEventId: String(lastSeen) });
      await resumed.started;
      const after = await publishConcurrently(api, "job.after", 10, 2);
      const end = await api.events.publish.mutate({ type: "job.end", source: "t" });
      await vi.waitFor(() => expect(resumed.seqs().at(-1)).toBe(end.seq), { timeout: 30_000, interval: 10 });
      expect(resumed.seqs()).toEqual([...before.slice(N), ...whileAway, ...after, end.seq]);
      expect(resumed.errors).toEqual([]);
      resumed.unsubscribe();
    } finally {
      await second.close();
    }
  });

  it("the client reconnects by itself after the server restarts and resumes with no gap and no duplicate", async () => {
    const t1 = await startTestServer();
    const client = createCoordinationClient({ url: t1.url });
    let t2: Awaited<ReturnType<typeof startTestServer>> | undefined;
    try {
      const stream = collectEvents(client.api, { types: ["job.*"] });
      await stream.started;
      const before = await publishConcurrently(t1.api, "job.before", 25, 2);
      await vi.waitFor(() => expect(stream.seqs()).toEqual(before), { timeout: 30_000, interval: 10 });

      // Same file, same port: the client's WebSocket drops and it reconnects with lastEventId.
      await t1.stop();
      t2 = await startTestServer({ port: t1.server.port }, t1.dir);
      // Published in-process: fetch's keep-alive pool may still hold a socket to the old server
      // on this very origin, and a POST over it fails ("other side closed") rather than retrying.
      const events = t2.server.services.events;
      const after: number[] = [];
      for (const i of range(1, 25)) after.push((await events.publish({ type: "job.after", source: "t", payload: { i } })).seq);
      const end = await events.publish({ type: "job.end", source: "t", payload: {} });
      await vi.waitFor(() => expect(stream.seqs().at(-1)).toBe(end.seq), { timeout: 10_000, interval: 20 });
      expect(stream.seqs()).toEqual([...before, ...after, end.seq]);
      expect(stream.errors).toEqual([]);
      stream.unsubscribe();
    } finally {
      await client.close();
      await t2?.stop();
      await t1.stop({ removeFiles: true });
    }
  });

  it("a stream that received nothing yet misses nothing published while it was away: it resumes from where it opened", async () => {
    const t1 = await startTestServer();
    const client = createCoordinationClient({ url: t1.url });
    let t3: Awaited<ReturnType<typeof startTestServer>> | undefined;
    try {
      await t1.api.events.publish.mutate({ type: "other.before", source: "t" });
      const stream = collectEvents(client.api, { types: ["gap.*"] });
      await stream.started;
      await t1.api.events.publish.mutate({ type: "other.x", source: "t" });
      await t1.stop();
      // Published on the same file while the stream's server is down (a second server on another port).
      const t2 = await startTestServer({}, t1.dir);
      const during = await t2.server.services.events.publish({ type: "gap.during", source: "t", payload: {} });
      await t2.stop();
      t3 = await startTestServer({ port: t1.server.port }, t1.dir);
      const after = await t3.server.services.events.publish({ type: "gap.after", source: "t", payload: {} });
      await vi.waitFor(() => expect(stream.seqs().at(-1)).toBe(after.seq), { timeout: 15_000, interval: 25 });
      expect(stream.seqs()).toEqual([during.seq, after.seq]);
      expect(stream.errors).toEqual([]);
      stream.unsubscribe();
    } finally {
      await client.close();
      await t3?.stop();
      await t1.stop({ removeFiles: true });
    }
  });

  it("150 streams opened at once on one socket all start, and all resume after a restart: no frame passes the server's maxBatchCalls", async () => {
    const t1 = await startTestServer({ maxSubscriptionsPerSocket: 500 });
    const client = createCoordinationClient({ url: t1.url });
    let t2: Awaited<ReturnType<typeof startTestServer>> | undefined;
    try {
      const streams = range(1, 150).map(() => collectEvents(client.api, { types: ["many.*"], lastEventId: "0" }));
      let started = false;
      void Promise.all(streams.map((s) => s.started)).then(() => (started = true));
      await vi.waitFor(() => expect([streams.flatMap((s) => s.errors.map(String)), started]).toEqual([[], true]), { timeout: 15_000, interval: 25 });
      const first = await t1.api.events.publish.mutate({ type: "many.first", source: "t" });
      for (const s of streams) await vi.waitFor(() => expect(s.seqs()).toEqual([first.seq]), { timeout: 15_000, interval: 25 });
      await t1.stop();
      // Every stream is sent again on the new socket, together.
      t2 = await startTestServer({ port: t1.server.port, maxSubscriptionsPerSocket: 500 }, t1.dir);
      const second = await t2.server.services.events.publish({ type: "many.second", source: "t", payload: {} });
      for (const s of streams) await vi.waitFor(() => expect(s.seqs()).toEqual([first.seq, second.seq]), { timeout: 15_000, interval: 25 });
      expect(streams.flatMap((s) => s.errors)).toEqual([]);
      for (const s of streams) s.unsubscribe();
    } finally {
      await client.close();
      await t2?.stop();
      await t1.stop({ removeFiles: true });
    }
  });

  it("with agentId, follows the agent's subscription plus the request's own types, and its direct messages", async () => {
    await using t = await startTestServer();
    const { api } = t;
    await api.events.subscribe.mutate({ agentId: "a1", types: ["task.*"] });
    const streams: Collector[] = [
      collectEvents(api, { agentId: "a1" }),
      collectEvents(api, { agentId: "a1", types: ["build.*"] }),
      collectEvents(api, { agentId: "no-subscription" }),
    ];
    await Promise.all(streams.map((s) => s.started));
    const task = await api.events.publish.mutate({ type: "task.claimed", source: "t" });
    const build = await api.events.publish.mutate({ type: "build.done", source: "t" });
    const direct = await api.events.publish.mutate({ type: "chat.dm", source: "t", target: "a1" });
    const other = await api.events.publish.mutate({ type: "chat.dm", source: "t", target: "no-subscription" });
    const end = await api.events.publish.mutate({ type: "task.end", source: "t" });
    for (const s of streams.slice(0, 2)) await vi.waitFor(() => expect(s.seqs().at(-1)).toBe(end.seq), { timeout: 30_000, interval: 10 });
    await vi.waitFor(() => expect(streams[2]!.seqs()).toContain(other.seq), { timeout: 30_000, interval: 10 });
    expect(streams[0]!.seqs()).toEqual([task.seq, direct.seq, end.seq]);
    expect(streams[1]!.seqs()).toEqual([task.seq, build.seq, direct.seq, end.seq]);
    // An agent with no subscription follows its mailbox alone, as its poll does: no patterns, no broadcast events.
    expect(streams[2]!.seqs()).toEqual([other.seq]);
    expect((await api.events.poll.mutate({ agentId: "no-subscription", ack: "manual" })).map((e) => e.seq)).toEqual([other.seq]);
    for (const s of streams) s.unsubscribe();
  });
});
