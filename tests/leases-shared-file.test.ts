// Leases when several servers share one database file. SQLite hands its write lock to whichever
// waiter polls first, not to the one that asked first: a heartbeat sent in time through one server
// can wait behind a lock while another server's lease check, asked after the lease's end, commits
// before it. Once a server has seen another connection commit to its file, its lease checks
// (sweeper and steal) count a lease run out only 2 × busyTimeoutMs after its end.
import BetterSqlite3 from "better-sqlite3";
import { describe, expect, it, vi } from "vitest";
import { makeTempDir, startTestServer } from "./helpers/test-server.js";

const after = (at: number) => vi.waitFor(() => expect(Date.now()).toBeGreaterThan(at), { timeout: 60_000, interval: 10 });

describe("leases on a file shared by several servers", () => {
  it("a heartbeat sent in time through one server keeps its lease though another server's sweep, asked after the lease's end, waited for the same lock", async () => {
    const dir = makeTempDir();
    const settings = { busyTimeoutMs: 60_000, leaseSweepMs: 60_000 };
    await using holder = await startTestServer(settings, dir);
    await using sweeper = await startTestServer(settings, dir);
    const task = await holder.api.tasks.enqueue.mutate({ payload: {} });
    const claimed = (await holder.api.tasks.claim.mutate({ agentId: "a1", leaseMs: 1000 }))!;
    const leaseEnd = claimed.leaseExpiresAt!.getTime();

    const other = new BetterSqlite3(holder.dbPath);
    other.prepare("BEGIN IMMEDIATE").run();
    let beat: Promise<unknown>;
    let sweep: Promise<number>;
    try {
      expect(Date.now()).toBeLessThan(leaseEnd);
      beat = holder.api.tasks.heartbeat.mutate({ taskId: task.id, agentId: "a1", leaseToken: claimed.leaseToken, leaseMs: 5000 });
      await after(leaseEnd + 300);
      // Asked last, it polls the lock most often once released (SQLite's busy handler sleeps
      // longer the longer a waiter has waited): before the fix it won the lock most times.
      sweep = sweeper.server.services.tasks.expireLeases();
      await new Promise((resolve) => setTimeout(resolve, 50));
    } finally {
      other.prepare("COMMIT").run();
      other.close();
    }
    expect(await sweep).toBe(0);
    expect(await beat).toMatchObject({ id: task.id, status: "claimed", leaseOwner: "a1", leaseToken: claimed.leaseToken });
    expect(await holder.api.events.list.query({ afterSeq: 0, types: ["task.lease_expired"] })).toEqual([]);
    expect(await holder.api.tasks.get.query({ taskId: task.id })).toMatchObject({ status: "claimed", leaseOwner: "a1", leaseToken: claimed.leaseToken });
  });

  it("another server's sweep and steal leave a lease alone for 2 × busyTimeoutMs after its end", async () => {
    const dir = makeTempDir();
    const settings = { busyTimeoutMs: 10_000, leaseSweepMs: 60_000 };
    await using holder = await startTestServer(settings, dir);
    await using other = await startTestServer(settings, dir);
    const task = await holder.api.tasks.enqueue.mutate({ payload: {} });
    const claimed = (await holder.api.tasks.claim.mutate({ agentId: "a1", leaseMs: 100 }))!;
    await after(claimed.leaseExpiresAt!.getTime() + 50);

    expect(await other.server.services.tasks.expireLeases()).toBe(0);
    expect(await other.api.tasks.steal.mutate({ agentId: "thief" })).toEqual([]);
    expect(await other.api.tasks.get.query({ taskId: task.id })).toMatchObject({ status: "claimed", leaseOwner: "a1", leaseToken: claimed.leaseToken });
  });

  it("past the grace the lease is taken back; a server alone on its file takes it back at the lease's end", async () => {
    const shared = makeTempDir();
    const settings = { busyTimeoutMs: 100, leaseSweepMs: 60_000 };
    await using holder = await startTestServer(settings, shared);
    await using other = await startTestServer(settings, shared);
    const task = await holder.api.tasks.enqueue.mutate({ payload: {} });
    const claimed = (await holder.api.tasks.claim.mutate({ agentId: "a1", leaseMs: 100 }))!;
    await after(claimed.leaseExpiresAt!.getTime() + 2 * 100 + 50);
    expect(await other.server.services.tasks.expireLeases()).toBe(1);
    expect(await holder.api.tasks.get.query({ taskId: task.id })).toMatchObject({ status: "pending", leaseOwner: null });

    await using alone = await startTestServer({ busyTimeoutMs: 60_000, leaseSweepMs: 60_000 });
    const own = await alone.api.tasks.enqueue.mutate({ payload: {} });
    const held = (await alone.api.tasks.claim.mutate({ agentId: "a1", leaseMs: 100 }))!;
    await after(held.leaseExpiresAt!.getTime() + 50);
    expect(await alone.server.services.tasks.expireLeases()).toBe(1);
    expect(await alone.api.tasks.get.query({ taskId: own.id })).toMatchObject({ status: "pending", leaseOwner: null });
  });
});
