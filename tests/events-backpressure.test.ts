// Backpressure: a WebSocket subscriber that stops reading is cut off (close code 1013) once it
// falls more than subscriptionBufferEvents behind, instead of growing the server's memory; it
// then resumes by lastEventId. Other subscribers are not held back meanwhile.
import superjson from "superjson";
import { describe, expect, it, vi } from "vitest";
import WebSocket from "ws";
import { collectEvents, range } from "./helpers/event-collector.js";
import { startTestServer } from "./helpers/test-server.js";

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
    const fast = collectEvents(api, { types: ["big.*"] });
    await fast.started;

    // A raw tRPC WebSocket client, so we control when its socket is read.
    const slow = new WebSocket(`${t.url.replace(/^http/, "ws")}/trpc`);
    const messages: RawMessage[] = [];
    const closed = new Promise<{ code: number; reason: string }>((resolve) =>
      slow.on("close", (code, reason) => resolve({ code, reason: reason.toString() })),
    );
    slow.on("message", (data) => messages.push(JSON.parse(String(data)) as RawMessage));
    await new Promise<void>((resolve, reject) => slow.once("open", () => resolve()).once("error", reject));
    const input = superjson.serialize({ types: ["big.*"] });
    slow.send(JSON.stringify({ id: 1, method: "subscription", params: { path: "events.onEvent", input } }));
    await vi.waitFor(() => expect(messages.some((m) => m.result?.type === "started")).toBe(true), { timeout: 5000, interval: 5 });
    expect(bus.listenerCount).toBe(2);

    // Stop reading: the kernel buffers fill, then the socket's own buffer, then the stream's buffer.
    slow.pause();
    const blob = "x".repeat(64 * 1024);
    const published: number[] = [];
    for (let round = 0; bus.listenerCount === 2; round++) {
      // Bounded: far beyond socket buffers (a few MB) plus 50 events, so the loop cannot spin forever.
      expect(round, "the slow subscriber was never dropped").toBeLessThan(400);
      const batch = await Promise.all(range(1, 8).map((i) => api.events.publish.mutate({ type: "big.blob", source: "t", payload: { i, blob } })));
      published.push(...batch.map((e) => e.seq).sort((a, b) => a - b));
    }
    // The slow stream left the bus; the fast one is still attached.
    expect(bus.listenerCount).toBe(1);

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
});
