// A database that fails under the server, and files it should not serve: clear errors, no
// crash, nothing acknowledged that is not stored, nothing written to a file it refuses.
import { createHash } from "node:crypto";
import { closeSync, openSync, readFileSync, rmSync, statSync, symlinkSync, truncateSync, writeFileSync, writeSync, existsSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { Writable } from "node:stream";
import { pino } from "pino";
import { afterEach, describe, expect, it, vi } from "vitest";
import { loadConfig } from "../src/config.js";
import { createServer } from "../src/server/create-server.js";
import { CliProcess, killAllCli, runCli } from "./helpers/cli-process.js";
import { mountSmallFilesystem, smallFilesystemProbe, type SmallFilesystem } from "./helpers/small-filesystem.js";
import { http } from "./helpers/secure-server.js";
import { makeTempDir, startTestServer, withDatabase, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
let fs: SmallFilesystem | undefined;
afterEach(async () => {
  await killAllCli();
  await t?.stop({ removeFiles: true }).catch(() => undefined);
  fs?.unmount();
  t = fs = undefined;
});

const until = (condition: () => boolean | Promise<boolean>, timeout = 15_000) =>
  vi.waitFor(async () => expect(await condition()).toBe(true), { timeout, interval: 25 });
const sha = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

/** A database made by a real server, with a few tasks in it, closed cleanly. */
async function madeDatabase(dir = makeTempDir()): Promise<string> {
  const made = await startTestServer({}, dir);
  await made.api.tasks.enqueueMany.mutate({ tasks: Array.from({ length: 200 }, (_, n) => ({ payload: { n, text: "x".repeat(500) } })) });
  await made.stop();
  return made.dbPath;
}

describe("files refused at start-up, untouched", () => {
  it.each([
    ["damaged", (path: string) => {
      const fd = openSync(path, "r+");
      writeSync(fd, Buffer.alloc(16 * 1024, 0xa5), 0, 16 * 1024, 32 * 1024);
      closeSync(fd);
    }, /is damaged \(quick_check: .+\); restore a backup|is not a usable SQLite database/],
    ["migrated by a newer version", (path: string) => {
      const db = new Database(path);
      db.prepare("INSERT INTO _prisma_migrations (id, checksum, migration_name, finished_at, applied_steps_count) VALUES ('x', 'y', '20990101000000_future', '2099-01-01', 1)").run();
      db.close();
    }, /was migrated by a newer version of coordination \(migrations this version does not know: 20990101000000_future\)/],
    ["a renamed column", (path: string) => {
      const db = new Database(path);
      db.exec('ALTER TABLE tasks RENAME COLUMN "runAt" TO "run_at"');
      db.close();
    }, /does not match this version's schema: column tasks\.runAt is missing/],
  ])("%s: exit 3 with one line naming the problem", async (_what, damage, message) => {
    const path = await madeDatabase();
    damage(path);
    const before = sha(path);
    const exit = await runCli({ args: ["--port", "0", "--db", path] });
    expect(exit.code).toBe(3);
    expect(exit.stderr).toMatch(message);
    expect(exit.stderr.trim().split("\n")).toHaveLength(1);
    expect(sha(path)).toBe(before);
    expect(existsSync(`${path}-wal`) && readFileSync(`${path}-wal`).length > 0).toBe(false);
  });

  it("someone else's database: exit 3, not migrated", async () => {
    const path = join(makeTempDir(), "theirs.db");
    const db = new Database(path);
    db.exec("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)");
    db.close();
    const exit = await runCli({ args: ["--port", "0", "--db", path] });
    expect([exit.code, exit.stderr]).toEqual([3, `coordination: the database file ${path} is not a coordination database (it has tables users and no migration history)\n`]);
    expect(new Database(path).prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all()).toEqual(["users"]);
  });

  it("a new database file under a path that is not a directory: exit 3 with one line, from the server and from migrate", async () => {
    const file = join(makeTempDir(), "plain-file");
    writeFileSync(file, "not a directory\n");
    const path = join(file, "coordination.db");
    const expected = `coordination: cannot create the database file ${path}: ${file} is not a directory\n`;
    const served = await runCli({ args: ["--port", "0", "--db", path] });
    expect([served.code, served.stderr]).toEqual([3, expected]);
    const migrated = await runCli({ args: ["migrate", "--db", path] });
    expect([migrated.code, migrated.stderr]).toEqual([3, expected]);
  });

  // The directory exists and is writable, yet the file cannot be made there: SQLite says only
  // "unable to open database file", and that went out as a fatal log line with its stack, exit 1.
  it("a new database file the system cannot create (a name too long, a link to a missing volume): exit 3 with one line naming why", async () => {
    const dir = makeTempDir();
    const long = join(dir, `${"a".repeat(300)}.db`);
    const dangling = join(dir, "link.db");
    symlinkSync(join(dir, "unmounted", "coordination.db"), dangling);
    for (const [path, why] of [
      [long, "ENAMETOOLONG"],
      [dangling, `a symbolic link to ${join(dir, "unmounted", "coordination.db")}, which cannot be created (ENOENT)`],
    ] as const) {
      const expected = `coordination: cannot create the database file ${path}: ${why}\n`;
      const served = await runCli({ args: ["--port", "0", "--db", path] });
      expect([served.code, served.stderr]).toEqual([3, expected]);
      const migrated = await runCli({ args: ["migrate", "--db", path] });
      expect([migrated.code, migrated.stderr]).toEqual([3, expected]);
    }
  });

  // An open sqlite3 shell in a transaction, another process migrating: start-up waited
  // busyTimeoutMs for the lock, then died of "database is locked" as a fatal log line with its stack.
  it("a database file another process holds locked past busyTimeoutMs: exit 1 with one line saying so, from the server, migrate and tokens", async () => {
    const path = join(makeTempDir(), "locked.db");
    expect((await runCli({ args: ["migrate", "--db", path] })).code).toBe(0);
    const holder = new Database(path);
    holder.exec("BEGIN EXCLUSIVE");
    try {
      const expected = `coordination: the database file ${path} is locked by another process, which held its lock past the busy timeout: start again once it lets go (an open sqlite3 shell or a long transaction on the file, another server migrating it)\n`;
      const env = { COORDINATION_BUSY_TIMEOUT_MS: "200" };
      const served = await runCli({ args: ["--port", "0", "--db", path], env });
      expect([served.code, served.stderr]).toEqual([1, expected]);
      const migrated = await runCli({ args: ["migrate", "--db", path], env });
      expect([migrated.code, migrated.stderr]).toEqual([1, expected]);
      const issued = await runCli({ args: ["tokens", "create", "--role", "admin", "--db", path], env });
      expect([issued.code, issued.stdout, issued.stderr]).toEqual([1, "", expected]);
    } finally {
      holder.exec("ROLLBACK");
      holder.close();
    }
  });

  it.skipIf(smallFilesystemProbe !== true)("a new database file in a read-only directory: exit 3", async () => {
    const mounted = mountSmallFilesystem(8192);
    if (typeof mounted === "string") throw new Error(mounted);
    fs = mounted;
    fs.remount("ro");
    const path = join(fs.dir, "new.db");
    const exit = await runCli({ args: ["--port", "0", "--db", path] });
    expect([exit.code, exit.stderr]).toEqual([3, `coordination: cannot create the database file ${path}: the directory ${fs.dir} is read-only\n`]);
  });

  it.skipIf(smallFilesystemProbe !== true)("a read-only file: exit 3", async () => {
    const mounted = mountSmallFilesystem(8192);
    if (typeof mounted === "string") throw new Error(mounted);
    fs = mounted;
    const path = await madeDatabase(fs.dir);
    fs.remount("ro");
    const exit = await runCli({ args: ["--port", "0", "--db", path] });
    expect([exit.code, exit.stderr]).toEqual([3, `coordination: the database file ${path} is read-only: this server writes to it. Make it writable, or point dbPath at a copy\n`]);
  });

  // A reader of a WAL database with no server on it makes the -shm file beside it: from a
  // directory it cannot write (a read-only snapshot, a backup account) backup said the file
  // "cannot be read as a database (unable to open database file)", as of a file that is none.
  it.skipIf(smallFilesystemProbe !== true)("backup of a file in a directory it cannot write, no server running: one line saying why and what to do, exit 3", async () => {
    const mounted = mountSmallFilesystem(8192);
    if (typeof mounted === "string") throw new Error(mounted);
    fs = mounted;
    const path = await madeDatabase(fs.dir);
    fs.remount("ro");
    const target = join(makeTempDir(), "copy.db");
    const backup = await runCli({ args: ["backup", target, "--db", path] });
    expect([backup.code, backup.stderr]).toEqual([
      3,
      `coordination backup: ${path} cannot be read from here: with no server running on it, SQLite must make its -shm file in ${fs.dir}, which this user cannot write. Run the backup as the server's user, or while the server runs\n`,
    ]);
    expect(existsSync(target)).toBe(false);
  });

  // Migrating a new file on a disk with no room for the schema died with SQLite's "database or
  // disk is full" and its stack, exit 1, from the commit of the migrations' transaction.
  it.skipIf(smallFilesystemProbe !== true)("a disk too full to migrate a new file: exit 3 with one line, from migrate and from the server, nothing applied", async () => {
    const mounted = mountSmallFilesystem(256);
    if (typeof mounted === "string") throw new Error(mounted);
    fs = mounted;
    const path = join(fs.dir, "new.db");
    const said = /^coordination: the database file \S+new\.db: (its migrations|migration \w+) failed \(database or disk is full\); nothing was applied\n$/;
    const migrate = await runCli({ args: ["migrate", "--db", path] });
    expect([migrate.code, migrate.stderr]).toEqual([3, expect.stringMatching(said)]);
    const serve = await runCli({ args: ["--port", "0", "--db", path] });
    expect([serve.code, serve.stderr]).toEqual([3, expect.stringMatching(said)]);
    // Rolled back whole: no migration recorded.
    const db = new Database(path, { readonly: true });
    try {
      expect(db.prepare(`SELECT count(*) FROM "_prisma_migrations"`).pluck().get()).toBe(0);
    } finally {
      db.close();
    }
  });

  // A server restarted on a full disk cannot make the -shm file its WAL database needs, and SQLite
  // says "disk I/O error": it was refused as "not a usable SQLite database", a damaged file, whose
  // cure the README gives as restoring a backup (losing the work acknowledged since). It is the
  // disk that is full, the file is whole: free space and it starts.
  it.skipIf(smallFilesystemProbe !== true)("a start on a full disk says the disk is full, not that the file is damaged; with space back it starts", async () => {
    const mounted = mountSmallFilesystem(4096);
    if (typeof mounted === "string") throw new Error(mounted);
    fs = mounted;
    const path = await madeDatabase(fs.dir);
    const before = sha(path);
    const filler = join(fs.dir, "filler");
    try {
      writeFileSync(filler, Buffer.alloc(8 * 1024 * 1024));
    } catch {
      // ENOSPC: the filler took what it could.
    }
    const said = `the disk holding the database file ${path} is full (SQLite cannot make its -shm and -wal files in ${fs.dir}): the file is not damaged; free space, then start again\n`;
    for (const args of [["--port", "0", "--db", path], ["migrate", "--db", path], ["tokens", "list", "--db", path]]) {
      const exit = await runCli({ args });
      expect([args[0], exit.code, exit.stderr]).toEqual([args[0], 3, `coordination: ${said}`]);
    }
    const backup = await runCli({ args: ["backup", join(makeTempDir(), "copy.db"), "--db", path] });
    expect([backup.code, backup.stderr]).toEqual([3, `coordination backup: ${said}`]);
    expect(sha(path)).toBe(before);
    rmSync(filler);
    expect((await runCli({ args: ["migrate", "--db", path] })).code).toBe(0);
  });
});

describe("a database that fails under a running server", () => {
  it("a deleted database file: no write is acknowledged into it, /health says so", async () => {
    t = await startTestServer();
    expect((await http(t.url, "POST", "/tasks", { body: { queue: "q" } })).status).toBe(200);
    for (const suffix of ["", "-wal", "-shm"]) rmSync(`${t.dbPath}${suffix}`, { force: true });
    const answers = await Promise.all(Array.from({ length: 20 }, () => http(t!.url, "POST", "/tasks", { body: { queue: "q" } })));
    expect(new Set(answers.map((a) => `${a.status} ${a.body.code}`))).toEqual(new Set(["503 DATABASE_REPLACED"]));
    expect(answers[0]!.body.message).toBe(
      `The database file ${t.dbPath} was deleted while the server ran; writes are refused so that none is acknowledged into a file nobody will read. Restart the server (it opens whatever file is at the path then)`,
    );
    expect(answers[0]!.headers.get("retry-after")).toBeNull();
    const health = await http(t.url, "GET", "/health");
    expect([health.status, health.body.code]).toEqual([503, "DATABASE_REPLACED"]);
    // The counts are read through a connection opened on first use (Prisma's): not by the path
    // now, which would make a new empty file there and answer 500 for its missing tables.
    const stats = await http(t.url, "GET", "/stats/tasks");
    expect([stats.status, stats.body.code]).toEqual([503, "DATABASE_REPLACED"]);
    expect(existsSync(t.dbPath)).toBe(false);
    // /metrics still answers, saying what is wrong, without the gauges it could not read.
    const metrics = await http(t.url, "GET", "/metrics");
    expect(metrics.status).toBe(200);
    const text = metrics.body as string;
    expect(text).toMatch(/^coordination_database_writes_failing\{code="DATABASE_REPLACED"\} 1$/m);
    expect(text).toMatch(/^coordination_metrics_read_failing\{metric="coordination_tasks"\} 1$/m);
    expect(text).toMatch(/^coordination_metrics_read_failing\{metric="coordination_agents"\} 0$/m);
    expect(text).not.toMatch(/^coordination_tasks\{/m);
    expect(existsSync(t.dbPath)).toBe(false);
  });

  it("a deleted write-ahead log (a restore done under a running server): no write is acknowledged into it, /health says so", async () => {
    t = await startTestServer();
    expect((await http(t.url, "POST", "/tasks", { body: { queue: "q" } })).status).toBe(200);
    // Before, the server went on answering 200 into the unlinked log, and lost every such write at its next start.
    for (const suffix of ["-wal", "-shm"]) rmSync(`${t.dbPath}${suffix}`, { force: true });
    const answer = await http(t.url, "POST", "/tasks", { body: { queue: "q" } });
    expect([answer.status, answer.body.code]).toEqual([503, "DATABASE_REPLACED"]);
    expect(answer.body.message).toBe(
      `The write-ahead log ${t.dbPath}-wal was deleted while the server ran; writes are refused so that none is acknowledged into a file nobody will read. Restart the server (it opens whatever file is at the path then)`,
    );
    const health = await http(t.url, "GET", "/health");
    expect([health.status, health.body.code]).toEqual([503, "DATABASE_REPLACED"]);
  });

  it("background jobs survive a failing database, and log the episode once, not every tick", async () => {
    const lines: Array<{ level: number; msg: string; job?: string }> = [];
    const log = pino({ level: "debug" }, new Writable({ write: (chunk, _encoding, done) => (lines.push(JSON.parse(String(chunk))), done()) }));
    const dir = makeTempDir();
    const server = createServer(loadConfig({ env: {}, overrides: { port: 0, dbPath: join(dir, "c.db"), leaseSweepMs: 20, maxLeaseMs: 60_000 } }), log);
    await server.start();
    try {
      await http(server.url, "POST", "/tasks", { body: { queue: "q" } });
      // A lease that runs out well after the file is gone (3 s is far more than the next statement takes).
      await http(server.url, "POST", "/tasks/claim", { body: { agentId: "a", leaseMs: 3000 } });
      for (const suffix of ["", "-wal", "-shm"]) rmSync(join(dir, `c.db${suffix}`), { force: true });
      // Then the sweeper finds the expired lease every tick (reads still work on the deleted file) and cannot write.
      await until(() => lines.filter((line) => line.msg === "background job failed again").length >= 10, 30_000);
      const failed = lines.filter((line) => line.job === "lease-sweeper" && line.level >= 50);
      expect(failed.map((line) => line.msg)).toEqual(["background job failed; retrying every tick, logging again when it works"]);
      expect((await http(server.url, "GET", "/health")).body.code).toBe("DATABASE_REPLACED");
    } finally {
      await server.stop();
    }
  });

  it("a write lock held past busyTimeoutMs by another process: 503 DATABASE_LOCKED with Retry-After, nothing stored, then it works", async () => {
    t = await startTestServer({ busyTimeoutMs: 200 });
    const holder = new Database(t.dbPath);
    holder.exec("BEGIN IMMEDIATE");
    const locked = await http(t.url, "POST", "/tasks", { body: { queue: "q" } });
    expect([locked.status, locked.body.code, locked.headers.get("retry-after")]).toEqual([503, "DATABASE_LOCKED", "1"]);
    expect(locked.body.message).toBe("Another process held the database's write lock for more than 200 ms (busyTimeoutMs); nothing was stored. Retry");
    // /health reads on its own connection: the server is up, another process is busy.
    expect((await http(t.url, "GET", "/health")).status).toBe(200);
    holder.exec("ROLLBACK");
    holder.close();
    expect((await http(t.url, "POST", "/tasks", { body: { queue: "q" } })).status).toBe(200);
    expect(withDatabase(t, (db) => db.prepare("SELECT count(*) FROM tasks").pluck().get())).toBe(1);
  });

  it("a write waiting for another process's lock shows in /health's writeWaitMs and coordination_write_wait_seconds, then both are 0 again", async () => {
    t = await startTestServer({ busyTimeoutMs: 60_000 });
    expect((await http(t.url, "GET", "/health")).body.writeWaitMs).toBe(0);
    const holder = new Database(t.dbPath);
    holder.exec("BEGIN IMMEDIATE");
    const waiting = http(t.url, "POST", "/tasks", { body: { queue: "q" } });
    // Still 200: the server is up and the write will pass; the wait is what an operator watches.
    await vi.waitFor(async () => {
      const health = await http(t!.url, "GET", "/health");
      expect(health.status).toBe(200);
      expect(health.body.writeWaitMs).toBeGreaterThanOrEqual(300);
    }, { timeout: 15_000, interval: 50 });
    const gauge = Number(/^coordination_write_wait_seconds (\S+)$/m.exec(await (await fetch(`${t.url}/metrics`)).text())![1]);
    expect(gauge).toBeGreaterThanOrEqual(0.3);
    holder.exec("ROLLBACK");
    holder.close();
    expect((await waiting).status).toBe(200);
    expect((await http(t.url, "GET", "/health")).body.writeWaitMs).toBe(0);
    expect(await (await fetch(`${t.url}/metrics`)).text()).toMatch(/^coordination_write_wait_seconds 0$/m);
  });

    it("a write lock held by another process does not hold up shutdown: the closing checkpoint does not wait for it", async () => {
    t = await startTestServer({ busyTimeoutMs: 60_000 });
    expect((await http(t.url, "POST", "/tasks", { body: { queue: "q" } })).status).toBe(200);
    const holder = new Database(t.dbPath);
    holder.exec("BEGIN IMMEDIATE");
    try {
      const started = Date.now();
      await t.stop();
      // It waited the whole busyTimeoutMs (60 s) for the lock; the bound is generous for a slow machine.
      expect(Date.now() - started).toBeLessThan(30_000);
    } finally {
      holder.exec("ROLLBACK");
      holder.close();
    }
    // The committed task is in the file (its -wal), for the next start to read.
    const reader = new Database(t.dbPath, { readonly: true });
    expect(reader.prepare("SELECT count(*) FROM tasks").pluck().get()).toBe(1);
    reader.close();
  });

  it.skipIf(smallFilesystemProbe !== true)("a full disk: 503 DISK_FULL, acknowledged data intact, /health 503 until space returns", async () => {
    const mounted = mountSmallFilesystem(4096);
    if (typeof mounted === "string") throw new Error(mounted);
    fs = mounted;
    t = await startTestServer({}, fs.dir);
    const acknowledged: string[] = [];
    const filler = join(fs.dir, "filler");
    // Fill what is left, then write until the database cannot grow.
    try {
      writeFileSync(filler, Buffer.alloc(8 * 1024 * 1024));
    } catch {
      // ENOSPC: the filler took what it could.
    }
    let full: Awaited<ReturnType<typeof http>> | undefined;
    for (let i = 0; i < 200 && full === undefined; i++) {
      const answer = await http(t.url, "POST", "/tasks", { body: { queue: "q", payload: { text: "y".repeat(50_000) } } });
      if (answer.status === 200) acknowledged.push(answer.body.id);
      else full = answer;
    }
    expect([full?.status, full?.body.code, full?.headers.get("retry-after")]).toEqual([503, "DISK_FULL", "30"]);
    const health = await http(t.url, "GET", "/health");
    expect([health.status, health.body.code]).toEqual([503, "DISK_FULL"]);
    expect((await http(t.url, "GET", "/metrics")).body).toContain('coordination_database_writes_failing{code="DISK_FULL"} 1');
    // A little room (less than the largest request): small writes work, the disk is still full.
    // /health said 200 and the log "writes work again" after one small write succeeded.
    truncateSync(filler, statSync(filler).size - 300 * 1024);
    expect((await http(t.url, "POST", "/agents", { body: { agentId: "small-write" } })).status).toBe(200);
    for (let i = 0; i < 3; i++) {
      const still = await http(t.url, "GET", "/health");
      expect([still.status, still.body.code]).toEqual([503, "DISK_FULL"]);
    }
    rmSync(filler);
    await until(async () => (await http(t!.url, "GET", "/health")).status === 200);
    expect((await http(t.url, "POST", "/tasks", { body: { queue: "q" } })).status).toBe(200);
    const stored = new Set((await t.api.tasks.list.query({ limit: 500 })).items.map((task) => task.id));
    for (const id of acknowledged) expect(stored.has(id)).toBe(true);
  });

  it.skipIf(smallFilesystemProbe !== true)("SIGTERM on a full disk: the process exits with a documented code and what is safe, the data intact", async () => {
    const mounted = mountSmallFilesystem(4096);
    if (typeof mounted === "string") throw new Error(mounted);
    fs = mounted;
    const path = join(fs.dir, "c.db");
    const cli = new CliProcess({ args: ["--port", "0", "--db", path] });
    const url = await cli.waitForUrl();
    const acknowledged: string[] = [];
    try {
      writeFileSync(join(fs.dir, "filler"), Buffer.alloc(8 * 1024 * 1024));
    } catch {
      // ENOSPC, as meant.
    }
    for (let i = 0; i < 200; i++) {
      const answer = await http(url, "POST", "/tasks", { body: { queue: "q", payload: { text: "z".repeat(50_000) } } });
      if (answer.status !== 200) break;
      acknowledged.push(answer.body.id);
    }
    cli.child.kill("SIGTERM");
    const exit = await cli.waitForExit();
    expect([0, 1]).toContain(exit.code);
    if (exit.code === 1) expect(exit.stderr).toContain("coordination: shutdown failed: the database was closed, but not cleanly");
    rmSync(join(fs.dir, "filler"));
    const db = new Database(path);
    const ids = new Set(db.prepare("SELECT id FROM tasks").pluck().all());
    db.close();
    for (const id of acknowledged) expect(ids.has(id)).toBe(true);
  });
});
