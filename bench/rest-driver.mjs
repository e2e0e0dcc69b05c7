// The REST load of ../shared/bench/lifecycle-load.mjs (same requests, same bookkeeping), plus
// the monotonic time of each phase's start and end, so a CPU profile of the server can be cut
// to exactly the claim+complete phase. Used for the profiling run only; the measured numbers
// in the table come from the shared load generator itself.
//
// With `next`, each complete claims the agent's next task (POST /tasks/{id}/complete-and-claim):
// the throughput table's "ours, REST with complete-and-claim". With `text`, payloads and results
// are text (lib.mjs textMaker), which recall ranks on its full path: the responsiveness phase's
// "recall" scenario.
//
// usage: node bench/rest-driver.mjs BASE_URL N C [next|-] [text]   → prints one JSON line
import { Lifecycle, monoUs, pool, textPayloads } from "./lib.mjs";

const [base, nArg, cArg, mode, content] = process.argv.slice(2);
const { payload: payloadOf, result: resultOf } = content === "text" ? textPayloads() : { payload: (i) => ({ i }), result: () => ({ ok: true }) };
const N = Number(nArg ?? 3000);
const C = Number(cArg ?? 32);
const json = { "content-type": "application/json" };
const life = new Lifecycle();
const marks = {};

marks.enqueueStartUs = monoUs();
let t = performance.now();
await pool(N, C, async (i) => {
  const r = await fetch(`${base}/tasks`, { method: "POST", headers: json, body: JSON.stringify({ queue: "default", payload: payloadOf(i), priority: i % 10 }) });
  if (!r.ok) throw new Error(`enqueue ${r.status} ${await r.text()}`);
  const body = await r.json();
  life.enqueued(body.id ?? body.task?.id);
});
const enqueueS = (performance.now() - t) / 1000;
marks.enqueueEndUs = monoUs();

marks.claimStartUs = monoUs();
t = performance.now();
await Promise.all(
  Array.from({ length: C }, async (_, w) => {
    const agent = `agent-${w}`;
    if (mode === "next") {
      const r = await fetch(`${base}/tasks/claim/${agent}`);
      const text = await r.text();
      for (let task = text ? JSON.parse(text) : null; task; ) {
        life.completed(task.id);
        const c = await fetch(`${base}/tasks/${task.id}/complete-and-claim`, { method: "POST", headers: json, body: JSON.stringify({ agentId: agent, result: resultOf() }) });
        if (!c.ok) throw new Error(`complete-and-claim ${c.status} ${await c.text()}`);
        task = (await c.json()).next;
      }
      return;
    }
    for (;;) {
      const r = await fetch(`${base}/tasks/claim/${agent}`);
      const text = await r.text();
      const body = text ? JSON.parse(text) : null;
      const task = body && (body.id ? body : null);
      if (!task) return;
      life.completed(task.id);
      const c = await fetch(`${base}/tasks/${task.id}/complete`, { method: "POST", headers: json, body: JSON.stringify({ agentId: agent, agent_id: agent, result: resultOf() }) });
      if (!c.ok) throw new Error(`complete ${c.status} ${await c.text()}`);
      await c.text();
    }
  }),
);
const lifeS = (performance.now() - t) / 1000;
marks.claimEndUs = monoUs();
console.log(JSON.stringify(life.result(N, C, enqueueS, lifeS, { marks })));
