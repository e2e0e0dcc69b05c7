// All SQL of the event stream. Synchronous functions over the writer's connection, so a task
// change and its system event are written in one transaction (see src/db/writer.ts).
import { fromJsonText, toDate, toJsonText } from "../db/columns.js";
import type { Statements } from "../db/statements.js";
import type { CoordinationEvent, Subscription } from "./event-schemas.js";
import { typePatternSql } from "./type-patterns.js";

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
  createdAt: number | Date;
  updatedAt: number | Date;
}

export interface NewEvent {
  type: string;
  source: string;
  payload?: unknown;
  target?: string | null;
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
  createdAt: toDate(row.createdAt),
  updatedAt: toDate(row.updatedAt),
});

const PRUNED_THROUGH_KEY = "events.prunedThroughSeq";
/** The `source` of the events the server publishes about its own state changes. */
const SYSTEM_SOURCE = "coordination";

export class EventStore {
  constructor(private readonly st: Statements) {}

  /** A system event (task and agent state changes), published by the server itself. */
  appendSystem(ctx: { now: number }, type: string, payload: Record<string, unknown>): CoordinationEvent {
    return this.append({ type, source: SYSTEM_SOURCE, payload }, ctx.now);
  }

  append(event: NewEvent, now: number): CoordinationEvent {
    const row = this.st
      .get<[string, string, string, string | null, number], EventRow>(
        `INSERT INTO events (type, source, payload, target, createdAt) VALUES (?, ?, ?, ?, ?) RETURNING *`,
      )
      .get(event.type, event.source, toJsonText(event.payload ?? {}), event.target ?? null, now)!;
    return toEvent(row);
  }

  /**
   * Events after `afterSeq` a recipient should receive: untargeted ones matching its patterns,
   * and those targeted at it (none when `recipient` is null: direct messages reach only their target).
   */
  readMatching(recipient: string | null, patterns: readonly string[], afterSeq: number, limit: number): CoordinationEvent[] {
    const params: unknown[] = [afterSeq];
    const typeMatch = typePatternSql(patterns, params);
    params.push(recipient, limit);
    return this.st
      .get<unknown[], EventRow>(
        `SELECT * FROM events WHERE seq > ? AND ((target IS NULL AND ${typeMatch}) OR target = ?) ORDER BY seq LIMIT ?`,
      )
      .all(...params)
      .map(toEvent);
  }

  /** The log itself, targeted events included (history and live tailing). */
  readLog(afterSeq: number, limit: number, patterns?: readonly string[]): CoordinationEvent[] {
    const params: unknown[] = [afterSeq];
    const typeMatch = patterns ? typePatternSql(patterns, params) : "1";
    params.push(limit);
    return this.st
      .get<unknown[], EventRow>(`SELECT * FROM events WHERE seq > ? AND ${typeMatch} ORDER BY seq LIMIT ?`)
      .all(...params)
      .map(toEvent);
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
  prune(before: number | null, keep: number | null): number {
    let deleted = 0;
    let through = this.prunedThroughSeq();
    const prune = (sql: string, arg: number) => {
      const row = this.st.get<[number], { maxSeq: number | null; n: number }>(sql.replace("%", "MAX(seq) AS maxSeq, COUNT(*) AS n")).get(arg);
      if (!row || row.n === 0 || row.maxSeq == null) return;
      this.st.get<[number]>(`DELETE FROM events WHERE seq <= ?`).run(row.maxSeq);
      deleted += row.n;
      through = Math.max(through, row.maxSeq);
    };
    // Age: events are appended in time order, so "older than" is a prefix of the log.
    if (before !== null) prune(`SELECT % FROM events WHERE createdAt < ?`, before);
    if (keep !== null) prune(`SELECT % FROM events WHERE seq <= ?`, this.headSeq() - keep);
    if (deleted > 0) {
      this.st
        .get<[string, string]>(`INSERT INTO system_state (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`)
        .run(PRUNED_THROUGH_KEY, String(through));
    }
    return deleted;
  }

  getSubscription(agentId: string): Subscription | undefined {
    const row = this.st.get<[string], SubscriptionRow>(`SELECT * FROM subscriptions WHERE agentId = ?`).get(agentId);
    return row && toSubscription(row);
  }

  saveSubscription(agentId: string, types: readonly string[], cursor: number, now: number): Subscription {
    const row = this.st
      .get<[string, string, number, number, number], SubscriptionRow>(
        `INSERT INTO subscriptions (agentId, types, cursor, createdAt, updatedAt) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT(agentId) DO UPDATE SET types = excluded.types, cursor = excluded.cursor, updatedAt = excluded.updatedAt
         RETURNING *`,
      )
      .get(agentId, JSON.stringify(types), cursor, now, now)!;
    return toSubscription(row);
  }

  deleteSubscription(agentId: string): boolean {
    return this.st.get<[string]>(`DELETE FROM subscriptions WHERE agentId = ?`).run(agentId).changes > 0;
  }

  /** Moves the cursor forward only (a late or repeated ack never rewinds it). */
  advanceCursor(agentId: string, seq: number, now: number): Subscription | undefined {
    const row = this.st
      .get<[number, number, string], SubscriptionRow>(
        `UPDATE subscriptions SET cursor = MAX(cursor, ?), updatedAt = ? WHERE agentId = ? RETURNING *`,
      )
      .get(seq, now, agentId);
    return row && toSubscription(row);
  }
}
