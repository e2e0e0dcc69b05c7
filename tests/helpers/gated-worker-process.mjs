// A worker as its own process, for the frozen-worker test: runs the compiled client's runWorker
// against the server at argv[2] as agent argv[3] on queue "frozen", with 3 s leases. Its handler
// goes through steps 1 to 6 from the task's checkpoint; before step argv[4] it waits until the
// file argv[5] exists (so a test decides when it goes on, never a clock). Each step appends a log
// line and saves a checkpoint, both awaited, then works a little over a second. It prints one line per thing a test waits for:
// "run <attempt> from <n>", "holding <n>", "step <n> logged=<bool> saved=<bool>", "lost", "done".
import { existsSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { createCoordinationClient, runWorker } from "../../dist/client/index.js";

const [url, agentId, holdBefore, goFile] = process.argv.slice(2);
const say = (line) => process.stdout.write(`${line}\n`);
const { api } = createCoordinationClient({ url });
await runWorker({
  api,
  agentId,
  queues: ["frozen"],
  leaseMs: 3000,
  waitMs: 500,
  onError: (error) => {
    if (String(error?.message).includes("lost the lease")) say("lost");
  },
  handler: async (task, signal, run) => {
    const from = task.checkpoint?.done ?? 0;
    say(`run ${task.attempts} from ${from}`);
    await run.log(`run by ${agentId}, attempt ${task.attempts}, from step ${from}`);
    for (let step = from + 1; step <= 6; step++) {
      if (step === Number(holdBefore)) {
        say(`holding ${step}`);
        while (!existsSync(goFile)) await sleep(50);
      }
      signal.throwIfAborted();
      const logged = await run.log(`step ${step} by ${agentId}`);
      const saved = await run.saveCheckpoint({ done: step });
      say(`step ${step} logged=${logged} saved=${saved}`);
      if (!saved) throw new Error(`checkpoint ${step} not saved`);
      // The step's work (a model call, say), longer than run.log's flush interval: the flush timer
      // set by a line logged while an append was under way fires meanwhile with nothing to send.
      await sleep(1100);
    }
    say("done");
    return { by: agentId };
  },
});
