// Where the time goes: our server under `node --cpu-prof` (every thread writes a profile: the
// event loop, the database writer, the reader), driven by rest-driver.mjs, which records when
// each phase ran; each thread's profile is cut to the REST claim+complete phase and summarised.
// Then, when Linux perf is installed, the same load once more under perf: CPU alone, by thread
// and kind of code (perf-cpu.mjs), which --cpu-prof's wall-clock samples cannot tell apart from
// waiting for a core on a busy machine.
import { mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { freePort, runJsonChild, startChild, waitHealthy } from "./lib.mjs";
import { perfCpu } from "./perf-cpu.mjs";
import { summarizeProfile } from "./profile-summary.mjs";
import { ROOT, serverEnv } from "./systems.mjs";

/** Which thread a profile is of, from the functions it ran. */
function threadOf(profile) {
  const ran = (test) => profile.nodes.some((n) => test(n.callFrame));
  if (ran((f) => f.url.startsWith("node:_http_server"))) return "event loop";
  if (ran((f) => f.url.endsWith("/db/writer.js") && f.functionName === "flushBatch")) return "writer thread";
  return "reader thread";
}

export async function profile({ dir, N, C, timeoutMs, log }) {
  const profDir = join(dir, "cpuprofile");
  mkdirSync(profDir, { recursive: true });
  const db = join(dir, "profile.db");
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const server = startChild(
    process.execPath,
    ["--cpu-prof", "--cpu-prof-interval=1000", `--cpu-prof-dir=${profDir}`, join(ROOT, "bin/coordination.js"), "--port", String(port), "--db", db],
    { env: serverEnv(), cwd: ROOT },
  );
  let load;
  try {
    await waitHealthy(`${url}/health`, server);
    load = await runJsonChild(process.execPath, [join(ROOT, "bench/rest-driver.mjs"), url, String(N), String(C)], { timeoutMs, label: "rest-driver", cwd: ROOT });
  } finally {
    await server.stop(30_000);
  }
  const { marks } = load;
  const threads = readdirSync(profDir)
    .filter((f) => f.endsWith(".cpuprofile"))
    .map((f) => {
      const p = JSON.parse(readFileSync(join(profDir, f), "utf8"));
      return { thread: threadOf(p), file: join(profDir, f), summary: summarizeProfile(p, { fromUs: marks.claimStartUs, toUs: marks.claimEndUs, top: 12 }) };
    })
    .sort((a, b) => a.thread.localeCompare(b.thread));
  log(`profile: ${threads.map((t) => `${t.thread} busy ${t.summary.busyPct}%`).join(", ")}`);
  let cpu;
  try {
    cpu = await perfCpu({ dir, N, C, timeoutMs });
  } catch (error) {
    cpu = { error: error instanceof Error ? error.message : String(error) };
  }
  if (cpu.threads) log(`profile (perf): ${cpu.threads.map((t) => `${t.role} ${t.msPerTask} ms a task`).join(", ")}`);
  return { load: { enqueuePerS: load.enqueuePerS, processedPerS: load.claimCompletePerS }, threads, cpu };
}
