// Named locks from TypeScript: the typed client's withLock (acquire, renew while the work runs,
// release after; LockBusy, LockLost) against a real server, and the in-process API's locks.
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { LockBusy, LockLost, withLock } from "../client/index.js";
import { CoordinationError, openCoordination } from "../src/index.js";
import { makeTempDir, startTestServer, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
afterEach(async () => {
  await t?.stop({ removeFiles: true });
  t = undefined;
});

describe("withLock", () => {
  it("runs each holder's work alone, one after another, and releases the lock after each", async () => {
    t = await startTestServer();
    const { api } = t;
    const log: string[] = [];
    const holders = ["w1", "w2", "w3"];
    const results = await Promise.all(
      holders.map((agentId) =>
        withLock(api, { name: "repo/main", agentId, waitMs: 20_000 }, async ({ fencingToken, lock }) => {
          log.push(`start ${agentId}`);
          expect(lock).toMatchObject({ holder: agentId, fencingToken });
          // Long enough for the others to be waiting; the verdict does not depend on it.
          await new Promise((resolve) => setTimeout(resolve, 100));
          log.push(`end ${agentId}`);
          return fencingToken;
        }),
      ),
    );
    // Never two at once: every start is followed by its own end.
    for (let i = 0; i < log.length; i += 2) expect(log[i + 1]).toBe(log[i]!.replace("start", "end"));
    expect([...results].sort()).toEqual([1, 2, 3]);
    expect(await api.locks.get.query({ name: "repo/main" })).toMatchObject({ held: false });
  });

  it("renews the lease while the work runs past it", async () => {
    t = await startTestServer();
    const { api } = t;
    const token = await withLock(api, { name: "long", agentId: "a", leaseMs: 1500 }, async ({ fencingToken, lock, signal }) => {
      // Past the first lease's end: only renewals kept it.
      await vi.waitFor(() => expect(Date.now()).toBeGreaterThan(lock.expiresAt!.getTime() + 200), { timeout: 10_000, interval: 50 });
      expect(await api.locks.get.query({ name: "long" })).toMatchObject({ held: true, holder: "a", fencingToken });
      expect(signal.aborted).toBe(false);
      return fencingToken;
    });
    expect(token).toBe(1);
    expect((await api.locks.get.query({ name: "long" })).held).toBe(false);
  });

  it("LockBusy when another agent holds the lock past the wait; the work's error when it throws, the lock released", async () => {
    t = await startTestServer();
    const { api } = t;
    await api.locks.acquire.mutate({ name: "busy", agentId: "other", leaseMs: 60_000 });
    const busy = await withLock(api, { name: "busy", agentId: "a", waitMs: 200 }, () => "ran").catch((error: unknown) => error);
    expect(busy).toBeInstanceOf(LockBusy);
    expect((busy as LockBusy).lock).toMatchObject({ name: "busy", holder: "other", fencingToken: 1 });

    const thrown = await withLock(api, { name: "free", agentId: "a" }, () => {
      throw new Error("the work failed");
    }).catch((error: unknown) => error);
    expect((thrown as Error).message).toBe("the work failed");
    expect((await api.locks.get.query({ name: "free" })).held).toBe(false);
  });

  it("a lease lost during the work (an operator's force-release) aborts the work's signal with LockLost, and withLock rejects with it", async () => {
    t = await startTestServer();
    const { api } = t;
    let reason: unknown;
    const outcome = await withLock(api, { name: "lost", agentId: "a", leaseMs: 600 }, async ({ signal }) => {
      await api.locks.forceRelease.mutate({ name: "lost", reason: "stuck" });
      await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
      reason = signal.reason;
      return "finished anyway";
    }).catch((error: unknown) => error);
    expect(outcome).toBeInstanceOf(LockLost);
    expect(reason).toBe(outcome);
    expect(outcome).toMatchObject({ lockName: "lost", fencingToken: 1 });
    expect((outcome as LockLost).message).toMatch(/^lost lock "lost" \(fencing token 1\): agent "a" does not hold lock "lost"/);
    // The next holder gets a larger token.
    expect((await api.locks.acquire.mutate({ name: "lost", agentId: "b" })).lock.fencingToken).toBe(2);
  });
});

describe("in-process locks", () => {
  it("acquires, renews, lists and releases through openCoordination, with the same rules and errors", async () => {
    const coordination = await openCoordination({ settings: { dbPath: join(makeTempDir(), "embedded.db"), logLevel: "silent" } });
    try {
      const { acquired, lock } = await coordination.locks.acquire("deploy", "a", { leaseMs: 10_000 });
      expect(acquired).toBe(true);
      expect((await coordination.locks.acquire("deploy", "b")).acquired).toBe(false);
      expect(await coordination.locks.renew("deploy", "a", { fencingToken: lock.fencingToken! })).toMatchObject({ holder: "a", leaseMs: 10_000 });
      await expect(coordination.locks.renew("deploy", "b")).rejects.toBeInstanceOf(CoordinationError);
      await expect(coordination.locks.renew("deploy", "b")).rejects.toMatchObject({ code: "LEASE_CONFLICT" });
      expect((await coordination.locks.list()).items.map((l) => l.name)).toEqual(["deploy"]);
      expect((await coordination.locks.release("deploy", "a")).released).toBe(true);
      expect(await coordination.locks.get("deploy")).toMatchObject({ held: false });
      await coordination.locks.acquire("deploy", "b");
      expect(await coordination.locks.forceRelease("deploy", "maintenance")).toMatchObject({ released: true });
    } finally {
      await coordination.close();
    }
  });
});
