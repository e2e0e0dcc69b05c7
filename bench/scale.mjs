// Does a claim cost the same with a million tasks waiting? For each size: a database file with
// that many pending tasks (bulk-inserted), our server on it, then sequential claims over REST
// (one at a time: latency, not throughput), and the server's resident memory afterwards.
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { freePort, round, startChild, waitHealthy } from "./lib.mjs";
import { seedDatabase } from "./responsiveness.mjs";
import { ROOT, serverEnv } from "./systems.mjs";

const rssMiB = (pid) => {
  const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]);
  return Number.isFinite(kb) ? Math.round(kb / 1024) : null;
};

const percentile = (sorted, q) => round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))], 2);

async function claimLatency({ dir, pending, claims, log }) {
  const db = join(dir, `scale-${pending}.db`);
  const seeded = performance.now();
  seedDatabase(db, { tasks: pending });
  log(`scale: ${pending} pending tasks seeded in ${Math.round(performance.now() - seeded)} ms`);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const server = startChild(process.execPath, [join(ROOT, "bin/coordination.js"), "--port", String(port), "--db", db], { env: serverEnv(), cwd: ROOT });
  try {
    const started = performance.now();
    await waitHealthy(`${url}/health`, server, 120_000);
    const startupMs = Math.round(performance.now() - started);
    const claim = async () => {
      const t = performance.now();
      const r = await fetch(`${url}/tasks/claim`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"agentId":"scale"}' });
      const task = await r.json();
      if (!task?.id) throw new Error(`claim returned ${JSON.stringify(task)}`);
      return performance.now() - t;
    };
    for (let i = 0; i < 20; i++) await claim(); // warm-up
    const times = [];
    for (let i = 0; i < claims; i++) times.push(await claim());
    times.sort((a, b) => a - b);
    return { pending, claims, p50Ms: percentile(times, 0.5), p99Ms: percentile(times, 0.99), rssMiB: rssMiB(server.pid), dbMiB: round(statSync(db).size / 2 ** 20, 1), startupMs };
  } finally {
    await server.stop();
  }
}

export async function scale({ dir, sizes, claims = 300, log }) {
  const out = [];
  for (const pending of sizes) {
    try {
      out.push(await claimLatency({ dir, pending, claims, log }));
    } catch (error) {
      out.push({ pending, error: error.message.split("\n")[0] });
    }
    log(`scale ${pending}: ${JSON.stringify(out.at(-1))}`);
  }
  const [small, large] = [out[0], out.at(-1)];
  const ratio = small?.p50Ms && large?.p50Ms ? round(large.p50Ms / small.p50Ms, 2) : null;
  return { sizes: out, p50Ratio: ratio };
}
