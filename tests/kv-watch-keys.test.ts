// watchKeys: the keys under a prefix, watched (who is here, who works on what): those present
// first, then each change as the event log tells it, read back from the key, each version once;
// keys tied to an agent's life come and go with it.
import { afterEach, describe, expect, it, vi } from "vitest";
import { TRPCClientError } from "@trpc/client";
import { createCoordinationClient, isClientClosed, watchKeys, type CoordinationClient, type KeyChange } from "../client/index.js";
import { promptly } from "./helpers/task-waits.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
const clients: CoordinationClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.close()));
  await t?.stop({ removeFiles: true });
  t = undefined;
});

/** A server of its own (`settings`), and a client of it closed after the test. */
async function connected(settings: Parameters<typeof startTestServer>[0] = {}): Promise<CoordinationClient> {
  t = await startTestServer(settings);
  const client = createCoordinationClient({ url: t.url });
  clients.push(client);
  return client;
}

/** A change as [key, value or null]: what the tests compare. */
const shown = ({ key, entry }: KeyChange) => [key, entry === null ? null : entry.value] as const;

describe("watchKeys", () => {
  it("an empty prefix watches every key, as its option says (kv.list takes no empty prefix: none is sent)", async () => {
    const { api } = await connected();
    await api.kv.set.mutate({ key: "b", value: 1 });
    await api.kv.set.mutate({ key: "a/x", value: 2 });
    const stop = new AbortController();
    const watch = watchKeys(api, { prefix: "", signal: stop.signal });
    const next = async () => shown((await promptly(watch.next())).value as KeyChange);
    expect([await next(), await next()]).toEqual([
      ["a/x", 2],
      ["b", 1],
    ]);
    await api.kv.delete.mutate({ key: "b" });
    await api.kv.set.mutate({ key: "c", value: 3 });
    expect([await next(), await next()]).toEqual([
      ["b", null],
      ["c", 3],
    ]);
    stop.abort();
    expect(await promptly(watch.next())).toEqual({ done: true, value: undefined });
  });

  it("yields the prefix's keys, then each set, delete and agent's going as it comes; other keys are not seen", async () => {
    const client = await connected({ agentHealthCheckMs: 60_000 });
    const { api } = client;
    await api.kv.set.mutate({ key: "presence/b", value: "B" });
    await api.kv.set.mutate({ key: "presence/a", value: "A" });
    await api.kv.set.mutate({ key: "elsewhere", value: 0 });
    const stop = new AbortController();
    const watch = watchKeys(api, { prefix: "presence/", signal: stop.signal });
    const next = async () => shown((await promptly(watch.next())).value as KeyChange);
    expect([await next(), await next()]).toEqual([
      ["presence/a", "A"],
      ["presence/b", "B"],
    ]);
    await api.kv.set.mutate({ key: "presence/w", value: "here", agentId: "w", ephemeral: true });
    await api.kv.set.mutate({ key: "elsewhere", value: 1 });
    await api.kv.set.mutate({ key: "presence/a", value: "A2" });
    await api.kv.delete.mutate({ key: "presence/b" });
    expect([await next(), await next(), await next()]).toEqual([
      ["presence/w", "here"],
      ["presence/a", "A2"],
      ["presence/b", null],
    ]);
    // The agent goes: its key with it.
    await api.agents.deregister.mutate({ agentId: "w" });
    expect(await next()).toEqual(["presence/w", null]);
    // Stopped while it waits for the next change: it ends.
    const waiting = watch.next();
    stop.abort();
    expect(await promptly(waiting)).toEqual({ done: true, value: undefined });
    expect(await promptly(watch.next())).toEqual({ done: true, value: undefined });
  });

  it("past maxPending changes not read, lists the prefix again: the newest state of each key, null for those gone", async () => {
    const client = await connected();
    const { api } = client;
    await api.kv.set.mutate({ key: "p/old", value: 0 });
    const stop = new AbortController();
    // Every change overflows: each is read from a new listing.
    const watch = watchKeys(api, { prefix: "p/", signal: stop.signal, maxPending: 0 });
    const next = async () => shown((await promptly(watch.next())).value as KeyChange);
    expect(await next()).toEqual(["p/old", 0]);
    await api.kv.set.mutate({ key: "p/1", value: 1 });
    await api.kv.set.mutate({ key: "p/1", value: 11 });
    await api.kv.set.mutate({ key: "p/2", value: 2 });
    await api.kv.delete.mutate({ key: "p/old" });
    const changes: Array<readonly [string, unknown]> = [];
    while (changes.length < 3) changes.push(await next());
    // Each key's newest state once, whichever way they were read (events or listings).
    expect(changes.map(([key]) => key).sort()).toEqual(["p/1", "p/2", "p/old"]);
    expect(Object.fromEntries(changes)).toEqual({ "p/1": 11, "p/2": 2, "p/old": null });
    stop.abort();
    expect(await promptly(watch.next())).toEqual({ done: true, value: undefined });
  });
});

describe("watchKeys: ends and failures (a review)", () => {
  /** `answer` within `ms`, or "still waiting". */
  const within = <T>(answer: Promise<T>, ms = 5000) => Promise.race([answer, new Promise<"still waiting">((resolve) => setTimeout(() => resolve("still waiting"), ms).unref())]);

  it("the client closed while it waits: the watch ends with ClientClosedError, as watchKey's does, instead of waiting for ever", async () => {
    t = await startTestServer();
    const client = createCoordinationClient({ url: t.url });
    const { api } = client;
    await api.kv.set.mutate({ key: "p/a", value: 1 });
    const watch = watchKeys(api, { prefix: "p/" });
    expect(shown((await promptly(watch.next())).value as KeyChange)).toEqual(["p/a", 1]);
    const waiting = watch.next().then(
      () => "returned",
      (error: unknown) => (isClientClosed(error) ? "client closed" : String(error)),
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    await client.close();
    expect(await within(waiting)).toBe("client closed");
  });

  it("a signal aborted before the watch starts (or while it reads the head) ends it: done, not an AbortError", async () => {
    const client = await connected();
    const stop = new AbortController();
    stop.abort();
    const watch = watchKeys(client.api, { prefix: "p/", signal: stop.signal });
    expect(await promptly(watch.next())).toEqual({ done: true, value: undefined });
  });

  it("keys that came and went are forgotten: what it keeps grows with the keys present, not with every key ever seen", async () => {
    const client = await connected();
    const { api } = client;
    // The maps the watch keeps keys in: every Map a "churn/" key is set in.
    const set = vi.spyOn(Map.prototype, "set");
    try {
      const stop = new AbortController();
      const watch = watchKeys(api, { prefix: "churn/", signal: stop.signal });
      const first = watch.next();
      await api.kv.set.mutate({ key: "churn/0", value: 0 });
      expect(shown((await promptly(first)).value as KeyChange)).toEqual(["churn/0", 0]);
      await api.kv.delete.mutate({ key: "churn/0" });
      expect(shown((await promptly(watch.next())).value as KeyChange)).toEqual(["churn/0", null]);
      for (let n = 1; n <= 20; n++) {
        await api.kv.set.mutate({ key: `churn/${n}`, value: n });
        expect(shown((await promptly(watch.next())).value as KeyChange)).toEqual([`churn/${n}`, n]);
        await api.kv.delete.mutate({ key: `churn/${n}` });
        expect(shown((await promptly(watch.next())).value as KeyChange)).toEqual([`churn/${n}`, null]);
      }
      const maps = new Set(set.mock.contexts.filter((_, i) => String(set.mock.calls[i]![0]).startsWith("churn/")) as Array<Map<unknown, unknown>>);
      expect(maps.size).toBeGreaterThan(0);
      // None of the 21 keys is there any more: none is kept.
      expect([...maps].map((map) => [...map.keys()].filter((key) => String(key).startsWith("churn/")).length)).toEqual([...maps].map(() => 0));
      stop.abort();
      expect(await promptly(watch.next())).toEqual({ done: true, value: undefined });
    } finally {
      set.mockRestore();
    }
  });

  it("a stream cut by a failure no refusal (a dropped connection's error, no data) is opened again from its last event: nothing missed, nothing thrown", async () => {
    const client = await connected();
    const { api } = client;
    // The first stream fails as a socket lost mid-send does (socket-refusal.ts passes it on).
    let opened = 0;
    const cut: Array<() => void> = [];
    type Subscribe = typeof api.events.onEvent.subscribe;
    const real = api.events.onEvent.subscribe as unknown as (input: unknown, handlers: unknown) => { unsubscribe(): void };
    const subscribe = ((input: unknown, handlers: { onError(error: unknown): void }) => {
      const stream = real(input, handlers);
      if (opened++ === 0) cut.push(() => { stream.unsubscribe(); handlers.onError(TRPCClientError.from(new Error("WebSocket closed"))); });
      return stream;
    }) as unknown as Subscribe;
    const flaky = new Proxy(api, { get: (target, name) => (name === "events" ? { head: api.events.head, onEvent: { subscribe } } : Reflect.get(target, name)) });
    const stop = new AbortController();
    const watch = watchKeys(flaky, { prefix: "p/", signal: stop.signal });
    const first = watch.next();
    await api.kv.set.mutate({ key: "p/1", value: 1 });
    expect(shown((await promptly(first)).value as KeyChange)).toEqual(["p/1", 1]);
    const waiting = watch.next();
    cut.shift()!();
    // Made while no stream is open: told by the next one, from the last event the first gave.
    await api.kv.set.mutate({ key: "p/2", value: 2 });
    expect(shown((await promptly(waiting)).value as KeyChange)).toEqual(["p/2", 2]);
    expect(opened).toBe(2);
    stop.abort();
    expect(await promptly(watch.next())).toEqual({ done: true, value: undefined });
  });

  it("a stream that resumes behind the retained log (EVENTS_PRUNED) lists the prefix again: each key's newest state, null for those gone, then on live", async () => {
    // The pruner's timer never fires during the test: runNow() prunes when the test says.
    const client = await connected({ eventRetentionCount: 5, eventPruneMs: 3_600_000 });
    const { api } = client;
    await api.kv.set.mutate({ key: "p/gone", value: 0 });
    await api.kv.set.mutate({ key: "p/kept", value: 0 });
    // The first stream is cut as a dropped connection cuts it; the second opens only once the test lets it.
    let opened = 0;
    let cut: (() => void) | undefined;
    let letOpen!: () => void;
    const mayOpen = new Promise<void>((resolve) => (letOpen = resolve));
    const resumedFrom: string[] = [];
    type Subscribe = typeof api.events.onEvent.subscribe;
    const real = api.events.onEvent.subscribe as unknown as (input: { lastEventId: string }, handlers: unknown) => { unsubscribe(): void };
    const subscribe = ((input: { lastEventId: string }, handlers: { onError(error: unknown): void }) => {
      if (opened++ === 0) {
        const stream = real(input, handlers);
        cut = () => {
          stream.unsubscribe();
          handlers.onError(TRPCClientError.from(new Error("WebSocket closed")));
        };
        return stream;
      }
      let stream: { unsubscribe(): void } | undefined;
      let stopped = false;
      void mayOpen.then(() => {
        resumedFrom.push(input.lastEventId);
        if (!stopped) stream = real(input, handlers);
      });
      return {
        unsubscribe: () => {
          stopped = true;
          stream?.unsubscribe();
        },
      };
    }) as unknown as Subscribe;
    const flaky = new Proxy(api, { get: (target, name) => (name === "events" ? { head: api.events.head, onEvent: { subscribe } } : Reflect.get(target, name)) });
    const { head: headAtStart } = await api.events.head.query();
    const stop = new AbortController();
    const watch = watchKeys(flaky, { prefix: "p/", signal: stop.signal });
    const next = async () => shown((await promptly(watch.next())).value as KeyChange);
    expect([await next(), await next()]).toEqual([
      ["p/gone", 0],
      ["p/kept", 0],
    ]);
    const waiting = watch.next();
    cut!();
    // While no stream is open: the keys change, and the log prunes every kv event of it.
    await api.kv.delete.mutate({ key: "p/gone" });
    await api.kv.set.mutate({ key: "p/kept", value: 1 });
    await api.kv.set.mutate({ key: "p/kept", value: 2 });
    await api.kv.set.mutate({ key: "p/new", value: 3 });
    for (let i = 0; i < 6; i++) await api.events.publish.mutate({ type: "other.thing", source: "t", payload: i });
    await t!.server.services.jobs.eventPruner.runNow();
    const { head: headAfterPrune, prunedThrough } = await api.events.head.query();
    expect(prunedThrough).toBeGreaterThan(headAtStart);
    letOpen();
    const changes = [shown((await promptly(waiting)).value as KeyChange)];
    while (changes.length < 3) changes.push(await next());
    // The resume from the last event it gave was refused (pruned); read from the keys instead.
    expect(resumedFrom).toEqual([String(headAtStart), String(headAfterPrune)]);
    expect(changes).toEqual([
      ["p/kept", 2],
      ["p/new", 3],
      ["p/gone", null],
    ]);
    // The stream opened after the listing tells what comes next.
    await api.kv.set.mutate({ key: "p/kept", value: 4 });
    expect(await next()).toEqual(["p/kept", 4]);
    stop.abort();
    expect(await promptly(watch.next())).toEqual({ done: true, value: undefined });
  });
});
