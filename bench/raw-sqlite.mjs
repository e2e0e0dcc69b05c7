// (a) The raw SQLite ceiling: the task lifecycle done in-process with better-sqlite3 prepared
// statements on the server's own schema (applyMigrations) and connection settings (openDatabase:
// WAL, synchronous=FULL). The statements are the task store's (same INSERT, same claim UPDATE
// with the same WHERE/ORDER BY, same complete UPDATE, all RETURNING *); nothing else is written
// (no events, no memories, no agent touch): the floor under any server on this schema.
//
//   per-op : one BEGIN IMMEDIATE … COMMIT (one fsync) per enqueue, per claim and per complete,
//            one after the other (in-process there is nothing to gain from concurrency).
//   batched: C operations per transaction, what C concurrent clients allow a group commit to do.
//
// usage: node bench/raw-sqlite.mjs DIR N C   → prints one JSON line
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { applyMigrations } from "../dist/src/db/migrate.js";
import { openDatabase } from "../dist/src/db/open-database.js";
import { Lifecycle } from "./lib.mjs";

const [dir, nArg, cArg] = process.argv.slice(2);
const N = Number(nArg ?? 3000);
const C = Number(cArg ?? 32);

const INSERT = `INSERT INTO tasks (id, queue, payload, priority, capability, targetAgentId, maxAttempts, runAt, idempotencyKey, createdAt, updatedAt)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *`;
// TaskStore.claim for { agentId, queues: null, capabilities: [] }, limit 1.
const CLAIM = `UPDATE tasks SET status = 'claimed', leaseOwner = ?, leaseExpiresAt = ?, leaseToken = leaseToken + 1,
    attempts = attempts + 1, claimedAt = ?, updatedAt = ?
  WHERE seq IN (SELECT seq FROM tasks WHERE status = 'pending' AND (targetAgentId IS NULL OR targetAgentId = ?) AND capability IS NULL
    AND runAt <= ? ORDER BY priority, seq LIMIT ?)
  RETURNING *`;
const COMPLETE = `UPDATE tasks SET status = 'completed', result = ?, leaseExpiresAt = NULL, finishedAt = ?, updatedAt = ? WHERE seq = ? RETURNING *`;

function open(name) {
  const db = openDatabase({ dbPath: join(dir, name), busyTimeoutMs: 5000, durability: "full" });
  applyMigrations(db);
  const synchronous = db.pragma("synchronous", { simple: true });
  const journal = db.pragma("journal_mode", { simple: true });
  if (synchronous !== 2 || journal !== "wal") throw new Error(`unexpected settings: synchronous=${synchronous} journal_mode=${journal}`);
  return db;
}

function run(name, batch) {
  const db = open(`raw-${name}.db`);
  const insert = db.prepare(INSERT);
  const claim = db.prepare(CLAIM);
  const complete = db.prepare(COMPLETE);
  const life = new Lifecycle();

  const enqueueOne = (i) => {
    const now = Date.now();
    const row = insert.get(randomUUID(), "default", JSON.stringify({ i }), i % 10, null, null, 3, now, null, now, now);
    life.enqueued(row.id);
  };
  const claimOne = (agent) => {
    const now = Date.now();
    return claim.get(agent, now + 30_000, now, now, agent, now, 1);
  };
  const completeOne = (row) => {
    const now = Date.now();
    complete.get(JSON.stringify({ ok: true }), now, now, row.seq);
    life.completed(row.id);
  };

  const enqueueTx = db.transaction((from, to) => {
    for (let i = from; i < to; i++) enqueueOne(i);
  });
  const claimTx = db.transaction((agents) => {
    const rows = [];
    for (const agent of agents) {
      const row = claimOne(agent);
      if (row) rows.push(row);
    }
    return rows;
  });
  const completeTx = db.transaction((rows) => {
    for (const row of rows) completeOne(row);
  });
  const agents = Array.from({ length: C }, (_, w) => `agent-${w}`);

  let t = performance.now();
  for (let i = 0; i < N; i += batch) enqueueTx.immediate(i, Math.min(N, i + batch));
  const enqueueS = (performance.now() - t) / 1000;

  t = performance.now();
  let transactions = 0;
  for (let w = 0; ; w++) {
    const claimers = batch === 1 ? [agents[w % C]] : agents.slice(0, batch);
    const rows = claimTx.immediate(claimers);
    transactions++;
    if (rows.length === 0) break;
    completeTx.immediate(rows);
    transactions++;
  }
  const lifeS = (performance.now() - t) / 1000;
  const left = db.prepare(`SELECT COUNT(*) AS n FROM tasks WHERE status != 'completed'`).get().n;
  db.close();
  return life.result(N, C, enqueueS, lifeS, { batch, claimCompleteTransactions: transactions, notCompletedInDb: left });
}

const perOp = run("per-op", 1);
const batched = run("batched", C);
console.log(JSON.stringify({ perOp, batched }));
