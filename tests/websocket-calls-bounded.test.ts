// One WebSocket's calls are bounded as one HTTP connection's are: at most maxBatchCalls in
// progress at once, and no new call while its client leaves more than subscriptionBufferBytes of
// answers unread. A socket took 200 calls of 8 MB answers at once and the server grew to 5.7 GB,
// /health unanswered throughout (a trial). Past a bound a call is refused LIMIT_EXCEEDED before it
// runs: nothing is taken.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it, vi } from "vitest";
import { WebSocket, WebSocketServer } from "ws";
import { SocketCalls } from "../src/delivery/transports.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
afterEach(async () => {
  await t?.stop({ removeFiles: true });
  t = undefined;
});

const until = (condition: () => boolean | Promise<boolean>) => vi.waitFor(async () => expect(await condition()).toBe(true), { timeout: 20_000, interval: 20 });

/** Opens a raw tRPC WebSocket and collects every answer by id. */
async function rawSocket(url: string): Promise<{ socket: WebSocket; answers: Map<number, any> }> {
  const socket = new WebSocket(`${url.replace("http", "ws")}/trpc`);
  const answers = new Map<number, any>();
  socket.on("message", (data) => {
    if (String(data) === "PING") return void socket.send("PONG");
    const message = JSON.parse(String(data));
    answers.set(message.id, message);
  });
  await new Promise((resolve, reject) => {
    socket.once("open", resolve);
    socket.once("error", reject);
  });
  return { socket, answers };
}

describe("a WebSocket's calls", () => {
  it("past maxBatchCalls in progress, a call is refused LIMIT_EXCEEDED before it runs; the others go on, and once they end calls are taken again", async () => {
    t = await startTestServer({ maxBatchCalls: 5 });
    const task = await t.api.tasks.enqueue.mutate({ queue: "ws", payload: 1 });
    const { socket, answers } = await rawSocket(t.url);
    const wait = (id: number) => JSON.stringify({ id, method: "query", params: { path: "tasks.wait", input: { json: { taskId: task.id, waitMs: 60_000 } } } });
    // Five long-polls, each its own frame: in progress until the task settles.
    for (let id = 1; id <= 5; id++) socket.send(wait(id));
    await until(() => t!.server.services.metrics.render().then((text) => /^coordination_long_polls_parked\{kind="wait"\} 5$/m.test(text)));
    socket.send(wait(6));
    await until(() => answers.has(6));
    expect(answers.get(6).error.json.data.code).toBe("LIMIT_EXCEEDED");
    expect(answers.get(6).error.json.message).toBe("too many calls in progress on this WebSocket: the limit is 5 (setting maxBatchCalls)");
    expect([...answers.keys()]).toEqual([6]);
    // A subscription is no call in progress past its start: it opens all the same (its streams
    // have bounds of their own).
    socket.send(JSON.stringify({ id: 8, method: "subscription", params: { path: "events.onEvent", input: { json: {} } } }));
    await until(() => answers.has(8));
    expect(answers.get(8).result.type).toBe("started");

    const claimed = await t.api.tasks.claim.mutate({ agentId: "w", queues: ["ws"] });
    await t.api.tasks.complete.mutate({ taskId: task.id, agentId: "w", leaseToken: claimed!.leaseToken!, result: "done" });
    await until(() => answers.size === 7);
    for (let id = 1; id <= 5; id++) expect(answers.get(id).result.data.json, String(id)).toMatchObject({ id: task.id, status: "completed", result: "done" });
    socket.send(wait(7));
    await until(() => answers.has(7));
    expect(answers.get(7).result.data.json).toMatchObject({ id: task.id, status: "completed" });
    socket.close();
  });
});

describe("SocketCalls on a real socket", () => {
  it("refuses a call while the client leaves more than maxQueuedBytes unread, and takes calls again once it read them", async () => {
    const http = createServer();
    const wss = new WebSocketServer({ server: http });
    await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
    const serverSide = new Promise<WebSocket>((resolve) => wss.once("connection", resolve));
    const client = new WebSocket(`ws://127.0.0.1:${(http.address() as AddressInfo).port}`);
    let received = 0;
    client.on("message", (data: Buffer) => (received += data.length));
    await new Promise((resolve) => client.once("open", resolve));
    const socket = await serverSide;
    try {
      const calls = new SocketCalls(socket, { maxCalls: 100, maxQueuedBytes: 65_536 });
      calls.started()();
      // The client stops reading; the server's answers pile up past what the kernel holds.
      client.pause();
      const chunk = Buffer.alloc(1024 * 1024, 1);
      let sent = 0;
      await until(() => {
        if (socket.bufferedAmount <= 65_536) {
          socket.send(chunk);
          sent += chunk.length;
        }
        return socket.bufferedAmount > 65_536;
      });
      expect(() => calls.started()).toThrow(/^this WebSocket's client has not read \d+ bytes of answers: the limit is 65536 \(setting subscriptionBufferBytes\); read them, then call again$/);
      client.resume();
      await until(() => received === sent && socket.bufferedAmount === 0);
      expect(typeof calls.started()).toBe("function");
    } finally {
      client.terminate();
      wss.close();
      http.close();
    }
  });
});
