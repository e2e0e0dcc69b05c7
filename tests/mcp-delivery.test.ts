// An MCP tool call that takes something for its agent (claim_task, read_mailbox, complete_task
// with next) takes nothing for a client that is gone: a request cancelled or a connection dropped
// while it waits ends the wait, and what was taken for an answer that never arrived is given back,
// as over REST, tRPC and WebSocket (src/delivery/). Spoken over plain HTTP, as any MCP client.
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

  it("a claim answered into a response that closes before it finished is given back, uncharged", async () => {
    t = await startTestServer();
    const session = await openSession(t.url);
    const task = await t.api.tasks.enqueue.mutate({ queue: "work" });
    // One POST, two requests: the response finishes only once both are answered. The claim takes
    // the task at once; the mailbox read waits; the connection drops before the response finished.
    const both = post(t.url, session, [toolCall(10, "claim_task", { queues: ["work"] }), toolCall(11, "read_mailbox", { waitMs: 20_000 })]);
    // The two run side by side: the read may park before the claim's write commits (it did, on a busy machine).
    await vi.waitFor(
      async () => {
        expect(t!.server.services.waiters.polls.size).toBe(1);
        expect(await t!.api.tasks.get.query({ taskId: task.id })).toMatchObject({ status: "claimed", leaseOwner: "llm" });
      },
      { timeout: 10_000 },
    );
    both.drop();
    await vi.waitFor(async () => expect(await t!.api.tasks.get.query({ taskId: task.id })).toMatchObject({ status: "pending", attempts: 0 }), { timeout: 10_000 });
  });
});
