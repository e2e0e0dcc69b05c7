// The client's shared-state helpers against a real server: updateKey (read, compute, write at the
// version read, again on a conflict) and watchKey (each new state of a key, a long-poll at a time),
// through conflicts, lost answers and a caller that stops.
import { afterEach, describe, expect, it, vi } from "vitest";
import { createCoordinationClient, KeyContended, KeyWriteUnknown, mayHaveBeenServed, updateKey, watchKey, type KvEntry } from "../client/index.js";
import { parkedLongPolls } from "./helpers/mcp-http.js";
import { ADMIN_SECRET, startSecureServer, type SecureServer } from "./helpers/secure-server.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
let secure: SecureServer | undefined;
afterEach(async () => {
  await t?.stop({ removeFiles: true });
  await secure?.stop({ removeFiles: true });
  t = secure = undefined;
});

/** How many kv.set events the log holds for `key`. */
async function setsOf(server: TestServer, key: string): Promise<number> {
  const events = await server.api.events.list.query({ types: ["kv.set"], limit: 1000 });
  return events.filter((event) => (event.payload as { key: string }).key === key).length;
}

/** A fetch that lets the server answer the first kv.set, then loses the answer (as a dropped connection does), after running `meanwhile`. */
function losingFirstSet(meanwhile: () => Promise<unknown> = async () => undefined): typeof fetch {
  let lost = false;
  return async (input, init) => {
    const response = await fetch(input, init);
    if (!lost && String(input instanceof Request ? input.url : input).includes("kv.set")) {
      lost = true;
      await response.arrayBuffer();
      await meanwhile();
      throw new TypeError("fetch failed");
    }
    return response;
  };
}

describe("updateKey", () => {
  it("agents (and workers of one agent) incrementing one counter at once lose no increment: each conflict asks the update again with the key as it found it", async () => {
    t = await startTestServer();
    const api = t.api;
    let asked = 0;
    const increments = Array.from({ length: 8 }, (_, agent) =>
      (async () => {
        for (let i = 0; i < 10; i++) {
          // Two workers of each agent: their writes must not pass for each other's.
          await updateKey(api, { key: "count", agentId: `agent-${agent % 4}` }, (current) => {
            asked++;
            return ((current?.value as number | undefined) ?? 0) + 1;
          });
        }
      })(),
    );
    await Promise.all(increments);
    expect((await api.kv.get.query({ key: "count" })).entry?.value).toBe(80);
    expect(await setsOf(t, "count")).toBe(80);
    expect(asked).toBeGreaterThanOrEqual(80);
  });

  it("an update that returns undefined writes nothing; KeyContended once maxAttempts writes met newer versions", async () => {
    t = await startTestServer();
    const api = t.api;
    const first = await api.kv.set.mutate({ key: "k", value: "a" });
    expect(await updateKey(api, { key: "k" }, () => undefined)).toEqual(first);
    expect(await setsOf(t, "k")).toBe(1);
    // Each time it is asked, another writer changes the key first.
    let asked = 0;
    const contended = await updateKey(api, { key: "k", maxAttempts: 3 }, async (current) => {
      asked++;
      await api.kv.set.mutate({ key: "k", value: `other-${asked}` });
      return `${String(current?.value)}+mine`;
    }).catch((error: unknown) => error);
    expect(contended).toBeInstanceOf(KeyContended);
    expect(asked).toBe(3);
    expect((contended as KeyContended).entry).toMatchObject({ value: "other-3" });
    expect((contended as KeyContended).message).toBe('key "k": 3 writes in a row met a newer version (other writers keep changing it)');
    // Allowed a second attempt, the write after one conflict holds.
    let more = 0;
    const written = await updateKey(api, { key: "k", maxAttempts: 2 }, async (current) => {
      if (more++ === 0) await api.kv.set.mutate({ key: "k", value: "again" });
      return `${String(current?.value)}+mine`;
    });
    expect(written).toMatchObject({ value: "again+mine", updatedBy: null });
  });

  it("a write whose answer was lost is sent again and finds itself stored: applied once", async () => {
    t = await startTestServer();
    const client = createCoordinationClient({ url: t.url, fetch: losingFirstSet() });
    try {
      await t.api.kv.set.mutate({ key: "count", value: 41 });
      const written = await updateKey(client.api, { key: "count", agentId: "a" }, (current) => (current?.value as number) + 1);
      expect(written).toMatchObject({ value: 42, updatedBy: "a" });
      expect((await t.api.kv.get.query({ key: "count" })).entry).toEqual(written);
      expect(await setsOf(t, "count")).toBe(2);
    } finally {
      await client.close();
    }
  });

  it("a write whose answer was lost, then replaced by another writer before its resend, is KeyWriteUnknown: not applied again", async () => {
    t = await startTestServer();
    const server = t;
    const client = createCoordinationClient({ url: t.url, fetch: losingFirstSet(() => server.api.kv.set.mutate({ key: "count", value: 100, agentId: "b" })) });
    try {
      const base = await t.api.kv.set.mutate({ key: "count", value: 41 });
      let asked = 0;
      const error = await updateKey(client.api, { key: "count", agentId: "a" }, (current) => {
        asked++;
        return (current?.value as number) + 1;
      }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(KeyWriteUnknown);
      expect(asked).toBe(1);
      expect(error).toMatchObject({ key: "count", ifVersion: base.version, entry: { value: 100, updatedBy: "b" } });
      // It was stored, then replaced: the log has both.
      expect(await setsOf(t, "count")).toBe(3);
    } finally {
      await client.close();
    }
  });
});

describe("updateKey across a server that went away", () => {
  /** A fetch that hands each kv.set, by its try (1, 2, …), to `route`; the rest go to the server. */
  const routingSets = (route: (n: number, input: string, init: RequestInit | undefined) => Promise<Response>): typeof fetch => {
    let sets = 0;
    return async (input, init) => {
      const url = String(input instanceof Request ? input.url : input);
      return url.includes("kv.set") ? route(++sets, url, init) : fetch(input, init);
    };
  };

  it("a write whose answer was lost, stopped once its resend found no server, is KeyWriteUnknown, which may have been served (it was)", async () => {
    t = await startTestServer();
    const server = t;
    const gone = await startTestServer();
    await gone.stop({ removeFiles: true });
    const stop = new AbortController();
    const client = createCoordinationClient({
      url: t.url,
      fetch: routingSets(async (n, url, init) => {
        if (n === 1) {
          // Served, its answer lost.
          await (await fetch(url, init)).arrayBuffer();
          throw new TypeError("fetch failed");
        }
        // The resend: the caller stops meanwhile, and the server is gone (the connection refused).
        stop.abort(new Error("caller stopped"));
        return fetch(url.replace(server.url, gone.url), init);
      }),
    });
    try {
      await t.api.kv.set.mutate({ key: "count", value: 41 });
      const error = await updateKey(client.api, { key: "count", signal: stop.signal }, (current) => (current?.value as number) + 1).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(KeyWriteUnknown);
      expect(mayHaveBeenServed(error)).toBe(true);
      expect((await t.api.kv.get.query({ key: "count" })).entry).toMatchObject({ value: 42 });
    } finally {
      await client.close();
    }
  });

  it("a write that reached no server, then met another writer's version, is computed again: nothing of it was stored", async () => {
    t = await startTestServer();
    const server = t;
    const gone = await startTestServer();
    await gone.stop({ removeFiles: true });
    const client = createCoordinationClient({
      url: t.url,
      fetch: routingSets(async (n, url, init) => {
        if (n > 1) return fetch(url, init);
        // Refused; another writer comes meanwhile.
        await server.api.kv.set.mutate({ key: "count", value: 100 });
        return fetch(url.replace(server.url, gone.url), init);
      }),
    });
    try {
      await t.api.kv.set.mutate({ key: "count", value: 41 });
      const written = await updateKey(client.api, { key: "count" }, (current) => (current?.value as number) + 1);
      expect(written).toMatchObject({ value: 101 });
    } finally {
      await client.close();
    }
  });
});

describe("updateKey stopped", () => {
  it("a caller's stop while a write is under way lets the write finish: its outcome is the answer, not the stop", async () => {
    t = await startTestServer();
    const stop = new AbortController();
    // The write is held on its way for a while; the caller stops meanwhile.
    const slowSets: typeof fetch = async (input, init) => {
      if (String(input instanceof Request ? input.url : input).includes("kv.set")) {
        stop.abort(new Error("caller stopped"));
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      return fetch(input, init);
    };
    const client = createCoordinationClient({ url: t.url, fetch: slowSets });
    try {
      await t.api.kv.set.mutate({ key: "count", value: 41 });
      const written = await updateKey(client.api, { key: "count", signal: stop.signal }, (current) => (current?.value as number) + 1);
      expect(written).toMatchObject({ value: 42 });
      expect((await t.api.kv.get.query({ key: "count" })).entry).toEqual(written);
      // Stopped before an attempt: not asked, nothing written.
      await expect(updateKey(client.api, { key: "count", signal: stop.signal }, () => 0)).rejects.toThrow("caller stopped");
      expect((await t.api.kv.get.query({ key: "count" })).entry).toEqual(written);
    } finally {
      await client.close();
    }
  });
});

describe("watchKey", () => {
  it("a watch past its credential's maxParkedPerAgent is told so (429), not turned into a quiet poll", async () => {
    secure = await startSecureServer({ maxParkedPerAgent: 1 });
    const reader = secure.as(await secure.issue("read"));
    await secure.admin.kv.set.mutate({ key: "k", value: 1 });
    const stop = new AbortController();
    const first = watchKey(reader, { key: "k", afterVersion: 1, signal: stop.signal }).next();
    await vi.waitFor(async () => expect(await parkedLongPolls(secure!.url, "watch", ADMIN_SECRET)).toBe(1), { timeout: 15_000, interval: 20 });
    const second = await watchKey(reader, { key: "k", afterVersion: 1 })
      .next()
      .catch((error: unknown) => error);
    expect(second).toMatchObject({ data: { code: "LIMIT_EXCEEDED" } });
    stop.abort();
    expect(await first).toEqual({ done: true, value: undefined });
  });

  it("yields the key as it is, then each new state (null: deleted), until its signal aborts", async () => {
    t = await startTestServer();
    const api = t.api;
    const stop = new AbortController();
    const seen: Array<KvEntry | null> = [];
    const first = await api.kv.set.mutate({ key: "config", value: 1 });
    const watching = (async () => {
      for await (const entry of watchKey(api, { key: "config", waitMs: 5_000, signal: stop.signal })) seen.push(entry);
    })();
    const untilSeen = (count: number) => vi.waitFor(() => expect(seen.length).toBe(count), { timeout: 15_000, interval: 10 });
    await untilSeen(1);
    const second = await api.kv.set.mutate({ key: "config", value: 2 });
    await untilSeen(2);
    await api.kv.delete.mutate({ key: "config" });
    await untilSeen(3);
    stop.abort();
    await watching;
    expect(seen).toEqual([first, second, null]);
  });

  it("from afterVersion, the first state is the next one", async () => {
    t = await startTestServer();
    const api = t.api;
    const first = await api.kv.set.mutate({ key: "k", value: 1 });
    const next = watchKey(api, { key: "k", afterVersion: first.version, waitMs: 5_000 });
    const pending = next.next();
    const second = await api.kv.set.mutate({ key: "k", value: 2 });
    expect(await pending).toEqual({ done: false, value: second });
    await next.return(undefined);
  });
});
