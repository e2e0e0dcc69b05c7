// The server's SQLite connections (the writer thread's and the reader thread's) are opened the
// way the settings say: synchronous from `durability`, WAL, foreign keys enforced, busy_timeout
// from `busyTimeoutMs`.
import Database from "better-sqlite3";
import { describe, expect, it, vi } from "vitest";
import { statSync } from "node:fs";
import { WAL_SIZE_LIMIT_BYTES } from "../src/db/open-database.js";
import { startTestServer, withDatabase } from "./helpers/test-server.js";

describe("database connection settings", () => {
  it.each([
    ["full", 2],
    ["normal", 1],
  ] as const)("durability %s sets PRAGMA synchronous = %i on both connections", async (durability, synchronous) => {
    await using t = await startTestServer({ durability });
    const expected = { journalMode: "wal", synchronous, busyTimeoutMs: 5000, foreignKeys: 1, journalSizeLimitBytes: 64 * 1024 * 1024 };
    expect(await t.server.services.db.write("db.settings", undefined)).toEqual(expected);
    expect(await t.server.services.db.read("db.settings", undefined)).toEqual(expected);
  });

  it("defaults to durability full", async () => {
    await using t = await startTestServer();
    expect(t.config.durability).toBe("full");
    expect((await t.server.services.db.write("db.settings", undefined)).synchronous).toBe(2);
  });

  it("sets busy_timeout from busyTimeoutMs", async () => {
    await using t = await startTestServer({ busyTimeoutMs: 1234 });
    expect((await t.server.services.db.write("db.settings", undefined)).busyTimeoutMs).toBe(1234);
  });

  it("enforces foreign keys: deregistering an agent removes its capabilities with it", async () => {
    await using t = await startTestServer();
    await t.api.agents.register.mutate({ agentId: "fk", capabilities: ["a", "b"] });
    await t.api.agents.deregister.mutate({ agentId: "fk" });
    const db = new Database(t.dbPath, { readonly: true });
    try {
      expect(db.prepare(`SELECT COUNT(*) FROM agent_capabilities WHERE agentId = 'fk'`).pluck().get()).toBe(0);
    } finally {
      db.close();
    }
  });
});

describe("the -wal file's size", () => {
  it("is cut back to 64 MiB once a reader that held the log open lets it start over", async () => {
    await using t = await startTestServer({ maxBodyBytes: 8 * 1024 * 1024 });
    const walBytes = () => statSync(`${t.dbPath}-wal`).size;
    // A reader of another process (a backup's copy, a slow replay) holding one snapshot: no
    // checkpoint can start the log over meanwhile, so every write below appends to the file.
    const reader = new Database(t.dbPath, { readonly: true });
    try {
      reader.exec("BEGIN");
      reader.prepare("SELECT COUNT(*) FROM tasks").pluck().get();
      for (let i = 0; i < 10; i++) await t.api.tasks.enqueue.mutate({ queue: "wal", payload: { blob: String(i).repeat(7_500_000) } });
      expect(walBytes()).toBeGreaterThan(WAL_SIZE_LIMIT_BYTES);
      reader.exec("COMMIT");
    } finally {
      reader.close();
    }
    // The next commits checkpoint the whole log, and the one after starts it over: SQLite keeps
    // the file's size then (reusing it from its start) unless a limit cuts it.
    let enqueued = 10;
    await vi.waitFor(
      async () => {
        await t.api.tasks.enqueue.mutate({ queue: "wal", payload: "small" });
        enqueued++;
        expect(walBytes()).toBeLessThanOrEqual(WAL_SIZE_LIMIT_BYTES);
      },
      { timeout: 30_000, interval: 200 },
    );
    // Nothing written was lost with the pages cut: every task is there, the large ones whole.
    expect((await t.api.tasks.stats.query({ queue: "wal" })).totals.pending).toBe(enqueued);
    expect(withDatabase(t, (db) => db.prepare("SELECT SUM(length(payload)) FROM tasks WHERE queue = 'wal' AND payload LIKE '{%'").pluck().get())).toBe(10 * (7_500_000 + '{"blob":""}'.length));
  });
});
