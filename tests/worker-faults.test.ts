// The worker under faults its users met: a result the client cannot send (a __proto__ key from
// JSON.parse of a model's output), a server that hangs with its port open, a server not up yet
// when the worker starts, errors thrown that are no Error. Each must end in a settled or
// released task and a stop() that returns, never a task held for good.
import { createServer as createTcpServer, connect, type Server, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { describe, expect, it, vi } from "vitest";
import { createCoordinationClient, isUnsendable, mayHaveBeenServed, runWorker } from "../client/index.js";
import { failureText } from "../client/worker.js";
import { ADMIN_SECRET, startSecureServer } from "./helpers/secure-server.js";
import { startTestServer } from "./helpers/test-server.js";

/** A TCP proxy to `target` that can freeze: it then forwards nothing either way and takes no new connection, as a stopped server does. */
async function startFreezableProxy(target: string) {
  const { hostname, port } = new URL(target);
  const pairs: Array<[Socket, Socket]> = [];
  const held: Socket[] = [];
  let frozen = false;
  const server: Server = createTcpServer((client) => {
    if (frozen) return void held.push(client.pause());
    const upstream = connect(Number(port), hostname);
    pairs.push([client, upstream]);
    client.pipe(upstream);
    upstream.pipe(client);
    // Frozen, a connection stays open on the client's side whatever the server does with its own.
    const end = () => frozen || (client.destroy(), upstream.destroy());
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    freeze() {
      frozen = true;
      for (const [client, upstream] of pairs) {
        client.unpipe(upstream);
        upstream.unpipe(client);
        client.pause();
        upstream.pause();
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of [...pairs.flat(), ...held]) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe("runWorker under faults", () => {
  it("a call whose input cannot be sent fails alone: the calls batched with it go, and its error says it was never sent", async () => {
    await using t = await startTestServer();
    const poisoned = JSON.parse('{"answer":42,"__proto__":{"x":1}}') as Record<string, number>;
    // Sent in one tick: one batch. Before, the bad input failed the whole batch, like a broken connection.
    const [good, bad, registered] = await Promise.allSettled([
      t.api.tasks.enqueue.mutate({ queue: "q", payload: { n: 1 } }),
      t.api.tasks.enqueue.mutate({ queue: "q", payload: poisoned }),
      t.api.agents.register.mutate({ agentId: "batched" }),
    ]);
    expect(good.status).toBe("fulfilled");
    expect(registered.status).toBe("fulfilled");
    expect(bad.status).toBe("rejected");
    const error = (bad as PromiseRejectedResult).reason;
    expect(isUnsendable(error)).toBe(true);
    expect(String(error.message)).toMatch(/^tasks\.enqueue: the input cannot be sent: Detected property __proto__/);
    expect((await t.api.tasks.stats.query()).totals.pending).toBe(1);
  });

  it("an input whose toJSON throws (superjson leaves it for JSON.stringify) fails alone as unsendable: never sent, the calls batched with it go", async () => {
    await using t = await startTestServer();
    // A class instance superjson does not know, and a plain object with a toJSON of its own: both reach JSON.stringify as they are.
    class Reply {
      toJSON(): never {
        throw new Error("toJSON failed: the model's reply was cut");
      }
    }
    const [good, instance, plain] = await Promise.allSettled([
      t.api.tasks.enqueue.mutate({ queue: "q", payload: { n: 1 } }),
      t.api.tasks.enqueue.mutate({ queue: "q", payload: { reply: new Reply() } as never }),
      t.api.kv.set.mutate({ key: "k", value: { toJSON: () => { throw new RangeError("no JSON here"); } } as never }),
    ]);
    expect(good.status).toBe("fulfilled");
    for (const [settled, reason] of [[instance, "toJSON failed: the model's reply was cut"], [plain, "no JSON here"]] as const) {
      expect(settled.status).toBe("rejected");
      const error = (settled as PromiseRejectedResult).reason;
      expect(isUnsendable(error)).toBe(true);
      expect(mayHaveBeenServed(error)).toBe(false);
      expect(String(error.message)).toContain(`the input cannot be sent: ${reason}`);
    }
    expect((await t.api.tasks.stats.query()).totals.pending).toBe(1);
  });

  it("a handler's result whose toJSON throws fails its task saying why, at once, and stop() returns", async () => {
    await using t = await startTestServer();
    class Reply {
      toJSON(): never {
        throw new Error("toJSON failed");
      }
    }
    const worker = await runWorker({ api: t.api, agentId: "w-tojson", waitMs: 200, onError: () => undefined, handler: async () => new Reply() as never });
    const { id } = await t.api.tasks.enqueue.mutate({ queue: "q", maxAttempts: 1 });
    // Before, each settle failed as if the connection broke: retried until the lease ran out, the task held meanwhile.
    const settled = await t.api.tasks.wait.query({ taskId: id, waitMs: 20_000 });
    expect(settled.status).toBe("dead_letter");
    expect(settled.lastError).toMatch(/^the handler's result cannot be sent: toJSON failed/);
    await worker.stop();
    expect([worker.completed, worker.failed, worker.lost]).toEqual([0, 1, 0]);
  });

  it("a handler's result the client cannot send fails its task saying why; the other tasks complete and stop() returns", async () => {
    await using t = await startTestServer();
    const worker = await runWorker({
      api: t.api,
      agentId: "w-proto",
      concurrency: 4,
      waitMs: 200,
      onError: () => undefined,
      handler: async (task) => ((task.payload as { bad?: boolean }).bad ? (JSON.parse('{"answer":42,"__proto__":{"x":1}}') as { answer: number }) : { ok: true }),
    });
    const tasks = await t.api.tasks.enqueueMany.mutate({ tasks: [{ payload: { bad: true }, maxAttempts: 1 }, ...Array.from({ length: 20 }, (_, n) => ({ payload: { n } }))] });
    await vi.waitFor(async () => expect((await t.api.tasks.stats.query()).totals).toMatchObject({ completed: 20, dead_letter: 1, pending: 0, claimed: 0 }), { timeout: 30_000, interval: 50 });
    const bad = await t.api.tasks.get.query({ taskId: tasks[0]!.id });
    expect(bad.lastError).toMatch(/^the handler's result cannot be sent: Detected property __proto__/);
    await worker.stop();
    expect([worker.completed, worker.failed, worker.lost]).toEqual([20, 1, 0]);
  });

  it("with one server that hangs with its port open, the settle gives up when the lease may have run out, and stop() returns", async () => {
    await using t = await startTestServer();
    const proxy = await startFreezableProxy(t.url);
    const client = createCoordinationClient({ url: proxy.url });
    try {
      const started = deferred();
      const finish = deferred();
      const worker = await runWorker({
        api: client.api,
        agentId: "w-hung",
        leaseMs: 1000,
        // Bounds the calls stop() makes to tidy up (deregister) on the hung server as well.
        stopTimeoutMs: 2000,
        waitMs: 200,
        onError: () => undefined,
        handler: async () => {
          started.resolve();
          await finish.promise;
          return { ok: true };
        },
      });
      await t.api.tasks.enqueue.mutate({ queue: "default" });
      await started.promise;
      proxy.freeze();
      finish.resolve();
      // Before, the complete waited for an answer that never came, and stop() with it.
      const timeout = new Promise((resolve) => setTimeout(resolve, 60_000, "stop() still waiting"));
      expect(await Promise.race([worker.stop().then(() => "stopped"), timeout])).toBe("stopped");
      expect(worker.lost).toBe(1);
    } finally {
      await client.close();
      await proxy.close();
    }
  });

  it("a worker started before its server waits for it, then works", async () => {
    // A free port, closed again: the server will start on it later.
    const probe = createTcpServer();
    await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const client = createCoordinationClient({ url: `http://127.0.0.1:${port}` });
    const errors: unknown[] = [];
    const done: string[] = [];
    const worker = await runWorker({ api: client.api, agentId: "w-early", waitMs: 200, onError: (error) => errors.push(error), handler: async (task) => void done.push(task.id) });
    try {
      await vi.waitFor(() => expect(errors.length).toBeGreaterThan(0), { timeout: 10_000 });
      await using t = await startTestServer({ port });
      const task = await t.api.tasks.enqueue.mutate({ queue: "default" });
      await vi.waitFor(() => expect(done).toEqual([task.id]), { timeout: 30_000, interval: 50 });
      expect((await t.api.agents.get.query({ agentId: "w-early" })).agentId).toBe("w-early");
      await worker.stop();
    } finally {
      await worker.stop();
      await client.close();
    }
  });

  it("a call's own signal ends it even when it shares a batch with a call that has none", async () => {
    await using t = await startTestServer();
    const proxy = await startFreezableProxy(t.url);
    const client = createCoordinationClient({ url: proxy.url });
    try {
      await client.api.agents.register.mutate({ agentId: "batched" });
      proxy.freeze();
      // Sent in one tick: one batch. tRPC aborts a batch only when all of its calls are aborted.
      const bounded = client.api.agents.heartbeat.mutate({ agentId: "batched" }, { signal: AbortSignal.timeout(300) }).then(() => "answered", (error: Error) => error.message);
      const unbounded = client.api.agents.heartbeat.mutate({ agentId: "batched" }).then(() => "answered", () => "failed");
      const timeout = new Promise((resolve) => setTimeout(resolve, 30_000, "still waiting"));
      expect(await Promise.race([bounded, timeout])).toMatch(/aborted|timeout/i);
      void unbounded;
    } finally {
      // The proxy first: the client's close waits for its calls, and the unbounded one hangs until then.
      await proxy.close();
      await client.close();
    }
  });

  it("a complete-and-claim served but never answered (aborted at the lease's end): the next task it claimed is found and run", async () => {
    await using t = await startTestServer();
    let held = false;
    // The first complete-and-claim reaches the server and is served; its answer never comes back.
    const fetchOnce: typeof fetch = (input, init) => {
      const url = String(input instanceof Request ? input.url : input);
      if (!held && url.includes("tasks.completeAndClaim")) {
        held = true;
        void fetch(input, { ...init, signal: null });
        return new Promise((_, reject) => init?.signal?.addEventListener("abort", () => reject(init.signal!.reason), { once: true }));
      }
      return fetch(input, init);
    };
    const client = createCoordinationClient({ url: t.url, fetch: fetchOnce as never });
    try {
      const ran: number[] = [];
      const first = await t.api.tasks.enqueue.mutate({ queue: "chain", payload: { n: 1 }, priority: 0 });
      const second = await t.api.tasks.enqueue.mutate({ queue: "chain", payload: { n: 2 }, priority: 1, maxAttempts: 1 });
      const worker = await runWorker({
        api: client.api,
        agentId: "w-chain",
        queues: ["chain"],
        // Long enough that the complete-and-claim, aborted at the first lease's end, is seen
        // before the second's lease (laid from the complete, 2 s later) runs out.
        leaseMs: 6000,
        waitMs: 200,
        onError: () => undefined,
        handler: async (task) => {
          const n = (task.payload as { n: number }).n;
          ran.push(n);
          if (n === 1) await new Promise((resolve) => setTimeout(resolve, 2000));
        },
      });
      await vi.waitFor(async () => expect((await t.api.tasks.get.query({ taskId: second.id })).status).toBe("completed"), { timeout: 60_000, interval: 100 });
      expect(ran).toEqual([1, 2]);
      expect((await t.api.tasks.get.query({ taskId: first.id })).status).toBe("completed");
      expect((await t.api.tasks.get.query({ taskId: second.id })).attempts).toBe(1);
      await worker.stop();
    } finally {
      await client.close();
    }
  });

  it("a registration refused after the server was first unreachable stops the worker, saying why, instead of retrying for good", async () => {
    const s = await startSecureServer();
    let calls = 0;
    // The first call finds no server; the next ones reach it, with no credential.
    const flaky: typeof fetch = (input, init) => (calls++ === 0 ? Promise.reject(new TypeError("fetch failed", { cause: Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }) })) : fetch(input, init));
    const client = createCoordinationClient({ url: s.url, fetch: flaky as never });
    try {
      const errors: string[] = [];
      const worker = await runWorker({ api: client.api, agentId: "w-refused-later", waitMs: 200, onError: (error) => errors.push((error as Error).message), handler: async () => undefined });
      await vi.waitFor(() => expect(errors.some((message) => message.startsWith("runWorker: the server refused the agent's registration, so this worker claims nothing"))).toBe(true), { timeout: 30_000, interval: 50 });
      const timeout = new Promise((resolve) => setTimeout(resolve, 30_000, "stop() still waiting"));
      expect(await Promise.race([worker.stop().then(() => "stopped"), timeout])).toBe("stopped");
      expect(ADMIN_SECRET.length).toBeGreaterThan(0);
    } finally {
      await client.close();
      await s.stop({ removeFiles: true });
    }
  });

  it("a thrown value that cannot be read as text fails its task, never holding the run and its lease for good", async () => {
    await using t = await startTestServer();
    // Each of these made the text of the fail throw inside the settle, which took it for a
    // network error and sent it "again" while renewing the lease: the task stayed claimed for good.
    const throws: Record<string, () => unknown> = {
      nullPrototype: () => Object.create(null),
      messageUndefined: () => Object.assign(new Error("x"), { message: undefined }),
      messageGetterThrows: () => Object.defineProperty(new Error("x"), "message", { get: () => { throw new Error("no"); } }),
      proxy: () => new Proxy({}, { get: () => { throw new Error("trap"); }, ownKeys: () => { throw new Error("trap"); }, getPrototypeOf: () => { throw new Error("trap"); } }),
    };
    const ids = new Map<string, string>();
    for (const kind of Object.keys(throws)) ids.set((await t.api.tasks.enqueue.mutate({ queue: "odd-throws", payload: { kind }, maxAttempts: 1 })).id, kind);
    const worker = await runWorker({
      api: t.api,
      agentId: "odd-thrower",
      queues: ["odd-throws"],
      waitMs: 200,
      onError: () => undefined,
      handler: async (task) => {
        throw throws[(task.payload as { kind: string }).kind]!();
      },
    });
    try {
      await vi.waitFor(() => expect(worker.failed).toBe(4), { timeout: 30_000, interval: 50 });
      const errors: Record<string, string | null> = {};
      for (const [id, kind] of ids) {
        const task = await t.api.tasks.get.query({ taskId: id });
        expect(task.status).toBe("dead_letter");
        errors[kind] = task.lastError;
      }
      expect(errors).toEqual({
        nullPrototype: "[object Object]",
        messageUndefined: "Error with no message",
        messageGetterThrows: "Error whose message cannot be read",
        proxy: "a thrown object that cannot be read as text",
      });
      expect({ failed: worker.failed, lost: worker.lost }).toEqual({ failed: 4, lost: 0 });
    } finally {
      await worker.stop();
    }
  });

  it("an error thrown that is no Error is stored as its JSON, not \"[object Object]\"", () => {
    expect(failureText({ code: 42, reason: "quota" })).toBe('{"code":42,"reason":"quota"}');
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(failureText(cyclic)).toBe("[object Object]");
  });
});
