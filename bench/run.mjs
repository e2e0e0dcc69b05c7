// `npm run bench`: measures us side by side with what users would otherwise run, in one run:
//   throughput      the task lifecycle on every system of systems.mjs, interleaved rounds;
//   responsiveness  situations that used to freeze the event loop or hold a read (responsiveness.mjs);
//   scale           claim latency and memory at 1,000 and 1,000,000 pending tasks (scale.mjs);
//   profile         where a REST claim+complete spends its time, per thread (profile.mjs).
// Everything runs on fresh database files in a temp dir, loopback only; each phase is bounded in
// time and every child process is killed at the end, even on failure or Ctrl-C. Prints a summary
// and adds a dated section at the top of bench/RESULTS.md.
//
// usage: node bench/run.mjs [throughput] [responsiveness] [scale] [profile]   (default: all)
// Environment: BENCH_N (3000), BENCH_C (32), BENCH_ROUNDS (3), BENCH_RECALL_ROUNDS (9: the paired rounds
// of in-process recall on and off that measure recall's cost), BENCH_EVENTS (500000, the replayed
// log), BENCH_PENDING (1000000, the deep queue), BENCH_BEFORE (a built checkout of an earlier
// version, measured beside this one), BENCH_PHASE_TIMEOUT_S (300), BENCH_KEEP=1 (keep the temp
// dir), BENCH_RESULTS (another file, or "-" for none).
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { killAll, round } from "./lib.mjs";
import { loadAverage, machineInfo } from "./machine.mjs";
import { profile } from "./profile.mjs";
import { markdown, printSummary, writeResults } from "./report.mjs";
import { responsiveness } from "./responsiveness.mjs";
import { scale } from "./scale.mjs";
import { ROOT, SHARED } from "./systems.mjs";
import { throughput } from "./throughput.mjs";

const intEnv = (name, fallback) => {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer (got ${JSON.stringify(raw)})`);
  return value;
};

const PHASES = ["throughput", "responsiveness", "scale", "profile"];
const log = (message) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);

async function main() {
  const asked = process.argv.slice(2);
  const unknown = asked.filter((p) => !PHASES.includes(p));
  if (unknown.length > 0) throw new Error(`unknown phase ${unknown.join(", ")}; phases: ${PHASES.join(", ")}`);
  const phases = asked.length > 0 ? asked : PHASES;
  const before = process.env.BENCH_BEFORE ? resolve(process.env.BENCH_BEFORE) : undefined;
  for (const file of [join(SHARED, "lifecycle-load.mjs"), join(ROOT, "dist/src/cli.js"), ...(before ? [join(before, "dist/src/cli.js")] : [])]) {
    if (!existsSync(file)) throw new Error(`${file} not found${file.includes("dist") ? " (build that checkout first)" : ""}`);
  }
  const settings = {
    N: intEnv("BENCH_N", 3000),
    C: intEnv("BENCH_C", 32),
    rounds: intEnv("BENCH_ROUNDS", 3),
    recallRounds: intEnv("BENCH_RECALL_ROUNDS", 9),
    events: intEnv("BENCH_EVENTS", 500_000),
    pending: intEnv("BENCH_PENDING", 1_000_000),
    timeoutMs: intEnv("BENCH_PHASE_TIMEOUT_S", 300) * 1000,
    before,
    beforeCode: before ? spawnSync("git", ["log", "-1", "--format=%h %s"], { cwd: before, encoding: "utf8" }).stdout.trim() || before : undefined,
  };
  const resultsFile = process.env.BENCH_RESULTS === "-" ? null : resolve(ROOT, process.env.BENCH_RESULTS ?? "bench/RESULTS.md");
  const startedAt = new Date();
  const dir = mkdtempSync(join(tmpdir(), "coordination-bench-"));
  const results = { startedAt, settings, machine: machineInfo(dir) };
  log(`phases ${phases.join(", ")}; N=${settings.N} C=${settings.C} rounds=${settings.rounds}; temp dir ${dir}`);
  const { N, C, rounds, recallRounds, timeoutMs, events, pending } = settings;
  const run = {
    throughput: () => throughput({ dir, N, C, rounds, recallRounds, timeoutMs, before, log }),
    responsiveness: async () => ({
      ...(before ? { before: await responsiveness({ root: before, dir: mkdtempSync(join(dir, "resp-before-")), N, C, events, log }) } : {}),
      "this version": await responsiveness({ dir: mkdtempSync(join(dir, "resp-")), N, C, events, log }),
    }),
    scale: () => scale({ dir, sizes: [1000, pending], log }),
    profile: () => profile({ dir, N, C, timeoutMs, log }),
  };
  try {
    for (const phase of phases) {
      try {
        results[phase] = await run[phase]();
      } catch (error) {
        results[phase] = { error: error.message };
        log(`${phase}: ERROR ${error.message}`);
      }
    }
  } finally {
    killAll();
    if (process.env.BENCH_KEEP === "1") log(`kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
  results.totalS = round((Date.now() - startedAt.getTime()) / 1000, 1);
  results.loadAvgEnd = loadAverage();
  printSummary(results);
  if (resultsFile) {
    writeResults(resultsFile, markdown(results));
    log(`wrote ${resultsFile}`);
  }
  if (phases.some((p) => results[p]?.error)) process.exitCode = 1;
}

main().catch((error) => {
  killAll();
  process.stderr.write(`bench: ${error.stack ?? error.message}\n`);
  process.exitCode = 1;
});
