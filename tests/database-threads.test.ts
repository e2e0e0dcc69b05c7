// The event loop never runs SQLite: the writer and reader threads (src/db/thread/). What that
// buys, shown by conditions, not by timing: the server answers while another process holds the
// write lock; parked long-polls send the database nothing until something they wait for is
// committed; a database thread that dies fails calls and health with a clear 503, not a hang.
import type { Worker } from "node:worker_threads";
import BetterSqlite3 from "better-sqlite3";
import { TRPCClientError } from "@trpc/client";
import { describe, expect, it, vi } from "vitest";
import type { CoordinationEvent } from "../src/events/event-schemas.js";
import { createCoordinationClient, mayHaveBeenServed } from "../client/index.js";
import { makeTempDir, rest, startTestServer, withDatabase } from "./helpers/test-server.js";

describe("database threads", () => {
  it("reads, health and stats answer while another process holds the write lock; the waiting write commits once it is released", async () => {
    await using t = await startTestServer({ busyTimeoutMs: 60_000 });
    await t.api.tasks.enqueue.mutate({ queue: "q", payload: { n: 1 } });
    const other = new BetterSqlite3(t.dbPath);
    other.prepare("BEGIN IMMEDIATE").run();
    let settled = false;
    const write = t.api.tasks.enqueue.mutate({ queue: "q", payload: { n: 2 } }).finally(() => (settled = true));
    try {
      // Before the threads, the write's lock wait froze the event loop: none of these answered
      // until busyTimeoutMs ran out.
      expect(await rest(t.url, "GET", "/health")).toMatchObject({ status: 200, body: { status: "ok", db: "ok" } });
      expect((await t.api.tasks.list.query({ queue: "q" })).items.map((task) => task.payload)).toEqual([{ n: 1 }]);
      expect((await rest(t.url, "GET", "/stats/tasks")).body.totals.pending).toBe(1);
      expect(settled).toBe(false);
    } finally {
      other.prepare("COMMIT").run();
      other.close();
    }
    const task = await write;
    expect(withDatabase(t, (db) => db.prepare("SELECT payload FROM tasks WHERE id = ?").pluck().get(task.id))).toBe('{"n":2}');
  });

  it("parked long-poll claims send the database nothing while idle; one plain task wakes exactly one of them", async () => {
    await using t = await startTestServer();
    const { services } = t.server;
    const parked = Array.from({ length: 20 }, (_, i) =>
      t.api.tasks.claim.mutate({ agentId: `idle-${i}`, queues: ["q"], waitMs: 60_000 }).catch(() => "ended" as const),
    );
    await vi.waitFor(() => expect(services.waiters.claims.size).toBe(20), { timeout: 30_000, interval: 10 });
    const sent = () => Object.fromEntries(services.db.sent);
    const idle = sent();
    // Before, each parked claim re-ran its claim write every crossProcessPollMs (250 ms).
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(sent()["tasks.claim"]).toBe(idle["tasks.claim"]);
    expect(idle["tasks.claim"]).toBe(20);

    const task = await t.api.tasks.enqueue.mutate({ queue: "q", payload: {} });
    const winner = await Promise.race(parked);
    expect(winner).toMatchObject({ id: task.id, status: "claimed" });
    expect(services.waiters.claims.size).toBe(19);
    // The one woken claim looked again; the other 19 did not.
    expect(sent()["tasks.claim"]).toBe(idle["tasks.claim"]! + 1);
    await t.stop();
    expect((await Promise.all(parked)).filter((r) => r === null || r === "ended")).toHaveLength(19);
  });

  it("a database thread that dies fails every call and /health with 503 SHUTTING_DOWN naming it, and the server still stops", async () => {
    await using t = await startTestServer();
    const { db } = t.server.services;
    // Fault injection: end the writer thread as a native crash would.
    await (db as unknown as { writer: { worker: Worker } }).writer.worker.terminate();
    const lost = await db.lost;
    expect(lost.message).toMatch(/^the database writer thread exited \(code 1\)/);

    // Sent once: the typed client would send a SHUTTING_DOWN call again for waitForServerMs.
    const error = await t.api.tasks.enqueue.mutate({ payload: {} }, { context: { sendOnce: true } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TRPCClientError);
    expect((error as TRPCClientError<never>).data).toMatchObject({ code: "SHUTTING_DOWN", httpStatus: 503 });
    expect((error as Error).message).toMatch(/database writer thread exited/);
    const health = await rest(t.url, "GET", "/health");
    expect(health.status).toBe(503);
    expect(health.body).toMatchObject({ code: "SHUTTING_DOWN", message: expect.stringMatching(/database writer thread exited/) });
    await t.stop();
  });

  // A write the writer thread had when it died may have committed (its answer not yet posted): it
  // answered SHUTTING_DOWN, which says nothing was stored, and the typed client sent it again to
  // the restarted server: an enqueue stored twice. Now it answers INTERNAL, sent once.
  it("a write under way when the writer thread dies is not answered SHUTTING_DOWN (it may have committed), and the client does not send it again", async () => {
    await using t = await startTestServer({ busyTimeoutMs: 60_000 });
    const { db } = t.server.services;
    let sent = 0;
    const counting: typeof fetch = (input, init) => {
      if (String(input instanceof Request ? input.url : input).includes("tasks.enqueue")) sent++;
      return fetch(input, init);
    };
    const client = createCoordinationClient({ url: t.url, fetch: counting as never });
    const other = new BetterSqlite3(t.dbPath);
    other.prepare("BEGIN IMMEDIATE").run();
    try {
      const write = client.api.tasks.enqueue.mutate({ queue: "q", payload: {} }).catch((e: unknown) => e);
      // The write reached the writer thread, which waits for the lock.
      await vi.waitFor(() => expect(db.writeWaitMs).toBeGreaterThan(0), { timeout: 15_000, interval: 10 });
      // Fault injection: the thread ends (as a native crash would) with the write in its hands.
      const ended = (db as unknown as { writer: { worker: Worker } }).writer.worker.terminate();
      other.prepare("ROLLBACK").run();
      await ended;
      const error = await write;
      expect(error).toBeInstanceOf(TRPCClientError);
      expect((error as TRPCClientError<never>).data).toMatchObject({ code: "INTERNAL", httpStatus: 500 });
      expect(mayHaveBeenServed(error)).toBe(true);
      expect(sent).toBe(1);
      // A write made after it never reached a thread: SHUTTING_DOWN, as before.
      const after = await t.api.tasks.enqueue.mutate({ payload: {} }, { context: { sendOnce: true } }).catch((e: unknown) => e);
      expect((after as TRPCClientError<never>).data).toMatchObject({ code: "SHUTTING_DOWN", httpStatus: 503 });
      expect(mayHaveBeenServed(after)).toBe(false);
    } finally {
      other.close();
      await client.close();
      await t.stop();
    }
  });

  it("a write is answered only after the event bus dispatched its events, even when another process's must be read first", async () => {
    const dir = makeTempDir();
    await using ours = await startTestServer({}, dir);
    await using other = await startTestServer({}, dir);
    await ours.api.events.publish.mutate({ type: "t.start", source: "t" });
    await vi.waitFor(() => expect(other.server.services.bus.lastSeq).toBe(1), { timeout: 10_000, interval: 10 });
    for (let round = 0; round < 20; round++) {
      // Another process commits first: our next batch does not follow the last seq our bus saw,
      // so the bus reads the log before dispatching it.
      await other.api.events.publish.mutate({ type: "t.other", source: "t" });
      const published = await ours.server.services.events.publish({ type: "t.ours", source: "t", payload: null });
      // Listening from the moment the answer arrived: nothing already answered may come as news.
      const late: CoordinationEvent[] = [];
      const unlisten = ours.server.services.bus.listen((events) => late.push(...events));
      expect(ours.server.services.bus.lastSeq).toBe(published.seq);
      await ours.server.services.bus.settled();
      unlisten();
      expect(late).toEqual([]);
    }
  });

  it("a heartbeat sent in time keeps its lease although another process held the write lock past the lease's end", async () => {
    await using t = await startTestServer({ busyTimeoutMs: 60_000, leaseSweepMs: 50 });
    const task = await t.api.tasks.enqueue.mutate({ payload: {} });
    const claimed = (await t.api.tasks.claim.mutate({ agentId: "a1", leaseMs: 5000 }))!;
    const leaseEnd = claimed.leaseExpiresAt!.getTime();
    const other = new BetterSqlite3(t.dbPath);
    other.prepare("BEGIN IMMEDIATE").run();
    let beat: Promise<unknown>;
    try {
      // Let the sweeper run into the lock, then heartbeat while the lease still holds.
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(Date.now()).toBeLessThan(leaseEnd);
      beat = t.api.tasks.heartbeat.mutate({ taskId: task.id, agentId: "a1", leaseToken: claimed.leaseToken, leaseMs: 5000 });
      // Hold the lock until the lease has run out and sweeps asked for since have queued up.
      await vi.waitFor(() => expect(Date.now()).toBeGreaterThan(leaseEnd + 500), { timeout: 30_000, interval: 50 });
    } finally {
      other.prepare("COMMIT").run();
      other.close();
    }
    expect(await beat).toMatchObject({ id: task.id, status: "claimed", leaseOwner: "a1", leaseToken: claimed.leaseToken });
    await t.server.services.jobs.leaseSweeper.runNow();
    expect(await t.api.events.list.query({ afterSeq: 0, types: ["task.lease_expired"] })).toEqual([]);
    expect((await t.api.tasks.get.query({ taskId: task.id })).status).toBe("claimed");
  });
});
