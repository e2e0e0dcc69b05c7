// Revoked credentials are deleted revokedTokenRetentionMs after their revocation; what that must
// never change: a server that issued none stays open, and one that issued any stays closed to
// callers without one, whatever retention deleted, across restarts.
import { describe, expect, it } from "vitest";
import { runCli } from "./helpers/cli-process.js";
import { ADMIN_SECRET, http } from "./helpers/secure-server.js";
import { makeTempDir, startTestServer, withDatabase } from "./helpers/test-server.js";

describe("revoked credentials and retention", () => {
  // A retention pass on a server with no credentials marked the file as having issued one: every
  // call was a 401 a minute after start-up, and after every restart.
  it("a server that never issued a credential stays open after retention runs, and after a restart", async () => {
    const dir = makeTempDir();
    const t = await startTestServer({ revokedTokenRetentionMs: 1 }, dir);
    try {
      await t.server.services.jobs.retention.runNow();
      expect((await http(t.url, "GET", "/agents")).status).toBe(200);
    } finally {
      await t.stop();
    }
    await using again = await startTestServer({}, dir);
    expect((await http(again.url, "GET", "/agents")).status).toBe(200);
  });

  it("deletes a revoked token after the retention period; calls still need a credential, after a restart too", async () => {
    const dir = makeTempDir();
    const t = await startTestServer({ revokedTokenRetentionMs: 1000 }, dir);
    try {
      const issued = await t.api.tokens.create.mutate({ role: "admin", name: "only" });
      expect((await http(t.url, "GET", "/agents")).status).toBe(401);
      expect((await http(t.url, "POST", `/tokens/${issued.token.id}/revoke`, { token: issued.secret })).status).toBe(200);
      expect((await http(t.url, "GET", "/agents", { token: issued.secret })).status).toBe(401);
      // A minute from now: past the revocation's 1 s of retention, whatever the clock did meanwhile.
      await t.server.services.retention.prune(Date.now() + 60_000);
      expect(withDatabase(t, (db) => db.prepare(`SELECT COUNT(*) FROM api_tokens`).pluck().get())).toBe(0);
      expect((await http(t.url, "GET", "/agents")).status).toBe(401);
    } finally {
      await t.stop();
    }
    await using again = await startTestServer({}, dir);
    expect((await http(again.url, "GET", "/agents")).status).toBe(401);
    expect((await http(again.url, "GET", "/health")).status).toBe(200);
  });

  // A file only ever served with COORDINATION_ADMIN_TOKEN (no token issued) came up open to anyone
  // on the port when restarted without the setting (a secret that failed to mount).
  it("a file served with an admin token stays closed when restarted without it; a new token opens it to its holder", async () => {
    const dir = makeTempDir();
    const t = await startTestServer({ adminToken: ADMIN_SECRET }, dir);
    try {
      expect((await http(t.url, "GET", "/agents", { token: ADMIN_SECRET })).status).toBe(200);
      expect((await http(t.url, "GET", "/agents")).status).toBe(401);
    } finally {
      await t.stop();
    }
    await using again = await startTestServer({}, dir);
    expect((await http(again.url, "GET", "/agents")).status).toBe(401);
    expect((await http(again.url, "POST", "/tasks", { body: { queue: "q" } })).status).toBe(401);
    expect((await http(again.url, "GET", "/health")).status).toBe(200);
    // As the README says: an operator issues one on the machine, which the running server takes.
    const created = await runCli({ args: ["tokens", "create", "--role", "admin", "--db", again.dbPath] });
    expect(created.code).toBe(0);
    expect((await http(again.url, "GET", "/agents", { token: created.stdout.trim() })).status).toBe(200);
  });

  it("keeps a revoked token until its retention period has passed", async () => {
    await using t = await startTestServer({ revokedTokenRetentionMs: 3_600_000 });
    const issued = await t.api.tokens.create.mutate({ role: "admin" });
    await http(t.url, "POST", `/tokens/${issued.token.id}/revoke`, { token: issued.secret });
    await t.server.services.jobs.retention.runNow();
    expect(withDatabase(t, (db) => db.prepare(`SELECT COUNT(*) FROM api_tokens WHERE revokedAt IS NOT NULL`).pluck().get())).toBe(1);
  });
});
