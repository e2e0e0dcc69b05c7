// A worker process frozen (SIGSTOP) past its lease, as a machine that stalls, and another that
// takes its task over, against a real server: the second goes on from the first's last
// checkpoint as attempt 2; the first, resumed (SIGCONT), has its late log line and checkpoint
// refused (fenced by its leaseToken), counts its run lost and settles nothing; the task completes
// once, and its log holds both runs, each line under its own attempt. No clock decides anything:
// each worker waits at a gate (a file) the test opens when the state it waits for is reached.
import { spawn, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it, vi } from "vitest";
import { makeTempDir, startTestServer, type TestServer } from "./helpers/test-server.js";

const script = fileURLToPath(new URL("./helpers/gated-worker-process.mjs", import.meta.url));

let t: TestServer | undefined;
const children: ChildProcess[] = [];
afterEach(async () => {
  for (const child of children.splice(0)) {
    child.kill("SIGCONT");
    child.kill("SIGKILL");
  }
  await t?.stop({ removeFiles: true });
  t = undefined;
});

/** A gated worker process: its stdout so far, and the file that lets it past its gate. */
function worker(url: string, agentId: string, holdBefore: number, dir: string) {
  const goFile = join(dir, `${agentId}-go`);
  const child = spawn(process.execPath, [script, url, agentId, String(holdBefore), goFile], { stdio: ["ignore", "pipe", "inherit"] });
  children.push(child);
  const proc = { child, out: "", go: () => writeFileSync(goFile, "") };
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (proc.out += chunk));
  return proc;
}

describe("a worker frozen past its lease, then resumed", () => {
  it("is fenced out: the other worker goes on from its checkpoint as attempt 2, the task completes once, the log holds both runs", async () => {
    t = await startTestServer({ leaseSweepMs: 100 });
    const { api } = t;
    const dir = makeTempDir();
    const { id } = await api.tasks.enqueue.mutate({ queue: "frozen", payload: { steps: 6 } });

    // The first worker does steps 1 and 2, then holds before step 3; frozen there.
    const first = worker(t.url, "stalled", 3, dir);
    await vi.waitFor(() => expect(first.out).toContain("holding 3"), { timeout: 30_000, interval: 50 });
    expect(first.out).toBe("run 1 from 0\nstep 1 logged=true saved=true\nstep 2 logged=true saved=true\nholding 3\n");
    first.child.kill("SIGSTOP");

    // Its lease runs out; the second worker takes the task over from step 2, and holds before step 4.
    const second = worker(t.url, "rescuer", 4, dir);
    await vi.waitFor(() => expect(second.out).toContain("holding 4"), { timeout: 30_000, interval: 50 });
    expect(second.out).toBe("run 2 from 2\nstep 3 logged=true saved=true\nholding 4\n");

    // The first wakes and goes on as if nothing happened: its run is found lost, and nothing it sends lands.
    first.go();
    first.child.kill("SIGCONT");
    await vi.waitFor(() => expect(first.out).toContain("lost"), { timeout: 30_000, interval: 50 });
    // Whether it got to step 3 before its renewal found the lease gone, nothing of it was taken.
    const afterResume = first.out.slice(first.out.indexOf("holding 3\n") + "holding 3\n".length);
    expect(afterResume).not.toContain("true");
    expect(afterResume).not.toContain("done");
    expect((await api.tasks.get.query({ taskId: id })).checkpoint).toEqual({ done: 3 });

    second.go();
    await vi.waitFor(async () => expect((await api.tasks.get.query({ taskId: id })).status).toBe("completed"), { timeout: 30_000, interval: 100 });
    expect(second.out).toMatch(/step 6 logged=true saved=true\ndone\n$/);
    expect(await api.tasks.get.query({ taskId: id })).toMatchObject({ attempts: 2, leaseOwner: "rescuer", result: { by: "rescuer" }, checkpoint: { done: 6 } });
    // Completed once, by the second run; the first's lease ended by the sweeper, not settled.
    const events = await api.events.list.query({ types: ["task.completed", "task.failed", "task.lease_expired"], limit: 100 });
    expect(events.map((e) => [e.type, (e.payload as { agentId?: string }).agentId])).toEqual([
      ["task.lease_expired", "stalled"],
      ["task.completed", "rescuer"],
    ]);
    const { lines } = await api.tasks.log.query({ taskId: id });
    expect(lines.map((line) => [line.attempt, line.agentId, line.message])).toEqual([
      [1, "stalled", "run by stalled, attempt 1, from step 0"],
      [1, "stalled", "step 1 by stalled"],
      [1, "stalled", "step 2 by stalled"],
      [2, "rescuer", "run by rescuer, attempt 2, from step 2"],
      [2, "rescuer", "step 3 by rescuer"],
      [2, "rescuer", "step 4 by rescuer"],
      [2, "rescuer", "step 5 by rescuer"],
      [2, "rescuer", "step 6 by rescuer"],
    ]);
  }, 120_000);
});
