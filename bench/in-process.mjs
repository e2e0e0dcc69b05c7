// (e) Our core without any transport: createCoordination (the same services, Writer with group
// commit, event log, memory) driven in-process by C concurrent async loops, the same enqueue and
// claim → complete work as the REST load. Sits between the raw SQLite ceiling and the servers:
// what is lost here is service logic + extra writes; what is lost on top of it is HTTP/tRPC/REST.
//
// usage: node bench/in-process.mjs DBFILE N C [memoryContextLimit|-] [next|-] [text|-] [no-records]   → prints one JSON line
// `next`: workers use complete-and-claim (each complete claims the next task in the same write).
// `text`: payloads and results are text (lib.mjs textMaker), not numbers: what recall has to rank.
// `no-records`: recordExecutions off (runs that end write no execution record).
import { loadConfig } from "../dist/src/config.js";
import { createLogger } from "../dist/src/logger.js";
import { createCoordination } from "../dist/src/services.js";
import { runLifecycle, textPayloads } from "./lib.mjs";

const [dbPath, nArg, cArg, contextArg, mode, content, records] = process.argv.slice(2);
const N = Number(nArg ?? 3000);
const C = Number(cArg ?? 32);
const overrides = {
  dbPath,
  logLevel: "warn",
  ...(contextArg === undefined || contextArg === "-" ? {} : { memoryContextLimit: Number(contextArg) }),
  ...(records === "no-records" ? { recordExecutions: false } : {}),
};
const config = loadConfig({ env: {}, overrides });
const coordination = createCoordination(config, createLogger("warn"));
await coordination.start();
const { tasks } = coordination.services;
try {
  const { life, enqueueS, lifeS } = await runLifecycle(
    {
      enqueue: (input) => tasks.enqueue(input),
      claim: async (agentId) => (await tasks.claim({ agentId }))[0] ?? null,
      complete: (input) => tasks.complete(input),
      ...(mode === "next" ? { completeAndClaim: async (input) => (await tasks.completeAndClaim(input)).next } : {}),
    },
    N,
    C,
    content === "text" ? textPayloads() : {},
  );
  console.log(JSON.stringify(life.result(N, C, enqueueS, lifeS, { memoryContextLimit: config.memoryContextLimit, recordExecutions: config.recordExecutions, payloads: content === "text" ? "text" : "number" })));
} finally {
  await coordination.close();
}
