// A note or lesson sent again after its answer was lost (a timeout, a dropped connection, an LLM
// host repeating a tool call) was stored twice, and recall handed both copies with every matching
// task. memory.remember's idempotencyKey: the same writer's same key answers the memory it stored,
// not a second one; the same key asking for another memory is a 409 naming what differs. Over
// tRPC, REST, MCP and the command line; one agent's keys never meet another's.
import { afterEach, describe, expect, it } from "vitest";
import { killAllCli, runOperator } from "./helpers/cli-process.js";
import { callTool, closeMcpClients, connectMcp } from "./helpers/mcp-client.js";
import { startSecureServer, type SecureServer } from "./helpers/secure-server.js";
import { rest, startTestServer, withDatabase, type TestServer } from "./helpers/test-server.js";

let t: TestServer | SecureServer | undefined;
afterEach(async () => {
  await closeMcpClients();
  await killAllCli();
  await t?.stop({ removeFiles: true });
  t = undefined;
});

/** The notes and lessons stored, by content (execution records aside). */
const stored = (server: TestServer): string[] =>
  withDatabase(server, (db) => db.prepare<[], { content: string }>(`SELECT content FROM memories WHERE kind <> 'execution' ORDER BY seq`).all().map((row) => row.content));

describe("memory.remember with an idempotencyKey", () => {
  it("sent again, answers the memory it stored and adds none; another memory under the key is a 409 naming what differs", async () => {
    t = await startTestServer();
    const lesson = { content: "Retry the billing API at most twice", kind: "lesson" as const, queue: "billing", agentId: "planner", tags: ["billing"], idempotencyKey: "lesson-2026-12-07" };
    const first = await t.api.memory.remember.mutate(lesson);
    const again = await t.api.memory.remember.mutate(lesson);
    expect(again).toEqual(first);
    // Over REST, the same.
    const overRest = await rest(t.url, "POST", "/memory", lesson);
    expect([overRest.status, overRest.body.id]).toEqual([200, first.id]);
    expect(stored(t)).toEqual(["Retry the billing API at most twice"]);
    // The same key asking for another memory: refused, naming the fields, nothing stored.
    const other = await rest(t.url, "POST", "/memory", { ...lesson, content: "Retry it three times", queue: "payments" });
    expect([other.status, other.body.code, other.body.details]).toEqual([409, "IDEMPOTENCY_MISMATCH", { memoryId: first.id, differs: ["content", "queue"] }]);
    expect(other.body.message).toBe(`idempotencyKey "lesson-2026-12-07" was used for memory "${first.id}" with a different content, queue`);
    // data compares as JSON (key order aside); left out, it is {} as stored.
    const withData = await t.api.memory.remember.mutate({ content: "x", agentId: "planner", data: { a: 1, b: 2 }, idempotencyKey: "d" });
    expect((await t.api.memory.remember.mutate({ content: "x", agentId: "planner", data: { b: 2, a: 1 }, idempotencyKey: "d" })).id).toBe(withData.id);
    expect((await rest(t.url, "POST", "/memory", { content: "x", agentId: "planner", idempotencyKey: "d" })).body.details).toEqual({ memoryId: withData.id, differs: ["data"] });
    // tags are words to find it by, not a sequence: the same ones in another order (a client that
    // builds them from a set) are the same memory; another word, or one left out, differs.
    const tagged = await t.api.memory.remember.mutate({ content: "y", agentId: "planner", tags: ["billing", "retries", "api"], idempotencyKey: "t" });
    expect((await t.api.memory.remember.mutate({ content: "y", agentId: "planner", tags: ["api", "billing", "retries"], idempotencyKey: "t" })).id).toBe(tagged.id);
    expect((await rest(t.url, "POST", "/memory", { content: "y", agentId: "planner", tags: ["api", "billing"], idempotencyKey: "t" })).body.details).toEqual({ memoryId: tagged.id, differs: ["tags"] });
    expect((await rest(t.url, "POST", "/memory", { content: "y", agentId: "planner", tags: ["api", "billing", "billing"], idempotencyKey: "t" })).body.details).toEqual({ memoryId: tagged.id, differs: ["tags"] });
    // Another agent's same key is another memory; so is a memory with no key.
    const theirs = await t.api.memory.remember.mutate({ ...lesson, agentId: "reviewer" });
    expect(theirs.id).not.toBe(first.id);
    const keyless = await t.api.memory.remember.mutate({ content: "Retry the billing API at most twice", kind: "lesson", queue: "billing" });
    expect(stored(t)).toEqual(["Retry the billing API at most twice", "x", "y", "Retry the billing API at most twice", "Retry the billing API at most twice"]);
    // Forgotten, the key stores it anew: it answers only a memory that is kept.
    await t.api.memory.forget.mutate({ memoryId: first.id });
    const anew = await t.api.memory.remember.mutate(lesson);
    expect(anew.id).not.toBe(first.id);
    // Recall hands each memory stored once, not once per send.
    const recalled = await t.api.memory.recall.query({ query: "billing API", queue: "billing" });
    expect(recalled.map((match) => match.memory.id).sort()).toEqual([anew.id, theirs.id, keyless.id].sort());
  });

  it("under agent credentials, each agent's key is its own; over MCP and the command line the same", async () => {
    const s = await startSecureServer();
    t = s;
    const a = s.as(await s.issue("agent", "agent-a"));
    const b = s.as(await s.issue("agent", "agent-b"));
    const mine = await a.memory.remember.mutate({ content: "cache the schema", idempotencyKey: "k" });
    expect(mine.agentId).toBe("agent-a");
    expect((await a.memory.remember.mutate({ content: "cache the schema", idempotencyKey: "k" })).id).toBe(mine.id);
    // agent-b's same key with other content is its own memory, not a conflict with agent-a's.
    const theirs = await b.memory.remember.mutate({ content: "never cache the schema", idempotencyKey: "k" });
    expect([theirs.agentId, theirs.id === mine.id]).toEqual(["agent-b", false]);

    // An MCP host repeating a tool call after a timeout.
    const mcp = await connectMcp(s.url, { authorization: `Bearer ${await s.issue("agent", "agent-c")}` });
    const note = await callTool(mcp, "remember", { content: "the staging DB is read-only on Sundays", idempotencyKey: "note-1" });
    expect(note).toMatchObject({ agentId: "agent-c", content: "the staging DB is read-only on Sundays" });
    expect((await callTool(mcp, "remember", { content: "the staging DB is read-only on Sundays", idempotencyKey: "note-1" })).id).toBe(note.id);
    expect((await callTool(mcp, "remember", { content: "something else", idempotencyKey: "note-1" })).error).toMatchObject({ code: "IDEMPOTENCY_MISMATCH" });

    // The command line: run again with the same key, the same memory.
    const env = { COORDINATION_URL: s.url, COORDINATION_TOKEN: await s.issue("admin") };
    const args = ["memory", "remember", "Never deploy on Fridays", "--kind", "lesson", "--queue", "deploys", "--idempotency-key", "friday"];
    const once = await runOperator({ args, env });
    const twice = await runOperator({ args, env });
    expect([once.code, twice.code, twice.stdout]).toEqual([0, 0, once.stdout]);
    const changed = await runOperator({ args: [...args.slice(0, 2), "Never deploy on Thursdays", ...args.slice(3)], env });
    expect([changed.code, changed.stderr]).toEqual([1, `coordination: IDEMPOTENCY_MISMATCH: idempotencyKey "friday" was used for memory "${once.stdout.split(" ")[0]}" with a different content\n`]);
    expect(stored(s).filter((content) => content.includes("deploy"))).toEqual(["Never deploy on Fridays"]);
  });
});
