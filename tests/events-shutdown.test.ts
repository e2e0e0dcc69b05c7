// Live streams and shutdown: events.onEvent is served over WebSocket only (over server-sent events
// a stream had no backpressure and held stop() for shutdownTimeoutMs), and stop() ends open
// WebSocket streams at once, even one waiting for a client that does not read.
import superjson from "superjson";
import { describe, expect, it, vi } from "vitest";
import WebSocket from "ws";
import { createCoordinationClient } from "../client/index.js";
import { collectEvents, range } from "./helpers/event-collector.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

/** GET /trpc/events.onEvent, as an EventSource or httpSubscriptionLink would ask for it. */
function getOverSse(t: TestServer, signal: AbortSignal): Promise<Response> {
  const input = encodeURIComponent(JSON.stringify(superjson.serialize({ types: ["*"] })));
  return fetch(`${t.url}/trpc/events.onEvent?input=${input}`, { signal });
}

describe("events.onEvent and shutdown", () => {
  it("is not served over server-sent events: a GET or POST is a 405 naming the WebSocket, and starts no stream", async () => {
    await using t = await startTestServer();
    const internal = t.server.services.bus.listenerCount; // the server's own waiters
    // Bounded: before SSE was turned off this stream stayed open until the client went away.
    const response = await getOverSse(t, AbortSignal.timeout(5000));
    // tRPC answered 200 with a stream carrying the error alone: an EventSource took it for a stream that ended, and reconnected.
    expect(response.status).toBe(405);
    expect(response.headers.get("content-type")).toMatch(/^application\/json/);
    const expected = { message: "events.onEvent is served over WebSocket only", data: { code: "METHOD_NOT_ALLOWED", httpStatus: 405 } };
    expect(((await response.json()) as { error: { json: unknown } }).error.json).toMatchObject(expected);
    const posted = await fetch(`${t.url}/trpc/events.onEvent`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(superjson.serialize({})) });
    expect([posted.status, ((await posted.json()) as { error: { json: unknown } }).error.json]).toMatchObject([405, expected]);
    // No stream was started for them.
    expect(t.server.services.bus.listenerCount).toBe(internal);
    expect(t.server.services.events.liveStreams.size).toBe(0);
  });

  it("stop() ends open streams at once instead of waiting shutdownTimeoutMs", async () => {
    // Long, so "ended at once" and "waited the timeout out" cannot be confused on a loaded machine.
    const shutdownTimeoutMs = 30_000;
    const t = await startTestServer({ shutdownTimeoutMs, durability: "normal" });
    const client = createCoordinationClient({ url: t.url });
    let raw: WebSocket | undefined;
    try {
      const { events } = t.server.services;
      // Enough to fill the socket of a client that does not read (see events-backpressure).
      const blob = "x".repeat(16 * 1024);
      await Promise.all(range(1, 800).map((i) => events.publish({ type: "big.blob", source: "t", payload: { i, blob } })));

      const live = collectEvents(client.api, { types: ["*"] });
      await live.started;
      raw = new WebSocket(`${t.url.replace(/^http/, "ws")}/trpc`);
      await new Promise<void>((resolve, reject) => raw!.once("open", () => resolve()).once("error", reject));
      const input = superjson.serialize({ types: ["big.*"], lastEventId: "0" });
      raw.send(JSON.stringify({ id: 1, method: "subscription", params: { path: "events.onEvent", input } }));
      raw.pause();
      await vi.waitFor(() => expect([...events.liveStreams].map((s) => s.waitingForSocket).sort()).toEqual([false, true]), {
        timeout: 10_000,
        interval: 10,
      });
      // And a GET over SSE, which before the fix kept stop() waiting for the full timeout.
      const sse = await getOverSse(t, AbortSignal.timeout(10_000));

      const began = performance.now();
      await t.server.stop();
      const took = performance.now() - began;
      expect(took).toBeLessThan(shutdownTimeoutMs / 2);
      // Both streams ended themselves (the stats leave the set in the stream's finally).
      await vi.waitFor(() => expect(events.liveStreams.size).toBe(0), { timeout: 30_000, interval: 10 });
      await sse.body?.cancel();
    } finally {
      raw?.terminate();
      await client.close();
      await t.stop({ removeFiles: true });
    }
  });
});
