// The server's SQLite connection is opened the way the settings say: synchronous from
// `durability`, WAL, foreign keys enforced, busy_timeout from `busyTimeoutMs`.
import { describe, expect, it } from "vitest";
import { startTestServer } from "./helpers/test-server.js";

describe("database connection settings", () => {
  it.each([
    ["full", 2],
    ["normal", 1],
  ] as const)("durability %s sets PRAGMA synchronous = %i", async (durability, synchronous) => {
    await using t = await startTestServer({ durability });
    const db = t.server.services.db;
    expect(db.pragma("synchronous", { simple: true })).toBe(synchronous);
    expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
    expect(db.pragma("foreign_keys", { simple: true })).toBe(1);
  });

  it("defaults to durability full", async () => {
    await using t = await startTestServer();
    expect(t.config.durability).toBe("full");
    expect(t.server.services.db.pragma("synchronous", { simple: true })).toBe(2);
  });

  it("sets busy_timeout from busyTimeoutMs", async () => {
    await using t = await startTestServer({ busyTimeoutMs: 1234 });
    expect(t.server.services.db.pragma("busy_timeout", { simple: true })).toBe(1234);
  });

  it("enforces foreign keys on the server's connection", async () => {
    await using t = await startTestServer();
    const insert = t.server.services.db.prepare(`INSERT INTO agent_capabilities (agentId, capability) VALUES (?, ?)`);
    expect(() => insert.run("no-such-agent", "x")).toThrow("FOREIGN KEY constraint failed");
  });
});
