// The typed client's close(): the long-polls under way (a claim's wait, a task wait, a key watch,
// a log follow) are given up at once and reject, rather than holding close() until the server's
// maxWaitMs runs out; a call that is not a long-poll still gets its answer.
import { afterEach, describe, expect, it, vi } from "vitest";
import { createCoordinationClient, followLog, isClientClosed, mayHaveBeenServed, watchKey, watchKeys } from "../client/index.js";
import { parkedLongPolls } from "./helpers/mcp-http.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
afterEach(async () => {
  await t?.stop({ removeFiles: true });
  t = undefined;
});

describe("the client's close()", () => {
  it("gives up its parked long-polls, which reject; the server is left with none, and takes nothing for them", async () => {
    t = await startTestServer({ maxWaitMs: 300_000 });
    const { api } = t;
    const { id } = await api.tasks.enqueue.mutate({ queue: "watched" });
    const client = createCoordinationClient({ url: t.url });
    const outcome = (call: Promise<unknown>) => call.then(() => "answered", (error: unknown) => (error instanceof Error ? error.message : String(error)));
    const calls = [
      outcome(client.api.tasks.wait.query({ taskId: id, waitMs: 250_000 })),
      outcome(client.api.kv.get.query({ key: "k", afterVersion: 0, waitMs: 250_000 })),
      outcome(client.api.tasks.log.query({ taskId: id, waitMs: 250_000 })),
      outcome(client.api.tasks.claim.mutate({ agentId: "closer", queues: ["empty"], waitMs: 250_000, context: false })),
    ];
    await vi.waitFor(async () => {
      expect(await parkedLongPolls(t!.url, "wait")).toBe(1);
      expect(await parkedLongPolls(t!.url, "watch")).toBe(1);
      expect(await parkedLongPolls(t!.url, "follow")).toBe(1);
      expect(await parkedLongPolls(t!.url, "claim")).toBe(1);
    }, { timeout: 15_000, interval: 20 });
    // A write in flight as close() begins still gets its answer. (Batched, it is sent on a timer of
    // 0 ms: one of 10 ms fires after it, whatever the machine's speed.)
    const write = client.api.kv.set.mutate({ key: "written", value: 1 });
    await new Promise((resolve) => setTimeout(resolve, 10));
    await client.close();
    expect(await write).toMatchObject({ key: "written", version: 1 });
    expect(await Promise.all(calls)).toEqual(Array.from({ length: 4 }, () => "the client was closed while this call waited (a long-poll): it was given up"));
    await vi.waitFor(async () => {
      for (const kind of ["wait", "watch", "follow", "claim"] as const) expect(await parkedLongPolls(t!.url, kind), kind).toBe(0);
    }, { timeout: 15_000, interval: 20 });
    // The claim given up leased nothing: a task enqueued now waits for the next claim.
    const later = await api.tasks.enqueue.mutate({ queue: "empty" });
    expect((await api.tasks.get.query({ taskId: later.id })).status).toBe("pending");
    // Closed, a long-poll sent after it is given up at once too; a follow or a watch, which ask
    // again through outages, end rather than asking a closed client for ever.
    expect(await outcome(client.api.tasks.wait.query({ taskId: id, waitMs: 250_000 }))).toBe("the client was closed: a call made after close() is refused");
    await expect(followLog(client.api, { taskId: id }).next()).rejects.toThrow("the client was closed: a call made after close() is refused");
    await expect(watchKey(client.api, { key: "k", afterVersion: 0 }).next()).rejects.toThrow("the client was closed: a call made after close() is refused");
    await expect(client.api.tasks.get.query({ taskId: id })).rejects.toThrow("the client was closed: a call made after close() is refused");
  });

  it("a call given a signal aborted already rejects with its reason, batched or long-polling", async () => {
    t = await startTestServer();
    const stopped = AbortSignal.abort(new Error("stopped before it began"));
    await expect(t.api.tasks.get.query({ taskId: "any" }, { signal: stopped })).rejects.toThrow("stopped before it began");
    await expect(t.api.tasks.wait.query({ taskId: "any", waitMs: 1000 }, { signal: stopped })).rejects.toThrow("stopped before it began");
    // Nothing was sent: the server saw no call for the task.
    expect((await t.api.tasks.list.query({})).items).toEqual([]);
  });

  it("a stream opened after close() is refused, and opens no socket; a call after close() is refused with a fetch of the caller's too", async () => {
    t = await startTestServer();
    const closes: Array<number | undefined> = [];
    const client = createCoordinationClient({ url: t.url, onSocketClose: (code) => closes.push(code) });
    const before: string[] = [];
    client.api.events.onEvent.subscribe({ types: ["closing.*"] }, { onData: ({ id }) => before.push(id), onStarted: () => before.push("started") });
    await vi.waitFor(() => expect(before).toEqual(["started"]), { timeout: 10_000, interval: 20 });
    await client.close();
    await vi.waitFor(() => expect(closes).toHaveLength(1), { timeout: 10_000, interval: 20 });
    // Before: tRPC's lazy WebSocket opened a new socket for it and delivered events to the closed
    // client; with its server gone, it tried to reconnect for ever, keeping the process up.
    const after: string[] = [];
    const refusals: unknown[] = [];
    for (const input of [{ types: ["closing.*"] }, { types: ["closing.*"], lastEventId: "0" }, { agentId: "closed-reader" }]) {
      client.api.events.onEvent.subscribe(input, { onData: ({ id }) => after.push(id), onStarted: () => after.push("started"), onError: (error) => refusals.push(error) });
    }
    await vi.waitFor(() => expect(refusals).toHaveLength(3), { timeout: 10_000, interval: 20 });
    expect(refusals.map((error) => [isClientClosed(error), mayHaveBeenServed(error), (error as Error).message])).toEqual(
      Array.from({ length: 3 }, () => [true, false, "the client was closed: a call made after close() is refused"]),
    );
    const watched = watchKeys(client.api, { prefix: "closing/" });
    expect(isClientClosed(await watched.next().then(() => undefined, (error: unknown) => error))).toBe(true);
    // Published after: the refused streams got nothing, and no socket was opened and closed again.
    const { seq } = await t.api.events.publish.mutate({ type: "closing.after", source: "test" });
    await vi.waitFor(async () => expect((await t!.api.events.list.query({ types: ["closing.*"] })).map((e) => e.seq)).toEqual([seq]), { timeout: 10_000, interval: 20 });
    expect({ before, after, closes: closes.length }).toEqual({ before: ["started"], after: [], closes: 1 });
    // A client given a fetch of its own has no pool of its own to close: its calls after close()
    // were sent and answered as if it were open.
    const withFetch = createCoordinationClient({ url: t.url, fetch: globalThis.fetch as never });
    expect((await withFetch.api.events.head.query()).head).toBe(seq);
    await withFetch.close();
    const refused = await withFetch.api.events.publish.mutate({ type: "closing.late", source: "test" }).then(() => undefined, (error: unknown) => error);
    expect([isClientClosed(refused), mayHaveBeenServed(refused), (refused as Error).message]).toEqual([true, false, "the client was closed: a call made after close() is refused"]);
    expect((await t.api.events.head.query()).head).toBe(seq);
  });
});
