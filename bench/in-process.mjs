// (e) Our core without any transport: createCoordination (the same services, Writer with group
// commit, event log, memory) driven in-process by C concurrent async loops, the same enqueue and
// claim → complete work as the REST load. Sits between the raw SQLite ceiling and the servers:
// what is lost here is service logic + extra writes; what is lost on top of it is HTTP/tRPC/REST.
//
// usage: node bench/in-process.mjs DBFILE N C [memoryContextLimit]   → prints one JSON line
import { loadConfig } from "../dist/src/config.js";
import { createLogger } from "../dist/src/logger.js";
import { createCoordination } from "../dist/src/services.js";
import { Lifecycle, pool } from "./lib.mjs";

const [dbPath, nArg, cArg, contextArg] = process.argv.slice(2);
const N = Number(nArg ?? 3000);
const C = Number(cArg ?? 32);
const overrides = { dbPath, logLevel: "warn", ...(contextArg === undefined ? {} : { memoryContextLimit: Number(contextArg) }) };
const config = loadConfig({ env: {}, overrides });
const coordination = createCoordination(config, createLogger("warn"));
coordination.start();
const { tasks } = coordination.services;
const life = new Lifecycle();

try {
  let t = performance.now();
  await pool(N, C, async (i) => {
    const task = await tasks.enqueue({ queue: "default", payload: { i }, priority: i % 10 });
    life.enqueued(task.id);
  });
  const enqueueS = (performance.now() - t) / 1000;

  t = performance.now();
  await Promise.all(
    Array.from({ length: C }, async (_, w) => {
      const agentId = `agent-${w}`;
      for (;;) {
        const [task] = await tasks.claim({ agentId });
        if (!task) return;
        life.completed(task.id);
        await tasks.complete({ taskId: task.id, agentId, leaseToken: task.leaseToken, result: { ok: true } });
      }
    }),
  );
  const lifeS = (performance.now() - t) / 1000;
  console.log(JSON.stringify(life.result(N, C, enqueueS, lifeS, { memoryContextLimit: config.memoryContextLimit })));
} finally {
  await coordination.close();
}
