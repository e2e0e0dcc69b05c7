// Retention: once events are pruned, every reader whose position is behind the pruned part gets
// an explicit EVENTS_PRUNED (412 on REST) instead of silently missing events.
import { join } from "node:path";
import { TRPCClientError } from "@trpc/client";
import { describe, expect, it, vi } from "vitest";
import { cpSync, mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { applyMigrations, defaultMigrationsDir } from "../src/db/migrate.js";
import { retainedStart } from "../src/events/event-positions.js";
import { openDatabase } from "../src/db/open-database.js";
import { Statements } from "../src/db/statements.js";
import { EventStore } from "../src/events/event-store.js";
import { collectEvents, range } from "./helpers/event-collector.js";
import { makeTempDir, rest, startTestServer, withDatabase } from "./helpers/test-server.js";

const PRUNED = { data: { code: "EVENTS_PRUNED" } };

describe("event retention", () => {
  it("keeps the newest eventRetentionCount events and refuses cursors behind the pruned part", async () => {
    // The pruner's timer never fires during the test: runNow() prunes exactly when we say.
    await using t = await startTestServer({ eventRetentionCount: 5, eventPruneMs: 3_600_000 });
    const { api } = t;
    await api.events.subscribe.mutate({ agentId: "lagger", types: ["job.*"] });
    await api.events.subscribe.mutate({ agentId: "current", types: ["job.*"] });
    for (const i of range(1, 4)) await api.events.publish.mutate({ type: "job.x", source: "t", payload: i });
    // "current" consumed up to seq 4, so it is still inside the retained log after pruning.
    expect((await api.events.poll.mutate({ agentId: "current" })).map((e) => e.seq)).toEqual(range(1, 4));
    for (const i of range(5, 10)) await api.events.publish.mutate({ type: "job.x", source: "t", payload: i });

    await t.server.services.jobs.eventPruner.runNow();
    expect(withDatabase(t, (db) => db.prepare(`SELECT value FROM system_state WHERE key = 'events.prunedThroughSeq'`).pluck().get())).toBe("5");
    expect((await api.events.list.query({ afterSeq: 0 })).map((e) => e.seq)).toEqual(range(6, 10));

    // Behind: cursor 0 < 5.
    const pollError = await api.events.poll.mutate({ agentId: "lagger" }).catch((e: unknown) => e);
    expect(pollError).toBeInstanceOf(TRPCClientError);
    expect(pollError).toMatchObject(PRUNED);
    expect((pollError as Error).message).toContain("fromSeq >= 5");
    await expect(api.events.poll.mutate({ agentId: "lagger", ack: "manual" })).rejects.toMatchObject(PRUNED);
    const viaRest = await rest(t.url, "GET", "/events/lagger");
    expect(viaRest.status).toBe(412);

    // Cursor 4 < 5 as well: event 5 (which it never saw) is gone.
    await expect(api.events.poll.mutate({ agentId: "current" })).rejects.toMatchObject(PRUNED);

    await expect(api.events.list.query({ afterSeq: 3 })).rejects.toMatchObject(PRUNED);
    expect((await rest(t.url, "GET", "/events?afterSeq=4")).status).toBe(412);
    expect((await api.events.list.query({ afterSeq: 5 })).map((e) => e.seq)).toEqual(range(6, 10));

    await expect(api.events.subscribe.mutate({ agentId: "lagger", types: ["job.*"], fromSeq: 4 })).rejects.toMatchObject(PRUNED);
    // Re-subscribing at the boundary moves the cursor: the retained events follow, none missing.
    const resubscribed = await api.events.subscribe.mutate({ agentId: "lagger", types: ["job.*"], fromSeq: 5 });
    expect(resubscribed.cursor).toBe(5);
    expect((await api.events.poll.mutate({ agentId: "lagger" })).map((e) => e.seq)).toEqual(range(6, 10));
    expect((await api.events.subscribe.mutate({ agentId: "fresh", types: ["job.*"], fromSeq: 8 })).cursor).toBe(8);
    expect((await api.events.poll.mutate({ agentId: "fresh" })).map((e) => e.seq)).toEqual([9, 10]);
  });

  it("a stream resuming from a pruned lastEventId errors with EVENTS_PRUNED; from the boundary it gets the rest", async () => {
    await using t = await startTestServer({ eventRetentionCount: 5, eventPruneMs: 3_600_000 });
    const { api } = t;
    for (const i of range(1, 10)) await api.events.publish.mutate({ type: "job.x", source: "t", payload: i });
    await t.server.services.jobs.eventPruner.runNow();

    const behind = collectEvents(api, { types: ["job.*"], lastEventId: "2" });
    await vi.waitFor(() => expect(behind.errors).toHaveLength(1), { timeout: 30_000, interval: 10 });
    expect(behind.errors[0]).toBeInstanceOf(TRPCClientError);
    expect(behind.errors[0]).toMatchObject(PRUNED);
    expect(behind.events).toEqual([]);

    const atBoundary = collectEvents(api, { types: ["job.*"], lastEventId: "5" });
    await atBoundary.started;
    const live = await api.events.publish.mutate({ type: "job.x", source: "t", payload: 11 });
    await vi.waitFor(() => expect(atBoundary.seqs().at(-1)).toBe(live.seq), { timeout: 30_000, interval: 10 });
    expect(atBoundary.seqs()).toEqual(range(6, 11));
    expect(atBoundary.ids).toEqual(range(6, 11).map(String));
    expect(atBoundary.errors).toEqual([]);
    atBoundary.unsubscribe();

    // lastEventId "0" means "everything retained", like fromSeq 0: no error after pruning.
    const everything = collectEvents(api, { types: ["job.*"], lastEventId: "0" });
    await vi.waitFor(() => expect(everything.seqs()).toEqual(range(6, 11)), { timeout: 30_000, interval: 10 });
    expect(everything.errors).toEqual([]);
    everything.unsubscribe();
  });

  it("refuses positions beyond the newest event instead of silently skipping what comes next", async () => {
    await using t = await startTestServer();
    const { api } = t;
    await api.events.publish.mutate({ type: "job.x", source: "t" });
    await expect(api.events.subscribe.mutate({ agentId: "future", types: ["*"], fromSeq: 50 })).rejects.toMatchObject({
      data: { code: "INVALID_INPUT" },
    });
    // A list past the head is refused alike, not answered [] for ever.
    expect(await rest(t.url, "GET", "/events?afterSeq=50")).toMatchObject({ status: 400, body: { code: "INVALID_INPUT", details: { issues: [{ path: "afterSeq", message: "50 is beyond the newest event (1)" }] } } });
    expect((await rest(t.url, "GET", "/events?afterSeq=1")).body).toEqual([]);
    const ahead = collectEvents(api, { types: ["*"], lastEventId: "50" });
    await vi.waitFor(() => expect(ahead.errors).toHaveLength(1), { timeout: 30_000, interval: 10 });
    expect(ahead.errors[0]).toMatchObject({ data: { code: "INVALID_INPUT" } });
    // The head itself is a valid position: nothing to replay, live events follow.
    expect((await api.events.subscribe.mutate({ agentId: "head", types: ["*"], fromSeq: 1 })).cursor).toBe(1);
  });

  it("manual ack: a subscriber that matched nothing is not left behind when unrelated events are pruned", async () => {
    await using t = await startTestServer({ eventRetentionCount: 5, eventPruneMs: 3_600_000 });
    const { api } = t;
    await api.events.subscribe.mutate({ agentId: "quiet", types: ["deploy.*"] });
    for (const i of range(1, 10)) await api.events.publish.mutate({ type: "job.x", source: "t", payload: i });
    expect(await api.events.poll.mutate({ agentId: "quiet", ack: "manual" })).toEqual([]);
    // Nothing matched up to the head, so the cursor skipped there with nothing acked.
    expect((await api.events.subscription.query({ agentId: "quiet" })).cursor).toBe(10);

    await t.server.services.jobs.eventPruner.runNow();
    expect(withDatabase(t, (db) => db.prepare(`SELECT value FROM system_state WHERE key = 'events.prunedThroughSeq'`).pluck().get())).toBe("5");
    expect(await api.events.poll.mutate({ agentId: "quiet", ack: "manual" })).toEqual([]);

    // A matching event still waits for its ack: polled again until acked (at-least-once).
    const deploy = await api.events.publish.mutate({ type: "deploy.done", source: "t" });
    const noise = await api.events.publish.mutate({ type: "job.x", source: "t" });
    expect((await api.events.poll.mutate({ agentId: "quiet", ack: "manual" })).map((e) => e.seq)).toEqual([deploy.seq]);
    expect((await api.events.poll.mutate({ agentId: "quiet", ack: "manual" })).map((e) => e.seq)).toEqual([deploy.seq]);
    expect((await api.events.subscription.query({ agentId: "quiet" })).cursor).toBe(10);
    expect((await api.events.ack.mutate({ agentId: "quiet", seq: deploy.seq })).cursor).toBe(deploy.seq);
    expect(await api.events.poll.mutate({ agentId: "quiet", ack: "manual" })).toEqual([]);
    expect((await api.events.subscription.query({ agentId: "quiet" })).cursor).toBe(noise.seq);
  });

  it("after EVENTS_PRUNED, resubscribing without fromSeq restarts at the head, as the error says", async () => {
    await using t = await startTestServer({ eventRetentionCount: 5, eventPruneMs: 3_600_000 });
    const { api } = t;
    await api.events.subscribe.mutate({ agentId: "lagger", types: ["job.*"] });
    for (const i of range(1, 10)) await api.events.publish.mutate({ type: "job.x", source: "t", payload: i });
    await t.server.services.jobs.eventPruner.runNow();

    const error = await api.events.poll.mutate({ agentId: "lagger" }).catch((e: unknown) => e);
    expect(error).toMatchObject(PRUNED);
    expect((error as Error).message).toBe(
      "cursor 0 is behind the retained event log: events up to 5 were pruned. " +
        "Resubscribe with fromSeq 0 (or fromSeq >= 5) to read what is retained, or without fromSeq to skip to the newest event.",
    );
    // Following the advice works: the cursor moves to the head, and new events follow.
    const resubscribed = await api.events.subscribe.mutate({ agentId: "lagger", types: ["job.*"] });
    expect(resubscribed.cursor).toBe(10);
    expect(await api.events.poll.mutate({ agentId: "lagger" })).toEqual([]);
    const next = await api.events.publish.mutate({ type: "job.x", source: "t" });
    expect((await api.events.poll.mutate({ agentId: "lagger" })).map((e) => e.seq)).toEqual([next.seq]);

    // A cursor inside the retained log is kept when subscribing again (here: adding a type).
    await api.events.subscribe.mutate({ agentId: "reader", types: ["job.*"], fromSeq: 7 });
    const widened = await api.events.subscribe.mutate({ agentId: "reader", types: ["build.*"] });
    expect(widened).toMatchObject({ cursor: 7, types: ["build.*", "job.*"] });
  });

  it("fromSeq 0 replays everything retained, even after pruning", async () => {
    await using t = await startTestServer({ eventRetentionCount: 5, eventPruneMs: 3_600_000 });
    const { api } = t;
    for (const i of range(1, 10)) await api.events.publish.mutate({ type: "job.x", source: "t", payload: i });
    await t.server.services.jobs.eventPruner.runNow();
    expect(withDatabase(t, (db) => db.prepare(`SELECT value FROM system_state WHERE key = 'events.prunedThroughSeq'`).pluck().get())).toBe("5");

    const replay = await api.events.subscribe.mutate({ agentId: "replay", types: ["job.*"], fromSeq: 0 });
    expect(replay.cursor).toBe(5);
    expect((await api.events.poll.mutate({ agentId: "replay" })).map((e) => e.seq)).toEqual(range(6, 10));
    // Other positions behind the retained log are still refused.
    await expect(api.events.subscribe.mutate({ agentId: "replay", types: ["job.*"], fromSeq: 1 })).rejects.toMatchObject(PRUNED);
  });

  // A stream's id moves only with the events it receives: a rare type's stream fell behind the log
  // and was refused at its next reconnect, though nothing of its types was pruned (a trial).
  it("a stream or a poll behind the retained log reads on when none of its types was pruned since; refused when one was", async () => {
    await using t = await startTestServer({ eventRetentionCount: 5, eventPruneMs: 3_600_000 });
    const { api } = t;
    await api.events.subscribe.mutate({ agentId: "rare", types: ["alert.*"] });
    const fire = await api.events.publish.mutate({ type: "alert.fire", source: "t" });
    expect((await api.events.poll.mutate({ agentId: "rare" })).map((e) => e.seq)).toEqual([fire.seq]);
    for (const i of range(1, 10)) await api.events.publish.mutate({ type: "noise.x", source: "t", payload: i });
    // Targeted events are never a plain stream's: one of its type pruned misses it nothing.
    await api.events.publish.mutate({ type: "alert.dm", source: "t", target: "someone" });
    await t.server.services.jobs.eventPruner.runNow();
    expect((await api.events.head.query()).prunedThrough).toBe(7);

    const resumed = collectEvents(api, { types: ["alert.*"], lastEventId: String(fire.seq) });
    await resumed.started;
    const second = await api.events.publish.mutate({ type: "alert.second", source: "t" });
    await vi.waitFor(() => expect(resumed.seqs()).toEqual([second.seq]), { timeout: 15_000, interval: 25 });
    expect(resumed.errors).toEqual([]);
    resumed.unsubscribe();
    // The agent's own stream (its types and its mailbox, to which nothing was sent) resumes too.
    const asAgent = collectEvents(api, { agentId: "rare", lastEventId: String(fire.seq) });
    await vi.waitFor(() => expect(asAgent.seqs()).toEqual([second.seq]), { timeout: 15_000, interval: 25 });
    expect(asAgent.errors).toEqual([]);
    asAgent.unsubscribe();
    expect((await api.events.poll.mutate({ agentId: "rare" })).map((e) => e.seq)).toEqual([second.seq]);

    // A stream of every type, or of noise.*, did miss events: refused as before.
    for (const types of [["*"], ["noise.*"], undefined]) {
      const behind = collectEvents(api, { ...(types ? { types } : {}), lastEventId: String(fire.seq) });
      await vi.waitFor(() => expect(behind.errors).toHaveLength(1), { timeout: 15_000, interval: 25 });
      expect(behind.errors[0]).toMatchObject(PRUNED);
    }
    // An alert pruned after the stream's id: refused.
    const third = await api.events.publish.mutate({ type: "alert.third", source: "t" });
    for (const i of range(1, 6)) await api.events.publish.mutate({ type: "noise.x", source: "t", payload: i });
    await t.server.services.jobs.eventPruner.runNow();
    expect((await api.events.head.query()).prunedThrough).toBeGreaterThan(third.seq);
    const missed = collectEvents(api, { types: ["alert.*"], lastEventId: String(second.seq) });
    await vi.waitFor(() => expect(missed.errors).toHaveLength(1), { timeout: 15_000, interval: 25 });
    expect(missed.errors[0]).toMatchObject(PRUNED);
    await expect(api.events.poll.mutate({ agentId: "rare" })).rejects.toMatchObject(PRUNED);
  });

  it("keeps the newest pruned seq of each type and each target; past 10,000 of a kind they fold into one that stands for all", () => {
    const db = openDatabase({ dbPath: join(makeTempDir(), "marks.db"), busyTimeoutMs: 5000, durability: "normal" });
    try {
      applyMigrations(db);
      const insert = db.prepare(`INSERT INTO events (type, source, payload, target, createdAt) VALUES (?, 's', '{}', ?, ?)`);
      db.transaction(() => {
        insert.run("a", null, 1);
        insert.run("b", null, 2);
        insert.run("a", null, 3);
        insert.run("c", "agent-1", 4);
        insert.run("z", null, 5);
      })();
      const events = new EventStore(new Statements(db));
      events.prune(null, 1, 100);
      expect(db.prepare(`SELECT kind, name, lastSeq FROM pruned_event_marks ORDER BY kind, name`).all()).toEqual([
        { kind: "target", name: "agent-1", lastSeq: 4 },
        { kind: "type", name: "a", lastSeq: 3 },
        { kind: "type", name: "b", lastSeq: 2 },
      ]);
      expect(events.prunedAfter(2)).toEqual({ types: ["a"], targets: ["agent-1"] });
      db.transaction(() => range(1, 10_001).forEach((i) => insert.run(`t${i}`, null, 10 + i)))();
      events.prune(null, 1, 20_000);
      expect(db.prepare(`SELECT kind, name, lastSeq FROM pruned_event_marks ORDER BY kind, name`).all()).toEqual([
        { kind: "target", name: "agent-1", lastSeq: 4 },
        { kind: "type", name: "", lastSeq: 10_005 },
      ]);
      expect(events.prunedAfter(10_004)).toEqual({ types: [""], targets: [] });
    } finally {
      db.close();
    }
  });

  // A review: the marks start empty on a file pruned before them, and a server of an earlier
  // version sharing the file prunes without marking; either way nothing may be skipped in silence.
  it("what was pruned before the marks, or by an earlier version since, counts as every type and target", async () => {
    const dir = makeTempDir();
    const earlier = mkdtempSync(join(tmpdir(), "migrations-"));
    for (const name of readdirSync(defaultMigrationsDir())) if (name !== "20261210010000_pruned_event_marks") cpSync(join(defaultMigrationsDir(), name), join(earlier, name), { recursive: true });
    const db = openDatabase({ dbPath: join(dir, "coordination.db"), busyTimeoutMs: 5000, durability: "normal" });
    applyMigrations(db, earlier);
    const insert = db.prepare(`INSERT INTO events (type, source, payload, target, createdAt) VALUES (?, 's', '{}', ?, ?)`);
    for (const i of range(1, 20)) insert.run(i <= 3 ? "job.x" : "noise.x", i === 11 ? "w" : null, Date.now());
    db.prepare(`INSERT INTO subscriptions (agentId, types, cursor, mailboxCursor, createdAt, updatedAt) VALUES ('w', '["job.*"]', 0, 0, 0, 0)`).run();
    // The earlier version's prune: the rows go, the pruned-through seq moves; no marks.
    const dbPath = join(dir, "coordination.db");
    const pruneAsBefore = (through: number) =>
      withDatabase({ dbPath }, (file) => {
        file.prepare(`DELETE FROM events WHERE seq <= ?`).run(through);
        file.prepare(`INSERT INTO system_state (key, value) VALUES ('events.prunedThroughSeq', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`).run(String(through));
      });
    db.close();
    pruneAsBefore(15);
    const first = await startTestServer({ eventRetentionCount: 3, eventPruneMs: 3_600_000 }, dir);
    try {
      await expect(first.api.events.poll.mutate({ agentId: "w" })).rejects.toMatchObject(PRUNED);
      const behind = collectEvents(first.api, { types: ["alert.*"], lastEventId: "4" });
      await vi.waitFor(() => expect(behind.errors).toHaveLength(1), { timeout: 15_000, interval: 25 });
      expect(behind.errors[0]).toMatchObject(PRUNED);
    } finally {
      await first.stop();
    }
    // A newer prune after an earlier version's: what that one took counts as everything; past it the marks hold.
    pruneAsBefore(17);
    await using t = await startTestServer({ eventRetentionCount: 1, eventPruneMs: 3_600_000 }, dir);
    const file = openDatabase({ dbPath, busyTimeoutMs: 5000, durability: "normal" });
    try {
      const events = new EventStore(new Statements(file));
      expect(() => retainedStart(events, 16, { patterns: ["alert.*"], recipient: null }, "lastEventId")).toThrow(/pruned/);
      await t.server.services.jobs.eventPruner.runNow();
      expect(events.prunedThroughSeq()).toBe(19);
      expect(() => retainedStart(events, 16, { patterns: ["alert.*"], recipient: null }, "lastEventId")).toThrow(/pruned/);
      expect(retainedStart(events, 17, { patterns: ["alert.*"], recipient: null }, "lastEventId")).toBe(19);
      expect(() => retainedStart(events, 17, { patterns: ["noise.*"], recipient: null }, "lastEventId")).toThrow(/pruned/);
    } finally {
      file.close();
    }
  });

  it("subscribing again keeps a cursor behind the log that missed nothing; a folded type mark never refuses a mailbox", async () => {
    await using t = await startTestServer({ eventRetentionCount: 5, eventPruneMs: 3_600_000 });
    const { api } = t;
    await api.events.subscribe.mutate({ agentId: "rare", types: ["alert.*"] });
    await api.events.publish.mutate({ type: "alert.fire", source: "t" });
    await api.events.poll.mutate({ agentId: "rare" });
    for (const i of range(1, 10)) await api.events.publish.mutate({ type: "noise.x", source: "t", payload: i });
    await t.server.services.jobs.eventPruner.runNow();
    const second = await api.events.publish.mutate({ type: "alert.second", source: "t" });
    // An agent restarting subscribes again, then polls: the retained event it never had comes.
    expect((await api.events.subscribe.mutate({ agentId: "rare", types: ["alert.*"] })).cursor).toBe(6);
    expect((await api.events.poll.mutate({ agentId: "rare" })).map((e) => e.seq)).toEqual([second.seq]);

    const db = openDatabase({ dbPath: join(makeTempDir(), "fold.db"), busyTimeoutMs: 5000, durability: "normal" });
    try {
      applyMigrations(db);
      const insert = db.prepare(`INSERT INTO events (type, source, payload, target, createdAt) VALUES (?, 's', '{}', NULL, 1)`);
      db.transaction(() => range(1, 10_002).forEach((i) => insert.run(`t${i}`)))();
      const events = new EventStore(new Statements(db));
      events.prune(null, 1, 20_000);
      expect(retainedStart(events, 5, { patterns: [], recipient: "w" }, "mailboxCursor")).toBe(10_001);
      expect(() => retainedStart(events, 5, { patterns: ["x.*"], recipient: "w" }, "cursor")).toThrow(/pruned/);
    } finally {
      db.close();
    }
  });

  // A review: a batch taken for an agent whose answer never arrived is given again at its next
  // take, but once its events were pruned the batch was dropped, and the next poll read on.
  it("a polled batch that never arrived, pruned before it was given again, is EVENTS_PRUNED until acknowledged past, never skipped", async () => {
    await using t = await startTestServer({ eventRetentionCount: 5, eventPruneMs: 3_600_000 });
    const { api } = t;
    // A take whose answer is lost: its hold (owner "gone") is never renewed nor confirmed.
    const takeAndLose = async (agentId: string) => {
      const taken = (await t.server.services.db.write("events.take", { agentId, limit: 10, hold: { owner: "gone", holdMs: 1 } })) as { batch: Array<{ seq: number }> };
      // Its hold ran out 1 ms after the write's time, which is before the write was answered.
      const answeredAt = Date.now();
      await vi.waitFor(() => expect(Date.now()).toBeGreaterThan(answeredAt + 2), { timeout: 15_000, interval: 5 });
      return taken.batch.map((e) => e.seq);
    };
    await api.events.subscribe.mutate({ agentId: "w", types: ["job.*"] });
    await api.events.subscribe.mutate({ agentId: "v", types: ["alert.*"] });
    const job = await api.events.publish.mutate({ type: "job.x", source: "t" });
    expect(await takeAndLose("w")).toEqual([job.seq]);
    for (const i of range(1, 5)) await api.events.publish.mutate({ type: "noise.x", source: "t", payload: i });
    const alert = await api.events.publish.mutate({ type: "alert.a", source: "t" });
    expect(await takeAndLose("v")).toEqual([alert.seq]);
    for (const i of range(1, 3)) await api.events.publish.mutate({ type: "noise.x", source: "t", payload: i });
    await t.server.services.jobs.eventPruner.runNow();
    expect((await api.events.head.query()).prunedThrough).toBe(5);
    const later = await api.events.publish.mutate({ type: "job.y", source: "t" });

    // w's lost batch (job.x) is gone: refused, again and again, also after a subscribe that names no position.
    for (let i = 0; i < 2; i++) {
      const refused = await api.events.poll.mutate({ agentId: "w" }).catch((e: unknown) => e);
      expect(refused).toMatchObject(PRUNED);
      expect((refused as Error).message).toContain(`a batch polled for agent "w" (events after 0 through ${job.seq}) never reached it`);
      expect(refused).toMatchObject({ data: { details: { prunedThroughSeq: 5, lostBatch: { after: 0, through: job.seq } } } });
    }
    await api.events.subscribe.mutate({ agentId: "w", types: ["job.*"] });
    await expect(api.events.poll.mutate({ agentId: "w" })).rejects.toMatchObject(PRUNED);
    await api.events.subscribe.mutate({ agentId: "w", types: ["job.*"], fromSeq: 0 });
    expect((await api.events.poll.mutate({ agentId: "w" })).map((e) => e.seq)).toEqual([later.seq]);

    // v's lost batch (alert.a) is retained, only noise before it was pruned: given again.
    expect((await api.events.poll.mutate({ agentId: "v" })).map((e) => e.seq)).toEqual([alert.seq]);
  });

  // A month of events deleted in one write held every other write behind it for half a second.
  it("prunes in bounded writes: each deletes up to its limit of seqs, says whether more is left, and moves the pruned-through seq with it", async () => {
    const db = openDatabase({ dbPath: join(makeTempDir(), "prune.db"), busyTimeoutMs: 5000, durability: "normal" });
    try {
      applyMigrations(db);
      const insert = db.prepare(`INSERT INTO events (type, source, payload, target, createdAt) VALUES ('x', 's', '{}', NULL, ?)`);
      db.transaction(() => range(1, 4500).forEach((i) => insert.run(i)))();
      const events = new EventStore(new Statements(db));
      // Keep 100: seqs 1..4400 go, 2,000 a write.
      expect([0, 1, 2].map(() => events.prune(null, 100, 2000))).toEqual([
        { deleted: 2000, more: true },
        { deleted: 2000, more: true },
        { deleted: 400, more: false },
      ]);
      expect(events.prunedThroughSeq()).toBe(4400);
      expect(db.prepare(`SELECT MIN(seq) FROM events`).pluck().get()).toBe(4401);
      // By age: created before 4450 (and seqs are in time order).
      expect(events.prune(4450, null, 20)).toEqual({ deleted: 20, more: true });
      expect(events.prune(4450, null, 1000)).toEqual({ deleted: 29, more: false });
      expect(events.prunedThroughSeq()).toBe(4449);
    } finally {
      db.close();
    }
  });

  it("the pruner job runs the batches to the end, and logs the total once", async () => {
    await using t = await startTestServer({ eventRetentionCount: 10, eventPruneMs: 3_600_000 });
    withDatabase(t, (db) => {
      const insert = db.prepare(`INSERT INTO events (type, source, payload, target, createdAt) VALUES ('x', 's', '{}', NULL, ?)`);
      db.transaction(() => range(1, 4500).forEach(() => insert.run(Date.now())))();
    });
    expect(await t.server.services.events.prune()).toBe(4490);
    expect((await t.api.events.head.query()).prunedThrough).toBe(4490);
  });
});
