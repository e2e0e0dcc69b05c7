// What LLM hosts send to MCP tools that is not quite what the schemas say, though its meaning is
// plain: null for the fields a strict function-calling mode made the model fill in, null for no
// arguments, agent ids outside ASCII in the X-Agent-Id header. Each is read as meant, or refused
// saying what is wrong; never a protocol "Internal error" with a dump of the SDK's schema.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { afterEach, describe, expect, it } from "vitest";
import { callTool, closeMcpClients, connectMcp, trackMcpClient } from "./helpers/mcp-client.js";
import { CLI_PATH, killAllCli } from "./helpers/cli-process.js";
import { MCP_INITIALIZE, mcpPostHeaders, openMcpSession } from "./helpers/mcp-http.js";
import { startSecureServer } from "./helpers/secure-server.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
afterEach(async () => {
  await closeMcpClients();
  await t?.stop({ removeFiles: true });
  t = undefined;
  await killAllCli();
});

/** The header value a client sends for `text`: its UTF-8 bytes, one character each (what a header carries). */
const headerOf = (text: string): string => Buffer.from(text, "utf8").toString("latin1");



/** A session opened by hand, for messages the SDK's client would not send: each POST's status and JSON-RPC answer. */
async function rawSession(url: string, agentId: string) {
  const headers = { "x-agent-id": agentId };
  const session = await openMcpSession(url, headers);
  return async (message: unknown): Promise<{ status: number; answer: any }> => {
    const response = await fetch(`${url}/mcp`, { method: "POST", headers: { ...mcpPostHeaders(headers), "mcp-session-id": session }, body: JSON.stringify(message) });
    const text = await response.text();
    // An SSE answer carries the JSON-RPC message on its data line; a JSON one is the body.
    const data = text.split("\n").find((line) => line.startsWith("data: "));
    return { status: response.status, answer: text === "" ? undefined : JSON.parse(data === undefined ? text : data.slice(6)) };
  };
}

describe("null where a field is left out", () => {
  it("optional fields sent as null are left out, nested ones too; a payload or result of null stays null; a required field's null is refused by name", async () => {
    t = await startTestServer();
    const client = await connectMcp(t.url, { "x-agent-id": "strict-model" });
    // Every field filled in, as a strict function-calling mode makes a model do.
    const enqueued = await callTool(client, "enqueue_task", {
      queue: null,
      payload: null,
      priority: null,
      capability: null,
      targetAgentId: null,
      delayMs: null,
      maxAttempts: null,
      idempotencyKey: null,
    });
    expect(enqueued).toMatchObject({ queue: "default", payload: null, priority: 5, capability: null, targetAgentId: null, maxAttempts: 3, idempotencyKey: null, status: "pending" });
    const second = await callTool(client, "enqueue_task", { queue: "default", payload: { n: 2 }, priority: null, capability: null, targetAgentId: null, delayMs: null, maxAttempts: null, idempotencyKey: null });

    const claimed = await callTool(client, "claim_task", { agentId: null, queues: null, capabilities: null, leaseMs: null, waitMs: null, context: null });
    expect(claimed).toMatchObject({ id: enqueued.id, leaseOwner: "strict-model", status: "claimed" });
    const done = await callTool(client, "complete_task", {
      agentId: null,
      taskId: claimed.id,
      leaseToken: claimed.leaseToken,
      result: null,
      next: { queues: null, capabilities: null, leaseMs: null, context: null },
    });
    expect(done.completed).toMatchObject({ id: enqueued.id, status: "completed", result: null });
    expect(done.next).toMatchObject({ id: second.id, leaseOwner: "strict-model" });
    expect(await callTool(client, "queue_stats", { queue: null, limit: null })).toMatchObject({ totals: { completed: 1, claimed: 1 } });

    expect(await callTool(client, "get_task", { taskId: null })).toEqual({
      error: "MCP error -32602: Input validation error: Invalid arguments for tool get_task: Invalid input: expected string, received null at taskId",
    });
  });
});

describe("arguments that are no object", () => {
  it("arguments null is a call with none; a string or a list is -32602 saying what arguments must be", async () => {
    t = await startTestServer();
    const post = await rawSession(t.url, "raw-host");
    const none = await post({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "queue_stats", arguments: null } });
    expect(none.answer.error).toBeUndefined();
    expect(JSON.parse(none.answer.result.content[0].text)).toMatchObject({ totals: { pending: 0 } });
    // A tool with a required field, called with none: the tool error names the field.
    const missing = await post({ jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "get_task", arguments: null } });
    expect(missing.answer.result.isError).toBe(true);
    expect(missing.answer.result.content[0].text).toMatch(/taskId/);

    // A "__proto__" key is refused by name, not dropped on the way (the call would run without it).
    const proto = await post(JSON.parse('{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"queue_stats","arguments":{"__proto__":{"limit":1}}}}'));
    expect(proto).toEqual({
      status: 200,
      answer: { jsonrpc: "2.0", id: 6, error: { code: -32602, message: "Invalid params: __proto__ is a key tRPC's wire format (superjson) refuses to carry; rename it" } },
    });
    // Inside a record argument too (register_agent's metadata), where the SDK's reading would drop it.
    const nested = await post(JSON.parse('{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"register_agent","arguments":{"metadata":{"__proto__":{"x":1},"a":1}}}}'));
    expect(nested.answer.error).toEqual({ code: -32602, message: "Invalid params: metadata.__proto__ is a key tRPC's wire format (superjson) refuses to carry; rename it" });

    for (const [id, given, kind] of [
      [3, "{\"queue\": \"x\"}", "a string"],
      [4, [1, 2], "a list"],
      [5, 7, "a number"],
    ] as const) {
      const refused = await post({ jsonrpc: "2.0", id, method: "tools/call", params: { name: "queue_stats", arguments: given } });
      expect(refused).toEqual({
        status: 200,
        answer: { jsonrpc: "2.0", id, error: { code: -32602, message: `Invalid params: arguments must be an object of the tool's named arguments, or left out; it is ${kind}` } },
      });
    }
  });
});

describe("refused arguments in a JSON-RPC batch", () => {
  it("a call of a batch holding a \"__proto__\" key, or arguments that are no object, is refused as when sent alone; the batch's other calls run", async () => {
    t = await startTestServer();
    const headers = { "x-agent-id": "batching-host" };
    const session = await openMcpSession(t.url, headers);
    const batch = JSON.parse(
      "[" +
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"register_agent","arguments":{"capabilities":["x"],"metadata":{"__proto__":{"admin":true},"team":"a"}}}},' +
        '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"enqueue_task","arguments":{"queue":"q","payload":{"n":1}}}},' +
        '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"get_task","arguments":"not an object"}}' +
        "]",
    );
    const response = await fetch(`${t.url}/mcp`, { method: "POST", headers: { ...mcpPostHeaders(headers), "mcp-session-id": session }, body: JSON.stringify(batch) });
    expect(response.status).toBe(200);
    const answers = new Map<number, any>(
      (await response.text())
        .split("\n")
        .filter((line) => line.startsWith("data: "))
        .map((line) => JSON.parse(line.slice(6)) as { id: number })
        .map((answer) => [answer.id, answer]),
    );
    // The SDK's reading of a record drops a "__proto__" key: the agent was registered without it, and its call answered as done.
    expect(answers.get(1)).toEqual({ jsonrpc: "2.0", id: 1, error: { code: -32602, message: "Invalid params: metadata.__proto__ is a key tRPC's wire format (superjson) refuses to carry; rename it" } });
    await expect(t.api.agents.get.query({ agentId: "batching-host" })).resolves.toMatchObject({ capabilities: [], metadata: {} });
    // Arguments that are no object: the lone call's -32602, not the SDK's -32603 with a dump of its schema's issues.
    expect(answers.get(3)).toEqual({ jsonrpc: "2.0", id: 3, error: { code: -32602, message: "Invalid params: arguments must be an object of the tool's named arguments, or left out; it is a string" } });
    // The other call of the batch ran.
    expect(JSON.parse(answers.get(2).result.content[0].text)).toMatchObject({ queue: "q", payload: { n: 1 }, status: "pending" });
  });
});

describe("agent ids outside ASCII", () => {
  it("X-Agent-Id is read as UTF-8: the session acts as that agent; bytes that are not UTF-8 are a 400 naming the header", async () => {
    t = await startTestServer();
    const client = await connectMcp(t.url, { "x-agent-id": headerOf("日本-agent") });
    await t.api.tasks.enqueue.mutate({ queue: "jp" });
    expect(await callTool(client, "claim_task", { queues: ["jp"], agentId: "日本-agent" })).toMatchObject({ leaseOwner: "日本-agent" });
    expect((await t.api.agents.get.query({ agentId: "日本-agent" })).agentId).toBe("日本-agent");

    const refused = await fetch(`${t.url}/mcp`, {
      method: "POST",
      headers: mcpPostHeaders({ "x-agent-id": "caf\u00e9" }),
      body: JSON.stringify(MCP_INITIALIZE),
    });
    expect(refused.status).toBe(400);
    expect(((await refused.json()) as { error: { message: string } }).error.message).toBe("X-Agent-Id: its bytes are not UTF-8 text");
  });

  it("the stdio relay's --agent outside ASCII acts as that agent", async () => {
    t = await startTestServer();
    const client = new Client({ name: "desktop", version: "1.0.0" });
    await client.connect(new StdioClientTransport({ command: process.execPath, args: [CLI_PATH, "mcp", "--url", t.url, "--agent", "Ünïcode-агент"], stderr: "pipe" }));
    trackMcpClient(client);
    await t.api.tasks.enqueue.mutate({ queue: "uni" });
    expect(await callTool(client, "claim_task", { queues: ["uni"] })).toMatchObject({ leaseOwner: "Ünïcode-агент" });
  });
});

describe("a read credential's session", () => {
  it("reading coordination://tasks/mine says a read session acts as no agent, not that a task is missing", async () => {
    const s = await startSecureServer();
    t = s;
    const reader = await connectMcp(s.url, { authorization: `Bearer ${await s.issue("read")}` });
    const error = (await reader.readResource({ uri: "coordination://tasks/mine" }).then(
      () => undefined,
      (e: unknown) => e,
    )) as { code: number; data: { code: string; message: string } };
    expect([error.code, error.data.code, error.data.message]).toEqual([
      -32602,
      "INVALID_INPUT",
      "uri: coordination://tasks/mine lists the tasks of the session's agent, and a read credential's session acts as no agent",
    ]);
  });
});
