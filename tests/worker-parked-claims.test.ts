// A worker parks a few claims when idle, not one a loop (client/parking-gate.ts): each parked
// claim is one of the agent's long-polls, which the server bounds (maxParkedPerAgent, 64 by
// default). A worker of concurrency 100 had 36 loops refused 429 twice a second; now it parks 8,
// runs 100 tasks at once all the same, and reports nothing.
import { expect, it, vi } from "vitest";
import { createCoordinationClient, runWorker } from "../client/index.js";
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

it("a claim refused for too many parked (429) leased nothing: the loop is not sent again with its key, past the turns, but waits its turn", async () => {
  // Fewer parked claims allowed than the worker's turns: some of its claims are refused 429.
  await using t = await startTestServer({ maxParkedPerAgent: 2 });
  /** Each claim sent: its key and the status it was answered with (0 while under way). */
  const claims: Array<{ key: string | undefined; status: number }> = [];
  const client = createCoordinationClient({
    url: t.url,
    fetch: async (input, init) => {
      const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
      const claim = url.includes("tasks.claim") ? { key: (JSON.parse(String(init?.body)) as { json?: { idempotencyKey?: string } }).json?.idempotencyKey, status: 0 } : undefined;
      if (claim) claims.push(claim);
      const response = await fetch(input as string, init as RequestInit);
      if (claim) claim.status = response.status;
      return response;
    },
  });
  const errors: unknown[] = [];
  const worker = await runWorker({ api: client.api, agentId: "narrow", queues: ["narrow"], concurrency: 20, waitMs: 60_000, onError: (error) => errors.push(error), handler: async () => ({ ok: true }) });
  try {
    await vi.waitFor(() => expect(claims.filter((c) => c.status === 429).length).toBeGreaterThanOrEqual(20), { timeout: 60_000, interval: 50 });
    // A key answered 429 is never sent again: the server took no lease under it.
    const refused = new Set(claims.filter((c) => c.status === 429).map((c) => c.key));
    const resent = claims.filter((c) => refused.has(c.key));
    expect(resent.length).toBe(refused.size);
    // The refused loops wait their turn: never more than the worker's 8 claims under way at once.
    expect(claims.filter((c) => c.status === 0).length).toBeLessThanOrEqual(8);
  } finally {
    await worker.stop();
    await client.close();
  }
});

it("a claim sent again with its key (its first sending failed) skips the turns but does not park: never more than 8 parked", async () => {
  await using t = await startTestServer();
  const claims: Array<{ key: string | undefined; status: number }> = [];
  let failing = 8;
  const client = createCoordinationClient({
    url: t.url,
    fetch: async (input, init) => {
      const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
      const claim = url.includes("tasks.claim") ? { key: (JSON.parse(String(init?.body)) as { json?: { idempotencyKey?: string } }).json?.idempotencyKey, status: 0 } : undefined;
      // The first 8 claims meet a server not up yet (a restart): never sent, so each is sent again with its key.
      if (claim && failing-- > 0) throw new TypeError("fetch failed", { cause: Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }) });
      if (claim) claims.push(claim);
      const response = await fetch(input as string, init as RequestInit);
      if (claim) claim.status = response.status;
      return response;
    },
  });
  const worker = await runWorker({ api: client.api, agentId: "restarted", queues: ["restarted"], concurrency: 20, waitMs: 60_000, onError: () => undefined, handler: async () => ({ ok: true }) });
  try {
    // 8 claims parked through the turns, and the 8 sent again answered at once (none waits its 60 s).
    await vi.waitFor(
      async () => {
        expect(claims.filter((c) => c.status === 0).length).toBe(8);
        expect(claims.filter((c) => c.status === 200).length).toBeGreaterThanOrEqual(8);
        expect(await parkedClaims(t.url)).toBe(8);
      },
      { timeout: 20_000, interval: 50 },
    );
  } finally {
    await worker.stop();
    await client.close();
  }
});
