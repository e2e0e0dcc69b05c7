// Leases when several servers share one database file. SQLite hands its write lock to whichever
// waiter polls first, not to the one that asked first: a heartbeat sent in time through one server
// can wait behind a lock while another server's lease or health check, asked after the lease's
// end, commits before it. So a check allows 2 × busyTimeoutMs (the lock-wait grace) before it
// takes a task back, wherever another server may renew it (src/tasks/lock-wait-grace.ts). Checks
// are run here by their writer commands with the time they were asked at, so no verdict waits on
// the clock or depends on the machine's speed.
import BetterSqlite3 from "better-sqlite3";
import { describe, expect, it, vi } from "vitest";
import { makeTempDir, startTestServer, type TestServer } from "./helpers/test-server.js";

const BUSY = 10_000;
const GRACE = 2 * BUSY;
/** No background sweep or health check during a test: each is run by hand, as of a given time. */
const settings = { busyTimeoutMs: BUSY, leaseSweepMs: 60_000, agentHealthCheckMs: 60_000 };

const sweep = (server: TestServer, asOf: number) => server.server.services.db.write("tasks.expireLeases", { batchSize: 500, asOf });
const checkHealth = (server: TestServer, asOf: number) => server.server.services.db.write("agents.checkHealth", { asOf, limit: 500 });

describe("leases on a file shared by several servers", () => {
  it("a heartbeat sent in time through one server keeps its lease though another server's sweep, asked after the lease's end, waited for the same lock", async () => {
    const dir = makeTempDir();
    await using holder = await startTestServer(settings, dir);
    await using sweeper = await startTestServer(settings, dir);
    const task = await holder.api.tasks.enqueue.mutate({ payload: {} });
    const claimed = (await holder.api.tasks.claim.mutate({ agentId: "a1", leaseMs: 60_000 }))!;
    const leaseEnd = claimed.leaseExpiresAt!.getTime();

    const other = new BetterSqlite3(holder.dbPath);
    other.prepare("BEGIN IMMEDIATE").run();
    let beat: Promise<unknown>;
    let swept: Promise<{ expired: number }>;
    try {
      const sent = holder.server.services.db.sent;
      const beatsBefore = sent.get("tasks.heartbeat") ?? 0;
      beat = holder.api.tasks.heartbeat.mutate({ taskId: task.id, agentId: "a1", leaseToken: claimed.leaseToken });
      // On the holder's writer thread, which waits for the lock with it.
      await vi.waitFor(() => expect(sent.get("tasks.heartbeat")).toBe(beatsBefore + 1), { timeout: 10_000, interval: 10 });
      // Asked last, as of after the lease's end: SQLite's busy handler polls a newer waiter more
      // often, so before the grace this sweep won the lock in most runs and took the task.
      swept = sweep(sweeper, leaseEnd + 300);
      await new Promise((resolve) => setTimeout(resolve, 50));
    } finally {
      other.prepare("COMMIT").run();
      other.close();
    }
    expect((await swept).expired).toBe(0);
    expect(await beat).toMatchObject({ id: task.id, status: "claimed", leaseOwner: "a1", leaseToken: claimed.leaseToken });
    expect(await holder.api.events.list.query({ afterSeq: 0, types: ["task.lease_expired"] })).toEqual([]);
  });

  it("another server's sweep and steal leave a lease alone until 2 × busyTimeoutMs after its end, then the sweep takes it back", async () => {
    const dir = makeTempDir();
    await using holder = await startTestServer(settings, dir);
    await using other = await startTestServer(settings, dir);
    const task = await holder.api.tasks.enqueue.mutate({ payload: {} });
    const claimed = (await holder.api.tasks.claim.mutate({ agentId: "a1", leaseMs: 100 }))!;
    const leaseEnd = claimed.leaseExpiresAt!.getTime();
    await vi.waitFor(() => expect(Date.now()).toBeGreaterThan(leaseEnd), { timeout: 60_000, interval: 10 });

    expect(await other.api.tasks.steal.mutate({ agentId: "thief" })).toEqual([]);
    expect(await sweep(other, leaseEnd + GRACE - 1)).toEqual({ expired: 0, sharedGraceMs: GRACE });
    expect(await other.api.tasks.get.query({ taskId: task.id })).toMatchObject({ status: "claimed", leaseOwner: "a1", leaseToken: claimed.leaseToken });
    expect((await sweep(other, leaseEnd + GRACE)).expired).toBe(1);
    expect(await holder.api.tasks.get.query({ taskId: task.id })).toMatchObject({ status: "pending", leaseOwner: null });
  });

  it("a server started after the holder's last commit allows the grace for leases renewed before it opened", async () => {
    const dir = makeTempDir();
    await using holder = await startTestServer(settings, dir);
    await holder.api.tasks.enqueue.mutate({ payload: {} });
    const claimed = (await holder.api.tasks.claim.mutate({ agentId: "a1", leaseMs: 100 }))!;
    const leaseEnd = claimed.leaseExpiresAt!.getTime();
    // The holder commits nothing after this one opens: it cannot tell from the file that the holder is alive.
    await using late = await startTestServer(settings, dir);
    expect((await sweep(late, leaseEnd + GRACE - 1)).expired).toBe(0);
    expect((await sweep(late, leaseEnd + GRACE)).expired).toBe(1);
  });

  it("a server learns of another from its start-up commit: its own leases get the grace from then", async () => {
    const dir = makeTempDir();
    await using holder = await startTestServer(settings, dir);
    await holder.api.tasks.enqueue.mutate({ payload: {} });
    const claimed = (await holder.api.tasks.claim.mutate({ agentId: "a1", leaseMs: 100 }))!;
    const leaseEnd = claimed.leaseExpiresAt!.getTime();
    // Alone until now, the holder would take its own lease back at its end.
    await using _newcomer = await startTestServer(settings, dir);
    expect(await sweep(holder, leaseEnd + 1)).toEqual({ expired: 0, sharedGraceMs: GRACE });
    expect((await sweep(holder, leaseEnd + GRACE)).expired).toBe(1);
  });

  it("another server's health check calls an agent offline, and takes its tasks, only 2 × busyTimeoutMs after its offline point; a steal waits as long", async () => {
    const dir = makeTempDir();
    const health = { ...settings, agentStaleMs: 500, agentOfflineMs: 1000, agentStartupGraceMs: 0 };
    await using holder = await startTestServer(health, dir);
    await using other = await startTestServer(health, dir);
    const task = await holder.api.tasks.enqueue.mutate({ payload: {} });
    await holder.api.tasks.claim.mutate({ agentId: "a1", leaseMs: 3_600_000 });
    const beat = await holder.api.agents.heartbeat.mutate({ agentId: "a1" });
    const offlineAt = beat.lastHeartbeatAt.getTime() + 1000;

    await vi.waitFor(() => expect(Date.now()).toBeGreaterThan(offlineAt), { timeout: 60_000, interval: 10 });
    expect(await other.api.tasks.steal.mutate({ agentId: "thief" })).toEqual([]);
    expect((await checkHealth(other, offlineAt + GRACE - 1)).sharedGraceMs).toBe(GRACE);
    expect(await other.api.tasks.get.query({ taskId: task.id })).toMatchObject({ status: "claimed", leaseOwner: "a1" });
    expect(await checkHealth(other, offlineAt + GRACE)).toEqual({ changed: 1, more: false, sharedGraceMs: GRACE });
    expect(await holder.api.tasks.get.query({ taskId: task.id })).toMatchObject({ status: "pending", leaseOwner: null });
    expect((await holder.api.agents.get.query({ agentId: "a1" })).health).toBe("offline");
  });

  it("a server alone on its file takes a lease back at its end, though its own threads read and write", async () => {
    await using alone = await startTestServer(settings);
    const task = await alone.api.tasks.enqueue.mutate({ payload: {} });
    const claimed = (await alone.api.tasks.claim.mutate({ agentId: "a1", leaseMs: 100 }))!;
    // The reader (Prisma's counts too) and the writer's own commits are not another process.
    await alone.api.tasks.stats.query();
    await alone.api.events.publish.mutate({ type: "t.x", source: "t" });
    expect(await sweep(alone, claimed.leaseExpiresAt!.getTime())).toEqual({ expired: 1, sharedGraceMs: 0 });
    expect(await alone.api.tasks.get.query({ taskId: task.id })).toMatchObject({ status: "pending", leaseOwner: null });
  });
});
