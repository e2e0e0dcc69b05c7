// A worker as its own process, for the checkpoint crash test: runs the compiled client's
// runWorker against the server at argv[2] as agent argv[3] on queue "crawl". Its handler goes
// through pages 1 to 5 from the task's checkpoint, saving one after each page and printing
// "saved <n>"; after page `argv[4]` it hangs until killed.
import { createCoordinationClient, runWorker } from "../../dist/client/index.js";

const [url, agentId, hangAfter] = process.argv.slice(2);
const { api } = createCoordinationClient({ url });
await runWorker({
  api,
  agentId,
  queues: ["crawl"],
  waitMs: 500,
  handler: async (task, _signal, run) => {
    for (let page = (task.checkpoint?.pagesDone ?? 0) + 1; page <= 5; page++) {
      if (!(await run.saveCheckpoint({ pagesDone: page }))) throw new Error(`checkpoint ${page} not saved`);
      process.stdout.write(`saved ${page}\n`);
      if (page === Number(hangAfter)) await new Promise(() => undefined);
    }
    return { pages: 5 };
  },
});
