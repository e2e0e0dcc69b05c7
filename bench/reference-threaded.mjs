// The reference server (../shared/bench/reference-server.mjs) rebuilt on the design #9's
// responsiveness goals ask for: its event loop never runs SQLite. The same routes, answers,
// schema, statements, event rows (always on) and group commit, but the statements run on a
// worker thread: the event loop parses HTTP, posts the calls of one turn as one message, and
// answers when the thread posts its batch's results after COMMIT.
//
// Nothing of the product is in it: it measures what that design alone costs on this machine, the
// bound of any server built on it (bench/systems.mjs runs it beside the reference server).
//
// usage (from the project root): REF_SYNC=FULL node bench/reference-threaded.mjs PORT DBFILE
import { createServer } from "node:http";
import { randomUUID } from "node:crypto";
import { createRequire } from "node:module";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";

if (isMainThread) serveHttp();
else runStatements(workerData);

function serveHttp() {
  const [portArg, dbPath] = process.argv.slice(2);
  const sync = (process.env.REF_SYNC ?? "FULL").toUpperCase();
  const thread = new Worker(new URL(import.meta.url), { workerData: { dbPath, sync } });
  const waiting = new Map();
  let outbox = [];
  let nextId = 1;
  thread.on("message", (outcomes) => {
    for (const [id, ok, value] of outcomes) {
      const w = waiting.get(id);
      waiting.delete(id);
      if (ok) w.resolve(value);
      else w.reject(new Error(value));
    }
  });
  thread.on("error", (error) => {
    console.error(error);
    process.exit(1);
  });
  /** One statement group on the thread; the calls of one event-loop turn travel as one message. */
  const call = (op, args) =>
    new Promise((resolve, reject) => {
      if (outbox.length === 0) setImmediate(() => {
        const calls = outbox;
        outbox = [];
        thread.postMessage(calls);
      });
      const id = nextId++;
      waiting.set(id, { resolve, reject });
      outbox.push([id, op, args]);
    });

  const send = (res, status, body) => {
    if (body === undefined) {
      res.writeHead(status, { "content-length": 0 });
      res.end();
      return;
    }
    const text = JSON.stringify(body);
    res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
    res.end(text);
  };
  const readJson = (req) =>
    new Promise((resolve, reject) => {
      const chunks = [];
      req.on("data", (c) => chunks.push(c));
      req.on("end", () => {
        const text = Buffer.concat(chunks).toString();
        try {
          resolve(text ? JSON.parse(text) : {});
        } catch (e) {
          reject(e);
        }
      });
      req.on("error", reject);
    });

  const server = createServer(async (req, res) => {
    try {
      const url = req.url;
      if (req.method === "GET" && url === "/health") return send(res, 200, { status: "ok" });
      if (req.method === "POST" && url === "/tasks") {
        const body = await readJson(req);
        const id = randomUUID();
        const queue = typeof body.queue === "string" ? body.queue : "default";
        const priority = Number.isInteger(body.priority) ? body.priority : 5;
        await call("enqueue", [id, queue, JSON.stringify(body.payload ?? {}), priority]);
        return send(res, 200, { id, queue, payload: body.payload ?? {}, priority, status: "pending" });
      }
      if (req.method === "GET" && url.startsWith("/tasks/claim/")) {
        const agent = decodeURIComponent(url.slice("/tasks/claim/".length).split("?")[0]);
        const row = await call("claim", [agent]);
        if (!row) return send(res, 204);
        return send(res, 200, { id: row.id, queue: row.queue, payload: JSON.parse(row.payload), priority: row.priority, status: "claimed", leaseOwner: agent, attempts: row.attempts });
      }
      const m = req.method === "POST" && /^\/tasks\/([^/]+)\/complete$/.exec(url);
      if (m) {
        const id = decodeURIComponent(m[1]);
        const body = await readJson(req);
        const row = await call("complete", [id, JSON.stringify(body.result ?? null)]);
        if (!row) return send(res, 409, { code: "LEASE_CONFLICT", message: `task ${id} is not claimed` });
        return send(res, 200, { id, status: "completed" });
      }
      send(res, 404, { code: "NOT_FOUND" });
    } catch (e) {
      send(res, 500, { code: "INTERNAL", message: String(e?.message ?? e) });
    }
  });
  server.keepAliveTimeout = 30_000;
  server.listen(Number(portArg), "127.0.0.1", () => console.error(`threaded reference on ${portArg} sync=${sync}`));
  const stop = () => {
    server.close(() => void thread.terminate().then(() => process.exit(0)));
    server.closeAllConnections();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

function runStatements({ dbPath, sync }) {
  const require = createRequire((process.env.PRODUCT_DIR ?? process.cwd()) + "/package.json");
  const Database = require("better-sqlite3");
  const db = new Database(dbPath);
  db.pragma("journal_mode = WAL");
  db.pragma(`synchronous = ${sync}`);
  db.exec(`
    CREATE TABLE IF NOT EXISTS tasks (
      seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, queue TEXT NOT NULL, payload TEXT NOT NULL,
      priority INTEGER NOT NULL, status TEXT NOT NULL DEFAULT 'pending', lease_owner TEXT,
      attempts INTEGER NOT NULL DEFAULT 0, result TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
    CREATE INDEX IF NOT EXISTS tasks_claim ON tasks(status, priority, seq);
    CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, type TEXT NOT NULL, source TEXT NOT NULL,
      payload TEXT NOT NULL, created_at INTEGER NOT NULL);
  `);
  const insertTask = db.prepare(`INSERT INTO tasks (id, queue, payload, priority, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)`);
  const claimTask = db.prepare(
    `UPDATE tasks SET status = 'claimed', lease_owner = ?, attempts = attempts + 1, updated_at = ?
     WHERE seq = (SELECT seq FROM tasks WHERE status = 'pending' ORDER BY priority, seq LIMIT 1)
     RETURNING id, queue, payload, priority, attempts`,
  );
  const completeTask = db.prepare(`UPDATE tasks SET status = 'completed', result = ?, updated_at = ? WHERE id = ? AND status = 'claimed' RETURNING seq, queue, lease_owner`);
  const insertEvent = db.prepare(`INSERT INTO events (type, source, payload, created_at) VALUES (?, 'coordination', ?, ?)`);
  const begin = db.prepare("BEGIN IMMEDIATE");
  const commit = db.prepare("COMMIT");
  const rollback = db.prepare("ROLLBACK");

  const ops = {
    enqueue([id, queue, payload, priority], now) {
      insertTask.run(id, queue, payload, priority, now, now);
      insertEvent.run("task.enqueued", JSON.stringify({ taskId: id, queue, priority }), now);
      return null;
    },
    claim([agent], now) {
      const row = claimTask.get(agent, now);
      if (row) insertEvent.run("task.claimed", JSON.stringify({ taskId: row.id, queue: row.queue, agentId: agent, attempt: row.attempts }), now);
      return row ?? null;
    },
    complete([id, result], now) {
      const row = completeTask.get(result, now, id);
      if (row) insertEvent.run("task.completed", JSON.stringify({ taskId: id, queue: row.queue, agentId: row.lease_owner }), now);
      return row ?? null;
    },
  };

  // Group commit as the reference server does it: what arrived during one turn, in one transaction.
  let queued = [];
  const flush = () => {
    const calls = queued;
    queued = [];
    const now = Date.now();
    const outcomes = [];
    begin.run();
    try {
      for (const [id, op, args] of calls) outcomes.push([id, true, ops[op](args, now)]);
      commit.run();
    } catch (e) {
      if (db.inTransaction) rollback.run();
      parentPort.postMessage(calls.map(([id]) => [id, false, String(e?.message ?? e)]));
      return;
    }
    parentPort.postMessage(outcomes);
  };
  parentPort.on("message", (calls) => {
    if (queued.length === 0) setImmediate(flush);
    for (const c of calls) queued.push(c);
  });
}
