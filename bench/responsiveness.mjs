// Does the event loop ever wait on the database, or a read behind the reader's other work? Five
// situations (the first four froze the event loop before the database threads), each with our
// server in its own process reporting its event-loop delay (probe-server.mjs) while a prober
// (prober.mjs) times GET /health every 20 ms and an agent heartbeats its task every second on a
// 5 s lease:
//   replay    a subscriber resumes with lastEventId "0" on a log of `events` events;
//   writeLock another process holds the write lock for 5 s (a write waits meanwhile);
//   parked    1,000 long-poll claims wait for work that never comes: CPU while idle;
//   processes 3 servers share one file under the lifecycle load;
//   recall    agents claim and complete tasks whose text recall ranks on its full path (the
//             reader's busiest work, which /health's read shares the thread with).
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import Database from "better-sqlite3";
import { applyMigrations } from "../dist/src/db/migrate.js";
import { freePort, runJsonChild, sleep, startChild } from "./lib.mjs";
import { ROOT, SHARED } from "./systems.mjs";

const HERE = join(ROOT, "bench/responsiveness");

/** A migrated database file holding `events` events (bulk-inserted, as an old log would be). */
export function seedDatabase(file, { events = 0, tasks = 0, migrate = applyMigrations } = {}) {
  const db = new Database(file);
  db.pragma("journal_mode = WAL");
  migrate(db);
  const now = Date.now();
  db.transaction(() => {
    if (events > 0) {
      db.prepare(
        `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
         INSERT INTO events (type, source, payload, target, createdAt)
         SELECT 'bench.replay', 'bench', '{"i":' || i || ',"note":"an event of an old log"}', NULL, ? FROM n`,
      ).run(events, now);
    }
    if (tasks > 0) {
      db.prepare(
        `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
         INSERT INTO tasks (id, queue, payload, priority, maxAttempts, runAt, createdAt, updatedAt)
         SELECT printf('00000000-0000-7000-8000-%012d', i), 'default', '{"i":' || i || '}', i % 10, 3, ?, ?, ? FROM n`,
      ).run(tasks, now, now, now);
    }
  })();
  db.pragma("wal_checkpoint(TRUNCATE)");
  db.close();
}

async function startProbeServer(root, db, settings = {}) {
  const port = await freePort();
  const child = startChild(process.execPath, [join(HERE, "probe-server.mjs"), root, String(port), db, JSON.stringify(settings)], { cwd: ROOT, stdio: ["pipe", "pipe", "pipe"] });
  const ready = await Promise.race([child.nextLine(), child.exited.then(() => null), sleep(60_000).then(() => null)]);
  if (ready !== "ready") throw new Error(`probe server did not start: ${child.stderr().slice(-500)}`);
  return { child, url: `http://127.0.0.1:${port}`, report: async () => JSON.parse(await child.ask("report")), reset: () => child.ask("reset") };
}

async function startProber(url, agentId) {
  const child = startChild(process.execPath, [join(HERE, "prober.mjs"), url, agentId], { cwd: ROOT });
  await sleep(1500); // it claims its task and has heartbeated once
  if (child.exitInfo) throw new Error(`prober failed: ${child.stderr().slice(-500)}`);
  return {
    async finish() {
      await child.stop(30_000);
      const lines = child.stdout().trim().split("\n");
      return JSON.parse(lines[lines.length - 1]);
    },
  };
}

/** What every scenario reports: /health as a client saw it, the heartbeating agent, the server's loop. */
const summary = (probe, server) => ({
  healthP99Ms: probe.health.p99,
  healthMaxMs: probe.health.maxMs,
  healthProbes: probe.health.n,
  loopDelayP99Ms: server.loopDelayMs.p99,
  loopDelayMaxMs: server.loopDelayMs.max,
  heartbeatMaxMs: probe.heartbeats.maxMs,
  heartbeatFailures: probe.heartbeats.failed,
  leaseLost: probe.leaseLost,
});

/**
 * What the one-server scenarios share: `file` in `dir` seeded (`seed`: seedDatabase's counts),
 * our server on it with `settings`, the heartbeating prober started and the counters reset;
 * then `load(server, db)`, and its result with what the prober and the server saw meanwhile.
 */
async function probed({ root, migrate, dir }, file, { seed = {}, settings = {} }, load) {
  const db = join(dir, file);
  seedDatabase(db, { ...seed, migrate });
  const server = await startProbeServer(root, db, settings);
  try {
    const prober = await startProber(server.url, "beater");
    await server.reset();
    const result = await load(server, db);
    const loop = await server.report();
    return { ...result, ...summary(await prober.finish(), loop) };
  } finally {
    await server.child.stop();
  }
}

function replay(ctx) {
  ctx.log(`replay: seeding ${ctx.events} events`);
  return probed(ctx, "replay.db", { seed: { events: ctx.events } }, async (server) => {
    const replayed = await runJsonChild(process.execPath, [join(HERE, "replayer.mjs"), server.url, "0", String(ctx.events)], { timeoutMs: 600_000, label: "replayer", cwd: ROOT });
    return { events: ctx.events, replaySeconds: replayed.seconds, replayEventsPerS: Math.round(ctx.events / replayed.seconds) };
  });
}

function writeLock(ctx) {
  return probed(ctx, "lock.db", { settings: { busyTimeoutMs: 30_000 } }, async (server, db) => {
    const holder = startChild(process.execPath, [join(HERE, "lock-holder.mjs"), db, "5000"], { cwd: ROOT });
    if ((await holder.nextLine()) !== "locked") throw new Error(`lock holder failed: ${holder.stderr()}`);
    const t = performance.now();
    const write = await fetch(`${server.url}/tasks`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"payload":{"during":"lock"}}' });
    const writeMs = Math.round(performance.now() - t);
    await holder.exited;
    await sleep(1500);
    return { lockMs: 5000, writeStatus: write.status, writeWaitedMs: writeMs };
  });
}

async function parked({ root, migrate, dir, count = 1000 }) {
  const db = join(dir, "parked.db");
  seedDatabase(db, { migrate });
  // The longest wait any version allows (maxWaitMs), so no claim ends during the measurement.
  const server = await startProbeServer(root, db, { maxWaitMs: 120_000 });
  const parkers = startChild(process.execPath, [join(HERE, "parkers.mjs"), server.url, String(count), "120000"], { cwd: ROOT });
  try {
    const deadline = Date.now() + 120_000;
    for (;;) {
      const { parkedClaims } = await server.report();
      // An earlier version cannot count them: give them 10 s to arrive.
      if (parkedClaims === null ? Date.now() > deadline - 110_000 : parkedClaims >= count) break;
      if (Date.now() > deadline || parkers.exitInfo) throw new Error(`only ${parkedClaims} of ${count} claims parked`);
      await sleep(250);
    }
    // Idle: nothing but the parked claims (the prober would be load of its own, and the delay
    // monitor's timer too: "quiet" turns it off for this window).
    await sleep(1000);
    await server.child.ask("quiet");
    await sleep(10_000);
    const idle = await server.report();
    const prober = await startProber(server.url, "beater");
    await server.reset();
    await sleep(5000);
    const loop = await server.report();
    return { parkedClaims: count, idleCpuPctOfCore: idle.cpuPctOfCore, idleWindowS: idle.windowS, rssMiB: idle.rssMiB, ...summary(await prober.finish(), loop) };
  } finally {
    await parkers.stop(5000);
    await server.child.stop();
  }
}

async function processes({ root, migrate, dir, N, C }) {
  const db = join(dir, "shared.db");
  seedDatabase(db, { migrate });
  const servers = [];
  try {
    for (let i = 0; i < 3; i++) servers.push(await startProbeServer(root, db));
    const probers = [];
    for (const [i, s] of servers.entries()) probers.push(await startProber(s.url, `beater-${i}`));
    await Promise.all(servers.map((s) => s.reset()));
    const share = Math.ceil(N / 3);
    const loads = await Promise.all(
      servers.map((s) => runJsonChild(process.execPath, [join(SHARED, "lifecycle-load.mjs"), s.url, String(share), String(Math.ceil(C / 3))], { timeoutMs: 600_000, label: "lifecycle-load", cwd: ROOT })),
    );
    const loops = await Promise.all(servers.map((s) => s.report()));
    const probes = await Promise.all(probers.map((p) => p.finish()));
    const per = probes.map((p, i) => summary(p, loops[i]));
    const worst = (field) => Math.max(...per.map((x) => x[field]));
    // Each load claims from the shared queue, so it also completes the others' tasks: the
    // accounting is over the file (every task completed once: one attempt, none left over).
    const file = new Database(db, { readonly: true });
    const tasks = file.prepare(`SELECT COUNT(*) AS total, SUM(status = 'completed') AS completed, MAX(attempts) AS maxAttempts FROM tasks WHERE queue = 'default'`).get();
    file.close();
    return {
      servers: 3,
      processedPerS: loads.reduce((sum, l) => sum + l.claimCompletePerS, 0),
      tasks: tasks.total,
      completed: tasks.completed,
      completedByClients: loads.reduce((sum, l) => sum + l.completed, 0),
      maxAttempts: tasks.maxAttempts,
      healthP99Ms: worst("healthP99Ms"),
      healthMaxMs: worst("healthMaxMs"),
      loopDelayP99Ms: worst("loopDelayP99Ms"),
      loopDelayMaxMs: worst("loopDelayMaxMs"),
      heartbeatMaxMs: worst("heartbeatMaxMs"),
      heartbeatFailures: per.reduce((sum, x) => sum + x.heartbeatFailures, 0),
      leaseLost: per.some((x) => x.leaseLost),
    };
  } finally {
    for (const s of servers) await s.child.stop();
  }
}

function recall(ctx) {
  return probed(ctx, "recall.db", {}, async (server) => {
    const load = await runJsonChild(process.execPath, [join(ROOT, "bench/rest-driver.mjs"), server.url, String(ctx.N), String(ctx.C), "-", "text"], { timeoutMs: 600_000, label: "rest-driver text", cwd: ROOT });
    return { processedPerS: load.claimCompletePerS, completed: load.completed, tasks: ctx.N };
  });
}

/** `root`: the built checkout to measure (default this one); its own migrations make its databases. */
export async function responsiveness({ root = ROOT, dir, N, C, events, log }) {
  const { applyMigrations: migrateWith } = await import(pathToFileURL(join(root, "dist/src/db/migrate.js")).href);
  const migrate = (db) => migrateWith(db, join(root, "prisma/migrations"));
  const out = {};
  // BENCH_SCENARIOS=recall,parked runs only those.
  const all = { replay, writeLock, parked, processes, recall };
  const wanted = process.env.BENCH_SCENARIOS?.split(",").map((name) => name.trim());
  const unknown = wanted?.filter((name) => !(name in all)) ?? [];
  if (unknown.length > 0 || wanted?.length === 0) throw new Error(`BENCH_SCENARIOS: no scenario ${unknown.join(", ") || "named"}; there are ${Object.keys(all).join(", ")}`);
  const scenarios = Object.entries(all).filter(([name]) => !wanted || wanted.includes(name));
  for (const [name, run] of scenarios) {
    log(`responsiveness (${root === ROOT ? "this version" : root}): ${name}`);
    try {
      out[name] = await run({ root, migrate, dir, N, C, events, log });
    } catch (error) {
      out[name] = { error: error.message.split("\n")[0] };
    }
    log(`responsiveness ${name}: ${JSON.stringify(out[name])}`);
  }
  return out;
}

