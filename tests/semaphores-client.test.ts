// Semaphores from TypeScript: the typed client's withPermit (acquire a permit, renew it while the
// work runs, release after; SemaphoreFull, PermitLost) against a real server, and the in-process
// API's semaphores.
import net from "node:net";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createCoordinationClient, PermitLost, SemaphoreFull, withLock, withPermit } from "../client/index.js";
import { CoordinationError, openCoordination } from "../src/index.js";
import { makeTempDir, startTestServer, withDatabase, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
afterEach(async () => {
  await t?.stop({ removeFiles: true });
  t = undefined;
});

describe("withPermit", () => {
  it("never more than `limit` at work at once, whichever agents; every permit released after", async () => {
    t = await startTestServer();
    const { api } = t;
    let inside = 0;
    let most = 0;
    let started = 0;
    const calls = ["a", "a", "b", "b", "c", "c"];
    const tokens = await Promise.all(
      calls.map((agentId) =>
        withPermit(api, { name: "api-key", agentId, limit: 2, waitMs: 30_000 }, async ({ fencingToken, permit }) => {
          most = Math.max(most, ++inside);
          started++;
          expect(permit).toMatchObject({ holder: agentId, fencingToken, limit: 2 });
          // Held until a second holder is in, or none is left to come: the limit is reached, whatever the machine's speed.
          await vi.waitFor(() => expect(inside === 2 || started === calls.length).toBe(true), { timeout: 20_000, interval: 5 });
          await new Promise((resolve) => setTimeout(resolve, 20));
          inside--;
          return fencingToken;
        }),
      ),
    );
    expect(most).toBe(2);
    expect([...tokens].sort((x, y) => x - y)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(await api.semaphores.get.query({ name: "api-key" })).toMatchObject({ held: 0, permits: [] });
  });

  it("renews the permit while the work runs past its lease", async () => {
    t = await startTestServer();
    const { api } = t;
    const result = await withPermit(api, { name: "gpu", agentId: "a", limit: 1, leaseMs: 1500 }, async ({ permit }) => {
      // Past the first lease's end, the permit is still held: renewed.
      await vi.waitFor(() => expect(Date.now()).toBeGreaterThan(permit.expiresAt.getTime() + 100), { timeout: 10_000, interval: 20 });
      expect(await api.semaphores.get.query({ name: "gpu" })).toMatchObject({ held: 1, permits: [{ fencingToken: permit.fencingToken }] });
      return "done";
    });
    expect(result).toBe("done");
    expect((await api.semaphores.get.query({ name: "gpu" })).held).toBe(0);
  });

  it("SemaphoreFull when no permit frees within the wait; the work's own error when it throws, the permit released", async () => {
    t = await startTestServer();
    const { api } = t;
    await api.semaphores.acquire.mutate({ name: "pool", agentId: "x", limit: 1, leaseMs: 60_000 });
    const full = await withPermit(api, { name: "pool", agentId: "a", limit: 1, waitMs: 300 }, () => "ran").catch((error: unknown) => error);
    expect(full).toBeInstanceOf(SemaphoreFull);
    expect((full as SemaphoreFull).semaphore).toMatchObject({ name: "pool", held: 1, limit: 1 });
    const failed = await withPermit(api, { name: "other", agentId: "a", limit: 3 }, () => {
      throw new Error("the work failed");
    }).catch((error: unknown) => error);
    expect(failed).toMatchObject({ message: "the work failed" });
    expect((await api.semaphores.get.query({ name: "other" })).held).toBe(0);
  });

  it("a permit lost during the work (an operator's force-release) aborts the work's signal with PermitLost, and withPermit rejects with it", async () => {
    t = await startTestServer();
    const { api } = t;
    let reason: unknown;
    const outcome = await withPermit(api, { name: "farm", agentId: "a", limit: 2, leaseMs: 600 }, async ({ signal, fencingToken }) => {
      await api.semaphores.forceRelease.mutate({ name: "farm", fencingToken, reason: "stuck" });
      await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
      reason = signal.reason;
      return "finished anyway";
    }).catch((error: unknown) => error);
    expect(outcome).toBeInstanceOf(PermitLost);
    expect(reason).toBe(outcome);
    expect(outcome).toMatchObject({ semaphoreName: "farm", fencingToken: 1 });
    expect((outcome as PermitLost).message).toMatch(/^lost the permit of semaphore "farm" \(fencing token 1\): agent "a" holds no permit/);
  });
});

/** A TCP proxy to 127.0.0.1:`port` whose first connection reads the server's whole answer, then resets its client instead of passing it on. */
async function answerLosingProxy(port: number): Promise<{ url: string; close: () => void }> {
  let first = true;
  const proxy = net.createServer((client) => {
    const upstream = net.connect(port, "127.0.0.1");
    client.on("error", () => undefined);
    upstream.on("error", () => undefined);
    client.pipe(upstream);
    if (!first) {
      upstream.pipe(client);
      return;
    }
    first = false;
    // The server wrote its answer to the connection (delivered, as far as it can tell); the client never gets it.
    upstream.once("data", () => setTimeout(() => (client.resetAndDestroy(), upstream.destroy()), 100));
  });
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(proxy.address() as net.AddressInfo).port}`, close: () => proxy.close() };
}

describe("withPermit and withLock when an answer is lost", () => {
  it("an acquire served whose answer a proxy lost, with no wait asked for, is sent once more: the grant is worked under and released, not left held by nobody", async () => {
    t = await startTestServer();
    for (const hold of ["lock", "permit"] as const) {
      const proxy = await answerLosingProxy(t.server.port);
      const client = createCoordinationClient({ url: proxy.url });
      try {
        const token =
          hold === "lock"
            ? await withLock(client.api, { name: "lost-answer", agentId: "a", leaseMs: 60_000 }, ({ fencingToken }) => fencingToken)
            : await withPermit(client.api, { name: "lost-answer", agentId: "a", limit: 2, leaseMs: 60_000 }, ({ fencingToken }) => fencingToken);
        expect(token).toBe(hold === "lock" ? 1 : 2);
      } finally {
        await client.close();
        proxy.close();
      }
    }
    expect((await t.api.locks.get.query({ name: "lost-answer" })).held).toBe(false);
    expect((await t.api.semaphores.get.query({ name: "lost-answer" })).held).toBe(0);
  });

  it("a refusal for good (maxLocksPerAgent's 429) is thrown at once, not sent again for the whole wait", async () => {
    t = await startTestServer({ maxLocksPerAgent: 1 });
    await t.api.locks.acquire.mutate({ name: "first", agentId: "a" });
    const acquires = () => withDatabase(t!, (db) => db.prepare(`SELECT count(*) FROM events WHERE type IN ('lock.acquired', 'semaphore.acquired')`).pluck().get());
    const before = acquires();
    const started = performance.now();
    await expect(withLock(t.api, { name: "second", agentId: "a", waitMs: 60_000 }, () => "ran")).rejects.toMatchObject({ data: { code: "LIMIT_EXCEEDED" } });
    await expect(withPermit(t.api, { name: "pool", agentId: "a", limit: 3, waitMs: 60_000 }, () => "ran")).rejects.toMatchObject({ data: { code: "LIMIT_EXCEEDED" } });
    // Well within the waits asked for, whatever the machine's speed: thrown at the first answer.
    expect(performance.now() - started).toBeLessThan(30_000);
    expect(acquires()).toBe(before);
  });
});

describe("withPermit and withLock across a server restart", () => {
  it("a wait for a permit or a lock goes on through the restart (503, then refused connections), and the work runs once one frees", async () => {
    t = await startTestServer();
    const { dir } = t;
    const port = t.server.port;
    const url = t.url;
    await t.api.semaphores.acquire.mutate({ name: "pool", agentId: "holder", limit: 1, leaseMs: 60_000 });
    await t.api.locks.acquire.mutate({ name: "deploy", agentId: "holder", leaseMs: 60_000 });
    const client = createCoordinationClient({ url });
    try {
      const permit = withPermit(client.api, { name: "pool", agentId: "waiter", limit: 1, waitMs: 60_000 }, ({ fencingToken }) => fencingToken);
      const lock = withLock(client.api, { name: "deploy", agentId: "waiter", waitMs: 60_000 }, ({ fencingToken }) => fencingToken);
      await vi.waitFor(() => expect([t!.server.services.waiters.semaphores.size, t!.server.services.waiters.locks.size]).toEqual([1, 1]), { timeout: 10_000, interval: 10 });
      // The server stops (its parked acquires answered 503 SHUTTING_DOWN), and a new one starts on the same file and port.
      await t.stop();
      t = await startTestServer({ port }, dir);
      const [held] = (await t.api.semaphores.get.query({ name: "pool" })).permits;
      await t.api.semaphores.release.mutate({ name: "pool", agentId: "holder", fencingToken: held!.fencingToken });
      await t.api.locks.release.mutate({ name: "deploy", agentId: "holder" });
      expect(await permit).toBeGreaterThan(2);
      expect(await lock).toBeGreaterThan(2);
      expect((await t.api.semaphores.get.query({ name: "pool" })).held).toBe(0);
      expect((await t.api.locks.get.query({ name: "deploy" })).held).toBe(false);
    } finally {
      await client.close();
    }
  });
});

describe("in-process semaphores", () => {
  it("acquires, renews, lists and releases through openCoordination, with the same rules and errors", async () => {
    const coordination = await openCoordination({ settings: { dbPath: join(makeTempDir(), "embedded.db"), logLevel: "silent" } });
    try {
      const { permit } = await coordination.semaphores.acquire("gpu", "a", 1, { leaseMs: 10_000 });
      expect(permit).toMatchObject({ holder: "a", fencingToken: 1, limit: 1 });
      expect((await coordination.semaphores.acquire("gpu", "b", 1)).acquired).toBe(false);
      expect(await coordination.semaphores.renew("gpu", "a", permit!.fencingToken, 20_000)).toMatchObject({ holder: "a", leaseMs: 20_000 });
      await expect(coordination.semaphores.renew("gpu", "b", permit!.fencingToken)).rejects.toBeInstanceOf(CoordinationError);
      await expect(coordination.semaphores.renew("gpu", "b", permit!.fencingToken)).rejects.toMatchObject({ code: "LEASE_CONFLICT" });
      expect((await coordination.semaphores.list()).items.map((p) => p.holder)).toEqual(["a"]);
      expect((await coordination.semaphores.release("gpu", "a", permit!.fencingToken)).released).toBe(true);
      expect(await coordination.semaphores.get("gpu")).toMatchObject({ held: 0, permits: [] });
      await coordination.semaphores.acquire("gpu", "b", 1);
      expect(await coordination.semaphores.forceRelease("gpu", { reason: "maintenance" })).toMatchObject({ released: 1 });
    } finally {
      await coordination.close();
    }
  });
});
