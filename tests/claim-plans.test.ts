// The claim path's statements read the claim indexes whatever SQLite's statistics say. With
// ANALYZE run on a table of pending tasks (an operator's PRAGMA optimize, a hand-run ANALYZE),
// the planner scanned and sorted the whole table for every claim of any queue (40 ms a claim at
// 200,000 pending); and the look for the next delayed task, which every claim that finds nothing
// makes on the writer, read the whole table always (10 ms with 200,000 settled tasks kept).
import BetterSqlite3 from "better-sqlite3";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { applyMigrations } from "../src/db/migrate.js";
import { Statements } from "../src/db/statements.js";
import { TaskStore, type ClaimFilter } from "../src/tasks/task-store.js";
import { makeTempDir } from "./helpers/test-server.js";

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

/** A migrated database of `total` tasks in three queues: pending (a hundredth delayed), or all but a few settled. */
function database(total: number, settled: boolean): BetterSqlite3.Database {
  dir = makeTempDir("coordination-plans-");
  const db = new BetterSqlite3(join(dir, "plans.db"));
  db.pragma("journal_mode = WAL");
  applyMigrations(db);
  const insert = db.prepare(`INSERT INTO tasks (id, queue, payload, priority, status, runAt, delayed, finishedAt, createdAt, updatedAt) VALUES (?, ?, '{}', ?, ?, ?, ?, ?, 0, 0)`);
  const later = Date.now() + 3_600_000;
  db.transaction(() => {
    for (let i = 0; i < total; i++) {
      const done = settled && i < total - 50;
      const delayed = !done && i % 100 === 0;
      insert.run(`t${i}`, ["a", "b", "c"][i % 3], i % 10, done ? "completed" : "pending", delayed ? later : 0, delayed ? 1 : 0, done ? i : null);
    }
  })();
  return db;
}

/** The plan of every SELECT on tasks that `use` makes the store prepare, by statement. */
function plansOf(db: BetterSqlite3.Database, use: (store: TaskStore) => void): string[][] {
  const sql: string[] = [];
  const spy = new Proxy(db, { get: (target, key) => (key === "prepare" ? (text: string) => (sql.push(text), target.prepare(text)) : Reflect.get(target, key, target)) });
  db.transaction(() => use(new TaskStore(new Statements(spy))))();
  return [...new Set(sql)]
    .filter((text) => /^\s*SELECT .* FROM tasks/s.test(text))
    .map((text) =>
      db
        .prepare(`EXPLAIN QUERY PLAN ${text}`)
        .all(...Array<number>((text.match(/\?/g) ?? []).length).fill(1))
        .map((row) => (row as { detail: string }).detail)
        .filter((detail) => !/queue_pauses|agent_capabilities|BLOOM|SUBQUERY/.test(detail)),
    );
}

const filter = (more: Partial<ClaimFilter> = {}): ClaimFilter => ({ agentId: "w", queues: null, capabilities: [], ...more });
const now = Date.now();

describe("the claim path's query plans", () => {
  for (const settled of [false, true]) {
    it(`read the claim and delayed indexes, before and after ANALYZE (${settled ? "mostly settled tasks" : "all pending"})`, () => {
      const db = database(20_000, settled);
      try {
        for (const analyzed of [false, true]) {
          if (analyzed) db.exec("ANALYZE");
          const plans = plansOf(db, (store) => {
            store.claim(filter(), 1, 1_000_000, 1000, now);
            store.claim(filter({ queues: ["a"] }), 1, 1_000_000, 1000, now);
            store.claim(filter({ queues: ["a", "b"] }), 1, 1_000_000, 1000, now);
            store.claim(filter(), 5, 1_000_000, 1000, now);
            store.claim(filter({ queues: ["a", "b"] }), 5, 1_000_000, 1000, now);
            store.nextRunAt(filter(), now);
            store.nextRunAt(filter({ queues: ["b"] }), now);
            store.heldUnder("w", "claim:k");
          });
          expect(plans, analyzed ? "after ANALYZE" : "before ANALYZE").toEqual([
            ["SCAN tasks USING INDEX tasks_pending_idx"],
            ["SEARCH tasks USING INDEX tasks_pending_queue_idx (queue=?)"],
            // Each queue's range is read best first and stops at the limit: SQLite merges them in a small sorter.
            ["SEARCH tasks USING INDEX tasks_pending_queue_idx (queue=?)", "USE TEMP B-TREE FOR ORDER BY"],
            ["SCAN tasks USING INDEX tasks_pending_idx"],
            ["SEARCH tasks USING INDEX tasks_pending_queue_idx (queue=?)", "USE TEMP B-TREE FOR ORDER BY"],
            ["SEARCH tasks USING INDEX tasks_delayed_idx (runAt>?)"],
            ["SEARCH tasks USING INDEX tasks_delayed_idx (runAt>?)"],
            // A claim sent again seeks its key among the agent's claimed tasks: none of its other rows is read.
            ["SEARCH tasks USING INDEX tasks_claimed_owner_idx (leaseOwner=? AND claimKey>? AND claimKey<?)", "USE TEMP B-TREE FOR ORDER BY"],
          ]);
        }
      } finally {
        db.close();
      }
    });
  }

  it("the next delayed task a claimer could take: the soonest of its queues and target, null when none", () => {
    const db = database(0, false);
    try {
      const insert = db.prepare(`INSERT INTO tasks (id, queue, payload, targetAgentId, status, runAt, delayed, createdAt, updatedAt) VALUES (?, ?, '{}', ?, 'pending', ?, ?, 0, 0)`);
      insert.run("soon-other-agent", "a", "someone-else", now + 1000, 1);
      insert.run("soon-b", "b", null, now + 2000, 1);
      insert.run("later-a", "a", null, now + 3000, 1);
      insert.run("due", "a", null, now - 1000, 0);
      const store = new TaskStore(new Statements(db));
      expect(store.nextRunAt(filter(), now)).toBe(now + 2000);
      expect(store.nextRunAt(filter({ queues: ["a"] }), now)).toBe(now + 3000);
      expect(store.nextRunAt(filter({ agentId: "someone-else", queues: ["a"] }), now)).toBe(now + 1000);
      expect(store.nextRunAt(filter({ queues: ["c"] }), now)).toBeNull();
    } finally {
      db.close();
    }
  });
});
