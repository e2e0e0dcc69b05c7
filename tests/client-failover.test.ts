// The typed client given several servers on one database file: a call whose connection cannot be
// made goes to the next server, and a live stream whose server went away resumes on the next one
// from its last event id, with no gap and no duplicate.
import { connect, createServer, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { describe, expect, it, vi } from "vitest";
import { ServerList } from "../client/failover.js";
import { createCoordinationClient } from "../client/index.js";
import { collectEvents, range } from "./helpers/event-collector.js";
import { makeTempDir, startTestServer } from "./helpers/test-server.js";

/** A loopback URL where nothing listens: a port taken, then let go. */
async function deadUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

/**
 * A loopback proxy to `target` that can freeze: from then on it passes no byte either way and
 * answers no new connection, its sockets held open, as a paused (SIGSTOP) server's port does.
 */
async function freezableProxy(target: string) {
  const { port } = new URL(target);
  let frozen = false;
  /** While stalled, the server's bytes are held, not dropped: a server busy for a moment. */
  let stalled = false;
  const held: Array<{ client: Socket; chunks: Buffer[] }> = [];
  let fromClient = 0;
  const sockets: Socket[] = [];
  const proxy = createServer((client) => {
    sockets.push(client);
    client.on("error", () => undefined);
    if (frozen) return;
    const upstream = connect(Number(port), "127.0.0.1");
    sockets.push(upstream);
    upstream.on("error", () => undefined);
    const toClient: Buffer[] = [];
    held.push({ client, chunks: toClient });
    client.on("data", (chunk) => {
      if (frozen) return;
      fromClient += chunk.length;
      upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => void (frozen || (stalled ? toClient.push(chunk) : client.write(chunk))));
    client.on("close", () => upstream.destroy());
    // The server's last bytes (a close frame) go out before its close, held or not.
    upstream.on("close", () => (stalled ? closing.push(client) : client.destroy()));
  });
  const closing: Socket[] = [];
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
    /** Bytes the clients sent through it so far. */
    fromClient: () => fromClient,
    stall: () => void (stalled = true),
    resume: () => {
      stalled = false;
      for (const { client, chunks } of held) for (const chunk of chunks.splice(0)) client.write(chunk);
      for (const client of closing.splice(0)) client.end();
    },
    freeze: () => void (frozen = true),
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
    },
  };
}

describe("a client of several servers on one file", () => {
  it("sends a call that cannot connect to the next server, and keeps using that one", async () => {
    await using live = await startTestServer();
    const client = createCoordinationClient({ url: [await deadUrl(), `${live.url}/`] });
    try {
      const task = await client.api.tasks.enqueue.mutate({ queue: "f" });
      expect((await live.api.tasks.get.query({ taskId: task.id })).queue).toBe("f");
      const [claimed] = await client.api.tasks.claimMany.mutate({ agentId: "w", queues: ["f"], context: false });
      expect(claimed!.id).toBe(task.id);
    } finally {
      await client.close();
    }
  });

  it("goes back to the first server once it answers again (a routine restart), rather than staying on the last", async () => {
    const first = await startTestServer();
    const port = Number(new URL(first.url).port);
    await using second = await startTestServer({}, first.dir);
    // The second server behind a proxy that counts what the client sends it.
    const proxy = await freezableProxy(second.url);
    const client = createCoordinationClient({ url: [first.url, proxy.url], returnAfterMs: 50 });
    let restarted: Awaited<ReturnType<typeof startTestServer>> | undefined;
    try {
      await client.api.tasks.enqueue.mutate({ queue: "back" });
      expect(proxy.fromClient()).toBe(0);
      await first.stop();
      // The first server is down: calls go to the second.
      await client.api.tasks.enqueue.mutate({ queue: "back" });
      expect(proxy.fromClient()).toBeGreaterThan(0);
      // Restarted on its address: within a look or two, calls go to it again, none through the proxy.
      restarted = await startTestServer({ port }, first.dir);
      await vi.waitFor(
        async () => {
          const before = proxy.fromClient();
          await client.api.tasks.stats.query();
          expect(proxy.fromClient()).toBe(before);
        },
        { timeout: 15_000, interval: 25 },
      );
      expect((await client.api.tasks.stats.query()).totals.pending).toBe(2);
    } finally {
      await client.close();
      await proxy.close();
      await restarted?.stop();
    }
  });

  it("a call whose established connection failed (it may have been served) is not sent again: it fails, and the next call goes to the next server", async () => {
    const dir = makeTempDir();
    await using first = await startTestServer({}, dir);
    await using second = await startTestServer({}, dir);
    // The request reaches the first server and is served; then its connection times out, as
    // undici reports a peer that vanished under an established connection.
    const timingOut: typeof fetch = async (input, init) => {
      const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
      const response = await fetch(url, init);
      if (!url.startsWith(first.url)) return response;
      await response.text();
      throw Object.assign(new Error("read ETIMEDOUT"), { code: "ETIMEDOUT", syscall: "read" });
    };
    const client = createCoordinationClient({ url: [first.url, second.url], fetch: timingOut as never });
    try {
      await expect(client.api.tasks.enqueue.mutate({ queue: "once" })).rejects.toThrow("ETIMEDOUT");
      expect((await second.api.tasks.list.query({ queue: "once" })).items).toHaveLength(1);
      await client.api.tasks.enqueue.mutate({ queue: "once" });
      expect((await second.api.tasks.list.query({ queue: "once" })).items).toHaveLength(2);
    } finally {
      await client.close();
    }
  });

  it("leaves a server that hangs with its port open once a call waits past callTimeoutMs; a long-poll's wait (named, or a task wait's maxWaitMs) is not counted against it", async () => {
    // Accepts connections and answers nothing, as a paused process's port does.
    const held: Socket[] = [];
    const hung = createServer((socket) => void held.push(socket));
    await new Promise<void>((resolve) => hung.listen(0, "127.0.0.1", resolve));
    const hungUrl = `http://127.0.0.1:${(hung.address() as AddressInfo).port}`;
    await using live = await startTestServer({ maxWaitMs: 4000 });
    const client = createCoordinationClient({ url: [hungUrl, live.url], callTimeoutMs: 3000 });
    try {
      await expect(client.api.tasks.enqueue.mutate({ queue: "h" })).rejects.toThrow(`tasks.enqueue: no answer from ${hungUrl} within 3000 ms (callTimeoutMs); it may have been served`);
      const task = await client.api.tasks.enqueue.mutate({ queue: "h" });
      expect((await live.api.tasks.get.query({ taskId: task.id })).queue).toBe("h");
      // 4 s of waiting for a task that never comes, under a 3 s bound: the bound starts after the wait.
      expect(await client.api.tasks.claim.mutate({ agentId: "w", queues: ["nothing-here"], waitMs: 4000, context: false })).toBeNull();
      // A task wait that names no waitMs waits the server's maxWaitMs (4 s here): not counted either.
      const later = await live.api.tasks.enqueue.mutate({ queue: "later", delayMs: 3_600_000 });
      expect(await client.api.tasks.wait.query({ taskId: later.id })).toMatchObject({ id: later.id, status: "pending" });
    } finally {
      await client.close();
      for (const socket of held) socket.destroy();
      await new Promise<void>((resolve) => hung.close(() => resolve()));
    }
  });

  it("a socket that could not connect moves the list off the server it tried, not off the one HTTP moved to meanwhile", () => {
    const servers = new ServerList(["http://a", "http://b", "http://c"]);
    expect(servers.socketUrl()).toBe("ws://a/trpc");
    servers.failed("http://a");
    servers.socketClosed();
    expect(servers.current).toBe("http://b");
    expect(servers.socketUrl()).toBe("ws://b/trpc");
  });

  it("a live stream whose server hangs with its port open moves to the next server after a ping goes unanswered: no gap, no duplicate", async () => {
    const dir = makeTempDir();
    await using first = await startTestServer({}, dir);
    await using second = await startTestServer({}, dir);
    const proxy = await freezableProxy(first.url);
    const client = createCoordinationClient({ url: [proxy.url, second.url] });
    try {
      const stream = collectEvents(client.api, { types: ["news.*"] });
      await stream.started;
      for (const i of range(1, 3)) await second.api.events.publish.mutate({ type: "news.item", source: "desk", payload: { i } });
      await vi.waitFor(() => expect(stream.events).toHaveLength(3), { timeout: 15_000, interval: 20 });
      proxy.freeze();
      // Published through the server that still answers, while the stream's server is silent.
      for (const i of range(4, 6)) await second.api.events.publish.mutate({ type: "news.item", source: "desk", payload: { i } });
      // A ping after 5 s of silence, unanswered for 10 s: the socket is cut, and opened on the next server.
      await vi.waitFor(() => expect(stream.events).toHaveLength(6), { timeout: 60_000, interval: 50 });
      expect(stream.events.map((event) => (event.payload as { i: number }).i)).toEqual(range(1, 6));
      expect(stream.errors).toEqual([]);
      stream.unsubscribe();
    } finally {
      await client.close();
      await proxy.close();
    }
  }, 90_000);

  it("the client's own close of its socket, on a server busy for a moment, is no failure: the next calls stay on that server", async () => {
    const dir = makeTempDir();
    await using first = await startTestServer({}, dir);
    await using second = await startTestServer({}, dir);
    const proxy = await freezableProxy(first.url);
    const codes: Array<number | undefined> = [];
    const client = createCoordinationClient({ url: [proxy.url, second.url], onSocketClose: (code) => codes.push(code) });
    try {
      const stream = collectEvents(client.api, { types: ["news.*"] });
      await stream.started;
      await first.api.events.publish.mutate({ type: "news.item", source: "desk", payload: {} });
      await vi.waitFor(() => expect(stream.events).toHaveLength(1), { timeout: 15_000, interval: 20 });
      // The server is busy (a GC pause, a large answer) as the last stream ends and the client closes its socket.
      proxy.stall();
      stream.unsubscribe();
      await new Promise((resolve) => setTimeout(resolve, 1500));
      proxy.resume();
      await vi.waitFor(() => expect(codes).toHaveLength(1), { timeout: 15_000, interval: 20 });
      expect(codes[0]).not.toBe(1006);
      const before = proxy.fromClient();
      await client.api.health.query();
      expect(proxy.fromClient()).toBeGreaterThan(before);
    } finally {
      await client.close();
      await proxy.close();
    }
  });

  it("a live stream whose server stops resumes on the next server from its last event id: no gap, no duplicate", async () => {
    const dir = makeTempDir();
    const first = await startTestServer({}, dir);
    await using second = await startTestServer({}, dir);
    const client = createCoordinationClient({ url: [first.url, second.url] });
    try {
      const stream = collectEvents(client.api, { types: ["news.*"] });
      await stream.started;
      for (const i of range(1, 3)) await client.api.events.publish.mutate({ type: "news.item", source: "desk", payload: { i } });
      await vi.waitFor(() => expect(stream.events).toHaveLength(3), { timeout: 15_000, interval: 20 });
      await first.stop();
      // Published through the server that is left while the stream has no socket.
      for (const i of range(4, 6)) await second.api.events.publish.mutate({ type: "news.item", source: "desk", payload: { i } });
      // HTTP calls move on too: the first server refuses connections now.
      await client.api.events.publish.mutate({ type: "news.item", source: "desk", payload: { i: 7 } });
      await vi.waitFor(() => expect(stream.events).toHaveLength(7), { timeout: 20_000 });
      expect(stream.events.map((event) => (event.payload as { i: number }).i)).toEqual(range(1, 7));
      expect(stream.errors).toEqual([]);
      stream.unsubscribe();
    } finally {
      await client.close();
      await first.stop({ removeFiles: false });
    }
  });
});
