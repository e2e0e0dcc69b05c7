// The typed client's HTTP (client/keep-alive-fetch.ts): its calls share kept-alive connections,
// which close() closes; an aborted call rejects and the pool goes on serving; and a `fetch`
// given in the options carries the calls instead. Counted through a TCP relay between client
// and server, which sees every connection the client opens.
import { createServer as createTcpServer, connect, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { describe, expect, it, vi } from "vitest";
import { createCoordinationClient } from "../client/index.js";
import { startTestServer } from "./helpers/test-server.js";

/** A relay to `target` (host:port) that counts the connections made to it and those still open. */
async function relayTo(target: URL) {
  const open = new Set<Socket>();
  let opened = 0;
  const relay = createTcpServer((client) => {
    opened++;
    open.add(client);
    const server = connect(Number(target.port), target.hostname);
    client.pipe(server).pipe(client);
    const end = () => {
      open.delete(client);
      client.destroy();
      server.destroy();
    };
    client.on("close", end).on("error", end);
    server.on("close", end).on("error", end);
  });
  await new Promise<void>((resolve) => relay.listen(0, "127.0.0.1", () => resolve()));
  return {
    url: `http://127.0.0.1:${(relay.address() as AddressInfo).port}`,
    opened: () => opened,
    open: () => open.size,
    close: () => new Promise<void>((resolve) => relay.close(() => resolve())),
  };
}

/** The task waits parked on the server now (its metrics). */
async function parkedWaits(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith('coordination_long_polls_parked{kind="wait"} '));
  return Number(line?.split(" ")[1]);
}

describe("the typed client's HTTP", () => {
  it("keeps its connections: fifty calls in turn go over one; close() closes it", async () => {
    await using t = await startTestServer();
    const relay = await relayTo(new URL(t.url));
    const client = createCoordinationClient({ url: relay.url });
    try {
      for (let n = 0; n < 50; n++) await client.api.tasks.enqueue.mutate({ queue: "kept", payload: { n } });
      expect((await client.api.tasks.stats.query()).totals.pending).toBe(50);
      expect(relay.opened()).toBe(1);
      expect(relay.open()).toBe(1);
      await client.close();
      await vi.waitFor(() => expect(relay.open()).toBe(0), { timeout: 10_000, interval: 20 });
    } finally {
      await client.close();
      await relay.close();
    }
  });

  it("an aborted call rejects with the abort, and the calls after it are answered", async () => {
    await using t = await startTestServer();
    const client = createCoordinationClient({ url: t.url });
    try {
      const stop = new AbortController();
      const parked = client.api.tasks.claim.mutate({ agentId: "a1", queues: ["empty"], waitMs: 30_000 }, { signal: stop.signal });
      stop.abort();
      await expect(parked).rejects.toMatchObject({ name: "TRPCClientError", message: "This operation was aborted" });
      const task = await client.api.tasks.enqueue.mutate({ queue: "after" });
      expect((await client.api.tasks.claim.mutate({ agentId: "a1", queues: ["after"] }))?.id).toBe(task.id);
    } finally {
      await client.close();
    }
  });

  it("long-polls have connections of their own: with more parked than the calls' pool holds (64), a call is answered at once", async () => {
    await using t = await startTestServer();
    const tasks = await t.api.tasks.enqueueMany.mutate({ tasks: Array.from({ length: 70 }, (_, i) => ({ queue: "parked", payload: { i } })) });
    // Each wait parks until its task settles: on the calls' pool, they took its 64 connections
    // and the call below waited behind them for their waitMs (a worker's heartbeats and settles did).
    const waits = tasks.map((task) => t.api.tasks.wait.query({ taskId: task.id, waitMs: 120_000 }));
    await vi.waitFor(async () => expect(await parkedWaits(t.url)).toBe(70), { timeout: 30_000, interval: 100 });
    const first = await Promise.race([
      t.api.tasks.get.query({ taskId: tasks[0]!.id }).then((task) => `answered: ${task.status}`),
      Promise.any(waits).then(() => "a wait ended first"),
    ]);
    expect(first).toBe("answered: pending");
    const { cancelled } = await t.api.tasks.cancelMany.mutate({ queue: "parked" });
    expect(cancelled).toHaveLength(70);
    expect((await Promise.all(waits)).map((task) => task.status)).toEqual(tasks.map(() => "cancelled"));
  });

  it("a fetch given in the options carries every query and mutation", async () => {
    await using t = await startTestServer();
    const seen: string[] = [];
    const client = createCoordinationClient({
      url: t.url,
      fetch: (input, init) => {
        seen.push(`${init?.method} ${new URL(String(input)).pathname}`);
        return fetch(input, init as RequestInit);
      },
    });
    try {
      const task = await client.api.tasks.enqueue.mutate({ queue: "own" });
      expect((await client.api.tasks.get.query({ taskId: task.id })).id).toBe(task.id);
      expect(seen).toEqual(["POST /trpc/tasks.enqueue", "POST /trpc/tasks.get"]);
    } finally {
      await client.close();
    }
  });
});
