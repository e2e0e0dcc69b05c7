// All SQL of the event stream. Synchronous functions over the writer's connection, so a task
// change and its system event are written in one transaction (see src/db/writer.ts).
import { fromJsonText, toDate, toJsonText } from "../db/columns.js";
import { columnBytes, utf8Bytes, withinBudget } from "../db/answer-budget.js";
import type { Statements } from "../db/statements.js";
import type { WriteContext } from "../db/writer.js";
import type { JsonValue } from "../json-types.js";
import type { CoordinationEvent, Subscription } from "./event-schemas.js";
import type { SystemEventPayloads, SystemEventType } from "./system-events.js";
import { isPrefix, prefixRange, typePatternSql } from "./type-patterns.js";

/** The types a prefix pattern is read as, at most; past it, the prefix is read as a range of the type index. */
const MAX_EXPANDED = 64;
/** The types prefixes are read as in one read, at most (an agent may have a thousand patterns): the rest stay ranges. */
const MAX_TYPES_READ = 512;
/**
 * A read this close to the head walks the log from its cursor (NOT INDEXED: its rowid range): at
 * most this many rows, about 0.1 µs each, and none to find types by (a poll that keeps up with
 * five prefixes paid 0.5 ms finding them, against 16 µs walking).
 */
const NEAR_HEAD = 1000;

/**
 * Names the type index for a read whose types are all exact: SQLite then seeks each type's run
 * from the cursor, whatever its statistics say (after ANALYZE it walked the whole log from the
 * cursor for a type that is rare: 7-22 ms at 300,000 events). Nothing for `*` or a prefix read as a range.
 */
const byTypeIndex = (types: readonly string[]): string => (types.length > 0 && !types.some((t) => t === "*" || isPrefix(t)) ? "INDEXED BY events_type_seq_idx" : "");

export interface EventRow {
  seq: number;
  type: string;
  source: string;
  payload: string;
  target: string | null;
  createdAt: number | Date;
}

export interface SubscriptionRow {
  agentId: string;
  types: string;
  cursor: number;
  mailboxCursor: number;
  createdAt: number | Date;
  updatedAt: number | Date;
}

/** Where an agent has read to: untargeted events (`cursor`) and its mailbox (`mailboxCursor`). */
export interface InboxPosition {
  cursor: number;
  mailboxCursor: number;
}

export interface NewEvent {
  type: string;
  source: string;
  payload?: JsonValue;
  target?: string | null;
  /** The publisher's key, unique per source (findByKey); left out for the server's own events. */
  idempotencyKey?: string | undefined;
}

export const toEvent = (row: EventRow): CoordinationEvent => ({
  seq: row.seq,
  type: row.type,
  source: row.source,
  payload: fromJsonText(row.payload),
  target: row.target,
  createdAt: toDate(row.createdAt),
});

export const toSubscription = (row: SubscriptionRow): Subscription => ({
  agentId: row.agentId,
  types: JSON.parse(row.types) as string[],
  cursor: row.cursor,
  mailboxCursor: row.mailboxCursor,
  createdAt: toDate(row.createdAt),
  updatedAt: toDate(row.updatedAt),
});

/** Room an event takes in an answer beside its texts (payload, type, source, target): seq, time, field names, in bytes. */
const EVENT_FIXED_BYTES = 300;
const eventAnswerBytes = (row: EventRow): number =>
  utf8Bytes(row.payload) + utf8Bytes(row.type) + utf8Bytes(row.source) + columnBytes(row.target) + EVENT_FIXED_BYTES;

const PRUNED_THROUGH_KEY = "events.prunedThroughSeq";
/** Through which seq pruned_event_marks covers what was pruned (below PRUNED_THROUGH_KEY when an older server pruned since). */
const MARKED_THROUGH_KEY = "events.markedThroughSeq";
/** The most names of a kind pruned_event_marks keeps apart; past it they fold into one row (ALL_NAMES). */
const MAX_MARKS = 10_000;
/** The name of the row that stands for every name of its kind (no type or agent id is empty). */
export const ALL_NAMES = "";
/** The `source` of the events the server publishes about its own state changes. */
const SYSTEM_SOURCE = "coordination";

export class EventStore {
  constructor(private readonly st: Statements) {}

  /** A system event (task and agent state changes), published by the server itself. */
  /** Appends one of the server's own events (system-events.ts), its payload typed by its type. */
  appendSystem<K extends SystemEventType>(ctx: WriteContext, type: K, payload: SystemEventPayloads[K]): CoordinationEvent {
    // JSON by construction: optional fields are left out, never set to undefined.
    return this.append(ctx, { type, source: SYSTEM_SOURCE, payload: payload as unknown as JsonValue });
  }

  /**
   * Appends an event. The answer is built from what was written (no read-back) and is also handed
   * to the write's commit listeners (the event bus), so nothing reads the log for local events.
   */
  append(ctx: WriteContext, event: NewEvent): CoordinationEvent {
    // Left out, an empty object; null is a value, kept as sent (a keyed repeat compares against it).
    const payload = event.payload === undefined ? {} : event.payload;
    const target = event.target ?? null;
    // The server's own events (every task change) never carry a key: their statement names no such column.
    const { lastInsertRowid } =
      event.idempotencyKey === undefined
        ? this.st
            .get<[string, string, string, string | null, number]>(`INSERT INTO events (type, source, payload, target, createdAt) VALUES (?, ?, ?, ?, ?)`)
            .run(event.type, event.source, toJsonText(payload), target, ctx.now)
        : this.st
            .get<[string, string, string, string | null, number, string]>(`INSERT INTO events (type, source, payload, target, createdAt, idempotencyKey) VALUES (?, ?, ?, ?, ?, ?)`)
            .run(event.type, event.source, toJsonText(payload), target, ctx.now, event.idempotencyKey);
    const appended: CoordinationEvent = { seq: Number(lastInsertRowid), type: event.type, source: event.source, payload, target, createdAt: new Date(ctx.now) };
    ctx.appended(appended);
    return appended;
  }

  /**
   * Events after `afterSeq` a recipient should receive: untargeted ones matching its patterns,
   * and those targeted at it (none when `recipient` is null: direct messages reach only their target).
   * For the live stream's backfill, which reads from one position.
   */
  readMatching(recipient: string | null, patterns: readonly string[], afterSeq: number, limit: number, budgetBytes: number): CoordinationEvent[] {
    // An inbox read from one position: its typed and its targeted events on their own indexes
    // (one statement ORing them read every event of the patterns' types from the start).
    return this.readInbox(recipient, patterns, { cursor: afterSeq, mailboxCursor: afterSeq }, limit, budgetBytes);
  }

  /**
   * An agent's next events, in seq order: untargeted events after `position.cursor` matching its
   * patterns, and its mailbox (events targeted at it) after `position.mailboxCursor`. Two indexed
   * reads, merged. Each may stop early (at `limit`, or at the byte budget), so the merge never
   * reaches past the last event either one read: an event it did not read could sit before that.
   */
  readInbox(agentId: string | null, patterns: readonly string[], position: InboxPosition, limit: number, budgetBytes: number): CoordinationEvent[] {
    const parts: Array<{ rows: EventRow[]; complete: boolean }> = [];
    if (patterns.length > 0) {
      const params: unknown[] = [position.cursor];
      const { types, index } = this.typeRead(patterns, position.cursor);
      const typeMatch = typePatternSql(types, params);
      params.push(limit);
      const typed = this.readBounded(`SELECT * FROM events ${index} WHERE seq > ? AND target IS NULL AND ${typeMatch} ORDER BY seq LIMIT CAST(? AS INTEGER)`, params, budgetBytes);
      parts.push({ rows: typed.rows, complete: !typed.truncated && typed.rows.length < limit });
    }
    // (No recipient, no direct messages: `target = NULL` matches none.)
    const mail = this.readBounded(`SELECT * FROM events WHERE target = ? AND seq > ? ORDER BY seq LIMIT CAST(? AS INTEGER)`, [agentId, position.mailboxCursor, limit], budgetBytes);
    parts.push({ rows: mail.rows, complete: !mail.truncated && mail.rows.length < limit });
    const horizon = Math.min(...parts.map((p) => (p.complete ? Infinity : p.rows.at(-1)?.seq ?? Infinity)));
    const merged = parts
      .flatMap((p) => p.rows)
      .filter((row) => row.seq <= horizon)
      .sort((a, b) => a.seq - b.seq);
    return withinBudget(merged.slice(0, limit), eventAnswerBytes, budgetBytes).rows.map(toEvent);
  }

  /** The log itself, targeted events included (history and live tailing), cut at the byte budget. */
  readLog(afterSeq: number, limit: number, patterns?: readonly string[], budgetBytes = Number.POSITIVE_INFINITY): CoordinationEvent[] {
    return this.readLogPage(afterSeq, limit, budgetBytes, patterns).events;
  }

  /**
   * readLog, saying whether more events may follow (the page was full or cut at the budget).
   * `recipient`: absent, every event; a string, untargeted events and direct messages to it; null, untargeted only.
   */
  readLogPage(
    afterSeq: number,
    limit: number,
    budgetBytes: number,
    patterns?: readonly string[],
    recipient?: string | null,
  ): { events: CoordinationEvent[]; more: boolean } {
    const params: unknown[] = [afterSeq];
    const read = patterns ? this.typeRead(patterns, afterSeq) : undefined;
    const typeMatch = read ? typePatternSql(read.types, params) : "1";
    let targetMatch = "1";
    if (recipient === null) targetMatch = "target IS NULL";
    else if (recipient !== undefined) {
      targetMatch = "(target IS NULL OR target = ?)";
      params.push(recipient);
    }
    params.push(limit);
    const page = this.readBounded(`SELECT * FROM events ${read?.index ?? ""} WHERE seq > ? AND ${typeMatch} AND ${targetMatch} ORDER BY seq LIMIT CAST(? AS INTEGER)`, params, budgetBytes);
    return { events: page.rows.map(toEvent), more: page.truncated || page.rows.length === limit };
  }

  /**
   * How a read by `patterns` after `afterSeq` goes. Within NEAR_HEAD events of the head (a poller
   * that keeps up), along the log from the cursor: a few rows, whatever the patterns. Further
   * back, each type's run of the type index from the cursor, merged (typesOf), where a prefix's
   * range read every event of the prefix ever kept and sorted them (12 ms a poll of `task.*` at
   * 300,000 events, 90 ms from the start); `*` and prefixes left as ranges as SQLite plans them.
   */
  private typeRead(patterns: readonly string[], afterSeq: number): { types: string[]; index: string } {
    if (patterns.includes("*")) return { types: [...patterns], index: "" };
    if (this.headSeq() - afterSeq <= NEAR_HEAD) return { types: [...patterns], index: "NOT INDEXED" };
    const types = this.typesOf(patterns);
    return { types, index: byTypeIndex(types) };
  }

  /**
   * `patterns` with each prefix (`task.*`) replaced by the types the log holds under it, found by
   * skipping through the type index (a seek a type). A prefix with more than MAX_EXPANDED types
   * stays a range. Run inside the read's own transaction: a type first appended after it is in
   * none of that read's answers, and the next read sees it.
   */
  private typesOf(patterns: readonly string[]): string[] {
    if (!patterns.some(isPrefix)) return [...patterns];
    const out = new Set<string>();
    let expanded = 0;
    for (const pattern of patterns) {
      if (!isPrefix(pattern)) {
        out.add(pattern);
        continue;
      }
      const [from, to] = prefixRange(pattern);
      const types = this.st
        .get<[string, string, string, number], string>(
          `WITH RECURSIVE t(type) AS (
             SELECT (SELECT MIN(type) FROM events WHERE type >= ? AND type < ?)
             UNION ALL
             SELECT (SELECT MIN(type) FROM events WHERE type > t.type AND type < ?) FROM t WHERE t.type IS NOT NULL
           ) SELECT type FROM t WHERE type IS NOT NULL LIMIT CAST(? AS INTEGER)`,
        )
        .pluck()
        .all(from, to, to, MAX_EXPANDED + 1);
      // Past the read's budget of types, the rest of the prefixes stay ranges.
      if (types.length > MAX_EXPANDED || expanded + types.length > MAX_TYPES_READ) out.add(pattern);
      else {
        for (const type of types) out.add(type);
        expanded += types.length;
      }
    }
    return [...out];
  }

  /** The first seq of an event created at or after `at`: a binary search on the primary key (seq and time grow together). */
  firstSeqAtOrAfter(at: number): number {
    const timeOf = this.st.get<[number], { seq: number; createdAt: number }>(`SELECT seq, createdAt FROM events WHERE seq >= ? ORDER BY seq LIMIT 1`);
    let low = this.prunedThroughSeq() + 1;
    let high = this.headSeq() + 1;
    while (low < high) {
      const middle = Math.floor((low + high) / 2);
      const row = timeOf.get(middle);
      if (row === undefined) high = middle;
      else if (Number(row.createdAt) < at) low = row.seq + 1;
      else high = Math.min(middle, row.seq);
    }
    return low;
  }

  /**
   * A task's own events (task.* with its id, but task.progress, task.checkpointed and task.log), oldest first: from each of
   * `fromSeqs` (the log where the task was created, last claimed, finished) at most `scanLimit`
   * events of any kind are read (walked by seq, each counted), so a task on a long busy log
   * answers with what those windows reach, its start and its end among them however far apart,
   * and no log makes the read longer than a window each.
   */
  readForTask(taskId: string, fromSeqs: readonly number[], limit: number, scanLimit: number, budgetBytes: number, recipient?: string | null): CoordinationEvent[] {
    // As for the log: an agent sees the direct messages to it, a read credential none (readLogPage).
    const targetMatch = recipient === undefined ? "" : recipient === null ? " AND w.target IS NULL" : " AND (w.target IS NULL OR w.target = ?)";
    // Its transitions: task.progress reports, task.checkpointed saves and task.log appends are left out (a run
    // reporting every second would crowd its outcome out of the page; the task's progress and checkpoint hold the
    // newest, the log every line).
    // The bound counts every row read: one counting only the kinds kept would read on past
    // any number of reports (and a plan by the type index sorted them all). The walk reads seq,
    // type and target alone; only the rows of a task's kinds are read whole (a report's 16 KiB is not).
    const sql = `SELECT e.* FROM (SELECT seq, type, target FROM events WHERE seq >= ? ORDER BY seq LIMIT CAST(? AS INTEGER)) w JOIN events e ON e.seq = w.seq
       WHERE w.type >= 'task.' AND w.type < 'task/' AND w.type NOT IN ('task.progress', 'task.checkpointed', 'task.log')${targetMatch} AND json_extract(e.payload, '$.taskId') = ? ORDER BY w.seq LIMIT CAST(? AS INTEGER)`;
    const found = new Map<number, EventRow>();
    // A window cut by the byte budget is complete only up to its last row: nothing after it may
    // be answered (a later window's rows would leave a hole that reads as no event).
    let horizon = Number.POSITIVE_INFINITY;
    // Where the windows walked so far ended: the next one starts after it, never walking a row twice.
    let walkedTo = 0;
    const starts = [...new Set(fromSeqs)].sort((a, b) => a - b);
    for (const [i, fromSeq] of starts.entries()) {
      const from = Math.max(fromSeq, walkedTo + 1);
      if (from > horizon) break;
      const window = this.readBounded(sql, [from, scanLimit, ...(typeof recipient === "string" ? [recipient] : []), taskId, limit], budgetBytes);
      for (const row of window.rows) found.set(row.seq, row);
      if (window.truncated) horizon = Math.min(horizon, window.rows.at(-1)!.seq);
      // A full page: every later window's rows come after it.
      if (window.truncated || window.rows.length >= limit || i === starts.length - 1) break;
      walkedTo = this.st.get<[number, number], number>(`SELECT max(seq) FROM (SELECT seq FROM events WHERE seq >= ? ORDER BY seq LIMIT CAST(? AS INTEGER))`).pluck().get(from, scanLimit) ?? walkedTo;
    }
    const merged = [...found.values()].filter((row) => row.seq <= horizon).sort((a, b) => a.seq - b.seq).slice(0, limit);
    return withinBudget(merged, eventAnswerBytes, budgetBytes).rows.map(toEvent);
  }

  /** Runs an event query lazily, reading no further than the byte budget allows. */
  private readBounded(sql: string, params: unknown[], budgetBytes: number): { rows: EventRow[]; truncated: boolean } {
    return withinBudget(this.st.get<unknown[], EventRow>(sql).iterate(...params), eventAnswerBytes, budgetBytes);
  }

  /** The highest seq ever assigned (AUTOINCREMENT keeps it even when the log was pruned empty). */
  headSeq(): number {
    const row = this.st.get<[], { seq: number }>(`SELECT seq FROM sqlite_sequence WHERE name = 'events'`).get();
    return row?.seq ?? 0;
  }

  /** Every event with seq <= this was pruned; a cursor below it has missed events. */
  prunedThroughSeq(): number {
    const row = this.st.get<[string], { value: string }>(`SELECT value FROM system_state WHERE key = ?`).get(PRUNED_THROUGH_KEY);
    return row ? Number(row.value) : 0;
  }

  /** Deletes events older than `before` and beyond the newest `keep`; returns how many went. */
  prune(before: number | null, keep: number | null, limit: number): { deleted: number; more: boolean } {
    const prunedThrough = this.prunedThroughSeq();
    let through = prunedThrough;
    // Age: events are appended in time order, so those older than `before` are a prefix of the
    // log; its end is found by walking the primary key from the oldest event to the first newer one.
    if (before !== null) {
      const firstKept = this.st.get<[number], number>(`SELECT seq FROM events WHERE createdAt >= ? ORDER BY seq LIMIT 1`).pluck().get(before);
      through = Math.max(through, firstKept === undefined ? this.headSeq() : firstKept - 1);
    }
    if (keep !== null) through = Math.max(through, this.headSeq() - keep);
    // At most `limit` seqs a write: a month of events deleted in one write held the writer (and
    // every write waiting on it) for half a second, and grew the -wal by the whole delete.
    const batchThrough = Math.min(through, prunedThrough + limit);
    if (batchThrough > prunedThrough) {
      // What a server of an earlier version pruned since the marks were whole is unknown: it
      // counts as every type and target, so that from here on the marks are whole again.
      if (this.markedThroughSeq() < prunedThrough) this.markAllPruned(prunedThrough);
      this.markPruned(prunedThrough, batchThrough);
    }
    const deleted = this.st.get<[number]>(`DELETE FROM events WHERE seq <= ?`).run(batchThrough).changes;
    if (batchThrough > prunedThrough) {
      const save = this.st.get<[string, string]>(`INSERT INTO system_state (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`);
      save.run(PRUNED_THROUGH_KEY, String(batchThrough));
      save.run(MARKED_THROUGH_KEY, String(batchThrough));
    }
    return { deleted, more: batchThrough < through };
  }

  /**
   * Keeps, for the events in (after, through] (about to be pruned), the newest seq of each
   * untargeted event's type and of each targeted event's target (pruned_event_marks): what a
   * reader behind the log needs to know whether it missed anything (event-positions.ts
   * retainedStart). Past MAX_MARKS names of a kind they fold into one named ALL_NAMES.
   */
  private markPruned(after: number, through: number): void {
    for (const [kind, column, which] of [["type", "type", "target IS NULL"], ["target", "target", "target IS NOT NULL"]] as const) {
      this.st
        .get<[string, number, number]>(
          `INSERT INTO pruned_event_marks (kind, name, lastSeq) SELECT ?, ${column}, max(seq) FROM events WHERE seq > ? AND seq <= ? AND ${which} GROUP BY ${column}
           ON CONFLICT(kind, name) DO UPDATE SET lastSeq = max(lastSeq, excluded.lastSeq)`,
        )
        .run(kind, after, through);
      const names = this.st.get<[string], number>(`SELECT count(*) FROM pruned_event_marks WHERE kind = ?`).pluck().get(kind)!;
      if (names <= MAX_MARKS) continue;
      const newest = this.st.get<[string], number>(`SELECT max(lastSeq) FROM pruned_event_marks WHERE kind = ?`).pluck().get(kind)!;
      this.st.get<[string]>(`DELETE FROM pruned_event_marks WHERE kind = ?`).run(kind);
      this.markAll(kind, newest);
    }
  }

  /** Marks everything pruned through `through` as of every type and target (name ALL_NAMES). */
  private markAllPruned(through: number): void {
    this.markAll("type", through);
    this.markAll("target", through);
  }

  /** What was pruned of `kind` through `through` counts as every name of it. */
  private markAll(kind: "type" | "target", through: number): void {
    this.st
      .get<[string, string, number]>(`INSERT INTO pruned_event_marks (kind, name, lastSeq) VALUES (?, ?, ?) ON CONFLICT(kind, name) DO UPDATE SET lastSeq = max(lastSeq, excluded.lastSeq)`)
      .run(kind, ALL_NAMES, through);
  }

  /** Through which seq the marks tell what was pruned: past it (an older server pruned the file), anything may have been. */
  markedThroughSeq(): number {
    const row = this.st.get<[string], { value: string }>(`SELECT value FROM system_state WHERE key = ?`).get(MARKED_THROUGH_KEY);
    return row ? Number(row.value) : 0;
  }

  /** The types of untargeted events, and the targets of targeted ones, pruned after `seq` (ALL_NAMES: any). */
  prunedAfter(seq: number): { types: string[]; targets: string[] } {
    const names = (kind: string) => this.st.get<[string, number], string>(`SELECT name FROM pruned_event_marks WHERE kind = ? AND lastSeq > ?`).pluck().all(kind, seq);
    return { types: names("type"), targets: names("target") };
  }

  /** The event `source` published with `idempotencyKey`, while it is kept (events_idempotency_idx). */
  findByKey(source: string, idempotencyKey: string): EventRow | undefined {
    return this.st.get<[string, string], EventRow>(`SELECT * FROM events INDEXED BY events_idempotency_idx WHERE source = ? AND idempotencyKey = ?`).get(source, idempotencyKey);
  }

  getSubscription(agentId: string): Subscription | undefined {
    const row = this.st.get<[string], SubscriptionRow>(`SELECT * FROM subscriptions WHERE agentId = ?`).get(agentId);
    return row && toSubscription(row);
  }

  /**
   * Records a mailbox position for an agent that has none: no patterns, both cursors at the
   * oldest retained event (what an agent with no row reads from). An existing row is left as is.
   */
  openMailbox(agentId: string, now: number): void {
    const oldest = this.prunedThroughSeq();
    this.st
      .get<[string, number, number, number, number]>(
        `INSERT INTO subscriptions (agentId, types, cursor, mailboxCursor, createdAt, updatedAt) VALUES (?, '[]', ?, ?, ?, ?) ON CONFLICT(agentId) DO NOTHING`,
      )
      .run(agentId, oldest, oldest, now, now);
  }

  /** Creates or replaces an agent's subscription (its patterns and both cursors). */
  saveSubscription(agentId: string, types: readonly string[], position: InboxPosition, now: number): Subscription {
    const row = this.st
      .get<[string, string, number, number, number, number], SubscriptionRow>(
        `INSERT INTO subscriptions (agentId, types, cursor, mailboxCursor, createdAt, updatedAt) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT(agentId) DO UPDATE SET types = excluded.types, cursor = excluded.cursor, mailboxCursor = excluded.mailboxCursor,
           updatedAt = excluded.updatedAt
         RETURNING *`,
      )
      .get(agentId, JSON.stringify(types), position.cursor, position.mailboxCursor, now, now)!;
    return toSubscription(row);
  }

  /**
   * Moves both cursors forward to at least `seq` (a late or repeated ack never rewinds them).
   * An agent with no row yet gets one with no patterns: its mailbox position is now recorded.
   */
  advanceInbox(agentId: string, seq: number, now: number): Subscription {
    const row = this.st
      .get<[{ agentId: string; seq: number; now: number }], SubscriptionRow>(
        `INSERT INTO subscriptions (agentId, types, cursor, mailboxCursor, createdAt, updatedAt) VALUES (@agentId, '[]', @seq, @seq, @now, @now)
         ON CONFLICT(agentId) DO UPDATE SET cursor = MAX(cursor, excluded.cursor), mailboxCursor = MAX(mailboxCursor, excluded.mailboxCursor),
           updatedAt = excluded.updatedAt
         RETURNING *`,
      )
      .get({ agentId, seq, now })!;
    return toSubscription(row);
  }

  /**
   * Keeps an auto-ack batch (the agent's inbox after `before`, up to `lastSeq`) until its answer
   * is confirmed (poll_takes); `owner` renews it while the answer is on its way. Its seq.
   */
  holdTake(agentId: string, owner: string, before: InboxPosition, lastSeq: number, types: readonly string[], expiresAt: number): number {
    return this.st
      .get<[string, string, number, number, number, string, number], number>(
        `INSERT INTO poll_takes (agentId, owner, beforeCursor, beforeMailboxCursor, lastSeq, types, expiresAt) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING seq`,
      )
      .pluck()
      .get(agentId, owner, before.cursor, before.mailboxCursor, lastSeq, JSON.stringify(types), expiresAt)!;
  }

  /** Drops a hold: its answer reached the agent. */
  releaseTake(seq: number): void {
    this.st.get<[number]>(`DELETE FROM poll_takes WHERE seq = ?`).run(seq);
  }

  /** A hold's answer did not reach its agent: lost now, its range is the agent's next auto-ack batch. */
  loseTake(seq: number): void {
    this.st.get<[number]>(`UPDATE poll_takes SET expiresAt = 0 WHERE seq = ?`).run(seq);
  }

  /** Renews the holds `owner` still waits on (their answers are on their way) until `expiresAt`. */
  renewTakes(owner: string, seqs: readonly number[], expiresAt: number): void {
    if (seqs.length === 0) return;
    // One statement whatever the count: the seqs travel as a JSON array.
    this.st
      .get<[number, string, string]>(`UPDATE poll_takes SET expiresAt = ? WHERE owner = ? AND expiresAt > 0 AND seq IN (SELECT value FROM json_each(?))`)
      .run(expiresAt, owner, JSON.stringify(seqs));
  }

  /** The agent's oldest batch lost by `now` (its hold expired unconfirmed), if any. */
  lostTake(agentId: string, now: number): LostTake | undefined {
    const row = this.st
      .get<[string, number], Omit<LostTake, "types"> & { types: string }>(
        `SELECT seq, beforeCursor, beforeMailboxCursor, lastSeq, types FROM poll_takes WHERE agentId = ? AND expiresAt <= ? ORDER BY seq LIMIT 1`,
      )
      .get(agentId, now);
    return row && { seq: row.seq, beforeCursor: row.beforeCursor, beforeMailboxCursor: row.beforeMailboxCursor, lastSeq: row.lastSeq, types: JSON.parse(row.types) as string[] };
  }

  /** What is left of a lost batch once its events up to `seq` were given again. */
  shrinkLostTake(take: LostTake, seq: number): void {
    this.st
      .get<[number, number, number]>(`UPDATE poll_takes SET beforeCursor = MAX(beforeCursor, ?), beforeMailboxCursor = MAX(beforeMailboxCursor, ?) WHERE seq = ?`)
      .run(seq, seq, take.seq);
  }

  /** The agent acknowledged everything through `seq` (events.ack): its holds up to it go, and later ones start after it. */
  releaseTakesThrough(agentId: string, seq: number): void {
    this.st.get<[string, number]>(`DELETE FROM poll_takes WHERE agentId = ? AND lastSeq <= ?`).run(agentId, seq);
    this.st
      .get<[number, number, string]>(`UPDATE poll_takes SET beforeCursor = MAX(beforeCursor, ?), beforeMailboxCursor = MAX(beforeMailboxCursor, ?) WHERE agentId = ?`)
      .run(seq, seq, agentId);
  }

}

/** A batch lost for its agent: the range of its inbox (with the patterns it had) after the before cursors, up to lastSeq. */
export interface LostTake {
  seq: number;
  beforeCursor: number;
  beforeMailboxCursor: number;
  lastSeq: number;
  types: string[];
}
