// Credentials on both transports, their life cycle (issue, use, revoke; from the server's
// admin procedures and from the CLI in another process), and what a copy of the database gives.
import { createHash } from "node:crypto";
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import Database from "better-sqlite3";
import { applyMigrations, defaultMigrationsDir, readMigrations } from "../src/db/migrate.js";
import { join } from "node:path";
import WebSocket from "ws";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createCoordinationClient, runWorker } from "../client/index.js";
import { collectEvents } from "./helpers/event-collector.js";
import { runCli, killAllCli } from "./helpers/cli-process.js";
import { ADMIN_SECRET, http, startSecureServer, type SecureServer } from "./helpers/secure-server.js";
import { makeTempDir, startTestServer, withDatabase, type TestServer } from "./helpers/test-server.js";

/** A migrations folder holding only `names` of the shipped ones: what an older version shipped. */
function copyOfMigrations(dir: string, names: string[]): string {
  const copy = join(dir, "older-migrations");
  mkdirSync(copy);
  for (const name of names) cpSync(join(defaultMigrationsDir(), name), join(copy, name), { recursive: true });
  return copy;
}

let t: SecureServer | TestServer | undefined;
afterEach(async () => {
  await killAllCli();
  await t?.stop({ removeFiles: true });
  t = undefined;
});

const until = (condition: () => boolean | Promise<boolean>) =>
  vi.waitFor(async () => expect(await condition()).toBe(true), { timeout: 15_000, interval: 20 });

describe("WebSocket credentials", () => {
  it("a right token streams its agent's mailbox; naming another agent is refused", async () => {
    const s = (t = await startSecureServer());
    const api = s.as(await s.issue("agent", "agent-C"));
    const mine = collectEvents(api, { agentId: "agent-C" });
    await mine.started;
    const theirs = collectEvents(api, { agentId: "agent-D" });
    await s.admin.events.publish.mutate({ type: "note", source: "ops", target: "agent-C", payload: { n: 1 } });
    await until(() => mine.events.length === 1);
    expect(mine.events[0]!.payload).toEqual({ n: 1 });
    await until(() => theirs.errors.length === 1);
    expect((theirs.errors[0] as { data: { code: string } }).data.code).toBe("FORBIDDEN");
  });

  it("no or a wrong token: the socket is closed with 4401 before any subscription starts", async () => {
    const s = (t = await startSecureServer());
    for (const token of [undefined, "not-a-token"]) {
      const closes: Array<number | undefined> = [];
      const client = createCoordinationClient({ url: s.url, ...(token === undefined ? {} : { token }), onSocketClose: (code) => closes.push(code) });
      const stream = collectEvents(client.api, {});
      await until(() => closes.length > 0);
      expect(closes[0]).toBe(4401);
      // The subscription is told why, and the client stops trying (it reconnected ~10 times a second).
      await until(() => stream.errors.length === 1);
      expect((stream.errors[0] as { data: { code: string } }).data.code).toBe("UNAUTHORIZED");
      const closedSoFar = closes.length;
      await new Promise((resolve) => setTimeout(resolve, 1000));
      expect(closes.length).toBeLessThanOrEqual(closedSoFar + 1);
      await s.admin.events.publish.mutate({ type: "x", source: "ops" });
      expect(stream.events).toEqual([]);
      stream.unsubscribe();
      await client.close();
    }
  });

  it("revoking a token refuses its next call and closes its open sockets", async () => {
    const s = (t = await startSecureServer());
    const issued = await s.admin.tokens.create.mutate({ role: "agent", agentId: "agent-R", name: "to revoke" });
    const closes: Array<number | undefined> = [];
    const api = s.as(issued.secret, { onSocketClose: (code) => closes.push(code) });
    const stream = collectEvents(api, { types: ["*"] });
    await stream.started;
    expect((await http(s.url, "GET", "/tasks", { token: issued.secret })).status).toBe(200);
    // Long-polls parked under the token end when it is revoked, having taken nothing, with the
    // 401 of a revoked credential: an empty answer would read as "no task" or "no events".
    const started = Date.now();
    const parked = http(s.url, "POST", "/tasks/claim", { token: issued.secret, body: { queues: ["later"], waitMs: 30_000 } });
    const polling = http(s.url, "GET", "/events/agent-R?waitMs=30000", { token: issued.secret });
    await until(() => s.server.services.waiters.claims.size === 1 && s.server.services.waiters.polls.size === 1);
    const revoked = await s.admin.tokens.revoke.mutate({ tokenId: issued.token.id });
    for (const ended of [await parked, await polling]) expect([ended.status, ended.body.code]).toEqual([401, "UNAUTHORIZED"]);
    expect(Date.now() - started).toBeLessThan(30_000);
    await s.admin.tasks.enqueue.mutate({ queue: "later" });
    expect((await s.admin.tasks.stats.query()).totals.pending).toBe(1);
    expect(revoked.revokedAt).toBeInstanceOf(Date);
    await until(() => closes.includes(4401));
    await until(() => stream.errors.length === 1);
    expect((stream.errors[0] as { data: { code: string } }).data.code).toBe("UNAUTHORIZED");
    const closedSoFar = closes.length;
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(closes.length).toBeLessThanOrEqual(closedSoFar + 1);
    expect((await http(s.url, "GET", "/tasks", { token: issued.secret })).status).toBe(401);
    expect((await s.admin.tokens.list.query()).map((token) => token.id)).not.toContain(issued.token.id);
    expect((await s.admin.tokens.list.query({ includeRevoked: true })).find((token) => token.id === issued.token.id)?.name).toBe("to revoke");
  });
});

describe("the worker", () => {
  it("runs tasks with an agent token: registers, claims, heartbeats, settles and deregisters as its agent", async () => {
    const s = (t = await startSecureServer());
    const api = s.as(await s.issue("agent", "worker-1"));
    const task = await s.admin.tasks.enqueue.mutate({ queue: "q", payload: { n: 7 } });
    const worker = await runWorker({ api, agentId: "worker-1", queues: ["q"], waitMs: 200, heartbeatMs: 100, handler: async (claimed) => ({ doubled: (claimed.payload as { n: number }).n * 2 }) });
    await until(() => worker.completed === 1);
    await worker.stop();
    const done = await s.admin.tasks.get.query({ taskId: task.id });
    expect([done.status, done.result, done.leaseOwner]).toEqual(["completed", { doubled: 14 }, "worker-1"]);
    expect(await s.admin.agents.list.query({})).toEqual([]);
    // A worker given another agent's name is refused at registration, before it claims anything.
    await expect(runWorker({ api, agentId: "worker-2", handler: async () => undefined })).rejects.toThrow('this credential acts as agent "worker-1"');
  });

  it("a worker whose credential is revoked stops claiming and says why once, rather than calling with it a few times a second for good", async () => {
    const s = (t = await startSecureServer());
    const issued = await s.admin.tokens.create.mutate({ role: "agent", agentId: "worker-r" });
    const errors: unknown[] = [];
    const worker = await runWorker({ api: s.as(issued.secret), agentId: "worker-r", queues: ["q"], waitMs: 20_000, heartbeatMs: 100, handler: async () => undefined, onError: (error) => errors.push(error) });
    await until(() => s.server.services.waiters.claims.size === 1);
    await s.admin.tokens.revoke.mutate({ tokenId: issued.token.id });
    await until(() => errors.some((error) => String(error).includes("refused this worker's credential")));
    // Done, and it says so without stop(): closed settles.
    await worker.closed;
    const count = async () => Number(/^coordination_http_responses_total\{status="401"\} (\d+)$/m.exec((await http(s.url, "GET", "/metrics", { token: ADMIN_SECRET })).body as string)?.[1] ?? 0);
    // A call the worker sent before it closed may still be answered (its 401 counted) after: the
    // count is read once it stayed the same for 500 ms (on a loaded machine one came late).
    let before = await count();
    for (const deadline = Date.now() + 10_000; Date.now() < deadline; ) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      const now = await count();
      if (now === before) break;
      before = now;
    }
    // Before, it claimed again every 500 ms (and heartbeat every 100 ms), each a 401.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect(await count()).toBe(before);
    expect(errors.filter((error) => String(error).includes("refused this worker's credential"))).toHaveLength(1);
    const started = Date.now();
    await worker.stop();
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});

describe("the tokens command", () => {
  it("issues a token another process's server accepts, and revokes it there", async () => {
    const s = (t = await startSecureServer({ tokenRefreshMs: 200 }));
    const created = await runCli({ args: ["tokens", "create", "--agent", "cli-agent", "--name", "from the CLI", "--db", s.dbPath] });
    expect(created.code).toBe(0);
    const secret = created.stdout.trim();
    expect(secret).toMatch(/^coord_[A-Za-z0-9_-]{43}$/);
    expect(created.stderr).toMatch(/^issued token \S+ \(role agent, agent cli-agent\); its secret follows, shown this once\n$/);
    // Unknown to the server's cache: the miss re-reads the table.
    const agent = s.as(secret);
    expect((await agent.agents.register.mutate({ agentId: "cli-agent", capabilities: ["x"] })).agentId).toBe("cli-agent");

    const listed = await runCli({ args: ["tokens", "list", "--json", "--db", s.dbPath] });
    const tokens = JSON.parse(listed.stdout) as Array<{ id: string; agentId: string | null; name: string }>;
    const id = tokens.find((token) => token.agentId === "cli-agent")!.id;
    expect(tokens.find((token) => token.id === id)!.name).toBe("from the CLI");
    const revoked = await runCli({ args: ["tokens", "revoke", id, "--db", s.dbPath] });
    expect([revoked.code, revoked.stderr]).toEqual([0, `revoked token ${id}\n`]);
    await until(async () => (await http(s.url, "GET", "/agents", { token: secret })).status === 401);
  });

  it("lists tokens with times as the operator's other tables write them, and names with their control characters escaped", async () => {
    const s = (t = await startSecureServer());
    const created = await s.admin.tokens.create.mutate({ role: "read", name: "wall\u001b[2Jscreen" });
    const listed = await runCli({ args: ["tokens", "list", "--db", s.dbPath] });
    expect(listed.code).toBe(0);
    const row = listed.stdout.split("\n").find((line) => line.startsWith(created.token.id))!;
    const createdAt = created.token.createdAt.toISOString().replace("T", " ").slice(0, 19);
    expect(row.split(/ {2,}/)).toEqual([created.token.id, "read", "-", "wall\\x1b[2Jscreen", "-", `${createdAt}Z`, "never", "-"]);
  });

  it("says what is wrong with a request, exit 2", async () => {
    const s = (t = await startTestServer());
    const noRole = await runCli({ args: ["tokens", "create", "--db", s.dbPath] });
    expect([noRole.code, noRole.stderr]).toEqual([2, "coordination tokens create: give --agent AGENT_ID, or --role read|admin\n"]);
    const agentForRead = await runCli({ args: ["tokens", "create", "--role", "read", "--agent", "a", "--db", s.dbPath] });
    expect([agentForRead.code, agentForRead.stderr]).toEqual([2, "coordination tokens create: agentId: is for role agent only (role is read)\n"]);
    const unknown = await runCli({ args: ["tokens", "revoke", "nope", "--db", s.dbPath] });
    expect([unknown.code, unknown.stderr]).toEqual([2, 'coordination tokens revoke: no token "nope"\n']);
  });

  it("runs the server's checks of the file and never migrates it: what a server refuses, or an older version's file, is exit 3 and one sentence", async () => {
    const dir = makeTempDir();
    try {
      const notADatabase = join(dir, "notes.db");
      writeFileSync(notADatabase, "not a database, just text ".repeat(100));
      const refused = await runCli({ args: ["tokens", "list", "--db", notADatabase] });
      expect([refused.code, refused.stderr]).toEqual([3, expect.stringMatching(/^coordination: the file .*notes\.db is not a usable SQLite database \(.*\)\n$/)]);

      // A file an older version made: its migrations stop before the newest one. The tokens
      // command must leave it so: a server of that version may be running on it.
      const older = join(dir, "older.db");
      const db = new Database(older);
      const shipped = readMigrations(defaultMigrationsDir());
      applyMigrations(db, copyOfMigrations(dir, shipped.slice(0, -1).map((m) => m.name)));
      db.close();
      const beforeMigrating = await runCli({ args: ["tokens", "create", "--role", "read", "--db", older] });
      expect([beforeMigrating.code, beforeMigrating.stdout]).toEqual([3, ""]);
      expect(beforeMigrating.stderr).toBe(
        `coordination: the database file ${older} lacks migrations this version brings (${shipped.at(-1)!.name}): run \`coordination migrate\`, or start this version's server on it, first\n`,
      );
      const after = new Database(older, { readonly: true });
      expect(after.prepare(`SELECT count(*) FROM _prisma_migrations`).pluck().get()).toBe(shipped.length - 1);
      after.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the first token, issued over a WebSocket of an open server, reaches its caller before the socket closes", async () => {
    const s = (t = await startTestServer());
    const socket = new WebSocket(`${s.url.replace("http", "ws")}/trpc`);
    await new Promise((resolve) => socket.once("open", resolve));
    const messages: Array<{ id?: number; result?: { data: { json: { secret: string; token: { role: string } } } } }> = [];
    socket.on("message", (data) => messages.push(JSON.parse(String(data))));
    const closed = new Promise<number>((resolve) => socket.once("close", resolve));
    socket.send(JSON.stringify({ id: 1, method: "mutation", params: { path: "tokens.create", input: { json: { role: "admin", name: "via-ws" } } } }));
    // Credentials are required from this call on: the socket of an open caller closes, after its answer.
    expect(await closed).toBe(4401);
    const answer = messages.find((message) => message.id === 1)?.result?.data.json;
    expect(answer?.token.role).toBe("admin");
    expect((await http(s.url, "GET", "/tasks")).status).toBe(401);
    expect((await http(s.url, "GET", "/tasks", { token: answer!.secret })).status).toBe(200);
  });

  it("the first token turns credentials on for a server that had none, and open sockets lose their rights", async () => {
    const s = (t = await startTestServer({ tokenRefreshMs: 200 }));
    expect((await http(s.url, "GET", "/tasks")).status).toBe(200);
    // A socket opened while the server was open: it must not keep an open caller's rights.
    const socket = new WebSocket(`${s.url.replace("http", "ws")}/trpc`);
    await new Promise((resolve) => socket.once("open", resolve));
    const closed = new Promise<number>((resolve) => socket.once("close", resolve));
    const created = await runCli({ args: ["tokens", "create", "--role", "read", "--db", s.dbPath] });
    await until(async () => (await http(s.url, "GET", "/tasks")).status === 401);
    expect((await http(s.url, "GET", "/tasks", { token: created.stdout.trim() })).status).toBe(200);
    expect(await closed).toBe(4401);
  });
});

describe("stored credentials", () => {
  it("the database holds a token's SHA-256 only, and when it was last used", async () => {
    const s = (t = await startSecureServer());
    const issued = await s.admin.tokens.create.mutate({ role: "read" });
    expect(issued.token.lastUsedAt).toBeNull();
    await http(s.url, "GET", "/tasks", { token: issued.secret });
    await until(async () => (await s.admin.tokens.list.query()).find((token) => token.id === issued.token.id)?.lastUsedAt instanceof Date);
    const hash = withDatabase(s, (db) => db.prepare("SELECT secretHash FROM api_tokens WHERE id = ?").pluck().get(issued.token.id));
    expect(hash).toBe(createHash("sha256").update(issued.secret).digest("hex"));
    for (const file of readdirSync(s.dir)) expect(readFileSync(join(s.dir, file)).includes(issued.secret), file).toBe(false);
  });

  it("a WebSocket that stays open keeps its token's lastUsedAt current: each message on it is a use", async () => {
    const s = (t = await startSecureServer());
    const issued = await s.admin.tokens.create.mutate({ role: "read" });
    const lastUsed = () => withDatabase(s, (db) => db.prepare("SELECT lastUsedAt FROM api_tokens WHERE id = ?").pluck().get(issued.token.id) as number | null);
    const socket = new WebSocket(`${s.url.replace("http", "ws")}/trpc`, { headers: { authorization: `Bearer ${issued.secret}` } });
    const messages: string[] = [];
    socket.on("message", (data) => messages.push(String(data)));
    await new Promise((resolve) => socket.once("open", resolve));
    await until(() => lastUsed() !== null);
    withDatabase(s, (db) => db.prepare("UPDATE api_tokens SET lastUsedAt = 0 WHERE id = ?").run(issued.token.id));
    // A minute on, as the server's clock sees it (this test's process is the server's), the
    // socket's next message (a keep-alive PING, answered PONG) counts as a use again.
    vi.useFakeTimers({ toFake: ["Date"], now: Date.now() + 61_000 });
    try {
      socket.send("PING");
      await until(() => messages.includes("PONG"));
    } finally {
      vi.useRealTimers();
    }
    await until(() => (lastUsed() ?? 0) > 0);
    socket.close();
  });
});
