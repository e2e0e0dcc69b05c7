// MCP sessions end when their credential is revoked, when idle, and past a per-agent cap: each is
// an MCP server and an event listener, so neither a revoked token nor a client that never
// deletes its sessions keeps one. Spoken over plain HTTP, as any MCP client speaks it.
import { connect, type Socket } from "node:net";
import { afterEach, describe, expect, it, vi } from "vitest";
import { MCP_INITIALIZE, mcpPostHeaders, openMcpSession, parkedLongPolls, postToolCall } from "./helpers/mcp-http.js";
import { ADMIN_SECRET, startSecureServer } from "./helpers/secure-server.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
const streams: AbortController[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const stream of streams.splice(0)) stream.abort();
  for (const socket of sockets.splice(0)) socket.destroy();
  await t?.stop({ removeFiles: true });
  t = undefined;
});

/** A request in the session (tools/list): its status, 200 while the session lives, 404 once it ended. */
async function listTools(url: string, id: string, headers: Record<string, string>): Promise<number> {
  const response = await fetch(`${url}/mcp`, {
    method: "POST",
    headers: { ...mcpPostHeaders(headers), "mcp-session-id": id },
    body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/list" }),
  });
  await response.text();
  return response.status;
}

/** The session's notification stream (GET): the text read from it so far, and whether it ended. */
async function openStream(url: string, id: string, headers: Record<string, string>): Promise<{ text: () => string; ended: () => boolean }> {
  const controller = new AbortController();
  streams.push(controller);
  const response = await fetch(`${url}/mcp`, { headers: { ...headers, accept: "text/event-stream", "mcp-session-id": id }, signal: controller.signal });
  expect(response.status).toBe(200);
  let text = "";
  let ended = false;
  void (async () => {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of response.body!) text += decoder.decode(chunk as Uint8Array, { stream: true });
    } catch {
      // aborted by the test
    }
    ended = true;
  })();
  return { text: () => text, ended: () => ended };
}

/** The coordination_mcp_sessions gauge, by state. */
async function sessionGauge(url: string, token?: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${url}/metrics`, { headers: token ? { authorization: `Bearer ${token}` } : {} })).text();
  return Object.fromEntries([...text.matchAll(/^coordination_mcp_sessions\{state="(\w+)"\} (\d+)$/gm)].map(([, state, n]) => [state!, Number(n)]));
}

describe("MCP sessions", () => {
  it("a revoked token's session ends: its notification stream closes before a message sent after the revocation", async () => {
    const s = await startSecureServer();
    t = s;
    const issued = await s.admin.tokens.create.mutate({ role: "agent", agentId: "w2" });
    const headers = { authorization: `Bearer ${issued.secret}` };
    const id = await openMcpSession(s.url, headers);
    const stream = await openStream(s.url, id, headers);
    // The stream is live once a direct message comes through it.
    await vi.waitFor(async () => {
      await s.admin.events.publish.mutate({ type: "dm", source: "admin", target: "w2", payload: { msg: "before" } });
      expect(stream.text()).toContain('"msg":"before"');
    }, { timeout: 10_000, interval: 200 });

    await s.admin.tokens.revoke.mutate({ tokenId: issued.token.id });
    await vi.waitFor(() => expect(stream.ended()).toBe(true), { timeout: 10_000 });
    await s.admin.events.publish.mutate({ type: "dm", source: "admin", target: "w2", payload: { msg: "after-revoke" } });
    expect(stream.text()).not.toContain("after-revoke");
    expect(await listTools(s.url, id, headers)).toBe(401);
    expect(await sessionGauge(s.url, ADMIN_SECRET)).toEqual({ open: 0, streaming: 0 });
  });

  it("a tool call under way when its token is revoked is answered (an isError 401), then the session ends", async () => {
    const s = await startSecureServer();
    t = s;
    const issued = await s.admin.tokens.create.mutate({ role: "agent", agentId: "w3" });
    const headers = { authorization: `Bearer ${issued.secret}` };
    const id = await openMcpSession(s.url, headers);
    const call = postToolCall(s.url, headers, id, 7, "claim_task", { queues: ["never"], waitMs: 15_000 });
    await vi.waitFor(async () => expect(await parkedLongPolls(s.url, "claim", ADMIN_SECRET)).toBe(1), { timeout: 10_000, interval: 50 });

    await s.admin.tokens.revoke.mutate({ tokenId: issued.token.id });
    // Answered, not dropped: the client (a model's tool call) is not left waiting for its own timeout.
    const answer = JSON.parse(/^data: (.*)$/m.exec(await call)![1]!) as { id: number; result: { isError: boolean; content: Array<{ text: string }> } };
    expect(answer.id).toBe(7);
    expect(answer.result.isError).toBe(true);
    expect(answer.result.content[0]!.text).toContain("UNAUTHORIZED");
    await vi.waitFor(async () => expect(await sessionGauge(s.url, ADMIN_SECRET)).toEqual({ open: 0, streaming: 0 }), { timeout: 10_000, interval: 50 });
    expect(await listTools(s.url, id, headers)).toBe(401);
  });

    it("a client that deletes its session while a long-poll is under way gets that call answered (an isError SHUTTING_DOWN), and the long-poll took nothing", async () => {
    t = await startTestServer();
    const headers = { "x-agent-id": "deleter" };
    const id = await openMcpSession(t.url, headers);
    const call = postToolCall(t.url, headers, id, 9, "claim_task", { queues: ["later"], waitMs: 15_000 });
    await vi.waitFor(async () => expect(await parkedLongPolls(t!.url, "claim")).toBe(1), { timeout: 10_000, interval: 50 });

    const deleted = await fetch(`${t.url}/mcp`, { method: "DELETE", headers: { ...headers, "mcp-session-id": id } });
    expect(deleted.status).toBe(200);
    const answer = JSON.parse(/^data: (.*)$/m.exec(await call)![1]!) as { id: number; result: { isError: boolean; content: Array<{ text: string }> } };
    expect(answer.id).toBe(9);
    expect(answer.result.isError).toBe(true);
    expect(JSON.parse(answer.result.content[0]!.text)).toMatchObject({ code: "SHUTTING_DOWN", message: expect.stringMatching(/^this MCP session was deleted by its client while the call was under way/) });
    expect(await parkedLongPolls(t.url, "claim")).toBe(0);
    expect(await sessionGauge(t.url)).toEqual({ open: 0, streaming: 0 });
    expect(await listTools(t.url, id, headers)).toBe(404);
    // The claim stopped waiting: a task enqueued now is nobody's.
    const task = await t.api.tasks.enqueue.mutate({ queue: "later" });
    expect(await t.api.tasks.get.query({ taskId: task.id })).toMatchObject({ status: "pending", attempts: 0 });
  });

  // A guard more than a reproduction: Node counts a response finished once the socket took its
  // bytes, so the window in which a delete could cancel an answer already going out is short.
  it("a delete that comes while a claim's answer is going out leaves that answer standing: the lease stays the client's, it is not given back", async () => {
    // Answers of megabytes, as a host that takes them would have them (mcpMaxAnswerChars at its most).
    t = await startTestServer({ maxBodyBytes: 16 * 1024 * 1024, mcpMaxAnswerChars: 100_000_000 });
    const headers = { "x-agent-id": "slow-reader" };
    const id = await openMcpSession(t.url, headers);
    // An answer of some MB: the client reads its first part, then stops reading until the delete was taken.
    const task = await t.api.tasks.enqueue.mutate({ queue: "big", payload: { blob: "x".repeat(8 * 1024 * 1024) } });
    const { hostname, port } = new URL(t.url);
    const socket = connect(Number(port), hostname);
    sockets.push(socket);
    await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
    const body = JSON.stringify({ jsonrpc: "2.0", id: 4, method: "tools/call", params: { name: "claim_task", arguments: { queues: ["big"] } } });
    const requestHead = Object.entries({ ...mcpPostHeaders(headers), "mcp-session-id": id, host: `${hostname}:${port}`, "content-length": String(Buffer.byteLength(body)) })
      .map(([name, value]) => `${name}: ${value}`)
      .join("\r\n");
    const chunks: Buffer[] = [];
    // The answer's first part (the stream's headers go out before the tool runs): the claim's answer is being written.
    const answerBegun = new Promise<void>((resolve) => {
      let received = 0;
      const onData = (chunk: Buffer) => {
        chunks.push(chunk);
        received += chunk.length;
        if (received < 64 * 1024) return;
        socket.pause();
        socket.off("data", onData);
        resolve();
      };
      socket.on("data", onData);
    });
    socket.write(`POST /mcp HTTP/1.1\r\n${requestHead}\r\n\r\n${body}`);
    await answerBegun;

    const deleted = fetch(`${t.url}/mcp`, { method: "DELETE", headers: { ...headers, "mcp-session-id": id } });
    // The delete was taken (the session takes no more requests) while the answer is still being written.
    await vi.waitFor(async () => expect(await listTools(t!.url, id, headers)).toBe(404), { timeout: 10_000, interval: 25 });
    const ended = new Promise<void>((resolve) => socket.once("end", () => resolve()));
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.resume();
    expect((await deleted).status).toBe(200);
    socket.end();
    await ended;
    const text = Buffer.concat(chunks).toString();
    const answer = JSON.parse(/^data: (.*)$/m.exec(text)![1]!) as { id: number; result: { isError?: boolean; content: Array<{ text: string }> } };
    expect(answer.result.isError).toBeUndefined();
    const claimed = JSON.parse(answer.result.content[0]!.text) as { id: string; leaseToken: number };
    expect(claimed).toMatchObject({ id: task.id, leaseToken: 1 });
    expect(await t.api.tasks.get.query({ taskId: task.id })).toMatchObject({ status: "claimed", leaseOwner: "slow-reader", leaseToken: 1 });
  });

  it("a delete refused for its protocol version changes nothing; twelve long-polls of one session all answered at its delete, without a listener warning", async () => {
    t = await startTestServer();
    const headers = { "x-agent-id": "many-calls" };
    const id = await openMcpSession(t.url, headers);
    const refused = await fetch(`${t.url}/mcp`, { method: "DELETE", headers: { ...headers, "mcp-session-id": id, "mcp-protocol-version": "1999-01-01" } });
    expect(refused.status).toBe(400);
    expect(await listTools(t.url, id, headers)).toBe(200);

    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(warning.name);
    process.on("warning", onWarning);
    try {
      const calls = Array.from({ length: 12 }, (_, n) => postToolCall(t!.url, headers, id, 100 + n, "read_mailbox", { waitMs: 15_000 }));
      await vi.waitFor(async () => expect(await parkedLongPolls(t!.url, "poll")).toBe(12), { timeout: 10_000, interval: 50 });
      expect((await fetch(`${t.url}/mcp`, { method: "DELETE", headers: { ...headers, "mcp-session-id": id } })).status).toBe(200);
      for (const text of await Promise.all(calls)) {
        const answer = JSON.parse(/^data: (.*)$/m.exec(text)![1]!) as { result: { isError: boolean; content: Array<{ text: string }> } };
        expect([answer.result.isError, JSON.parse(answer.result.content[0]!.text).code]).toEqual([true, "SHUTTING_DOWN"]);
      }
      expect(await sessionGauge(t.url)).toEqual({ open: 0, streaming: 0 });
    } finally {
      process.off("warning", onWarning);
    }
    expect(warnings).toEqual([]);
  });

  it("with no credentials, open sessions end when credentials become required", async () => {
    t = await startTestServer();
    const id = await openMcpSession(t.url, { "x-agent-id": "open-agent" });
    const stream = await openStream(t.url, id, {});
    expect(await sessionGauge(t.url)).toEqual({ open: 1, streaming: 1 });
    await t.api.tokens.create.mutate({ role: "admin" });
    await vi.waitFor(() => expect(stream.ended()).toBe(true), { timeout: 10_000 });
  });

  it("a session with no request and no open stream for mcpSessionIdleMs ends; one holding its stream stays", async () => {
    t = await startTestServer({ mcpSessionIdleMs: 1500 });
    const idle = await openMcpSession(t.url, { "x-agent-id": "idle-agent" });
    const listening = await openMcpSession(t.url, { "x-agent-id": "listening-agent" });
    const stream = await openStream(t.url, listening, {});
    // Watched through the gauge: a request in the session would keep it alive.
    await vi.waitFor(async () => expect(await sessionGauge(t!.url)).toEqual({ open: 1, streaming: 1 }), { timeout: 10_000, interval: 100 });
    expect(await listTools(t.url, idle, {})).toBe(404);
    // Three idle periods later the listening one lives (the sweep may be late, never early).
    await new Promise((resolve) => setTimeout(resolve, 4500));
    expect(stream.ended()).toBe(false);
    expect(await listTools(t.url, listening, {})).toBe(200);
    expect(await sessionGauge(t.url)).toEqual({ open: 1, streaming: 1 });
  });

  it("past maxMcpSessionsPerAgent the agent's least recently used session ends; other agents' stay", async () => {
    t = await startTestServer({ maxMcpSessionsPerAgent: 2 });
    const other = await openMcpSession(t.url, { "x-agent-id": "b" });
    const first = await openMcpSession(t.url, { "x-agent-id": "a" });
    const second = await openMcpSession(t.url, { "x-agent-id": "a" });
    // Used after the second: the second is now the least recently used.
    expect(await listTools(t.url, first, {})).toBe(200);
    const third = await openMcpSession(t.url, { "x-agent-id": "a" });
    expect(await listTools(t.url, second, {})).toBe(404);
    expect([await listTools(t.url, first, {}), await listTools(t.url, third, {}), await listTools(t.url, other, {})]).toEqual([200, 200, 200]);
    // A thousand initialize requests leave two sessions for the agent.
    for (let n = 0; n < 1000; n++) await openMcpSession(t.url, { "x-agent-id": "a" });
    expect(await sessionGauge(t.url)).toEqual({ open: 3, streaming: 0 });
  });

  it("past maxMcpSessions in all (each initialize naming another agent) the least recently used session ends", async () => {
    t = await startTestServer({ maxMcpSessions: 3 });
    const [a, b, c] = [await openMcpSession(t.url, { "x-agent-id": "a" }), await openMcpSession(t.url, { "x-agent-id": "b" }), await openMcpSession(t.url, { "x-agent-id": "c" })];
    expect(await listTools(t.url, a, {})).toBe(200);
    const d = await openMcpSession(t.url, { "x-agent-id": "d" });
    expect([await listTools(t.url, b, {}), await listTools(t.url, a, {}), await listTools(t.url, c, {}), await listTools(t.url, d, {})]).toEqual([404, 200, 200, 200]);
    for (let n = 0; n < 300; n++) await openMcpSession(t.url, { "x-agent-id": `agent-${n}` });
    expect(await sessionGauge(t.url)).toEqual({ open: 3, streaming: 0 });
  });

  it("a session with a request under way is never ended for the cap: a new one is a 429 until the request is answered", async () => {
    t = await startTestServer({ maxMcpSessionsPerAgent: 1 });
    const headers = { "x-agent-id": "busy-agent" };
    const busy = await openMcpSession(t.url, headers);
    // A long-poll claim in flight on the session.
    const claiming = postToolCall(t.url, headers, busy, 7, "claim_task", { queues: ["later"], waitMs: 20_000 });
    await vi.waitFor(() => expect(t!.server.services.waiters.claims.size).toBe(1), { timeout: 10_000 });
    const refused = await fetch(`${t.url}/mcp`, { method: "POST", headers: mcpPostHeaders(headers), body: JSON.stringify(MCP_INITIALIZE) });
    expect(refused.status).toBe(429);
    expect(((await refused.json()) as { error: { message: string } }).error.message).toBe(
      "1 MCP sessions of this agent are all handling a request (maxMcpSessionsPerAgent); retry, or delete one",
    );
    // The claim's answer, with its lease token, reaches the client.
    const task = await t.api.tasks.enqueue.mutate({ queue: "later" });
    const answered = await claiming;
    expect(answered).toContain(task.id);
    expect(answered).toContain("leaseToken");
    // Idle now: the next session takes its place.
    const next = await openMcpSession(t.url, headers);
    expect([await listTools(t.url, busy, {}), await listTools(t.url, next, {})]).toEqual([404, 200]);
  });

  it("a client that stops reading its notification stream has it closed past mcpStreamBufferBytes; its messages stay in the mailbox", async () => {
    t = await startTestServer({ mcpStreamBufferBytes: 65_536 });
    const id = await openMcpSession(t.url, { "x-agent-id": "asleep" });
    // The stream's GET on a socket that reads nothing once the answer's head arrived (a laptop asleep).
    const { port } = new URL(t.url);
    const socket = connect(Number(port), "127.0.0.1");
    sockets.push(socket);
    socket.write(`GET /mcp HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\naccept: text/event-stream\r\nmcp-session-id: ${id}\r\n\r\n`);
    await new Promise<void>((resolve) => socket.once("data", () => resolve()));
    socket.pause();
    await vi.waitFor(async () => expect(await sessionGauge(t!.url)).toEqual({ open: 1, streaming: 1 }), { timeout: 10_000, interval: 100 });
    // 100 KB messages until the kernel's buffers are full and the server's own holds the limit:
    // without the bound, every message sent to the agent stayed in memory while the socket lived.
    const text = "x".repeat(100_000);
    let sent = 0;
    while ((await sessionGauge(t.url)).streaming === 1) {
      expect(sent).toBeLessThan(2000);
      await t.api.events.publish.mutate({ type: "dm", source: "admin", target: "asleep", payload: { n: sent++, text } });
    }
    // Closed, not the session: it answers, and every message is in the mailbox, in order.
    expect(await listTools(t.url, id, {})).toBe(200);
    const read: number[] = [];
    for (let batch = await t.api.events.poll.mutate({ agentId: "asleep", limit: 1000 }); batch.length > 0; batch = await t.api.events.poll.mutate({ agentId: "asleep", limit: 1000 })) {
      read.push(...batch.map((event) => (event.payload as { n: number }).n));
    }
    expect(read).toEqual([...Array(sent).keys()]);
  });

  it("an initialize the SDK refuses leaves no session and no listener behind", async () => {
    t = await startTestServer();
    const listeners = t.server.services.bus.listenerCount;
    // No Accept naming text/event-stream: the SDK answers 406 before any session exists.
    for (let n = 0; n < 20; n++) {
      const refused = await fetch(`${t.url}/mcp`, { method: "POST", headers: { "x-agent-id": "a", "content-type": "application/json", accept: "application/json" }, body: JSON.stringify(MCP_INITIALIZE) });
      expect(refused.status).toBe(406);
      await refused.text();
    }
    expect(t.server.services.bus.listenerCount).toBe(listeners);
    expect(await sessionGauge(t.url)).toEqual({ open: 0, streaming: 0 });
  });
});
