// The run's figures as a console summary and as a dated Markdown section of bench/RESULTS.md.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { formatSummary } from "./profile-summary.mjs";

const fmt = (x) => (x == null ? "–" : String(x));
const cell = (text) => String(text).replace(/\|/g, "\\|").split("\n")[0];

function throughputTable(t) {
  const out = ["| system | enqueue/s | claim+complete/s | completed | duplicates | lost | claim+complete/s by round |", "|---|---:|---:|---:|---:|---:|---|"];
  for (const [name, s] of Object.entries(t.systems)) {
    if (s.skipped) out.push(`| ${name} | skipped | | | | | ${cell(s.skipped)} |`);
    else if (!s.median) out.push(`| ${name} | ERROR | | | | | ${cell(s.errors[0] ?? "no result")} |`);
    else {
      const rounds = s.rounds.map((r) => (r.error ? "error" : fmt(r.processedPerS))).join(", ");
      out.push(`| ${name} | ${s.median.enqueuePerS} | ${s.median.processedPerS} | ${s.median.completed} | ${s.median.duplicates} | ${fmt(s.median.lost)} | ${rounds} |`);
    }
  }
  return out.join("\n");
}

function goalsTable(t) {
  const out = ["| ratio | goal | enqueue | claim+complete |", "|---|---|---:|---:|"];
  for (const r of t.ratios) out.push(`| ${r.label} | ${r.goal} | ${fmt(r.enqueue)} | ${fmt(r.processed)} |`);
  const r = t.recall;
  const over = r?.pairs
    ? ` (medians of ${r.pairs} rounds run in pairs: ${r.on} and ${r.off}/s; by pair ${Math.min(...r.byRound)} to ${Math.max(...r.byRound)}, median ${r.pairedMedian})`
    : "";
  out.push(`| pre-execution recall's cost: 1 − in-process / in-process with recall off${over} | ≤ 0.15 | | ${fmt(t.recallCost)} |`);
  out.push(`| the same, warm (a second run in the process: recall finds the first run's records) | | | ${fmt(t.warmRecallCost)} |`);
  out.push(`| the same with text payloads (words to rank by, lib.mjs textMaker) | | | ${fmt(t.textRecallCost)} |`);
  return out.join("\n");
}

const SCENARIOS = {
  replay: (s) => `${s.events} events replayed in ${s.replaySeconds} s`,
  writeLock: (s) => `a write sent during the ${s.lockMs} ms lock answered ${s.writeStatus} after ${s.writeWaitedMs} ms`,
  parked: (s) => `${s.parkedClaims} parked claims: ${s.idleCpuPctOfCore}% of a core while idle, RSS ${s.rssMiB} MiB`,
  processes: (s) => `3 servers: ${s.processedPerS} claim+complete/s together, ${s.completed}/${s.tasks} completed, max attempts ${s.maxAttempts}`,
  recall: (s) => `text payloads over REST (enqueue, then claim+complete: recall's full path): ${s.processedPerS} claim+complete/s, ${s.completed}/${s.tasks} completed`,
};

/** A phase's results, or undefined when it did not run or failed as a whole (run.mjs keeps { error }). */
const measured = (results, phase) => (results[phase]?.error ? undefined : results[phase]);

function responsivenessTable(byVersion) {
  const out = ["| version | scenario | /health p99 ms | /health max ms | loop delay p99 ms | loop delay max ms | heartbeat max ms | lease lost | |", "|---|---|---:|---:|---:|---:|---:|---|---|"];
  for (const [version, r] of Object.entries(byVersion)) {
    for (const [name, s] of Object.entries(r)) {
      if (s.error) out.push(`| ${version} | ${name} | ERROR | | | | | | ${cell(s.error)} |`);
      else out.push(`| ${version} | ${name} | ${s.healthP99Ms} | ${s.healthMaxMs} | ${s.loopDelayP99Ms} | ${s.loopDelayMaxMs} | ${s.heartbeatMaxMs} | ${s.leaseLost ? "**yes**" : "no"} | ${SCENARIOS[name](s)} |`);
    }
  }
  return out.join("\n");
}

function scaleTable(sc) {
  const out = ["| pending tasks | claim p50 ms | claim p99 ms | server RSS MiB | database MiB | start-up ms |", "|---:|---:|---:|---:|---:|---:|"];
  for (const s of sc.sizes) out.push(s.error ? `| ${s.pending} | ERROR ${cell(s.error)} | | | | |` : `| ${s.pending} | ${s.p50Ms} | ${s.p99Ms} | ${s.rssMiB} | ${s.dbMiB} | ${s.startupMs} |`);
  out.push("", `Claim p50 at the largest size / at the smallest: ${fmt(sc.p50Ratio)} (goal ≤ 1.2).`);
  return out.join("\n");
}

export function markdown(results) {
  const { machine: m, settings: st } = results;
  const out = [`## ${results.startedAt.toISOString().slice(0, 16).replace("T", " ")} UTC · N=${st.N}, C=${st.C}, ${st.rounds} interleaved rounds`, ""];
  out.push(`Code: ${cell(m.code)}.${st.before ? ` "Before": ${cell(st.beforeCode)} (\`BENCH_BEFORE\`).` : ""}`, "");
  out.push(
    `Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB RAM; Node ${m.node}; Python ${m.python}; Redis ${m.redis}; database files on ${m.tmpFs}; ` +
      `load average (1/5/15 min) ${m.loadAvg.join(" / ")} at start, ${results.loadAvgEnd.join(" / ")} at end. Total run ${results.totalS} s.`,
    "",
  );
  // A phase that failed as a whole (run.mjs keeps { error }) says so under its heading.
  for (const [phase, heading] of [["throughput", "Throughput"], ["responsiveness", "Responsiveness"], ["scale", "Claim latency by queue depth"]]) {
    if (results[phase]?.error) out.push(`### ${heading}`, "", `The phase failed: ${cell(results[phase].error)}`, "");
  }
  const throughput = measured(results, "throughput");
  if (throughput) {
    out.push("### Throughput", "", "Each system's median round; rounds ran interleaved (every system once per round).", "", throughputTable(throughput), "", goalsTable(throughput), "");
  }
  if (measured(results, "responsiveness")) {
    out.push(
      "### Responsiveness",
      "",
      "Our server in a process of its own reporting its event-loop delay (`monitorEventLoopDelay`), while a prober times `GET /health` every 20 ms and an agent heartbeats a task every second on a 5 s lease. Goals: /health p99 ≤ 50 ms, no lease lost, parked claims < 5% of a core.",
      "",
      responsivenessTable(results.responsiveness),
      "",
    );
  }
  if (measured(results, "scale")) out.push("### Claim latency by queue depth", "", "Sequential claims over REST on a database holding that many pending tasks (bulk-inserted).", "", scaleTable(results.scale), "");
  if (results.profile) {
    out.push("### Where the time goes", "");
    if (results.profile.error) out.push(`Profiling run failed: ${cell(results.profile.error)}`, "");
    else {
      const p = results.profile;
      out.push(`Our server under \`node --cpu-prof\` (1 ms sampling), REST lifecycle (bench/rest-driver.mjs): ${p.load.enqueuePerS} enqueue/s, ${p.load.processedPerS} claim+complete/s with the profiler on. Each thread's profile, cut to the claim+complete phase:`, "");
      for (const t of p.threads) out.push(`<details><summary>${t.thread}: busy ${t.summary.busyPct}%</summary>`, "", formatSummary(t.summary, t.thread), "", "</details>", "");
      out.push(...perfCpuSection(p.cpu));
    }
  }
  return out.join("\n");
}

/** The CPU by thread and kind of code, from perf (perf-cpu.mjs): a table, then each thread's areas and top functions. */
function perfCpuSection(cpu) {
  if (cpu === undefined) return [];
  const out = ["#### CPU alone, by thread (Linux perf)", ""];
  if (cpu.skipped) return [...out, `Skipped: ${cpu.skipped}.`, ""];
  if (cpu.error) return [...out, `The perf run failed: ${cell(cpu.error)}`, ""];
  out.push(
    `The same REST lifecycle on a fresh server sampled by \`perf\` (${cpu.load.enqueuePerS} enqueue/s, ${cpu.load.processedPerS} claim+complete/s), cut to the ${cpu.seconds} s claim+complete phase: only time on a CPU counts.`,
    "",
    "| thread | cores kept busy | CPU ms a task | where (share of the thread's CPU) | SQLite preparing statements (parser, planner: ~0 once warm) |",
    "|---|---:|---:|---|---:|",
  );
  for (const t of cpu.threads) out.push(`| ${t.role} | ${t.cores} | ${t.msPerTask} | ${t.areas.slice(0, 4).map((a) => `${a.area} ${a.pct}%`).join("; ")} | ${t.preparingPct}% |`);
  out.push("", "Top functions by CPU, per thread: " + cpu.threads.map((t) => `**${t.role}**: ${t.top.slice(0, 5).map((f) => `\`${cell(f.symbol)}\` ${f.pct}%`).join(", ")}`).join("; ") + ".", "");
  return out;
}

export function printSummary(results) {
  for (const phase of ["throughput", "responsiveness", "scale"]) if (results[phase]?.error) console.log(`${phase}: ERROR ${results[phase].error}`);
  const t = measured(results, "throughput");
  if (t) {
    console.log("\nthroughput (median)                              enqueue/s  claim+complete/s");
    for (const [name, s] of Object.entries(t.systems)) console.log(`${name.padEnd(50)} ${fmt(s.median?.enqueuePerS ?? (s.skipped ? "skipped" : "ERROR")).padStart(8)}  ${fmt(s.median?.processedPerS).padStart(8)}`);
    for (const r of t.ratios) console.log(`${r.label.padEnd(50)} ${fmt(r.enqueue).padStart(8)}  ${fmt(r.processed).padStart(8)}  (goal ${r.goal || "–"})`);
    console.log(`recall cost ${fmt(t.recallCost)} (goal ≤ 0.15); warm ${fmt(t.warmRecallCost)}; with text payloads ${fmt(t.textRecallCost)}`);
  }
  for (const [version, r] of Object.entries(measured(results, "responsiveness") ?? {})) {
    for (const [name, s] of Object.entries(r)) console.log(`${version} ${name}: ${s.error ? `ERROR ${s.error}` : `/health p99 ${s.healthP99Ms} ms max ${s.healthMaxMs} ms, loop p99 ${s.loopDelayP99Ms} ms, lease lost ${s.leaseLost}`}`);
  }
  const scale = measured(results, "scale");
  if (scale) console.log(`claim p50 ratio (largest/smallest queue): ${fmt(scale.p50Ratio)}`);
}

export function writeResults(file, section) {
  const header = [
    "# Benchmark results",
    "",
    "Written by `npm run bench` (bench/run.mjs); each run adds a dated section at the top, older runs are kept below.",
    "The machine may be shared: compare rows of one section, not across sections, and see the load average in each.",
    "",
  ].join("\n");
  let previous = "";
  if (existsSync(file)) {
    const text = readFileSync(file, "utf8");
    const first = text.search(/^## /m);
    previous = first >= 0 ? text.slice(first) : "";
  }
  writeFileSync(file, `${header}\n${section}\n${previous}`.replace(/\n{3,}/g, "\n\n"));
}
