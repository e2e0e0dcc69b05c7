// Reads of the event log by type pattern (polls, live-stream backfill, history) seek each type's
// run of the type index from their cursor. A prefix (`task.*`) was read as a range of the index:
// every event of the prefix ever kept, then sorted, on every poll (12 ms a poll near the head of a
// 300,000-event log, 90 ms from its start). Now a prefix is read as the types the log holds
// under it; the answers are the same events, in the same order.
import BetterSqlite3 from "better-sqlite3";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { applyMigrations } from "../src/db/migrate.js";
import { Statements } from "../src/db/statements.js";
import { EventStore } from "../src/events/event-store.js";
import { matchesType } from "../src/events/type-patterns.js";
import { makeTempDir } from "./helpers/test-server.js";

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

function database(): BetterSqlite3.Database {
  dir = makeTempDir("coordination-event-plans-");
  const db = new BetterSqlite3(join(dir, "events.db"));
  db.pragma("journal_mode = WAL");
  applyMigrations(db);
  return db;
}

function append(db: BetterSqlite3.Database, rows: Array<{ type: string; target?: string | null }>): void {
  const insert = db.prepare(`INSERT INTO events (type, source, payload, target, createdAt) VALUES (?, 'test', '{}', ?, 0)`);
  db.transaction(() => {
    for (const row of rows) insert.run(row.type, row.target ?? null);
  })();
}

/** The plan of every SELECT on events that `use` makes the store prepare, but the type discovery's. */
function plansOf(db: BetterSqlite3.Database, use: (store: EventStore) => void): string[][] {
  const sql: string[] = [];
  const spy = new Proxy(db, { get: (target, key) => (key === "prepare" ? (text: string) => (sql.push(text), target.prepare(text)) : Reflect.get(target, key, target)) });
  db.transaction(() => use(new EventStore(new Statements(spy))))();
  return [...new Set(sql)]
    .filter((text) => /^\s*SELECT \* FROM events/.test(text))
    .map((text) => {
      const values = (text.match(/\?/g) ?? []).map(() => "task.claimed");
      return db
        .prepare(`EXPLAIN QUERY PLAN ${text}`)
        .all(...values)
        .map((row) => (row as { detail: string }).detail);
    });
}

describe("reading the event log by type pattern", () => {
  it("a prefix subscription's poll and a history read seek the type index, before and after ANALYZE", () => {
    const db = database();
    try {
      append(db, Array.from({ length: 30_000 }, (_, i) => ({ type: ["task.enqueued", "task.claimed", "task.completed", "agent.updated", "chat.msg"][i % 5]! })));
      for (const analyzed of [false, true]) {
        if (analyzed) db.exec("ANALYZE");
        const plans = plansOf(db, (store) => {
          // Far behind: each type's run of the index; near the head: along the log from the cursor.
          store.readInbox("w", ["task.*"], { cursor: 10_000, mailboxCursor: 0 }, 100, 1_000_000);
          store.readLogPage(0, 100, 1_000_000, ["task.*", "rare.*"]);
          store.readInbox("w", ["task.*", "chat.*"], { cursor: 29_900, mailboxCursor: 29_900 }, 100, 1_000_000);
          store.readMatching("w", ["task.*"], 0, 100, 1_000_000);
        });
        expect(plans, analyzed ? "after ANALYZE" : "before ANALYZE").toEqual([
          ["SEARCH events USING INDEX events_type_seq_idx (type=? AND seq>?)", "USE TEMP B-TREE FOR ORDER BY"],
          // The mailbox's own read.
          ["SEARCH events USING INDEX events_mailbox_idx (target=? AND seq>?)"],
          ["SEARCH events USING INDEX events_type_seq_idx (type=? AND seq>?)", "USE TEMP B-TREE FOR ORDER BY"],
          ["SEARCH events USING INTEGER PRIMARY KEY (rowid>?)"],
        ]);
      }
    } finally {
      db.close();
    }
  });

  it("answers the events the patterns match, in seq order, whatever the cursor, limit, and mix of types and targets", () => {
    const db = database();
    try {
      // A log of types at several depths, under prefixes and beside them, some direct messages.
      const types = ["task.enqueued", "task.claimed", "task.x.y", "taskish", "task", "agent.updated", "agent", "chat.msg", "chat.room.msg", "z.task.enqueued"];
      let seed = 7;
      const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
      const rows = Array.from({ length: 3000 }, () => ({ type: types[Math.floor(random() * types.length)]!, target: random() < 0.1 ? "w" : null }));
      append(db, rows);
      const log = rows.map((row, i) => ({ seq: i + 1, ...row }));
      const store = new EventStore(new Statements(db));
      const patternSets = [["task.*"], ["task.*", "chat.msg"], ["agent.*", "chat.*"], ["task.x.*"], ["nothing.*"], ["*"], ["taskish", "task"]];
      for (const patterns of patternSets) {
        // Far from the head (the type index) and near it (the log from the cursor).
        for (const cursor of [0, 1500, 1999, 2001, 2990]) {
          for (const limit of [1, 50, 5000]) {
            const expected = log.filter((e) => e.seq > cursor && e.target === null && matchesType(e.type, patterns)).slice(0, limit).map((e) => e.seq);
            const inbox = db.transaction(() => store.readInbox("nobody", patterns, { cursor, mailboxCursor: Number.MAX_SAFE_INTEGER }, limit, 10_000_000))();
            expect(inbox.map((e) => e.seq), `${patterns} after ${cursor}, ${limit}`).toEqual(expected);
            const history = db.transaction(() => store.readLogPage(cursor, limit, 10_000_000, patterns, null))();
            expect(history.events.map((e) => e.seq)).toEqual(expected);
            const backfill = db.transaction(() => store.readMatching("w", patterns, cursor, limit, 10_000_000))();
            expect(backfill.map((e) => e.seq)).toEqual(log.filter((e) => e.seq > cursor && (e.target === "w" || (e.target === null && matchesType(e.type, patterns)))).slice(0, limit).map((e) => e.seq));
          }
        }
      }
    } finally {
      db.close();
    }
  });

  it("a prefix with more types than it expands to is read as a range, with the same answers", () => {
    const db = database();
    try {
      append(db, Array.from({ length: 200 }, (_, i) => ({ type: `job.kind${i % 100}` })));
      const store = new EventStore(new Statements(db));
      const page = db.transaction(() => store.readLogPage(0, 1000, 10_000_000, ["job.*"], null))();
      expect(page.events.map((e) => e.seq)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    } finally {
      db.close();
    }
  });
});
