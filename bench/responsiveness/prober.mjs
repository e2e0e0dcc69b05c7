// What a user of a busy server sees: GET /health every 20 ms (one at a time), and an agent that
// holds a task on a 5 s lease and heartbeats it every second. Runs until SIGTERM, then prints
// { health: {n, p50, p99, maxMs}, heartbeats: {sent, failed, maxMs, errors}, leaseLost }.
// usage: node bench/responsiveness/prober.mjs BASE_URL AGENT_ID
const [base, agentId] = process.argv.slice(2);
const json = { "content-type": "application/json" };
const post = (path, body) => fetch(`${base}${path}`, { method: "POST", headers: json, body: JSON.stringify(body) });

const enqueued = await (await post("/tasks", { queue: `probe-${agentId}`, payload: { probe: true } })).json();
const claimed = await (await post("/tasks/claim", { agentId, queues: [`probe-${agentId}`], leaseMs: 5000 })).json();
if (claimed?.id !== enqueued.id) throw new Error(`prober could not claim its task: ${JSON.stringify(claimed)}`);

let stopping = false;
const health = [];
const beats = { sent: 0, failed: 0, maxMs: 0, errors: [] };
let leaseLost = false;
process.once("SIGTERM", () => (stopping = true));

const healthLoop = (async () => {
  while (!stopping) {
    const t = performance.now();
    try {
      await (await fetch(`${base}/health`)).text();
    } catch {
      // counted by its time
    }
    health.push(performance.now() - t);
    await new Promise((r) => setTimeout(r, 20));
  }
})();

const beatLoop = (async () => {
  while (!stopping) {
    const t = performance.now();
    beats.sent++;
    try {
      const r = await post(`/tasks/${claimed.id}/heartbeat`, { agentId, leaseToken: claimed.leaseToken, leaseMs: 5000 });
      if (!r.ok) {
        beats.failed++;
        const body = await r.json();
        if (beats.errors.length < 3) beats.errors.push(body.code);
        if (body.code === "LEASE_CONFLICT") leaseLost = true;
      } else await r.text();
    } catch (error) {
      beats.failed++;
      if (beats.errors.length < 3) beats.errors.push(error.message);
    }
    const took = performance.now() - t;
    beats.maxMs = Math.max(beats.maxMs, Math.round(took));
    await new Promise((r) => setTimeout(r, Math.max(0, 1000 - took)));
  }
})();

await Promise.all([healthLoop, beatLoop]);
const sorted = health.sort((a, b) => a - b);
const at = (q) => Math.round((sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0) * 10) / 10;
console.log(JSON.stringify({ health: { n: sorted.length, p50: at(0.5), p99: at(0.99), maxMs: at(1) }, heartbeats: beats, leaseLost }));
