// One client cannot take the server down: subscriptions per socket, calls per batch, parked
// long-polls per agent and open connections are bounded, each with a clear 429 (LIMIT_EXCEEDED).
import { connect, type Socket } from "node:net";
import WebSocket from "ws";
import { afterEach, describe, expect, it, vi } from "vitest";
import { collectEvents } from "./helpers/event-collector.js";
import { createCoordinationClient } from "../client/index.js";
import { http, startSecureServer } from "./helpers/secure-server.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
afterEach(async () => {
  await t?.stop({ removeFiles: true });
  t = undefined;
});

const until = (condition: () => boolean | Promise<boolean>) =>
  vi.waitFor(async () => expect(await condition()).toBe(true), { timeout: 20_000, interval: 20 });

/** Opens a raw tRPC WebSocket and collects every message. */
async function rawSocket(url: string): Promise<{ socket: WebSocket; messages: any[] }> {
  const socket = new WebSocket(`${url.replace("http", "ws")}/trpc`);
  const messages: any[] = [];
  socket.on("message", (data) => (String(data) === "PING" ? socket.send("PONG") : messages.push(JSON.parse(String(data)))));
  await new Promise((resolve, reject) => {
    socket.once("open", resolve);
    socket.once("error", reject);
  });
  return { socket, messages };
}

const subscription = (id: number) => ({ id, method: "subscription", params: { path: "events.onEvent", input: { json: {} } } });

describe("per-client limits", () => {
  it("one frame of 9,000 subscription requests is refused whole; memory stays flat; the server keeps serving", async () => {
    t = await startTestServer();
    const { socket, messages } = await rawSocket(t.url);
    global.gc?.();
    const before = process.memoryUsage().rss;
    for (let frame = 0; frame < 8; frame++) socket.send(JSON.stringify(Array.from({ length: 9000 }, (_, i) => subscription(frame * 9000 + i + 1))));
    await until(() => messages.length === 8 * 9000);
    expect(new Set(messages.map((m) => m.error?.json?.data?.code))).toEqual(new Set(["LIMIT_EXCEEDED"]));
    expect(messages[0].error.json.message).toBe("Batch call exceeds maximum size (the server's maxBatchCalls); send fewer calls per batch");
    // Before: 8 such frames took the server to 2.6 GB and 4 s per publish. Nothing was started now.
    expect(t.server.services.events.liveStreams.size).toBe(0);
    expect(process.memoryUsage().rss - before).toBeLessThan(300 * 1024 * 1024);
    expect((await t.api.events.publish.mutate({ type: "x", source: "s" })).seq).toBe(1);
    socket.close();
  });

  it("subscriptions per socket are bounded; one that ends frees its place", async () => {
    t = await startTestServer({ maxSubscriptionsPerSocket: 3 });
    const streams = [1, 2, 3].map(() => collectEvents(t!.api, {}));
    await Promise.all(streams.map((s) => s.started));
    const fourth = collectEvents(t.api, {});
    await until(() => fourth.errors.length === 1);
    expect((fourth.errors[0] as { data: { code: string }; message: string }).data.code).toBe("LIMIT_EXCEEDED");
    expect((fourth.errors[0] as Error).message).toBe("too many live subscriptions on this WebSocket: the limit is 3 (setting maxSubscriptionsPerSocket)");
    streams[0]!.unsubscribe();
    await until(() => t!.server.services.events.liveStreams.size === 2);
    const again = collectEvents(t.api, {});
    await again.started;
    expect(again.errors).toEqual([]);
  });

  it("subscriptions per credential are bounded over all its sockets; another credential is not held by it; one that ends frees its place", async () => {
    const s = await startSecureServer({ maxSubscriptionsPerCredential: 3 });
    t = s;
    const token = await s.issue("read");
    const clients = [createCoordinationClient({ url: s.url, token }), createCoordinationClient({ url: s.url, token })];
    try {
      // Two sockets of one credential: 2 + 1 streams take its 3 places.
      const streams = [collectEvents(clients[0]!.api, {}), collectEvents(clients[0]!.api, {}), collectEvents(clients[1]!.api, {})];
      await Promise.all(streams.map((stream) => stream.started));
      const fourth = collectEvents(clients[1]!.api, {});
      await until(() => fourth.errors.length === 1);
      expect((fourth.errors[0] as { data: { code: string } }).data.code).toBe("LIMIT_EXCEEDED");
      expect((fourth.errors[0] as Error).message).toBe("too many live subscriptions under this credential: the limit is 3 (setting maxSubscriptionsPerCredential)");
      // The admin's credential has places of its own.
      const admin = collectEvents(s.admin, {});
      await admin.started;
      expect(admin.errors).toEqual([]);
      streams[0]!.unsubscribe();
      await until(() => s.server.services.events.liveStreams.size === 3);
      const again = collectEvents(clients[1]!.api, {});
      await again.started;
      expect(again.errors).toEqual([]);
    } finally {
      await Promise.all(clients.map((client) => client.close()));
    }
  });

  it("calls per HTTP batch are bounded", async () => {
    t = await startTestServer({ maxBatchCalls: 5 });
    const paths = Array.from({ length: 6 }, () => "health").join(",");
    const response = await fetch(`${t.url}/trpc/${paths}?batch=1&input=${encodeURIComponent(JSON.stringify({}))}`);
    const body = (await response.json()) as { error: { json: { data: { code: string } } } };
    expect(response.status).toBe(429);
    expect(body.error.json.data.code).toBe("LIMIT_EXCEEDED");
    const five = await fetch(`${t.url}/trpc/${paths.split(",").slice(1).join(",")}?batch=1&input=${encodeURIComponent(JSON.stringify({}))}`);
    expect(five.status).toBe(200);
  });

  it("parked long-polls per agent are bounded, claims and polls together", async () => {
    t = await startTestServer({ maxParkedPerAgent: 2 });
    const parked = [
      http(t.url, "POST", "/tasks/claim", { body: { agentId: "greedy", queues: ["q"], waitMs: 30_000 } }),
      http(t.url, "GET", "/events/greedy?waitMs=30000"),
    ];
    await until(() => t!.server.services.events.waitingPolls === 1);
    const third = await http(t.url, "POST", "/tasks/claim", { body: { agentId: "greedy", queues: ["q"], waitMs: 30_000 } });
    expect(third.status).toBe(429);
    expect(third.body).toEqual({ code: "LIMIT_EXCEEDED", message: 'too many long-polls waiting for agent "greedy": the limit is 2 (setting maxParkedPerAgent)', details: { limit: 2 } });
    // Other agents, and calls that do not wait, are not affected.
    expect((await http(t.url, "POST", "/tasks/claim", { body: { agentId: "greedy", queues: ["q"] } })).status).toBe(200);
    await t.api.tasks.enqueue.mutate({ queue: "q" });
    await t.api.events.publish.mutate({ type: "x", source: "s", target: "greedy" });
    expect((await Promise.all(parked)).map((answer) => answer.status)).toEqual([200, 200]);
    expect((await http(t.url, "GET", "/events/greedy?waitMs=10")).status).toBe(200);
  });

  it("open connections are bounded: one more is answered 429 and closed", async () => {
    t = await startTestServer({ maxConnections: 3 });
    const port = new URL(t.url).port;
    const open: Socket[] = [];
    for (let i = 0; i < 3; i++) {
      const socket = connect(Number(port), "127.0.0.1");
      await new Promise((resolve) => socket.once("connect", resolve));
      open.push(socket);
    }
    await until(() => true);
    // It sends a whole request at once: refused, it must not be served either.
    const extra = connect(Number(port), "127.0.0.1");
    const body = JSON.stringify({ type: "sneaked.in", source: "s" });
    extra.write(`POST /events HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
    let text = "";
    extra.on("data", (chunk) => (text += chunk));
    await new Promise((resolve) => extra.once("close", resolve));
    expect(text).toMatch(/^HTTP\/1\.1 429 Too Many Requests\r\n/);
    expect(JSON.parse(text.slice(text.indexOf("\r\n\r\n") + 4))).toEqual({
      code: "LIMIT_EXCEEDED",
      message: "The server has 3 connections open (setting maxConnections); retry later",
    });
    for (const socket of open) socket.destroy();
    await until(async () => (await fetch(`${t!.url}/health`).catch(() => undefined))?.status === 200);
    expect(await t.api.events.list.query({})).toEqual([]);
  });

  it("a connection that never sends a whole request, or never closes after a malformed one, gives its slot back", async () => {
    t = await startTestServer({ maxConnections: 2 });
    const port = Number(new URL(t.url).port);
    // Clients that keep their side open whatever the server does (allowHalfOpen): two malformed
    // requests. Before, the server answered 400 with end() and the half-open sockets kept both slots.
    const stuck: Socket[] = [];
    for (let i = 0; i < 2; i++) {
      const socket = connect({ port, host: "127.0.0.1", allowHalfOpen: true });
      socket.on("data", () => undefined);
      await new Promise((resolve) => socket.once("connect", resolve));
      socket.write("NOT HTTP AT ALL\r\n\r\n");
      stuck.push(socket);
    }
    // Served again: both slots came back though neither client closed.
    await until(async () => (await fetch(`${t!.url}/health`).catch(() => undefined))?.status === 200);
    for (const socket of stuck) socket.destroy();
  });

  it("a WebSocket that says it will send its credential (connectionParams) and never does is closed 4401 after wsAuthTimeoutMs", async () => {
    t = await startTestServer({ wsAuthTimeoutMs: 500 });
    const socket = new WebSocket(`${t.url.replace("http", "ws")}/trpc?connectionParams=1`);
    socket.on("message", (data) => String(data) === "PING" && socket.send("PONG"));
    const closed = new Promise<{ code: number; reason: string }>((resolve) => socket.once("close", (code, reason) => resolve({ code, reason: String(reason) })));
    expect(await closed).toEqual({ code: 4401, reason: "no connectionParams within 500 ms" });
    // One that sends them in time is served.
    const typed = await rawSocket(t.url);
    typed.socket.close();
  });
});
