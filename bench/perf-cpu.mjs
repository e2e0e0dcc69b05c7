// CPU alone, by thread and by kind of code, over the REST claim+complete phase: Linux `perf`
// sampling our server (started with --perf-basic-prof, so JavaScript frames have names), when
// `perf` is installed (Debian: linux-perf). `node --cpu-prof` (profile.mjs) samples wall time, so
// on a busy machine a thread's wait for a core is charged to whatever it last ran; perf counts
// only the time a thread was on a CPU (bench/README.md, "Reading a profile on a busy machine").
import { spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { freePort, runJsonChild, startChild, waitHealthy } from "./lib.mjs";
import { ROOT, serverEnv } from "./systems.mjs";

/** Samples a second per thread: with CLOCK_MONOTONIC timestamps, the phase is cut out by rest-driver's marks. */
const HZ = 999;

/**
 * SQLite's parser, planner and code generator: they run when a statement is prepared, which a warm
 * server's statement cache does once per SQL text. A share of them in a profile means statements
 * prepared again and again (a bare bound LIMIT did that to every paged read: statements.ts).
 */
const PREPARING = /^(sqlite3RunParser|yy_|sqlite3GetToken|sqlite3(LockAnd)?Prepare|sqlite3Reprepare|sqlite3Select(Prep|Expand)?\b|sqlite3WhereBegin|whereLoop|wherePathSolver|sqlite3Resolve|resolve(Expr|Select|OrderBy)|sqlite3ExprCode|sqlite3VdbeAddOp|sqlite3ExprDup|exprDup|sqlite3Walk(Expr|Select))/;

const PREPARING_AREA = "SQLite preparing statements";

/** What kind of code a sampled symbol is, by the object it is in. */
function areaOf(dso, symbol) {
  if (dso === "better_sqlite3.node") return PREPARING.test(symbol) ? PREPARING_AREA : "SQLite (and better-sqlite3)";
  if (dso.startsWith("[JIT]") || symbol.startsWith("JS:")) return "JavaScript, compiled by V8";
  if (dso === "node") return symbol.startsWith("Builtins_") ? "V8 builtins and inline caches (interpreter, baseline code)" : "V8 runtime, GC, Node internals (C++)";
  if (dso === "[kernel.kallsyms]") return "kernel (syscalls, I/O, networking)";
  if (dso.startsWith("libc")) return "libc (malloc, memcpy)";
  return "other";
}

function report(data, args) {
  const out = spawnSync("perf", ["report", "-i", data, "--no-children", "-g", "none", "--stdio", "-n", ...args], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  if (out.status !== 0) throw new Error(`perf report failed: ${out.stderr.slice(-500)}`);
  return out.stdout.split("\n").filter((line) => /^\s+[\d.]+%/.test(line));
}

/** Threads' sample counts: "  44.93%   5123   16731:node". */
function byThread(data, time) {
  return report(data, ["--sort", "pid", "--time", time]).map((line) => {
    const [, samples, tid] = line.trim().split(/\s+/);
    return { tid: Number(tid.split(":")[0]), samples: Number(samples) };
  });
}

/** One thread's samples by symbol: "   2.83%   123  better_sqlite3.node  [.] sqlite3BtreeIndexMoveto". */
function symbolsOf(data, time, tid) {
  return report(data, ["--tid", String(tid), "--sort", "dso,symbol", "--time", time]).map((line) => {
    const match = /^\s+[\d.]+%\s+(\d+)\s+(\S+(?: tid \d+)?)\s+\[[.k]\]\s+(.*?)\s*$/.exec(line);
    // perf pads the symbol column (and may add empty columns after it).
    return match ? { samples: Number(match[1]), dso: match[2], symbol: match[3].replace(/(\s+-)*\s*$/, "").trim() } : undefined;
  }).filter(Boolean);
}

/** The writer commits (SQLite's WAL writes); the reader reads with SQLite and commits nothing; V8's helper threads run no SQLite. */
function roleOf(tid, pid, symbols) {
  if (tid === pid) return "event loop";
  // Functions only a connection appending to the WAL runs (some of them are inlined into others).
  // Not b-tree inserts: a reader builds temporary indexes too (IN lists).
  if (symbols.some((s) => /^(sqlite3WalFrames|walWriteOneFrame|walWriteToLog|walIndexAppend|walChecksumBytes|sqlite3PagerCommitPhaseOne)$/.test(s.symbol))) return "writer thread";
  if (symbols.some((s) => s.dso === "better_sqlite3.node")) return "reader thread";
  return "V8 helper threads";
}

export function perfInstalled() {
  return spawnSync("perf", ["--version"], { encoding: "utf8" }).status === 0;
}

export async function perfCpu({ dir, N, C, timeoutMs }) {
  if (!perfInstalled()) return { skipped: "perf is not installed (Debian: apt-get install -y linux-perf)" };
  const db = join(dir, "perf.db");
  const data = join(dir, "perf.data");
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  // --perf-basic-prof also makes V8 write a log per isolate into the working directory: one file, in the temp dir, instead.
  const v8Log = ["--no-logfile-per-isolate", `--logfile=${join(dir, "v8.log")}`];
  const server = startChild(process.execPath, ["--perf-basic-prof", ...v8Log, join(ROOT, "bin/coordination.js"), "--port", String(port), "--db", db], { env: serverEnv(), cwd: ROOT });
  // V8 writes the names of compiled functions here, always in /tmp, for perf report to read.
  const symbolMap = `/tmp/perf-${server.pid}.map`;
  try {
    let load;
    try {
      await waitHealthy(`${url}/health`, server);
      const perf = startChild("perf", ["record", "-q", "-k", "CLOCK_MONOTONIC", "-F", String(HZ), "-p", String(server.pid), "-o", data]);
      try {
        load = await runJsonChild(process.execPath, [join(ROOT, "bench/rest-driver.mjs"), url, String(N), String(C)], { timeoutMs, label: "rest-driver", cwd: ROOT });
      } finally {
        await stopPerf(perf);
      }
      // perf that could not attach (perf_event_paranoid, a kernel without the event) exits at once, and says why.
      if (perf.exitInfo.code !== 0 && perf.exitInfo.signal === null) throw new Error(`perf record exited ${perf.exitInfo.code}: ${perf.stderr().trim().slice(-300)}`);
    } finally {
      await server.stop(30_000);
    }
    return summarize(data, load, server.pid, N);
  } finally {
    rmSync(symbolMap, { force: true });
  }
}

/** Ctrl-C for perf (it stops sampling and finishes its file); killed if it has not exited 30 s later. */
async function stopPerf(perf) {
  if (perf.exitInfo === undefined) {
    try {
      process.kill(perf.pid, "SIGINT");
    } catch {
      // exited meanwhile
    }
  }
  let timer;
  await Promise.race([perf.exited, new Promise((resolve) => (timer = setTimeout(resolve, 30_000)))]);
  clearTimeout(timer);
  await perf.stop(1000);
}

/** Each thread's CPU over rest-driver's claim+complete phase, by role. */
function summarize(data, load, pid, N) {
  const seconds = (load.marks.claimEndUs - load.marks.claimStartUs) / 1e6;
  const time = `${(load.marks.claimStartUs / 1e6).toFixed(6)},${(load.marks.claimEndUs / 1e6).toFixed(6)}`;
  const roles = new Map();
  for (const { tid, samples } of byThread(data, time)) {
    const symbols = symbolsOf(data, time, tid);
    const role = roleOf(tid, pid, symbols);
    const entry = roles.get(role) ?? { role, samples: 0, symbols: [] };
    entry.samples += samples;
    entry.symbols.push(...symbols);
    roles.set(role, entry);
  }
  const order = ["event loop", "writer thread", "reader thread", "V8 helper threads"];
  const threads = [...roles.values()]
    .sort((a, b) => order.indexOf(a.role) - order.indexOf(b.role))
    .map(({ role, samples, symbols }) => {
      const areas = new Map();
      for (const s of symbols) {
        const area = areaOf(s.dso, s.symbol);
        areas.set(area, (areas.get(area) ?? 0) + s.samples);
      }
      const total = symbols.reduce((sum, s) => sum + s.samples, 0) || 1;
      // A role of several threads (V8's helpers) has each function once, its samples summed.
      const bySymbol = new Map();
      for (const s of symbols) bySymbol.set(s.symbol, (bySymbol.get(s.symbol) ?? 0) + s.samples);
      const pct = (n) => Math.round((1000 * n) / total) / 10;
      return {
        role,
        // Cores this thread (these threads) kept busy over the phase, and CPU ms per task.
        cores: Math.round((100 * samples) / HZ / seconds) / 100,
        msPerTask: Math.round((1000 * samples) / HZ / N * 1000) / 1000,
        areas: [...areas.entries()].sort((a, b) => b[1] - a[1]).map(([area, n]) => ({ area, pct: pct(n) })),
        preparingPct: pct(areas.get(PREPARING_AREA) ?? 0),
        top: [...bySymbol.entries()]
          .sort((a, b) => b[1] - a[1])
          .slice(0, 8)
          .map(([symbol, n]) => ({ symbol: symbol.replace(/file:\/\/\S*\/(dist\/src|node_modules)\//, "$1/").slice(0, 100), pct: pct(n) })),
      };
    });
  return { load: { enqueuePerS: load.enqueuePerS, processedPerS: load.claimCompletePerS }, seconds: Math.round(seconds * 10) / 10, threads };
}
