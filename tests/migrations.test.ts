// Migrations applied at start-up: idempotent across restarts, recorded in _prisma_migrations the
// way Prisma's engine records them, refused when an applied migration changed, all-or-nothing
// when one fails; and the data a server wrote is there after a restart.
import { createHash } from "node:crypto";
import { appendFileSync, cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { loadConfig } from "../src/config.js";
import { applyMigrations, defaultMigrationsDir, MigrationError, readMigrations, unknownMigrations } from "../src/db/migrate.js";
import { openDatabase, type SqliteDatabase } from "../src/db/open-database.js";
import { createServer } from "../src/server/create-server.js";
import { CliProcess, killAllCli, runCli } from "./helpers/cli-process.js";
import { storeLessonAsEarlierVersion } from "./helpers/earlier-versions.js";
import { makeTempDir, rest, startTestServer, withDatabase } from "./helpers/test-server.js";

interface MigrationRecord {
  id: string;
  checksum: string;
  finished_at: string | null;
  migration_name: string;
  logs: string | null;
  rolled_back_at: string | null;
  started_at: string;
  applied_steps_count: number;
}

const MIGRATIONS_DIR = defaultMigrationsDir();
/** The migration folders shipped in prisma/migrations, in order. */
const SHIPPED = readMigrations(MIGRATIONS_DIR).map((m) => m.name);
const INIT = "20261124000000_init";

let dir: string;
const open: SqliteDatabase[] = [];
function openDb(name = "coordination.db"): SqliteDatabase {
  const db = openDatabase({ dbPath: join(dir, name), busyTimeoutMs: 5000, durability: "full" });
  open.push(db);
  return db;
}
const records = (db: SqliteDatabase) =>
  db.prepare<[], MigrationRecord>(`SELECT * FROM "_prisma_migrations" ORDER BY started_at, migration_name`).all();

/** A copy of prisma/migrations that a test may change. */
function copyMigrations(): string {
  const copy = join(dir, "migrations");
  cpSync(MIGRATIONS_DIR, copy, { recursive: true });
  return copy;
}

/** A database as the last version without migration `first` (and the ones after it) left it. */
function openAsVersionBefore(first: string): SqliteDatabase {
  const older = copyMigrations();
  for (const name of SHIPPED.filter((n) => n >= first)) rmSync(join(older, name), { recursive: true });
  const db = openDb();
  applyMigrations(db, older);
  return db;
}

beforeEach(() => {
  dir = makeTempDir("coordination-migrations-");
});
afterEach(async () => {
  await killAllCli();
  for (const db of open.splice(0)) if (db.open) db.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("applyMigrations", () => {
  it("applies every migration once; a second run (a restart) applies nothing", () => {
    expect(SHIPPED[0]).toBe(INIT);
    const db = openDb();
    expect(applyMigrations(db)).toEqual(SHIPPED);
    expect(applyMigrations(db)).toEqual([]);
    db.close();
    // A new connection, as after a restart.
    expect(applyMigrations(openDb())).toEqual([]);
  });

  it("names migrations in the database that this version does not ship (a downgrade)", () => {
    const db = openDb();
    applyMigrations(db);
    expect(unknownMigrations(db)).toEqual([]);
    db.prepare(
      `INSERT INTO "_prisma_migrations" (id, checksum, finished_at, migration_name, started_at, applied_steps_count) VALUES ('x', 'c', '2030-01-01 00:00:00.000+00:00', '20300101000000_future', '2030-01-01 00:00:00.000+00:00', 1)`,
    ).run();
    expect(unknownMigrations(db)).toEqual(["20300101000000_future"]);
  });

  it("records each migration as Prisma does: sha256 of migration.sql, finished, one step", () => {
    const db = openDb();
    const before = Date.now();
    applyMigrations(db);
    const rows = records(db);
    expect(rows.map((r) => r.migration_name)).toEqual(SHIPPED);
    for (const row of rows) {
      const sql = readFileSync(join(MIGRATIONS_DIR, row.migration_name, "migration.sql"));
      expect(row.checksum).toBe(createHash("sha256").update(sql).digest("hex"));
      expect(row.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      expect(row.applied_steps_count).toBe(1);
      expect(row.rolled_back_at).toBeNull();
      expect(row.logs).toBeNull();
      // Prisma's format on SQLite: "2026-11-24 03:51:00.123+00:00".
      expect(row.finished_at).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\+00:00$/);
      expect(row.started_at).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\+00:00$/);
      const finished = Date.parse(row.finished_at!.replace(" ", "T"));
      expect(finished).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000);
      expect(finished).toBeGreaterThanOrEqual(Date.parse(row.started_at.replace(" ", "T")));
    }
    // Applying again adds no rows.
    applyMigrations(db);
    expect(records(db)).toHaveLength(SHIPPED.length);
  });

  it("refuses to start when an applied migration file was modified, naming it", () => {
    const migrations = copyMigrations();
    const db = openDb();
    expect(applyMigrations(db, migrations)).toEqual(SHIPPED);
    appendFileSync(join(migrations, INIT, "migration.sql"), "\n-- edited after it was applied\n");
    expect(() => applyMigrations(db, migrations)).toThrow(MigrationError);
    expect(() => applyMigrations(db, migrations)).toThrow(`migration ${INIT} was modified after it was applied (checksum differs)`);
  });

  it("refuses to start on a migration that was started but never finished", () => {
    const db = openDb();
    applyMigrations(db);
    db.prepare(`UPDATE "_prisma_migrations" SET finished_at = NULL WHERE migration_name = ?`).run(INIT);
    expect(() => applyMigrations(db)).toThrow(`migration ${INIT} was started but never finished; repair the database before starting`);
  });

  it("applies a migration added later, and only that one", () => {
    const migrations = copyMigrations();
    const db = openDb();
    applyMigrations(db, migrations);
    mkdirSync(join(migrations, "20270101000000_add_notes"));
    writeFileSync(join(migrations, "20270101000000_add_notes", "migration.sql"), `CREATE TABLE "notes" ("id" TEXT NOT NULL PRIMARY KEY);\n`);
    expect(applyMigrations(db, migrations)).toEqual(["20270101000000_add_notes"]);
    expect(records(db).map((r) => r.migration_name)).toEqual([...SHIPPED, "20270101000000_add_notes"]);
    expect(applyMigrations(db, migrations)).toEqual([]);
  });

  it("rolls a failing migration back entirely and records nothing for it", () => {
    const migrations = copyMigrations();
    const db = openDb();
    applyMigrations(db, migrations);
    const name = "20270101000000_broken";
    mkdirSync(join(migrations, name));
    writeFileSync(join(migrations, name, "migration.sql"), `CREATE TABLE "half" ("id" TEXT);\nINSERT INTO "no_such_table" VALUES (1);\n`);
    expect(() => applyMigrations(db, migrations)).toThrow(/no such table: no_such_table/);
    expect(db.prepare(`SELECT name FROM sqlite_master WHERE name = 'half'`).all()).toEqual([]);
    expect(records(db).map((r) => r.migration_name)).toEqual(SHIPPED);
    // Fixed, it applies.
    writeFileSync(join(migrations, name, "migration.sql"), `CREATE TABLE "half" ("id" TEXT);\n`);
    expect(applyMigrations(db, migrations)).toEqual([name]);
  });
});

describe("migrations at server start-up", () => {
  it("a server on an up-to-date database applies nothing; on a changed migration it refuses to start, naming it", async () => {
    const dbPath = join(dir, "coordination.db");
    const config = loadConfig({ env: {}, overrides: { port: 0, dbPath, logLevel: "silent" } });
    const first = createServer(config);
    expect(first.services.migrationsApplied).toEqual(SHIPPED);
    await first.start();
    await first.stop();
    const second = createServer(config);
    expect(second.services.migrationsApplied).toEqual([]);
    await second.stop();

    // The server reads its own prisma/migrations, which a test must not edit: record a different
    // checksum instead, which is what an edited migration.sql looks like to the start-up check.
    const db = new Database(dbPath);
    db.prepare(`UPDATE "_prisma_migrations" SET checksum = ? WHERE migration_name = ?`).run("0".repeat(64), INIT);
    db.close();
    expect(() => createServer(config)).toThrow(`migration ${INIT} was modified after it was applied (checksum differs)`);

    // The command refuses the file as it refuses any other it cannot serve: one line naming the
    // file and the migration, exit code 3 (it died with exit 1 and the error's stack).
    const result = await runCli({ env: { COORDINATION_PORT: "0", COORDINATION_DB_PATH: dbPath }, cwd: dir });
    expect([result.code, result.stderr]).toEqual([3, `coordination: the database file ${dbPath}: migration ${INIT} was modified after it was applied (checksum differs)\n`]);
    const migrate = await runCli({ args: ["migrate", "--db", dbPath], cwd: dir });
    expect([migrate.code, migrate.stderr]).toEqual([3, `coordination: the database file ${dbPath}: migration ${INIT} was modified after it was applied (checksum differs)\n`]);
  });

  it("refuses, in one line with exit code 3, a file whose migration was started and never finished (serve and migrate)", async () => {
    const dbPath = join(dir, "coordination.db");
    expect((await runCli({ args: ["migrate", "--db", dbPath], cwd: dir })).code).toBe(0);
    const db = new Database(dbPath);
    db.prepare(`UPDATE "_prisma_migrations" SET finished_at = NULL WHERE migration_name = ?`).run(SHIPPED.at(-1));
    db.close();
    const line = `coordination: the database file ${dbPath}: migration ${SHIPPED.at(-1)} was started but never finished; repair the database before starting\n`;
    const migrate = await runCli({ args: ["migrate", "--db", dbPath], cwd: dir });
    expect([migrate.code, migrate.stderr]).toEqual([3, line]);
    const serve = await runCli({ env: { COORDINATION_PORT: "0", COORDINATION_DB_PATH: dbPath }, cwd: dir });
    expect([serve.code, serve.stderr]).toEqual([3, line]);
  });

  it("two server processes starting together on one new file apply the migrations exactly once", async () => {
    const env = { COORDINATION_PORT: "0", COORDINATION_DB_PATH: join(dir, "shared.db") };
    const a = new CliProcess({ env, cwd: dir });
    const b = new CliProcess({ env, cwd: dir });
    const urls = await Promise.all([a.waitForUrl(), b.waitForUrl()]);
    for (const url of urls) expect((await rest(url, "GET", "/health")).body).toMatchObject({ status: "ok", db: "ok" });
    const applied = [a, b].map((cli) => cli.logLines().find((line) => "migrationsApplied" in line)!.migrationsApplied);
    expect(applied).toEqual(expect.arrayContaining([SHIPPED, []]));
    a.kill("SIGTERM");
    b.kill("SIGTERM");
    expect((await a.waitForExit()).code).toBe(0);
    expect((await b.waitForExit()).code).toBe(0);
    const db = new Database(join(dir, "shared.db"), { readonly: true });
    open.push(db);
    expect(records(db).map((r) => r.migration_name)).toEqual(SHIPPED);
  });

  it("gives a lease an older version granted (no leaseMs) the length it was granted: a heartbeat naming none renews it by that", async () => {
    // The file as the last version without tasks.leaseMs left it, with a task claimed for 10 minutes.
    const db = openAsVersionBefore("20261201000000_task_lease_length");
    const claimedAt = Date.now() - 60_000;
    const insert = db.prepare(
      `INSERT INTO tasks (id, queue, payload, status, attempts, runAt, leaseOwner, leaseExpiresAt, leaseToken, createdAt, updatedAt, claimedAt)
       VALUES (?, 'q', '{}', 'claimed', 1, ?, 'old-agent', ?, 1, ?, ?, ?)`,
    );
    insert.run("t-long", claimedAt, claimedAt + 600_000, claimedAt, claimedAt, claimedAt);
    // Updated since without a new lease (not a shape any version wrote): left to the server's default.
    insert.run("t-odd", claimedAt, claimedAt + 600_000, claimedAt, claimedAt + 700_000, claimedAt);
    db.close();

    const server = await startTestServer({}, dir);
    try {
      expect(server.server.services.migrationsApplied).toContain("20261203000000_older_leases_length");
      const beat = await rest(server.url, "POST", "/tasks/t-long/heartbeat", { agentId: "old-agent", leaseToken: 1 });
      expect(beat.status).toBe(200);
      expect(Date.parse(beat.body.leaseExpiresAt) - Date.parse(beat.body.updatedAt)).toBe(600_000);
      const odd = await rest(server.url, "POST", "/tasks/t-odd/heartbeat", { agentId: "old-agent", leaseToken: 1 });
      expect(Date.parse(odd.body.leaseExpiresAt) - Date.parse(odd.body.updatedAt)).toBe(30_000);
    } finally {
      await server.stop();
    }
  });

  it("marks the pending tasks an older version delayed; they are claimed once due, in priority and seq order, not before", async () => {
    // The file as the last version without tasks.delayed left it: two tasks due, two an hour ahead
    // (at the best priority: not taken before they are due), one due soon. "soon" ranks last, so
    // that on a machine slow enough for it to fall due before the first claims, those still take
    // the due tasks first (it ranked first once, and a run with both cores busy took it first).
    const db = openAsVersionBefore("20261205000000_delayed_tasks");
    const now = Date.now();
    const insert = db.prepare(`INSERT INTO tasks (id, queue, payload, priority, runAt, createdAt, updatedAt) VALUES (?, 'q', '{}', ?, ?, ?, ?)`);
    for (const [id, priority, runAt] of [["later-1", 0, now + 3_600_000], ["due-1", 5, now - 1000], ["later-2", 0, now + 3_600_000], ["soon", 9, now + 5000], ["due-2", 5, now - 500]] as const) {
      insert.run(id, priority, runAt, now - 2000, now - 2000);
    }
    db.close();

    const server = await startTestServer({}, dir);
    try {
      const delayed = () => withDatabase(server, (d) => d.prepare(`SELECT id FROM tasks WHERE delayed = 1 ORDER BY id`).pluck().all());
      expect(delayed()).toEqual(["later-1", "later-2", "soon"]);
      const claim = async () => (await server.api.tasks.claim.mutate({ agentId: "a", queues: ["q"] }))?.id ?? null;
      expect([await claim(), await claim()]).toEqual(["due-1", "due-2"]);
      // "soon" falls due: a claim promotes it and takes it; nothing else is due.
      await vi.waitFor(async () => expect(await claim()).toBe("soon"), { timeout: 15_000, interval: 100 });
      expect(delayed()).toEqual(["later-1", "later-2"]);
      expect(await claim()).toBeNull();
    } finally {
      await server.stop();
    }
  });

  it("finds by their words the notes a server of an earlier version stored on the migrated file, before and after this version's migrations", async () => {
    // The file as the version that indexed notes in notes_fts from its store left it; an earlier
    // server still running on it (a rolling upgrade) stored a lesson the way it knew: memories
    // and memories_fts only.
    const db = openAsVersionBefore("20261206010000_notes_index");
    storeLessonAsEarlierVersion(db, "before", "harbor pilots board at dawn");
    db.close();

    const server = await startTestServer({ memoryIndexCompactMs: 100 }, dir);
    try {
      expect(server.server.services.migrationsApplied).toEqual(SHIPPED.filter((name) => name >= "20261206010000_notes_index"));
      withDatabase(server, (d) => storeLessonAsEarlierVersion(d, "after", "harbor tugs wait for the tide"));
      // A word over a hundred notes share: recall ranks its notes over notes_fts alone.
      for (let i = 0; i < 100; i++) await server.api.memory.remember.mutate({ content: `routine note ${i} mentions the harbor among many filler words`, kind: "note" });
      await vi.waitFor(
        async () => expect((await server.api.memory.recall.query({ query: "harbor", limit: 100 })).map((m) => m.memory.id)).toEqual(expect.arrayContaining(["before", "after"])),
        { timeout: 15_000, interval: 100 },
      );
      // Indexed once each, whoever wrote them.
      expect(withDatabase(server, (d) => d.prepare(`SELECT count(*) FROM notes_fts_docsize`).pluck().get())).toBe(102);
    } finally {
      await server.stop();
    }
  });

  it("copies a webhook's old secret, still in its grace or not, into the list of old secrets that sign, and keeps it where an older server reads it", async () => {
    // The file as the last version with one column for the old secret left it: two webhooks
    // rotated, one within its grace, one past it.
    const db = openAsVersionBefore("20270109000000_webhook_retired_secrets");
    const now = Date.now();
    const insert = db.prepare(
      `INSERT INTO webhooks (id, url, types, secret, previousSecret, previousSecretUntil, cursor, nextAttemptAt, createdAt, updatedAt) VALUES (?, 'http://127.0.0.1:9/', '["a.*"]', ?, ?, ?, 0, ?, ?, ?)`,
    );
    insert.run("in-grace", "whsec_new1", "whsec_old1", now + 3_600_000, now, now, now);
    insert.run("ended", "whsec_new2", "whsec_old2", now - 1000, now, now, now);
    insert.run("never", "whsec_new3", null, null, now, now, now);
    db.close();

    const server = await startTestServer({}, dir);
    try {
      expect(server.server.services.migrationsApplied).toEqual(["20270109000000_webhook_retired_secrets"]);
      const rows = withDatabase(server, (d) => d.prepare(`SELECT id, retiredSecrets, previousSecret, previousSecretUntil FROM webhooks ORDER BY id`).all());
      // The old columns keep the old secret: a server of the last version, still running on the
      // file through a rolling upgrade, signs with it until its grace ends, as before.
      expect(rows).toEqual([
        { id: "ended", retiredSecrets: JSON.stringify([{ secret: "whsec_old2", until: now - 1000 }]), previousSecret: "whsec_old2", previousSecretUntil: now - 1000 },
        { id: "in-grace", retiredSecrets: JSON.stringify([{ secret: "whsec_old1", until: now + 3_600_000 }]), previousSecret: "whsec_old1", previousSecretUntil: now + 3_600_000 },
        { id: "never", retiredSecrets: "[]", previousSecret: null, previousSecretUntil: null },
      ]);
      // As answered: when the old secret stops (past for the ended one), as before the migration.
      expect((await server.api.webhooks.get.query({ id: "in-grace" })).previousSecretUntil).toEqual(new Date(now + 3_600_000));
      expect((await server.api.webhooks.get.query({ id: "ended" })).previousSecretUntil).toEqual(new Date(now - 1000));
      expect((await server.api.webhooks.get.query({ id: "never" })).previousSecretUntil).toBeNull();
    } finally {
      await server.stop();
    }
  });

  it("keeps the data across a restart on the same database file", async () => {
    const first = await startTestServer({}, dir);
    const enqueued = await rest(first.url, "POST", "/tasks", { queue: "restart", payload: { n: 42 }, priority: 1, idempotencyKey: "k-1" });
    expect(enqueued.status).toBe(200);
    await first.stop();

    const second = await startTestServer({}, dir);
    try {
      expect(second.server.services.migrationsApplied).toEqual([]);
      const fetched = await rest(second.url, "GET", `/tasks/${enqueued.body.id}`);
      expect(fetched.status).toBe(200);
      // The task as its enqueue answered it (which said, beside, that no other task answered it, and that it added it).
      const { deduplicated, replayed, ...stored } = enqueued.body;
      expect([deduplicated, replayed, fetched.body]).toEqual([false, false, stored]);
      // The idempotency key still maps to the same task.
      const again = await rest(second.url, "POST", "/tasks", { queue: "restart", payload: { n: 42 }, priority: 1, idempotencyKey: "k-1" });
      expect([again.body.id, again.body.replayed]).toEqual([enqueued.body.id, true]);
      expect((await second.api.tasks.get.query({ taskId: enqueued.body.id })).payload).toEqual({ n: 42 });
    } finally {
      await second.stop();
    }
  });
});
