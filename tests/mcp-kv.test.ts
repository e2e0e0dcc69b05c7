// Shared state through MCP tools alone (get_key, set_key, delete_key, list_keys), tried with the
// SDK's own client over Streamable HTTP against a real server: the writes are the session's
// agent's, a compare-and-set that meets another version is a tool error naming VERSION_CONFLICT,
// and a watch (get_key with afterVersion) waits at most MCP_MAX_WAIT_MS a call, woken by a set from
// another client, and ends when its host cancels the call or deletes the session.
import { afterEach, describe, expect, it, vi } from "vitest";
import { callTool, closeMcpClients, connectMcp } from "./helpers/mcp-client.js";
import { mcpPostHeaders, openMcpSession, parkedLongPolls, postToolCall } from "./helpers/mcp-http.js";
import { ADMIN_SECRET, startSecureServer } from "./helpers/secure-server.js";
import { promptly, WAKE_ONLY } from "./helpers/task-waits.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";
import { MCP_MAX_WAIT_MS } from "../src/mcp/mcp-tools.js";

let t: TestServer | undefined;
afterEach(async () => {
  vi.restoreAllMocks();
  await closeMcpClients();
  await t?.stop({ removeFiles: true });
  t = undefined;
});

/** An ISO time, as a tool's JSON carries a Date. */
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/** Resolves once the server at `url` has `count` key watches parked. */
const watching = (url: string, count: number) => vi.waitFor(async () => expect(await parkedLongPolls(url, "watch")).toBe(count), { timeout: 15_000, interval: 20 });

/** A tools/call's answer in an SSE response body: its result (content, isError). */
function resultOf(body: string): { isError?: boolean; content: Array<{ text: string }> } {
  return (JSON.parse(/^data: (.*)$/m.exec(body)![1]!) as { result: { isError?: boolean; content: Array<{ text: string }> } }).result;
}

describe("shared state through MCP tools", () => {
  it("set_key writes as the session's agent, get_key reads it back, delete_key removes it; null fields of a strict host count as left out", async () => {
    t = await startTestServer();
    const client = await connectMcp(t.url, { "x-agent-id": "planner" });
    const { tools } = await client.listTools();
    // value is required (any JSON, null included); the rest may be left out.
    expect(tools.find((tool) => tool.name === "set_key")!.inputSchema.required).toEqual(["key", "value"]);
    expect(tools.find((tool) => tool.name === "get_key")!.inputSchema.required).toEqual(["key"]);

    expect(await callTool(client, "get_key", { key: "plans/repo-a" })).toEqual({ key: "plans/repo-a", entry: null });
    const written = await callTool(client, "set_key", { key: "plans/repo-a", value: { steps: ["read", "write"] } });
    expect(written).toEqual({ key: "plans/repo-a", value: { steps: ["read", "write"] }, version: 1, createdAt: expect.stringMatching(ISO), updatedAt: written.createdAt, updatedBy: "planner", expiresAt: null, ephemeralOwner: null });
    expect(await callTool(client, "get_key", { key: "plans/repo-a" })).toEqual({ key: "plans/repo-a", entry: written });
    // As a strict function-calling host sends it: every optional field null. A value of null stays null.
    const nulled = await callTool(client, "set_key", { key: "plans/repo-a", value: null, ifVersion: null, ttlMs: null });
    expect(nulled).toEqual({ ...written, value: null, version: 2, updatedAt: expect.stringMatching(ISO) });
    expect(await callTool(client, "get_key", { key: "plans/repo-a", afterVersion: null, waitMs: null })).toEqual({ key: "plans/repo-a", entry: nulled });
    const expiring = await callTool(client, "set_key", { key: "plans/repo-a", value: 3, ttlMs: 3_600_000 });
    expect([expiring.version, Date.parse(expiring.expiresAt) - Date.parse(expiring.updatedAt)]).toEqual([3, 3_600_000]);

    expect(await callTool(client, "delete_key", { key: "plans/repo-a", ifVersion: null })).toEqual({ deleted: true, entry: expiring });
    expect(await callTool(client, "get_key", { key: "plans/repo-a" })).toEqual({ key: "plans/repo-a", entry: null });
    expect(await callTool(client, "delete_key", { key: "plans/repo-a" })).toEqual({ deleted: false, entry: null });
    // A set sent again with its idempotencyKey (a host that lost the answer) is the one write.
    const keyed = await callTool(client, "set_key", { key: "keyed", value: 1, idempotencyKey: "call-1" });
    expect(await callTool(client, "set_key", { key: "keyed", value: 1, idempotencyKey: "call-1" })).toEqual(keyed);
    const events = await t.api.events.list.query({ types: ["kv.*"], limit: 10 });
    expect(events.map((event) => [event.type, event.payload])).toEqual([
      ["kv.set", { key: "plans/repo-a", version: 1, previousVersion: 0, updatedBy: "planner" }],
      ["kv.set", { key: "plans/repo-a", version: 2, previousVersion: 1, updatedBy: "planner" }],
      ["kv.set", { key: "plans/repo-a", version: 3, previousVersion: 2, updatedBy: "planner", expiresAt: expiring.expiresAt }],
      ["kv.deleted", { key: "plans/repo-a", version: 3, deletedBy: "planner" }],
      ["kv.set", { key: "keyed", version: keyed.version, previousVersion: 0, updatedBy: "planner" }],
    ]);

    // A value left out, or a blank key, is refused by the tool's schema (the SDK's error naming it); a value too large by the API, a tool error with its code.
    // The value left out says what is missing and what to call instead to remove a key (zod's own words were "expected nonoptional").
    expect(await callTool(client, "set_key", { key: "k" })).toEqual({
      error: "MCP error -32602: Input validation error: Invalid arguments for tool set_key: value is required: the JSON to write (null included); to remove the key, call delete_key at value",
    });
    expect(await callTool(client, "get_key", { key: "   " })).toEqual({ error: "MCP error -32602: Input validation error: Invalid arguments for tool get_key: must not be blank at key" });
    const big = "x".repeat(65_536);
    expect((await callTool(client, "set_key", { key: "k", value: big })).error).toEqual({
      code: "INVALID_INPUT",
      message: "value: must take at most 65536 bytes as JSON (it takes 65538)",
      details: { issues: [{ path: "value", message: "must take at most 65536 bytes as JSON (it takes 65538)" }] },
    });
    // A session that acts as no agent is told how to name one, and writes nothing.
    const nobody = await connectMcp(t.url, {});
    const refused = "session: this session acts as no agent; connect again with an X-Agent-Id header (coordination mcp: --agent) or an agent token";
    expect((await callTool(nobody, "set_key", { key: "k", value: 1 })).error).toMatchObject({ code: "INVALID_INPUT", message: refused });
    expect((await callTool(nobody, "delete_key", { key: "k" })).error).toMatchObject({ code: "INVALID_INPUT", message: refused });
    expect(await callTool(nobody, "get_key", { key: "k" })).toEqual({ key: "k", entry: null });
  });

  it("a compare-and-set that meets another version is a tool error naming VERSION_CONFLICT, with the key as it is; read again and set at that version", async () => {
    t = await startTestServer();
    const [a, b] = [await connectMcp(t.url, { "x-agent-id": "agent-a" }), await connectMcp(t.url, { "x-agent-id": "agent-b" })];
    const leader = await callTool(a, "set_key", { key: "leader", value: "agent-a", ifVersion: 0 });
    expect(leader).toMatchObject({ value: "agent-a", version: 1, updatedBy: "agent-a" });
    // Only one creates it: the other's ifVersion 0 meets version 1.
    expect(await callTool(b, "set_key", { key: "leader", value: "agent-b", ifVersion: 0 })).toEqual({
      error: {
        code: "VERSION_CONFLICT",
        message: 'key "leader": ifVersion 0 asks that it be absent, and its version is 1: read it again and decide anew',
        details: { key: "leader", ifVersion: 0, entry: leader },
      },
    });
    // The loop a description tells of: read the version, set at it, and on a conflict read again.
    const counter = await callTool(a, "set_key", { key: "count", value: 10 });
    const read = (await callTool(b, "get_key", { key: "count" })).entry;
    expect(await callTool(a, "set_key", { key: "count", value: 11, ifVersion: read.version })).toMatchObject({ value: 11, version: counter.version + 1, updatedBy: "agent-a" });
    const stale = await callTool(b, "set_key", { key: "count", value: read.value + 1, ifVersion: read.version });
    expect(stale.error).toMatchObject({ code: "VERSION_CONFLICT", details: { key: "count", ifVersion: read.version, entry: { value: 11, version: counter.version + 1, updatedBy: "agent-a" } } });
    const reread = (await callTool(b, "get_key", { key: "count" })).entry;
    expect(await callTool(b, "set_key", { key: "count", value: reread.value + 1, ifVersion: reread.version })).toMatchObject({ value: 12, version: reread.version + 1, updatedBy: "agent-b" });

    // A conditional delete: refused at another version (nothing deleted), done at the current one.
    const conflict = await callTool(a, "delete_key", { key: "count", ifVersion: reread.version });
    expect(conflict.error).toMatchObject({ code: "VERSION_CONFLICT", details: { key: "count", ifVersion: reread.version, entry: { value: 12, version: reread.version + 1 } } });
    expect(await callTool(a, "delete_key", { key: "count", ifVersion: reread.version + 1 })).toMatchObject({ deleted: true, entry: { value: 12 } });
    expect((await callTool(a, "delete_key", { key: "count", ifVersion: reread.version + 1 })).error).toMatchObject({ code: "VERSION_CONFLICT", details: { entry: null } });
    expect((await t.api.kv.get.query({ key: "leader" })).entry).toMatchObject({ value: "agent-a", version: 1 });
  });

  it("get_key with afterVersion is a watch: woken by a set from another client; a waitMs past 20 s is cut to it", async () => {
    t = await startTestServer(WAKE_ONLY);
    const [watcher, writer] = [await connectMcp(t.url, { "x-agent-id": "watcher" }), await connectMcp(t.url, { "x-agent-id": "writer" })];
    const status = await callTool(writer, "set_key", { key: "build:main", value: "running" });
    const waiting = callTool(watcher, "get_key", { key: "build:main", afterVersion: status.version });
    await watching(t.url, 1);
    const done = await callTool(writer, "set_key", { key: "build:main", value: "green" });
    // The set wakes it: well before MCP_MAX_WAIT_MS (20 s), twice promptly's bound, could answer it.
    expect(await promptly(waiting)).toEqual({ key: "build:main", entry: done });
    expect(await parkedLongPolls(t.url, "watch")).toBe(0);
    // An absent key's version is 0: a watch of it is woken by its creation.
    const created = callTool(watcher, "get_key", { key: "build:next", afterVersion: 0, waitMs: 20_000 });
    await watching(t.url, 1);
    const next = await t.api.kv.set.mutate({ key: "build:next", value: "queued", agentId: "ci" });
    expect((await promptly(created)).entry).toMatchObject({ value: "queued", version: next.version, updatedBy: "ci" });
    // A version other than the key's now answers at once, as it is.
    expect(await promptly(callTool(watcher, "get_key", { key: "build:main", afterVersion: status.version, waitMs: 20_000 }))).toEqual({ key: "build:main", entry: done });

    // The wait each call asks of the service: a watch's waitMs cut to 20 s (left out: 20 s), not the server's maxWaitMs.
    const asked: Array<number | undefined> = [];
    const get = t.server.services.kv.get.bind(t.server.services.kv);
    vi.spyOn(t.server.services.kv, "get").mockImplementation((request, ...rest) => (asked.push(request.waitMs), get({ ...request, waitMs: 0 }, ...rest)));
    for (const waitMs of [3_600_000, undefined, 5_000, 0]) await callTool(watcher, "get_key", { key: "build:main", afterVersion: done.version, ...(waitMs === undefined ? {} : { waitMs }) });
    expect(asked).toEqual([MCP_MAX_WAIT_MS, MCP_MAX_WAIT_MS, 5_000, 0]);
    expect(MCP_MAX_WAIT_MS).toBe(20_000);
  });

  it("a watch parked in a tool call ends when the host cancels the call, and when the session is deleted (a SHUTTING_DOWN tool error)", async () => {
    t = await startTestServer(WAKE_ONLY);
    const headers = { "x-agent-id": "watcher" };
    const session = await openMcpSession(t.url, headers);
    // The SDK answers a cancelled request with nothing, and leaves its response open: the host drops it.
    const host = new AbortController();
    const cancelled = fetch(`${t.url}/mcp`, {
      method: "POST",
      headers: { ...mcpPostHeaders(headers), "mcp-session-id": session },
      body: JSON.stringify({ jsonrpc: "2.0", id: 7, method: "tools/call", params: { name: "get_key", arguments: { key: "flag", afterVersion: 0, waitMs: 20_000 } } }),
      signal: host.signal,
    })
      .then((response) => response.text())
      .catch(() => "dropped");
    await watching(t.url, 1);
    const cancel = await fetch(`${t.url}/mcp`, {
      method: "POST",
      headers: { ...mcpPostHeaders(headers), "mcp-session-id": session },
      body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 7, reason: "the user stopped it" } }),
    });
    expect(cancel.status).toBe(202);
    // Parked for up to 20 s, it stops waiting at the cancel (the SDK answers a cancelled request with nothing).
    await watching(t.url, 0);
    host.abort();
    expect(await cancelled).toBe("dropped");

    const deleted = postToolCall(t.url, headers, session, 9, "get_key", { key: "flag", afterVersion: 0, waitMs: 20_000 });
    await watching(t.url, 1);
    expect((await fetch(`${t.url}/mcp`, { method: "DELETE", headers: { ...headers, "mcp-session-id": session } })).status).toBe(200);
    const answer = resultOf(await deleted);
    expect(answer.isError).toBe(true);
    expect(JSON.parse(answer.content[0]!.text)).toMatchObject({ code: "SHUTTING_DOWN", message: expect.stringMatching(/^this MCP session was deleted by its client while the call was under way/) });
    // The answer goes out at the delete; the watch, aborted with it, stops waiting (its 20 s are far off).
    await watching(t.url, 0);
  });

  it("list_keys pages by key within a prefix, passing nextCursor as after", async () => {
    t = await startTestServer();
    const client = await connectMcp(t.url, { "x-agent-id": "lister" });
    // "plans0" sorts after every "plans/..." key ("/" before "0"): past the prefix's range.
    for (const key of ["plans/c", "status", "plans/a", "plans0", "plans/b"]) await callTool(client, "set_key", { key, value: key.toUpperCase() });
    const keysOf = (page: { items: Array<{ key: string }> }) => page.items.map((item) => item.key);
    const first = await callTool(client, "list_keys", { prefix: "plans/", limit: 2 });
    expect([keysOf(first), first.nextCursor]).toEqual([["plans/a", "plans/b"], "plans/b"]);
    expect(first.items[0]).toMatchObject({ key: "plans/a", value: "PLANS/A", version: 3, updatedBy: "lister", expiresAt: null });
    const second = await callTool(client, "list_keys", { prefix: "plans/", after: first.nextCursor, limit: 2 });
    expect([keysOf(second), second.nextCursor]).toEqual([["plans/c"], null]);
    const all = await callTool(client, "list_keys", { prefix: null, after: null, limit: null });
    expect([keysOf(all), all.nextCursor]).toEqual([["plans/a", "plans/b", "plans/c", "plans0", "status"], null]);
    expect(await callTool(client, "list_keys", { limit: 0 })).toEqual({ error: "MCP error -32602: Input validation error: Invalid arguments for tool list_keys: Too small: expected number to be >=1 at limit" });
  });

  it("set_key with ephemeral ties the key to the session's agent: list_keys finds it by owner, and it goes when the agent deregisters; past the bound, a LIMIT_EXCEEDED tool error", async () => {
    t = await startTestServer({ maxEphemeralKeysPerAgent: 1 });
    const client = await connectMcp(t.url, { "x-agent-id": "scout" });
    const here = await callTool(client, "set_key", { key: "presence/scout", value: { task: "reading" }, ephemeral: true });
    expect(here).toMatchObject({ key: "presence/scout", updatedBy: "scout", ephemeralOwner: "scout" });
    expect((await callTool(client, "list_keys", { ephemeralOwner: "scout" })).items.map((item: { key: string }) => item.key)).toEqual(["presence/scout"]);
    expect(await callTool(client, "set_key", { key: "presence/other", value: 1, ephemeral: true })).toMatchObject({
      error: { code: "LIMIT_EXCEEDED", message: `agent "scout" holds 1 key tied to its life already (maxEphemeralKeysPerAgent 1): delete one, or set this key without ephemeral` },
    });
    // As a strict host sends it, null is left out: a key that outlives the agent.
    expect((await callTool(client, "set_key", { key: "notes/scout", value: 1, ephemeral: null })).ephemeralOwner).toBeNull();
    await t.api.agents.deregister.mutate({ agentId: "scout" });
    expect(await callTool(client, "get_key", { key: "presence/scout" })).toEqual({ key: "presence/scout", entry: null });
    expect((await callTool(client, "get_key", { key: "notes/scout" })).entry).toMatchObject({ value: 1 });
  });

  it("with credentials: an agent token writes as its agent; a read token reads, watches and lists, and has no writing tool", async () => {
    const s = await startSecureServer();
    t = s;
    const agent = await connectMcp(s.url, { authorization: `Bearer ${await s.issue("agent", "tokened")}` });
    const reader = await connectMcp(s.url, { authorization: `Bearer ${await s.issue("read")}` });
    const written = await callTool(agent, "set_key", { key: "owner", value: { who: "tokened" } });
    expect(written).toMatchObject({ version: 1, updatedBy: "tokened" });
    expect(await callTool(reader, "get_key", { key: "owner" })).toEqual({ key: "owner", entry: written });
    expect(await callTool(reader, "list_keys")).toEqual({ items: [written], nextCursor: null });
    const watch = callTool(reader, "get_key", { key: "owner", afterVersion: 1 });
    await vi.waitFor(async () => expect(await parkedLongPolls(s.url, "watch", ADMIN_SECRET)).toBe(1), { timeout: 15_000, interval: 50 });
    const moved = await callTool(agent, "set_key", { key: "owner", value: { who: "next" }, ifVersion: 1 });
    expect(await watch).toEqual({ key: "owner", entry: moved });
    // The read session has no writing tool: the SDK refuses the call by name.
    expect((await callTool(reader, "set_key", { key: "owner", value: 1 })).error).toMatch(/Tool set_key not found/);
    expect((await callTool(reader, "delete_key", { key: "owner" })).error).toMatch(/Tool delete_key not found/);
    expect((await s.admin.kv.get.query({ key: "owner" })).entry?.version).toBe(moved.version);
  });
});
