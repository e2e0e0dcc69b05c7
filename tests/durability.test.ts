// The server's SQLite connections (the writer thread's and the reader thread's) are opened the
// way the settings say: synchronous from `durability`, WAL, foreign keys enforced, busy_timeout
// from `busyTimeoutMs`.
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { startTestServer } from "./helpers/test-server.js";

describe("database connection settings", () => {
  it.each([
    ["full", 2],
    ["normal", 1],
  ] as const)("durability %s sets PRAGMA synchronous = %i on both connections", async (durability, synchronous) => {
    await using t = await startTestServer({ durability });
    const expected = { journalMode: "wal", synchronous, busyTimeoutMs: 5000, foreignKeys: 1 };
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
