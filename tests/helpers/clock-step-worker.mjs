// A worker as its own process whose wall clock steps back ten minutes mid-run (an NTP step, a VM
// resumed), right before its handler reports progress: runs one task of queue "clock-step" from
// the server at argv[2] on a 3 s lease for 8 s, then prints its counts as one JSON line.
import { createCoordinationClient, runWorker } from "../../dist/client/index.js";

const [url] = process.argv.slice(2);
const { api, close } = createCoordinationClient({ url });
const realNow = Date.now.bind(Date);
let shift = 0;
Date.now = () => realNow() + shift;
const errors = [];
const worker = await runWorker({
  api,
  agentId: "clock-step-worker",
  queues: ["clock-step"],
  leaseMs: 3000,
  waitMs: 200,
  onError: (error) => errors.push(String(error)),
  handler: async (_task, signal, run) => {
    await run.reportProgress("before the step");
    shift = -10 * 60_000;
    void run.reportProgress("after the step");
    for (let i = 0; i < 8 && !signal.aborted; i++) await new Promise((resolve) => setTimeout(resolve, 1000));
    return "done";
  },
});
while (worker.completed + worker.lost === 0) await new Promise((resolve) => setTimeout(resolve, 50));
process.stdout.write(`${JSON.stringify({ completed: worker.completed, lost: worker.lost, errors })}\n`);
await worker.stop();
await close();
