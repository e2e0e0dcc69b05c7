// A worker parks a few claims when idle, not one a loop (client/parking-gate.ts): each parked
// claim is one of the agent's long-polls, which the server bounds (maxParkedPerAgent, 64 by
// default). A worker of concurrency 100 had 36 loops refused 429 twice a second; now it parks 8,
// runs 100 tasks at once all the same, and reports nothing.
import { expect, it, vi } from "vitest";
import { runWorker } from "../client/index.js";
import { startTestServer } from "./helpers/test-server.js";

/** The claims parked on the server now (its metrics). */
async function parkedClaims(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith('coordination_long_polls_parked{kind="claim"} '));
  return Number(line?.split(" ")[1]);
}

it("a worker of concurrency 100 parks 8 claims when idle, runs 100 tasks at once, and is never refused", async () => {
  await using t = await startTestServer();
  const errors: unknown[] = [];
  let running = 0;
  let mostRunning = 0;
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const worker = await runWorker({
    api: t.api,
    agentId: "wide",
    queues: ["wide"],
    concurrency: 100,
    // Short waits: the idle loops take their turns many times during the test.
    waitMs: 300,
    onError: (error) => errors.push(error),
    handler: async () => {
      mostRunning = Math.max(mostRunning, ++running);
      await finished;
      running--;
      return { ok: true };
    },
  });
  try {
    await vi.waitFor(async () => expect(await parkedClaims(t.url)).toBe(8), { timeout: 30_000, interval: 50 });
    // Several rounds of waits run out and park again: never more than 8 at once.
    for (let look = 0; look < 20; look++) {
      expect(await parkedClaims(t.url)).toBeLessThanOrEqual(8);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await t.api.tasks.enqueueMany.mutate({ tasks: Array.from({ length: 100 }, (_, i) => ({ queue: "wide", payload: { i } })) });
    await vi.waitFor(() => expect(running).toBe(100), { timeout: 30_000, interval: 50 });
    finish();
    await vi.waitFor(() => expect(worker.completed).toBe(100), { timeout: 30_000, interval: 50 });
    expect(mostRunning).toBe(100);
    expect(errors).toEqual([]);
  } finally {
    finish();
    await worker.stop();
  }
});
