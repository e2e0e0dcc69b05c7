// The statement cache's rows: built from raw arrays by a function made per statement, they must
// read exactly as better-sqlite3's own row objects would, in every way the stores read them.
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { makeTempDir } from "./helpers/test-server.js";
import { openDatabase } from "../src/db/open-database.js";
import BetterSqlite3 from "better-sqlite3";
import { MAX_CACHED, Statements } from "../src/db/statements.js";
import { readTransaction } from "../src/db/read-transaction.js";

function scratch() {
  const dbPath = join(makeTempDir("statements-"), "s.db");
  const db = openDatabase({ dbPath, busyTimeoutMs: 1000, durability: "full" });
  db.exec(`CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, "odd ""name""" TEXT, n REAL);
           INSERT INTO t (name, "odd ""name""", n) VALUES ('a', 'x', 1.5), ('b', NULL, 2), ('c', 'z', NULL);`);
  return { db, dbPath, st: new Statements(db) };
}

describe("Statements", () => {
  it("reads rows equal to better-sqlite3's own objects, quoted column names and nulls included", () => {
    const { db, st } = scratch();
    const sql = "SELECT * FROM t ORDER BY id";
    expect(st.get(sql).all()).toEqual(db.prepare(sql).all());
    expect(st.get("SELECT * FROM t WHERE id = ?").get(2)).toEqual({ id: 2, name: "b", 'odd "name"': null, n: 2 });
    expect(st.get("SELECT * FROM t WHERE id = ?").get(99)).toBeUndefined();
    expect(Object.keys(st.get<[number], object>("SELECT * FROM t WHERE id = ?").get(1)!)).toEqual(["id", "name", 'odd "name"', "n"]);
  });

  it("keeps the last of a repeated column name, as better-sqlite3 does", () => {
    const { db, st } = scratch();
    const sql = "SELECT a.name, b.name FROM t a JOIN t b ON b.id = a.id + 1 ORDER BY a.id";
    expect(st.get(sql).all()).toEqual(db.prepare(sql).all());
    expect(st.get(sql).all()).toEqual([{ name: "b" }, { name: "c" }]);
  });

  it("plucks the first column once asked to, for that SQL text from then on", () => {
    const { st } = scratch();
    expect(st.get("SELECT name FROM t WHERE id = ?").pluck().get(3)).toBe("c");
    expect(st.get("SELECT name FROM t ORDER BY id").pluck().all()).toEqual(["a", "b", "c"]);
    expect(st.get("SELECT name FROM t WHERE id = ?").get(1)).toBe("a");
    expect([...st.get("SELECT name FROM t ORDER BY id").iterate()]).toEqual(["a", "b", "c"]);
  });

  it("refuses a LIMIT or OFFSET bound as a bare parameter (SQLite would prepare it again on every run) and runs the CAST form", () => {
    const { st } = scratch();
    const bare = [
      "SELECT id FROM t ORDER BY id LIMIT ?",
      "SELECT id FROM t ORDER BY id LIMIT 1 OFFSET ?",
      "SELECT id FROM t limit ?2",
      "SELECT id FROM t LIMIT :n",
      "SELECT id FROM t LIMIT\n  @n",
      "SELECT id FROM t LIMIT?",
      "SELECT id FROM t LIMIT (?)",
      "SELECT id FROM t LIMIT ((?))",
      "SELECT id FROM t LIMIT/**/?",
      "SELECT id FROM t LIMIT -- the page\n?",
      "SELECT id FROM t LIMIT 0, ?",
    ];
    for (const sql of bare) expect(() => st.get(sql), sql).toThrow(/LIMIT CAST\(\? AS INTEGER\)/);
    // What only looks like one: in a string, a quoted name or a comment.
    expect(st.get("SELECT 'no limit ?' AS \"offset ?\" /* LIMIT ? */ -- OFFSET ?\n FROM t LIMIT 1").all()).toEqual([{ "offset ?": "no limit ?" }]);
    const page = st.get<[number, number], { id: number }>("SELECT id FROM t ORDER BY id LIMIT CAST(? AS INTEGER) OFFSET CAST(? AS INTEGER)");
    expect(page.all(2, 1)).toEqual([{ id: 2 }, { id: 3 }]);
    expect(page.all(1, 0)).toEqual([{ id: 1 }]);
    expect(st.get("SELECT id FROM t ORDER BY id LIMIT 2").all()).toEqual([{ id: 1 }, { id: 2 }]);
  });

  it("frees the statement when an iteration stops early, so it can run again", () => {
    const { st } = scratch();
    const query = st.get<[], { id: number }>("SELECT id FROM t ORDER BY id");
    for (const row of query.iterate()) {
      expect(row).toEqual({ id: 1 });
      break;
    }
    expect([...query.iterate()].map((r) => r.id)).toEqual([1, 2, 3]);
    expect(query.all()).toHaveLength(3);
  });

  it("after another connection rebuilds a table with its columns in another order, names them right once revalidated", () => {
    const { db, dbPath, st } = scratch();
    const sql = "SELECT * FROM t WHERE id = ?";
    expect(st.get(sql).get(1)).toEqual({ id: 1, name: "a", 'odd "name"': "x", n: 1.5 });
    const other = new BetterSqlite3(dbPath);
    other.exec(`CREATE TABLE t2 (n REAL, name TEXT, id INTEGER PRIMARY KEY, extra TEXT DEFAULT 'e');
                INSERT INTO t2 (n, name, id) SELECT n, name, id FROM t; DROP TABLE t; ALTER TABLE t2 RENAME TO t;`);
    other.close();
    st.revalidate();
    expect(st.get(sql).get(1)).toEqual(db.prepare(sql).get(1));
    expect(st.get(sql).get(1)).toEqual({ n: 1.5, name: "a", id: 1, extra: "e" });
  });

  it("a read transaction hands back the read's own error, and one that cannot end says so instead of staying open", () => {
    const { db, st } = scratch();
    const stuck: unknown[] = [];
    const inSnapshot = readTransaction(db, (error) => stuck.push(error));
    expect(inSnapshot(() => st.get("SELECT name FROM t WHERE id = ?").pluck().get(2))).toBe("b");
    expect(() => inSnapshot(() => { throw new Error("not found"); })).toThrow("not found");
    expect(db.inTransaction).toBe(false);
    // A statement of the transaction still running when the read returns: COMMIT and ROLLBACK
    // are both refused, and the connection would stay on this snapshot.
    let rows: IterableIterator<unknown> | undefined;
    expect(() =>
      inSnapshot(() => {
        rows = db.prepare("SELECT id FROM t").iterate();
        return rows.next();
      }),
    ).toThrow(/busy/);
    expect(stuck).toHaveLength(1);
    expect(db.inTransaction).toBe(true);
    rows!.return!();
    db.exec("ROLLBACK");
  });

  it("runs writes, with or without RETURNING", () => {
    const { st } = scratch();
    expect(st.get("INSERT INTO t (name) VALUES (?)").run("d").changes).toBe(1);
    expect(st.get("UPDATE t SET n = ? WHERE name = ? RETURNING id, n").get(7, "d")).toEqual({ id: 4, n: 7 });
    expect(st.get("DELETE FROM t WHERE name = ? RETURNING name").run("d").changes).toBe(1);
  });

  it("when full, drops the statement used least recently, however long ago it was prepared", () => {
    const { st } = scratch();
    const sqlOf = (i: number) => `SELECT ${i} AS n FROM t LIMIT 1`;
    const prepared = Array.from({ length: MAX_CACHED }, (_, i) => st.get(sqlOf(i)));
    // The first prepared is used again: the second is now the least recently used.
    expect(st.get(sqlOf(0))).toBe(prepared[0]);
    st.get(sqlOf(MAX_CACHED));
    expect(st.get(sqlOf(0))).toBe(prepared[0]);
    expect(st.get(sqlOf(2))).toBe(prepared[2]);
    // Prepared anew, which drops the statement of 3: the least recently used by then.
    const again = st.get(sqlOf(1));
    expect(again).not.toBe(prepared[1]);
    expect(again.get()).toEqual({ n: 1 });
    expect(st.get(sqlOf(3))).not.toBe(prepared[3]);
    expect(st.get(sqlOf(MAX_CACHED - 1))).toBe(prepared[MAX_CACHED - 1]);
  });
});
