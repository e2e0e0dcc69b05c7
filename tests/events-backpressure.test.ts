// Backpressure: a WebSocket subscriber that stops reading is cut off (close code 1013) once it
// falls more than subscriptionBufferEvents (or subscriptionBufferBytes) behind, instead of growing the server's memory; it
// then resumes by lastEventId. Other subscribers are not held back meanwhile. A resume from an
// old lastEventId (a backfill from the log) also waits for the socket instead of filling it.
import superjson from "superjson";
import { describe, expect, it, vi } from "vitest";
import WebSocket from "ws";
import { SOCKET_HIGH_WATER } from "../src/events/event-stream.js";
import { collectEvents, range } from "./helpers/event-collector.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

interface RawMessage {
  id: number | null;
  result?: { type: string; id?: string; data?: unknown };
  error?: unknown;
}

describe("slow WebSocket subscribers", () => {
  it("are closed with 1013 after falling more than subscriptionBufferEvents behind, and resume without a gap", async () => {
    await using t = await startTestServer({ subscriptionBufferEvents: 50, durability: "normal" });
    const { api } = t;
    const bus = t.server.services.bus;
    const internal = bus.listenerCount; // the server's own waiters listen too
    const fast = collectEvents(api, { types: ["big.*"] });
    await fast.started;

    // A raw tRPC WebSocket client, so we control when its socket is read.
    const slow = new WebSocket(`${t.url.replace(/^http/, "ws")}/trpc`);
    const messages: RawMessage[] = [];
    const closed = new Promise<{ code: number; reason: string }>((resolve) =>
      slow.on("close", (code, reason) => resolve({ code, reason: reason.toString() })),
    );
    slow.on("message", (data) => (String(data) === "PING" ? slow.send("PONG") : messages.push(JSON.parse(String(data)) as RawMessage)));
    await new Promise<void>((resolve, reject) => slow.once("open", () => resolve()).once("error", reject));
    const input = superjson.serialize({ types: ["big.*"] });
    slow.send(JSON.stringify({ id: 1, method: "subscription", params: { path: "events.onEvent", input } }));
    await vi.waitFor(() => expect(messages.some((m) => m.result?.type === "started")).toBe(true), { timeout: 30_000, interval: 5 });
    expect(bus.listenerCount).toBe(internal + 2);

    // Stop reading: the kernel buffers fill, then the socket's own buffer, then the stream's buffer.
    slow.pause();
    const blob = "x".repeat(64 * 1024);
    const published: number[] = [];
    for (let round = 0; bus.listenerCount === internal + 2; round++) {
      // Bounded: far beyond socket buffers (a few MB) plus 50 events, so the loop cannot spin forever.
      expect(round, "the slow subscriber was never dropped").toBeLessThan(400);
      const batch = await Promise.all(range(1, 8).map((i) => api.events.publish.mutate({ type: "big.blob", source: "t", payload: { i, blob } })));
      published.push(...batch.map((e) => e.seq).sort((a, b) => a - b));
    }
    // The slow stream left the bus; the fast one is still attached.
    expect(bus.listenerCount).toBe(internal + 1);

    slow.resume();
    const { code, reason } = await closed;
    expect(code).toBe(1013);
    const match = /fell more than 50 events behind; resume with lastEventId (\d+)/.exec(reason);
    expect(match, reason).not.toBeNull();
    const resumeFrom = Number(match![1]);
    // Everything up to the cursor in the close reason was delivered, in order, and nothing after it.
    const delivered = messages.filter((m) => m.result?.type === "data").map((m) => Number(m.result!.id));
    expect(delivered).toEqual(published.filter((seq) => seq <= resumeFrom));
    expect(delivered.length).toBeGreaterThan(0);
    expect(resumeFrom).toBeLessThan(published.at(-1)!);

    // Resuming with the lastEventId from the close reason gets exactly the rest.
    const resumed = collectEvents(api, { types: ["big.*"], lastEventId: String(resumeFrom) });
    await resumed.started;
    const end = await api.events.publish.mutate({ type: "big.end", source: "t" });
    await vi.waitFor(() => expect(resumed.seqs().at(-1)).toBe(end.seq), { timeout: 10_000, interval: 20 });
    expect(resumed.seqs()).toEqual([...published.filter((seq) => seq > resumeFrom), end.seq]);

    // The fast subscriber got every event while the slow one was stuck.
    await vi.waitFor(() => expect(fast.seqs().at(-1)).toBe(end.seq), { timeout: 10_000, interval: 20 });
    expect(fast.seqs()).toEqual([...published, end.seq]);
    expect(fast.errors).toEqual([]);
    fast.unsubscribe();
    resumed.unsubscribe();
  });

  it("a backfill from an old lastEventId waits for a paused socket, then delivers everything in order", async () => {
    await using t = await startTestServer({ durability: "normal" });
    const published = await publishBlobs(t, BACKLOG_EVENTS);
    const streams = t.server.services.events.liveStreams;

    const slow = await openRawSubscription(t, "0");
    await vi.waitFor(() => expect(streams.size).toBe(1), { timeout: 30_000, interval: 5 });
    const [stream] = streams;
    // The stream stops yielding once the socket holds more than the high-water mark...
    await vi.waitFor(() => expect(stream!.waitingForSocket).toBe(true), { timeout: 10_000, interval: 10 });
    // ...long before the whole log is in flight (kernel buffers hold a few MB; the log is 32 MB).
    expect(stream!.sent).toBeLessThan(BACKLOG_EVENTS / 2);

    slow.socket.resume();
    // 32 MB through a WebSocket: on a machine with both cores busy this took over 20 s once, and
    // past 90 s at a load average of 11 on two cores: waited for, as long as it takes.
    await vi.waitFor(() => expect(slow.data()).toHaveLength(BACKLOG_EVENTS), { timeout: 400_000, interval: 50 });
    expect(slow.data().map((m) => Number(m.result!.id))).toEqual(published);
    expect(stream!.sent).toBe(BACKLOG_EVENTS);
    // Never more than one message above the mark: the check runs before every send.
    const largestFrame = Math.max(...slow.raw.map((m) => m.length)) + MAX_FRAME_HEADER;
    expect(stream!.peakSocketBacklog).toBeGreaterThan(SOCKET_HIGH_WATER);
    expect(stream!.peakSocketBacklog).toBeLessThanOrEqual(SOCKET_HIGH_WATER + largestFrame);
    slow.socket.close();
    await vi.waitFor(() => expect(streams.size).toBe(0), { timeout: 30_000, interval: 10 });
  }, 600_000);

  // Live events overflow the buffer while the backfill waits for the socket: the stream ends at
  // once, by either bound. Events may be 1 MiB each: 10,000 of them (the count's default) would
  // be 10 GB of memory, so the bytes are bounded too.
  it.each([
    { bound: "subscriptionBufferEvents", settings: { subscriptionBufferEvents: 50 }, live: 51, blob: "", reason: "50 events" },
    { bound: "subscriptionBufferBytes", settings: { subscriptionBufferBytes: 65_536 }, live: 5, blob: "x".repeat(16 * 1024), reason: "65536 bytes" },
  ])("a backfill held back by the socket still closes with 1013 when live events overflow $bound", async ({ settings, live: count, blob, reason: bound }) => {
    await using t = await startTestServer({ durability: "normal", ...settings });
    const { api } = t;
    const published = await publishBlobs(t, BACKLOG_EVENTS);
    const streams = t.server.services.events.liveStreams;
    const slow = await openRawSubscription(t, "0");
    await vi.waitFor(() => expect([...streams].some((s) => s.waitingForSocket), JSON.stringify([...streams])).toBe(true), { timeout: 10_000, interval: 10 });

    const live: number[] = [];
    for (const i of range(1, count)) live.push((await api.events.publish.mutate({ type: "big.live", source: "t", payload: { i, blob } })).seq);
    await vi.waitFor(() => expect(streams.size).toBe(0), { timeout: 30_000, interval: 10 });

    slow.socket.resume();
    const { code, reason } = await slow.closed;
    expect(code).toBe(1013);
    const match = new RegExp(`^subscriber fell more than ${bound} behind; resume with lastEventId (\\d+)$`).exec(reason);
    expect(match, reason).not.toBeNull();
    const resumeFrom = Number(match![1]);
    expect(resumeFrom).toBeLessThan(BACKLOG_EVENTS);
    // Closed mid-backfill: exactly the events up to the cursor in the reason were delivered.
    expect(slow.data().map((m) => Number(m.result!.id))).toEqual(published.filter((seq) => seq <= resumeFrom));

    const resumed = collectEvents(api, { types: ["big.*"], lastEventId: String(resumeFrom) });
    await vi.waitFor(() => expect(resumed.seqs().at(-1)).toBe(live.at(-1)), { timeout: 20_000, interval: 20 });
    expect(resumed.seqs()).toEqual([...published.filter((seq) => seq > resumeFrom), ...live]);
    expect(resumed.errors).toEqual([]);
    resumed.unsubscribe();
  });
});

/** 2,000 events of 16 KB: far more than the kernel's socket buffers and the 1 MB high-water mark. */
const BACKLOG_EVENTS = 2000;
/** An unmasked server frame's header is at most 10 bytes. */
const MAX_FRAME_HEADER = 10;

/** Publishes `count` big.blob events in-process (group-committed), returns their seqs in order. */
async function publishBlobs(t: TestServer, count: number): Promise<number[]> {
  const blob = "x".repeat(16 * 1024);
  const seqs: number[] = [];
  for (let from = 1; from <= count; from += 250) {
    const batch = range(from, Math.min(from + 249, count)).map((i) => t.server.services.events.publish({ type: "big.blob", source: "t", payload: { i, blob } }));
    seqs.push(...(await Promise.all(batch)).map((e) => e.seq));
  }
  return seqs.sort((a, b) => a - b);
}

/** A raw tRPC WebSocket subscription to big.* from `lastEventId`, paused before anything arrives. */
async function openRawSubscription(t: TestServer, lastEventId: string) {
  const socket = new WebSocket(`${t.url.replace(/^http/, "ws")}/trpc`);
  const raw: Buffer[] = [];
  // The server's keep-alive pings (every 30 s) are answered, not taken for data: on a loaded machine this test can outlast one.
  socket.on("message", (data: Buffer) => (String(data) === "PING" ? socket.send("PONG") : raw.push(data)));
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    socket.on("close", (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  await new Promise<void>((resolve, reject) => socket.once("open", () => resolve()).once("error", reject));
  const input = superjson.serialize({ types: ["big.*"], lastEventId });
  socket.send(JSON.stringify({ id: 1, method: "subscription", params: { path: "events.onEvent", input } }));
  socket.pause();
  const data = () => raw.map((m) => JSON.parse(String(m)) as RawMessage).filter((m) => m.result?.type === "data");
  return { socket, raw, closed, data };
}
