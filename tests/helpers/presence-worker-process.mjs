// A worker as its own process that says it is here: sets a key tied to its agent's life
// ("presence/<agentId>"), prints "present" once it is set, and runs runWorker (which heartbeats the
// agent every heartbeatMs) until killed. Argv: server URL, agentId, heartbeatMs.
import { createCoordinationClient, runWorker } from "../../dist/client/index.js";

const [url, agentId, heartbeatMs] = process.argv.slice(2);
const { api } = createCoordinationClient({ url });
await runWorker({ api, agentId, queues: ["presence-test"], waitMs: 500, heartbeatMs: Number(heartbeatMs), handler: async () => undefined });
await api.kv.set.mutate({ key: `presence/${agentId}`, value: { pid: process.pid }, agentId, ephemeral: true });
process.stdout.write("present\n");
