// Named locks from TypeScript: the typed client's withLock (acquire, renew while the work runs,
// release after; LockBusy, LockLost) against a real server, and the in-process API's locks.
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { LockBusy, LockLost, withLock } from "../client/index.js";
import { CoordinationError, openCoordination } from "../src/index.js";
import { startSecureServer } from "./helpers/secure-server.js";
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

  it("two withLock calls of one agent (a worker's handlers) take turns, as two agents' do", async () => {
    t = await startTestServer();
    const { api } = t;
    let inside = 0;
    let most = 0;
    const tokens = await Promise.all(
      [1, 2, 3].map(() =>
        withLock(api, { name: "one-agent", agentId: "worker-1", waitMs: 20_000 }, async ({ fencingToken }) => {
          most = Math.max(most, ++inside);
          await new Promise((resolve) => setTimeout(resolve, 100));
          inside--;
          return fencingToken;
        }),
      ),
    );
    expect(most).toBe(1);
    expect([...tokens].sort()).toEqual([1, 2, 3]);
  });

  it("a renewal refused for good (the credential revoked) loses the lock at once, not at the lease's end", async () => {
    const s = await startSecureServer();
    t = s;
    const secret = await s.issue("agent", "a");
    const agent = s.as(secret);
    const [token] = (await s.admin.tokens.list.query({})).filter((listed) => listed.agentId === "a");
    const outcome = await withLock(agent, { name: "revoked", agentId: "a", leaseMs: 60_000 }, async ({ signal }) => {
      await s.admin.tokens.revoke.mutate({ tokenId: token!.id });
      await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
      return "finished";
    }).catch((error: unknown) => error);
    expect(outcome).toBeInstanceOf(LockLost);
    expect((outcome as LockLost).cause).toMatchObject({ data: { code: "UNAUTHORIZED" } });
  });

  it("a grant that came after a wait longer than its lease is renewed before the work, not lost, and released after", async () => {
    t = await startTestServer();
    const { api } = t;
    await api.locks.acquire.mutate({ name: "late", agentId: "a", leaseMs: 60_000 });
    const outcome = withLock(api, { name: "late", agentId: "b", leaseMs: 500, waitMs: 20_000 }, async ({ signal, fencingToken }) => {
      await new Promise((resolve) => setTimeout(resolve, 50));
      return signal.aborted ? "aborted" : fencingToken;
    });
    await vi.waitFor(() => expect(t!.server.services.waiters.locks.size).toBe(1), { timeout: 10_000, interval: 10 });
    // b waits longer than its own lease before a lets go.
    const waitingSince = Date.now();
    await vi.waitFor(() => expect(Date.now() - waitingSince).toBeGreaterThan(700), { timeout: 10_000, interval: 50 });
    await api.locks.release.mutate({ name: "late", agentId: "a" });
    expect(await outcome).toBe(2);
    expect((await api.locks.get.query({ name: "late" })).held).toBe(false);
  });

  it("after the caller's signal aborts, the lock is renewed until the work returns: clean-up under it stays alone", async () => {
    t = await startTestServer();
    const { api } = t;
    const controller = new AbortController();
    const outcome = await withLock(api, { name: "cleanup", agentId: "a", leaseMs: 1500, signal: controller.signal }, async ({ lock, signal }) => {
      controller.abort(new Error("the caller gave up"));
      expect(signal.aborted).toBe(true);
      expect((signal.reason as Error).message).toBe("the caller gave up");
      // Clean-up that outlasts the first lease: only renewals keep the lock.
      await vi.waitFor(() => expect(Date.now()).toBeGreaterThan(lock.expiresAt!.getTime() + 300), { timeout: 10_000, interval: 50 });
      return (await api.locks.acquire.mutate({ name: "cleanup", agentId: "b" })).acquired;
    });
    expect(outcome).toBe(false);
    expect((await api.locks.get.query({ name: "cleanup" })).held).toBe(false);
  });

  it("against a server that answers a wait at once (maxWaitMs 0), the wait's rounds are paced, not sent back to back", async () => {
    t = await startTestServer({ maxWaitMs: 0 });
    await t.api.locks.acquire.mutate({ name: "busy", agentId: "a", leaseMs: 60_000 });
    const before = t.server.services.db.writesSent;
    const outcome = await withLock(t.api, { name: "busy", agentId: "b", waitMs: 1000 }, () => "ran").catch((error: unknown) => error);
    expect(outcome).toBeInstanceOf(LockBusy);
    // A round each 250 ms at most: 4 or 5 rounds in the second, not hundreds.
    expect(t.server.services.db.writesSent - before).toBeLessThanOrEqual(6);
  });

  it("a caller's signal aborted while the lock was being taken: the work does not start, and the lock goes back", async () => {
    t = await startTestServer();
    const { api } = t;
    await api.locks.acquire.mutate({ name: "gate", agentId: "a", leaseMs: 60_000 });
    const controller = new AbortController();
    let ran = false;
    const outcome = withLock(api, { name: "gate", agentId: "b", waitMs: 20_000, signal: controller.signal }, () => {
      ran = true;
    }).catch((error: unknown) => error);
    await vi.waitFor(() => expect(t!.server.services.waiters.locks.size).toBe(1), { timeout: 10_000, interval: 10 });
    controller.abort(new Error("not needed any more"));
    expect(((await outcome) as Error).message).toBe("not needed any more");
    expect(ran).toBe(false);
    // Its wait ended without taking the lock: the holder releases, and it stays free.
    await vi.waitFor(() => expect(t!.server.services.waiters.locks.size).toBe(0), { timeout: 10_000, interval: 10 });
    await api.locks.release.mutate({ name: "gate", agentId: "a" });
    expect((await api.locks.get.query({ name: "gate" })).held).toBe(false);
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
