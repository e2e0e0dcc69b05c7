// The typed client waits for a server that cannot take a call (restarting, not started yet, or
// stopping) and sends the call again while that is safe: it never reached a server, the server
// answered that it took nothing, or it only reads. A mutation that may have been served is not
// sent again; a long-poll's wait is not started anew; close() and a call's signal end the wait.
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createCoordinationClient, type CoordinationClient } from "../client/index.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

let servers: TestServer[] = [];
let clients: CoordinationClient[] = [];
afterEach(async () => {
  for (const client of clients) await client.close();
  for (const server of servers) await server.stop({ removeFiles: true });
  servers = [];
  clients = [];
});

async function server(overrides: Parameters<typeof startTestServer>[0] = {}, dir?: string): Promise<TestServer> {
  const started = await startTestServer(overrides, dir);
  servers.push(started);
  return started;
}

/** The procedure a tRPC request calls (one, or a batch's: "a,b"). */
const procedureOf = (input: string | URL | Request): string => new URL(input instanceof Request ? input.url : String(input)).pathname.replace(/^\/trpc\//, "");

/**
 * A client whose requests go through global fetch, counted by procedure: `sent` (every request),
 * `refused` (those whose connection could not be made), and, while `loseAnswerOf` names one, the
 * first answer of that procedure is read and then lost, as a connection broken mid-answer loses it.
 */
function countingClient(url: string, options: { waitForServerMs?: number; callTimeoutMs?: number; before?: (procedure: string) => Promise<void> } = {}) {
  const { before, ...clientOptions } = options;
  const sent = new Map<string, number>();
  const refused = new Map<string, number>();
  const lost = new Set<string>();
  const loseAnswerOf = new Set<string>();
  const add = (counts: Map<string, number>, procedure: string) => counts.set(procedure, (counts.get(procedure) ?? 0) + 1);
  const counted: typeof fetch = async (input, init) => {
    const procedure = procedureOf(input instanceof Request ? input : String(input));
    add(sent, procedure);
    await before?.(procedure);
    let response: Response;
    try {
      response = await fetch(input, init);
    } catch (error) {
      if (String((error as { cause?: { code?: unknown } }).cause?.code) === "ECONNREFUSED") add(refused, procedure);
      throw error;
    }
    if (loseAnswerOf.has(procedure) && !lost.has(procedure)) {
      lost.add(procedure);
      await response.arrayBuffer();
      throw new TypeError("fetch failed", { cause: Object.assign(new Error("other side closed"), { code: "UND_ERR_SOCKET" }) });
    }
    return response;
  };
  const client = createCoordinationClient({ url, fetch: counted as never, ...clientOptions });
  clients.push(client);
  return { api: client.api, client, sent: (p: string) => sent.get(p) ?? 0, refused: (p: string) => refused.get(p) ?? 0, loseAnswerOf };
}

describe("calls made while the server restarts", () => {
  it("a query and a mutation sent while no server listens wait for it, and go through once it is back: the task enqueued once", async () => {
    const first = await server();
    const port = Number(new URL(first.url).port);
    const { api, refused } = countingClient(first.url);
    await api.tasks.enqueue.mutate({ queue: "before" });
    await first.stop();
    const enqueued = api.tasks.enqueue.mutate({ queue: "during" });
    const stats = api.tasks.stats.query({ queue: "before" });
    // Each was refused, then sent again (and refused again) before the server came back.
    await vi.waitFor(() => expect([refused("tasks.enqueue") >= 2, refused("tasks.stats") >= 2]).toEqual([true, true]), { timeout: 20_000, interval: 20 });
    const again = await server({ port }, first.dir);
    const task = await enqueued;
    expect((await stats).queues.map((queue) => [queue.queue, queue.counts.pending])).toEqual([["before", 1]]);
    const stored = await again.api.tasks.list.query({ queue: "during" });
    expect(stored.items.map((item) => item.id)).toEqual([task.id]);
  });

  it("a claim parked when its server stops (503 SHUTTING_DOWN: it leased nothing) is sent again, and leases the task enqueued on the restarted server", async () => {
    const first = await server();
    const port = Number(new URL(first.url).port);
    const { api, sent } = countingClient(first.url);
    const claim = api.tasks.claim.mutate({ agentId: "patient", queues: ["restarted"], waitMs: 60_000, context: false });
    await vi.waitFor(() => expect(first.server.services.shutdownWaiters.size).toBe(1), { timeout: 20_000, interval: 10 });
    await first.stop();
    await vi.waitFor(() => expect(sent("tasks.claim")).toBeGreaterThanOrEqual(2), { timeout: 20_000, interval: 20 });
    const again = await server({ port }, first.dir);
    const task = await again.api.tasks.enqueue.mutate({ queue: "restarted" });
    expect(await claim).toMatchObject({ id: task.id, status: "claimed", leaseOwner: "patient", attempts: 1 });
  });

  it("the wait is counted from the call's first failure: a claim parked longer than waitForServerMs is still sent again when its server stops", async () => {
    const first = await server();
    const { api, sent } = countingClient(first.url, { waitForServerMs: 1000 });
    const claim = api.tasks.claim.mutate({ agentId: "patient", queues: ["long"], waitMs: 60_000, context: false }).catch((error: unknown) => error);
    await vi.waitFor(() => expect(first.server.services.shutdownWaiters.size).toBe(1), { timeout: 20_000, interval: 10 });
    // Parked past waitForServerMs before the server stops.
    await sleep(1500);
    await first.stop();
    // Sent again (refused: no server came back) before it failed, with its last error.
    expect(await claim).toMatchObject({ cause: { cause: { code: "ECONNREFUSED" } } });
    expect(sent("tasks.claim")).toBeGreaterThanOrEqual(2);
  });

  it("each try has its own callTimeoutMs: a call waiting for its server longer than that is not cut short", async () => {
    const first = await server();
    const port = Number(new URL(first.url).port);
    const { api, refused } = countingClient(first.url, { callTimeoutMs: 500 });
    await first.stop();
    const stats = api.tasks.stats.query();
    // Four tries refused: 100 + 200 + 400 ms of waiting, past the 500 ms a call may take.
    await vi.waitFor(() => expect(refused("tasks.stats")).toBeGreaterThanOrEqual(4), { timeout: 20_000, interval: 20 });
    await server({ port }, first.dir);
    expect((await stats).totals.pending).toBe(0);
  });

  it("a mutation whose connection broke after the server took it is not sent again (it may have been served); a query is; a long-poll is not", async () => {
    const live = await server();
    const { api, sent, loseAnswerOf } = countingClient(live.url);
    loseAnswerOf.add("tasks.enqueue");
    await expect(api.tasks.enqueue.mutate({ queue: "once" })).rejects.toThrow("fetch failed");
    expect(sent("tasks.enqueue")).toBe(1);
    const [task] = (await live.api.tasks.list.query({ queue: "once" })).items;
    expect(task).toBeDefined();
    loseAnswerOf.add("tasks.get");
    expect((await api.tasks.get.query({ taskId: task!.id })).id).toBe(task!.id);
    expect(sent("tasks.get")).toBe(2);
    loseAnswerOf.add("tasks.wait");
    await expect(api.tasks.wait.query({ taskId: task!.id, waitMs: 100 })).rejects.toThrow("fetch failed");
    expect(sent("tasks.wait")).toBe(1);
  });

  it("an answer the server made (a 404) is not sent again", async () => {
    const live = await server();
    const { api, sent } = countingClient(live.url);
    await expect(api.tasks.get.query({ taskId: "no-such-task" })).rejects.toMatchObject({ data: { code: "TASK_NOT_FOUND", httpStatus: 404 } });
    expect(sent("tasks.get")).toBe(1);
  });

  it("fails with its last error past waitForServerMs; waitForServerMs 0 sends each call once", async () => {
    const gone = await server();
    await gone.stop();
    const once = countingClient(gone.url, { waitForServerMs: 0 });
    await expect(once.api.tasks.stats.query()).rejects.toMatchObject({ cause: { cause: { code: "ECONNREFUSED" } } });
    expect(once.sent("tasks.stats")).toBe(1);
    const briefly = countingClient(gone.url, { waitForServerMs: 500 });
    await expect(briefly.api.tasks.enqueue.mutate({ queue: "never" })).rejects.toMatchObject({ cause: { cause: { code: "ECONNREFUSED" } } });
    // 100 ms, 200 ms, then what is left of the 500: at least two tries, and no more than four.
    expect(briefly.sent("tasks.enqueue")).toBeGreaterThanOrEqual(2);
    expect(briefly.sent("tasks.enqueue")).toBeLessThanOrEqual(4);
    expect(() => createCoordinationClient({ url: gone.url, waitForServerMs: Number.NaN })).toThrow("waitForServerMs must be a number of ms, 0 or more (got NaN)");
    expect(() => createCoordinationClient({ url: gone.url, waitForServerMs: -1 })).toThrow(RangeError);
  });

  it("close() ends a call waiting for its server at once (ClientClosedError), and its signal ends another: neither is sent again", async () => {
    const gone = await server();
    await gone.stop();
    const { api, client, sent } = countingClient(gone.url);
    const controller = new AbortController();
    const aborted = api.tasks.enqueue.mutate({ queue: "never" }, { signal: controller.signal }).catch((error: unknown) => error);
    const closed = api.tasks.stats.query().catch((error: unknown) => error);
    await vi.waitFor(() => expect([sent("tasks.enqueue") >= 2, sent("tasks.stats") >= 2]).toEqual([true, true]), { timeout: 20_000, interval: 20 });
    controller.abort(new Error("the caller gave up"));
    expect(await aborted).toMatchObject({ message: "the caller gave up" });
    await client.close();
    expect(await closed).toMatchObject({ cause: { name: "ClientClosedError", message: "the client was closed while this call waited for its server to come back: it was not sent again" } });
    const counts = [sent("tasks.enqueue"), sent("tasks.stats")];
    // Longer than the longest wait between tries (1 s): none came.
    await sleep(1500);
    expect([sent("tasks.enqueue"), sent("tasks.stats")]).toEqual(counts);
  });

  it("close() while a try is on its way ends that call with ClientClosedError once the try fails, not with its refusal: it is not sent again", async () => {
    const gone = await server();
    await gone.stop();
    let reached!: () => void;
    const onItsWay = new Promise<void>((resolve) => (reached = resolve));
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const { api, client, sent } = countingClient(gone.url, {
      before: async (procedure) => {
        if (procedure !== "tasks.stats") return;
        reached();
        await gate;
      },
    });
    const closed = api.tasks.stats.query().catch((error: unknown) => error);
    await onItsWay;
    await client.close();
    release();
    expect(await closed).toMatchObject({ cause: { name: "ClientClosedError", message: "the client was closed while this call waited for its server to come back: it was not sent again" } });
    await sleep(1500);
    expect(sent("tasks.stats")).toBe(1);
  });
});
