// The systems measured side by side, each as a function that runs one lifecycle (enqueue N with
// C concurrent clients, then C workers claim → complete until empty) and returns
// { enqueuePerS, processedPerS, completed, duplicates, lost }, or { skipped: why }.
// Every server runs on a fresh database file, loopback only, and is stopped afterwards.
import { existsSync, mkdirSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { basename, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, runJsonChild, sleep, startChild, waitHealthy } from "./lib.mjs";

export const ROOT = fileURLToPath(new URL("..", import.meta.url));
export const SHARED = resolve(ROOT, "../shared/bench");
const LOADGEN = join(SHARED, "lifecycle-load.mjs");
const PYTHON = "/usr/bin/python3";

/** Environment for server children: no COORDINATION_* settings leak in from the caller's shell. */
export function serverEnv(extra = {}) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("COORDINATION_")));
  return { ...env, COORDINATION_LOG_LEVEL: "warn", ...extra };
}

/** The lifecycle results of the different drivers under one set of names. */
function normalize(r) {
  return {
    enqueuePerS: r.enqueuePerS,
    processedPerS: r.claimCompletePerS ?? r.processedPerS,
    completed: r.completed,
    duplicates: r.duplicates,
    lost: r.lost ?? null,
    ...(r.cpuUsPerProcessed === undefined ? {} : { cpuUsPerProcessed: r.cpuUsPerProcessed }),
  };
}

/** Starts a server child, waits for /health, runs `load(url)`, stops the server. */
async function withServer({ command, args, env, cwd = ROOT, graceMs = 30_000, timeoutMs }, load) {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const server = startChild(command, args(port), { env, cwd });
  try {
    await waitHealthy(`${url}/health`, server);
    return normalize(await load(url, timeoutMs));
  } finally {
    await server.stop(graceMs);
  }
}

/** A load: a driver script run against the server at `url`, N tasks by C clients, printing its JSON result. */
const driver = (script, label, extra = []) => (N, C) => (url, timeoutMs) => runJsonChild(process.execPath, [script, url, String(N), String(C), ...extra], { timeoutMs, label, cwd: ROOT });
const restLoad = driver(LOADGEN, "lifecycle-load");

/**
 * The same load run twice on one server, the second measured: a server that has been running a
 * while, its hot code compiled by V8's optimizing tiers. A fresh Node process spends the first
 * seconds of load interpreting and compiling (V8's compiler threads took 0.8 ms of CPU a task in
 * our server's first run of 3000, 0.2 ms in its third), the more so the more code runs per request.
 */
const warm = (load) => (N, C) => async (url, timeoutMs) => {
  await load(N, C)(url, timeoutMs);
  return load(N, C)(url, timeoutMs);
};

export function seedProblem() {
  if (!existsSync(join(SHARED, "seed_replica.py"))) return "../shared/bench/seed_replica.py not found";
  const r = spawnSync(PYTHON, ["-c", "import fastapi, uvicorn, aiosqlite"], { encoding: "utf8", timeout: 30_000 });
  return r.status === 0 ? null : "python3-fastapi, python3-uvicorn or python3-aiosqlite missing (apt-get install them)";
}

export function redisProblem() {
  return spawnSync("redis-server", ["--version"], { encoding: "utf8" }).status === 0 ? null : "redis-server not installed (apt-get install redis-server)";
}

/** Our server from the checkout at `root`, on a fresh database, under `load` (the shared REST load by default). */
const oursServer = (root, prefix, load = restLoad) => ({ dir, round, N, C, timeoutMs }) =>
  withServer(
    { command: process.execPath, args: (port) => [join(root, "bin/coordination.js"), "--port", String(port), "--db", join(dir, `${prefix}-${round}.db`)], env: serverEnv(), cwd: root, timeoutMs },
    load(N, C),
  );

/** The reference server, with an event row per change, on a fresh database, under `load`. */
const referenceServer = (prefix, load = restLoad) => ({ dir, round, N, C, timeoutMs }) =>
  withServer(
    { command: process.execPath, args: (port) => [join(SHARED, "reference-server.mjs"), String(port), join(dir, `${prefix}-${round}.db`)], env: { ...process.env, REF_EVENTS: "1" }, timeoutMs },
    load(N, C),
  );

/**
 * The reference server with its statements on a worker thread (bench/reference-threaded.mjs):
 * the design #9's responsiveness goals ask for, with nothing of ours in it; the bound of any
 * server whose event loop never runs SQLite, on this machine.
 */
const threadedReference = (prefix, load = restLoad) => ({ dir, round, N, C, timeoutMs }) =>
  withServer(
    { command: process.execPath, args: (port) => [join(ROOT, "bench/reference-threaded.mjs"), String(port), join(dir, `${prefix}-${round}.db`)], env: process.env, timeoutMs },
    load(N, C),
  );

const oursInProcess = (root, prefix, extra = []) => async ({ dir, round, N, C, timeoutMs }) =>
  normalize(await runJsonChild(process.execPath, [join(root, "bench/in-process.mjs"), join(dir, `${prefix}-${round}.db`), String(N), String(C), ...extra], { timeoutMs, label: prefix, cwd: root }));

/** BullMQ's Worker: `script` (port, N, C, ...extra) against a redis-server of its own with appendfsync always. */
const bullmq = (script, extra = []) => async ({ dir, round, N, C, timeoutMs }) => {
  const problem = redisProblem();
  if (problem) return { skipped: problem };
  const port = await freePort();
  const data = join(dir, `redis-${basename(script, ".mjs")}-${round}`);
  mkdirSync(data, { recursive: true });
  const redis = startChild("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--appendonly", "yes", "--appendfsync", "always", "--dir", data, "--save", ""]);
  try {
    for (let i = 0; i < 100 && !/Ready to accept connections/.test(redis.stdout()); i++) await sleep(50);
    return normalize(await runJsonChild(process.execPath, [script, String(port), String(N), String(C), ...extra], { timeoutMs, label: basename(script), cwd: ROOT }));
  } finally {
    await redis.stop(5000);
  }
};

/**
 * name → (ctx) => Promise<result>, ctx: { dir, round, N, C, timeoutMs }. `before`: the root of
 * a built checkout of an earlier version, measured beside this one (BENCH_BEFORE).
 */
export function systems({ before } = {}) {
  return {
    "ours, REST": oursServer(ROOT, "ours"),
    "ours, REST, warm server": oursServer(ROOT, "warm", warm(restLoad)),
    ...(before ? { "ours before, REST": oursServer(before, "before") } : {}),
    // The same load with each complete claiming the next task (bench/rest-driver.mjs, the shared load generator's requests otherwise).
    "ours, REST with complete-and-claim": oursServer(ROOT, "next", driver(join(ROOT, "bench/rest-driver.mjs"), "rest-driver", ["next"])),
    "reference server (node:http + better-sqlite3, events)": referenceServer("ref"),
    "reference server, warm": referenceServer("ref-warm", warm(restLoad)),
    "reference server, statements on a thread": threadedReference("ref-thread"),
    "reference server, statements on a thread, warm": threadedReference("ref-thread-warm", warm(restLoad)),
    "seed stack (FastAPI + aiosqlite)": ({ dir, round, N, C, timeoutMs }) => {
      const problem = seedProblem();
      if (problem) return { skipped: problem };
      // seed_replica.py hangs at exit (aiosqlite's thread); it is killed after 5 s.
      return withServer(
        { command: PYTHON, args: (port) => [join(SHARED, "seed_replica.py"), String(port), join(dir, `seed-${round}.db`)], env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" }, cwd: dir, graceMs: 5000, timeoutMs },
        restLoad(N, C),
      );
    },
    "ours, tRPC typed client": oursServer(ROOT, "trpc", driver(join(ROOT, "bench/trpc-load.mjs"), "trpc-load")),
    "ours in-process": oursInProcess(ROOT, "inproc"),
    ...(before ? { "ours before, in-process": oursInProcess(before, "inproc-before") } : {}),
    "ours in-process, recall off": oursInProcess(ROOT, "inproc0", ["--context", "0"]),
    // A second lifecycle in the same process (in-process.mjs --warm): compiled code, and a first run's records for recall to find.
    "ours in-process, warm": oursInProcess(ROOT, "inproc-warm", ["--warm"]),
    "ours in-process, recall off, warm": oursInProcess(ROOT, "inproc0-warm", ["--context", "0", "--warm"]),
    "ours in-process, complete-and-claim": oursInProcess(ROOT, "inproc-next", ["--next"]),
    // recordExecutions off, what an operator whose agents use no context can choose: what the records cost.
    "ours in-process, execution records off": oursInProcess(ROOT, "inproc-norec", ["--no-records"]),
    // Text payloads give recall words to rank by: its cost on work like an agent's (lib.mjs textMaker).
    "ours in-process, text payloads": oursInProcess(ROOT, "inproc-text", ["--text"]),
    "ours in-process, text payloads, recall off": oursInProcess(ROOT, "inproc-text0", ["--context", "0", "--text"]),
    "BullMQ Worker (Redis, appendfsync always)": bullmq(join(SHARED, "peers/bullmq.mjs"), ["bullmq", "worker"]),
    "BullMQ Worker, warm": bullmq(join(ROOT, "bench/bullmq-warm.mjs")),
  };
}

