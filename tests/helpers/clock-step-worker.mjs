// A worker as its own process whose wall clock steps back ten minutes mid-run (an NTP step, a VM
// resumed), right before its handler reports progress: runs one task of queue "clock-step" from
// the server at argv[2] on a 3 s lease for up to 8 s, then prints its counts as one JSON line.
// With argv[3] "cut", every call it makes after the step fails as a dropped connection does: the
// lease runs out on the server, and the handler must be told (its signal aborts) when it may have.
import { createCoordinationClient, runWorker } from "../../dist/client/index.js";

const [url, mode] = process.argv.slice(2);
const { api, close } = createCoordinationClient({ url });
const realNow = Date.now.bind(Date);
let shift = 0;
Date.now = () => realNow() + shift;
let cut = false;
const tasks = new Proxy(api.tasks, {
  get: (target, name) => {
    const procedure = Reflect.get(target, name);
    if (!procedure?.mutate) return procedure;
    return { ...procedure, mutate: (input, options) => (cut ? Promise.reject(new Error("socket hang up")) : procedure.mutate(input, options)) };
  },
});
const client = new Proxy(api, { get: (target, key) => (key === "tasks" ? tasks : Reflect.get(target, key)) });
const errors = [];
let aborted = null;
const worker = await runWorker({
  api: client,
  agentId: "clock-step-worker",
  queues: ["clock-step"],
  leaseMs: 3000,
  waitMs: 200,
  onError: (error) => errors.push(String(error)),
  handler: async (_task, signal, run) => {
    await run.reportProgress("before the step");
    shift = -10 * 60_000;
    if (mode === "cut") cut = true;
    void run.reportProgress("after the step");
    const started = realNow();
    for (let i = 0; i < 80 && !signal.aborted; i++) await new Promise((resolve) => setTimeout(resolve, 100));
    aborted = signal.aborted ? realNow() - started : false;
    return "done";
  },
});
while (worker.completed + worker.lost === 0) await new Promise((resolve) => setTimeout(resolve, 50));
const summary = { completed: worker.completed, lost: worker.lost, aborted: aborted === false ? false : "yes" };
process.stdout.write(`${JSON.stringify(mode === "cut" ? summary : { completed: worker.completed, lost: worker.lost, errors })}\n`);
cut = false;
await worker.stop();
await close();
