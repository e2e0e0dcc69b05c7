// (d) Our server over tRPC with the typed client (dist/client): enqueue N tasks with C concurrent
// callers, then C agents claim → complete until the queue is empty. Same bookkeeping as
// lifecycle-load.mjs. The client is used as shipped: tasks.claim goes on its own HTTP request,
// enqueue and complete go through httpBatchLink (concurrent calls in one tick share a request).
//
// usage: node bench/trpc-load.mjs BASE_URL N C   → prints one JSON line
import { createCoordinationClient } from "../dist/client/index.js";
import { Lifecycle, pool } from "./lib.mjs";

const [base, nArg, cArg] = process.argv.slice(2);
const N = Number(nArg ?? 3000);
const C = Number(cArg ?? 32);
const client = createCoordinationClient({ url: base });
const { api } = client;
const life = new Lifecycle();

try {
  let t = performance.now();
  await pool(N, C, async (i) => {
    const task = await api.tasks.enqueue.mutate({ queue: "default", payload: { i }, priority: i % 10 });
    life.enqueued(task.id);
  });
  const enqueueS = (performance.now() - t) / 1000;

  t = performance.now();
  await Promise.all(
    Array.from({ length: C }, async (_, w) => {
      const agentId = `agent-${w}`;
      for (;;) {
        const task = await api.tasks.claim.mutate({ agentId });
        if (!task) return;
        life.completed(task.id);
        await api.tasks.complete.mutate({ taskId: task.id, agentId, leaseToken: task.leaseToken, result: { ok: true } });
      }
    }),
  );
  const lifeS = (performance.now() - t) / 1000;
  console.log(JSON.stringify(life.result(N, C, enqueueS, lifeS)));
} finally {
  await client.close();
}
