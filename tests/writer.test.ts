// The Writer's promises: acknowledged means committed, a failing write is undone alone, and a
// failure that ends the whole transaction fails the whole batch (nothing commits behind it).
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { makeTempDir } from "./helpers/test-server.js";
import { openDatabase } from "../src/db/open-database.js";
import { Writer } from "../src/db/writer.js";

function scratchDatabase() {
  const db = openDatabase({ dbPath: join(makeTempDir("writer-"), "w.db"), busyTimeoutMs: 1000, durability: "full" });
  db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
  return db;
}

describe("Writer", () => {
  it("when SQLite rolls back the whole transaction (disk full), rejects the batch and commits none of it", async () => {
    const db = scratchDatabase();
    try {
      db.pragma(`max_page_count = ${Number(db.pragma("page_count", { simple: true })) + 2}`);
      const writer = new Writer(db);
      const insert = (v: string) => () => db.prepare("INSERT INTO t (v) VALUES (?)").run(v);
      const results = await Promise.allSettled([writer.write(insert("a")), writer.write(insert("x".repeat(200_000))), writer.write(insert("c"))]);
      expect(results.map((r) => r.status)).toEqual(["rejected", "rejected", "rejected"]);
      expect(db.prepare("SELECT v FROM t").pluck().all()).toEqual([]);
      expect(db.inTransaction).toBe(false);

      // The writer keeps working once there is room again.
      db.pragma("max_page_count = 1000000");
      await expect(writer.write(insert("after"))).resolves.toBeDefined();
      expect(db.prepare("SELECT v FROM t").pluck().all()).toEqual(["after"]);
    } finally {
      db.close();
    }
  });

  it("runs beforeCommit effects of the writes that succeeded, once all ran, inside the transaction; none of a failed write or a rolled-back batch", async () => {
    const db = scratchDatabase();
    try {
      const writer = new Writer(db);
      const seen: Array<[string, boolean, number]> = [];
      const effect = (name: string) => () => seen.push([name, db.inTransaction, Number(db.prepare("SELECT COUNT(*) FROM t").pluck().get())]);
      const ok = (v: string) => (ctx: import("../src/db/writer.js").WriteContext) => {
        ctx.beforeCommit(effect(v));
        db.prepare("INSERT INTO t (v) VALUES (?)").run(v);
      };
      const refused = (ctx: import("../src/db/writer.js").WriteContext) => {
        ctx.beforeCommit(effect("refused"));
        throw new Error("not found");
      };
      const results = await Promise.allSettled([writer.write(ok("a")), writer.write(refused), writer.write(ok("b"))]);
      expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
      // After every write of the batch, before the COMMIT: both rows are there, still uncommitted.
      expect(seen).toEqual([
        ["a", true, 2],
        ["b", true, 2],
      ]);
      // A batch SQLite rolls back whole (a full disk) runs none.
      seen.length = 0;
      db.pragma(`max_page_count = ${Number(db.pragma("page_count", { simple: true })) + 2}`);
      const big = (ctx: import("../src/db/writer.js").WriteContext) => {
        ctx.beforeCommit(effect("big"));
        db.prepare("INSERT INTO t (v) VALUES (?)").run("x".repeat(200_000));
      };
      await Promise.allSettled([writer.write(ok("c")), writer.write(big)]);
      expect(seen).toEqual([]);
    } finally {
      db.close();
    }
  });

  it("runs afterCommit effects only for writes that committed, after the commit", async () => {
    const db = scratchDatabase();
    try {
      const writer = new Writer(db);
      const seen: string[] = [];
      await Promise.allSettled([
        writer.write((ctx) => ctx.afterCommit(() => seen.push(`kept, in transaction: ${db.inTransaction}`))),
        writer.write((ctx) => {
          ctx.afterCommit(() => seen.push("undone"));
          throw new Error("fails");
        }),
      ]);
      expect(seen).toEqual(["kept, in transaction: false"]);
    } finally {
      db.close();
    }
  });

  it("a write that throws after changing rows is undone alone; the rest of its batch commits", async () => {
    const db = scratchDatabase();
    try {
      const writer = new Writer(db);
      const insert = (v: string) => () => db.prepare("INSERT INTO t (v) VALUES (?)").run(v).lastInsertRowid;
      const results = await Promise.allSettled([
        writer.write(insert("first")),
        writer.write(() => {
          db.prepare("INSERT INTO t (v) VALUES (?)").run("half");
          throw new Error("fails halfway");
        }),
        writer.write(() => {
          throw new Error("fails before writing");
        }),
        writer.write(insert("last")),
      ]);
      expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "rejected", "fulfilled"]);
      expect(db.prepare("SELECT v FROM t ORDER BY id").pluck().all()).toEqual(["first", "last"]);
    } finally {
      db.close();
    }
  });

  it("rejects writes after close with SHUTTING_DOWN (503)", async () => {
    const db = scratchDatabase();
    const writer = new Writer(db);
    writer.close();
    db.close();
    await expect(writer.write(() => 1)).rejects.toMatchObject({ code: "SHUTTING_DOWN" });
  });
});
