// A worker as its own process, for crash tests: runs the compiled client's runWorker against the
// server at argv[2] as agent argv[3], prints "running <taskId>" when a handler starts, and hangs
// in the handler until killed.
import { createCoordinationClient, runWorker } from "../../dist/client/index.js";

const [url, agentId] = process.argv.slice(2);
const { api } = createCoordinationClient({ url });
await runWorker({
  api,
  agentId,
  queues: ["crash"],
  waitMs: 500,
  heartbeatMs: 200,
  handler: async (task) => {
    process.stdout.write(`running ${task.id}\n`);
    await new Promise(() => undefined);
  },
});
