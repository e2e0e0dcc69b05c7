// An MCP tool call that takes something for its agent (claim_task, read_mailbox, complete_task
// with next) takes nothing for a client that is gone: a request cancelled or a connection dropped
// while it waits ends the wait, and what was taken for an answer that never arrived is given back,
// as over REST, tRPC and WebSocket (src/delivery/). Spoken over plain HTTP, as any MCP client.
import { request } from "node:http";
import { afterEach, describe, expect, it, vi } from "vitest";
import { mcpPostHeaders, openMcpSession } from "./helpers/mcp-http.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
const requests: AbortController[] = [];
afterEach(async () => {
  for (const request of requests.splice(0)) request.abort();
  await t?.stop({ removeFiles: true });
  t = undefined;
});

const HEADERS = mcpPostHeaders({ "x-agent-id": "llm" });
const openSession = (url: string) => openMcpSession(url, { "x-agent-id": "llm" });

/** POSTs JSON-RPC messages in the session; the response's text, and the controller that drops its connection. */
function post(url: string, session: string, message: unknown): { text: Promise<string>; drop: () => void } {
  const controller = new AbortController();
  requests.push(controller);
  const text = fetch(`${url}/mcp`, { method: "POST", headers: { ...HEADERS, "mcp-session-id": session }, body: JSON.stringify(message), signal: controller.signal })
    .then((response) => response.text())
    .catch(() => "");
  return { text, drop: () => controller.abort() };
}

const toolCall = (id: number, name: string, args: Record<string, unknown>) => ({ jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: args } });

/** A tool's answer in an SSE or JSON response body: the JSON of its first text content. */
function toolAnswer(text: string): any {
  const data = text.split("\n").find((line) => line.startsWith("data: "));
  const message = JSON.parse(data ? data.slice(6) : text) as { result: { content: Array<{ text: string }> } };
  return JSON.parse(message.result.content[0]!.text);
}

describe("MCP delivery", () => {
  it("a claim_task the client cancels while it waits ends at once and claims nothing", async () => {
    t = await startTestServer();
    const session = await openSession(t.url);
    post(t.url, session, toolCall(7, "claim_task", { queues: ["work"], waitMs: 20_000 }));
    await vi.waitFor(() => expect(t!.server.services.waiters.claims.size).toBe(1), { timeout: 10_000 });
    const cancelled = post(t.url, session, { jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 7, reason: "the user stopped it" } });
    await cancelled.text;
    await vi.waitFor(() => expect(t!.server.services.waiters.claims.size).toBe(0), { timeout: 10_000 });

    const task = await t.api.tasks.enqueue.mutate({ queue: "work" });
    expect(await t.api.tasks.get.query({ taskId: task.id })).toMatchObject({ status: "pending", attempts: 0 });
    const claimed = await t.api.tasks.claim.mutate({ agentId: "other", queues: ["work"] });
    expect([claimed?.id, claimed?.attempts]).toEqual([task.id, 1]);
  });

  it("a cancel that comes after the answer went out (its host drops that answer) gives back what the answer handed out: a claim_task's task, a complete_task's next", async () => {
    t = await startTestServer();
    const session = await openSession(t.url);
    const [first, second] = await t.api.tasks.enqueueMany.mutate({ tasks: [{ queue: "late" }, { queue: "late" }] });
    const cancel = async (requestId: number) => post(t!.url, session, { jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId, reason: "timed out" } }).text;
    const released = async (taskId: string) => (await t!.api.tasks.events.query({ taskId })).filter((e) => e.type === "task.released").length;
    // The answer arrives whole; the host had cancelled meanwhile and drops it.
    const claimed = toolAnswer(await post(t.url, session, toolCall(41, "claim_task", { queues: ["late"] })).text);
    expect(claimed).toMatchObject({ id: first!.id, leaseToken: 1 });
    await cancel(41);
    await vi.waitFor(async () => expect(await t!.api.tasks.get.query({ taskId: first!.id })).toMatchObject({ status: "pending", attempts: 0, leaseOwner: null }), { timeout: 15_000, interval: 25 });
    // A complete_task with next: the complete stands, the next task goes back.
    const again = toolAnswer(await post(t.url, session, toolCall(42, "claim_task", { queues: ["late"] })).text);
    const done = toolAnswer(await post(t.url, session, toolCall(43, "complete_task", { taskId: again.id, leaseToken: again.leaseToken, result: "ok", next: { queues: ["late"] } })).text);
    expect(done.next).toMatchObject({ leaseToken: 1 });
    await cancel(43);
    await vi.waitFor(async () => expect(await t!.api.tasks.get.query({ taskId: done.next.id })).toMatchObject({ status: "pending", attempts: 0 }), { timeout: 15_000, interval: 25 });
    expect(await t.api.tasks.get.query({ taskId: again.id })).toMatchObject({ status: "completed", result: "ok" });
    // A cancel of a request that handed out nothing, or one sent again, changes nothing more.
    await cancel(43);
    await cancel(42);
    expect([await released(first!.id), await released(second!.id)]).toEqual([1, 1]);
  });

  it("a server shutting down answers the tool calls under way (a waiting claim_task: SHUTTING_DOWN) before it ends their sessions", async () => {
    // An open notification stream must not hold the stop until the drain's timeout.
    t = await startTestServer({ shutdownTimeoutMs: 60_000 });
    const session = await openSession(t.url);
    const stream = await fetch(`${t.url}/mcp`, { headers: { "x-agent-id": "llm", accept: "text/event-stream", "mcp-session-id": session } });
    expect(stream.status).toBe(200);
    const waiting = post(t.url, session, toolCall(7, "claim_task", { queues: ["work"], waitMs: 20_000 }));
    await vi.waitFor(() => expect(t!.server.services.waiters.claims.size).toBe(1), { timeout: 10_000 });
    const stopped = t.server.stop();
    const timeout = new Promise((resolve) => setTimeout(resolve, 45_000, "drain timed out"));
    // The stream ends (cleanly) with the shutdown, and the stop does not wait for it.
    expect(await Promise.race([stream.text().then(() => "stream ended"), timeout])).toBe("stream ended");
    // Answered (the tool's error: retry elsewhere or after the restart), not a connection closed without an answer.
    expect(toolAnswer(await waiting.text)).toMatchObject({ code: "SHUTTING_DOWN" });
    expect(await Promise.race([stopped.then(() => "stopped"), timeout])).toBe("stopped");
  });

  it("a read_mailbox whose connection drops while it waits ends and leaves the next message unread", async () => {
    t = await startTestServer();
    const session = await openSession(t.url);
    const waiting = post(t.url, session, toolCall(8, "read_mailbox", { waitMs: 20_000 }));
    await vi.waitFor(() => expect(t!.server.services.waiters.polls.size).toBe(1), { timeout: 10_000 });
    waiting.drop();
    await vi.waitFor(() => expect(t!.server.services.waiters.polls.size).toBe(0), { timeout: 10_000 });

    await t.api.events.publish.mutate({ type: "note.sent", source: "boss", target: "llm", payload: { text: "call me" } });
    const read = toolAnswer(await post(t.url, session, toolCall(9, "read_mailbox", {})).text);
    expect(read.map((event: { type: string; payload: unknown }) => [event.type, event.payload])).toEqual([["note.sent", { text: "call me" }]]);
  });

  it("a batch holding a call that takes something (claim_task, read_mailbox, complete_task with next) is refused whole, taking nothing; other batches run", async () => {
    // The SDK writes each answer of a batch to the stream as it is ready, but the response is known
    // delivered only once it finished: a claim the client read before it left was given back, and
    // ran twice (a fresh-eyes review). Such a call goes alone.
    t = await startTestServer();
    const session = await openSession(t.url);
    const task = await t.api.tasks.enqueue.mutate({ queue: "work" });
    await t.api.events.publish.mutate({ type: "note.sent", source: "boss", target: "llm", payload: { text: "call me" } });
    const other = await t.api.tasks.enqueue.mutate({ queue: "held" });
    const held = (await t.api.tasks.claim.mutate({ agentId: "llm", queues: ["held"] }))!;
    const batches = [
      [toolCall(10, "claim_task", { queues: ["work"] }), toolCall(11, "get_task", { taskId: task.id })],
      [toolCall(12, "queue_stats", {}), toolCall(13, "read_mailbox", {})],
      [toolCall(14, "complete_task", { taskId: other.id, leaseToken: held.leaseToken, result: "ok", next: { queues: ["work"] } }), toolCall(15, "queue_stats", {})],
    ];
    for (const batch of batches) {
      const response = await fetch(`${t.url}/mcp`, { method: "POST", headers: { ...HEADERS, "mcp-session-id": session }, body: JSON.stringify(batch) });
      const taking = (batch.find((call) => ["claim_task", "read_mailbox", "complete_task"].includes(call.params.name)) as { params: { name: string } }).params.name;
      expect([response.status, ((await response.json()) as { error: { message: string } }).error.message]).toEqual([400, expect.stringMatching(new RegExp(`^${taking} cannot be sent in a batch`))]);
    }
    // Nothing was taken: the task unclaimed, the message unread, the held task not completed.
    expect(await t.api.tasks.get.query({ taskId: task.id })).toMatchObject({ status: "pending", attempts: 0 });
    expect(await t.api.tasks.get.query({ taskId: other.id })).toMatchObject({ status: "claimed", leaseToken: held.leaseToken });
    const read = toolAnswer(await post(t.url, session, toolCall(16, "read_mailbox", {})).text);
    expect(read.map((event: { payload: unknown }) => event.payload)).toEqual([{ text: "call me" }]);
    // A batch without one runs (complete_task without next takes nothing), and a claim alone does.
    const both = await post(t.url, session, [toolCall(17, "get_task", { taskId: task.id }), toolCall(18, "complete_task", { taskId: other.id, leaseToken: held.leaseToken, result: "ok", next: null })]).text;
    expect(both).toContain('\\"status\\":\\"completed\\"');
    expect(toolAnswer(await post(t.url, session, toolCall(19, "claim_task", { queues: ["work"] })).text)).toMatchObject({ id: task.id, leaseToken: 1 });
  });

  // The cancel crosses the answer on the wire: the answer was written but is still being read
  // (larger than the socket buffers hold), so its delivery is not decided when the cancel comes;
  // once it arrives, what it handed out goes back as for a cancel after it (a reviewer's case).
  it("a cancel that comes while a large answer is still on its way gives back what it handed out once the answer arrived", async () => {
    // Answers of megabytes, as a host that takes them would have them (mcpMaxAnswerChars at its most).
    t = await startTestServer({ maxBodyBytes: 16 * 1024 * 1024, mcpMaxAnswerChars: 100_000_000 });
    // More than the kernel's socket buffers hold (a few MB): the response finishes only once the client reads it.
    const task = await t.api.tasks.enqueue.mutate({ queue: "big", payload: { blob: "x".repeat(12 * 1024 * 1024) } });
    const session = await openSession(t.url);
    const url = new URL(`${t.url}/mcp`);
    const body = JSON.stringify(toolCall(51, "claim_task", { queues: ["big"] }));
    let started!: () => void;
    const reading = new Promise<void>((resolve) => (started = resolve));
    let resume!: () => void;
    const whole = new Promise<string>((resolve, reject) => {
      const req = request({ host: url.hostname, port: url.port, path: url.pathname, method: "POST", agent: false, headers: { ...HEADERS, "mcp-session-id": session, "content-length": Buffer.byteLength(body) } }, (res) => {
        const chunks: Buffer[] = [];
        // The first bytes of the answer, then the client stops reading for a while.
        res.once("data", (chunk: Buffer) => {
          chunks.push(chunk);
          res.pause();
          resume = () => {
            res.on("data", (more: Buffer) => chunks.push(more));
            res.on("end", () => resolve(Buffer.concat(chunks).toString()));
            res.resume();
          };
          started();
        });
        res.on("error", reject);
      });
      req.on("error", reject);
      req.end(body);
    });
    await reading;
    // The host timed out and cancels: the cancel crosses the answer.
    expect(await post(t.url, session, { jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 51, reason: "timed out" } }).text).toBe("");
    expect(await t.api.tasks.get.query({ taskId: task.id })).toMatchObject({ status: "claimed", attempts: 1 });
    // The answer arrives whole; the host drops it, having cancelled: the lease goes back uncharged.
    resume();
    expect(await whole).toContain(task.id);
    await vi.waitFor(async () => expect(await t!.api.tasks.get.query({ taskId: task.id })).toMatchObject({ status: "pending", attempts: 0, leaseOwner: null }), { timeout: 20_000, interval: 50 });
  });
});
