// (d) Our server over tRPC with the typed client (dist/client): enqueue N tasks with C concurrent
// callers, then C agents claim → complete until the queue is empty. Same bookkeeping as
// lifecycle-load.mjs. The client is used as shipped: tasks.claim goes on its own HTTP request,
// enqueue and complete go through httpBatchLink (concurrent calls in one tick share a request).
//
// usage: node bench/trpc-load.mjs BASE_URL N C   → prints one JSON line
import { createCoordinationClient } from "../dist/client/index.js";
import { runLifecycle } from "./lib.mjs";

const [base, nArg, cArg] = process.argv.slice(2);
const N = Number(nArg ?? 3000);
const C = Number(cArg ?? 32);
const client = createCoordinationClient({ url: base });
const { api } = client;
try {
  const { life, enqueueS, lifeS } = await runLifecycle(
    {
      enqueue: (input) => api.tasks.enqueue.mutate(input),
      claim: (agentId) => api.tasks.claim.mutate({ agentId }),
      complete: (input) => api.tasks.complete.mutate(input),
    },
    N,
    C,
  );
  console.log(JSON.stringify(life.result(N, C, enqueueS, lifeS)));
} finally {
  await client.close();
}
