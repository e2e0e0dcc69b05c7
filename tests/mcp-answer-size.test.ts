// An MCP tool's answer goes whole into a model's context: past mcpMaxAnswerChars its large values
// are cut, as JSON still (answer-bound.ts), and read_task_value reads a task's values whole.
import { afterEach, describe, expect, it } from "vitest";
import { boundAnswer } from "../src/mcp/answer-bound.js";
import { closeMcpClients, connectMcp, toolTexts } from "./helpers/mcp-client.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
afterEach(async () => {
  await closeMcpClients();
  await t?.stop({ removeFiles: true });
  t = undefined;
});

/** Soft bound: markers may pass the limit by this much at most. */
const SLACK = 200;
const words = (n: number) => Array.from({ length: n }, (_, i) => `word${i}`).join(" ");


/**
 * Reads a value whole with a piece tool (read_task_value, read_key_value, read_event_value):
 * each answer one text within `maxChars` carrying `expected` and its own offset, until nextOffset
 * is null. The pieces, in order.
 */
async function readPieces(client: Parameters<typeof toolTexts>[0], tool: string, args: Record<string, unknown>, expected: Record<string, unknown>, maxChars: number): Promise<string[]> {
  const pieces: string[] = [];
  let offset: number | null = 0;
  while (offset !== null) {
    const read = await toolTexts(client, tool, { ...args, offset });
    expect(read.isError).toBe(false);
    expect(read.texts).toHaveLength(1);
    expect(read.texts[0]!.length).toBeLessThanOrEqual(maxChars);
    const piece = JSON.parse(read.texts[0]!) as { offset: number; text: string; nextOffset: number | null };
    expect(piece).toMatchObject({ ...expected, offset });
    pieces.push(piece.text);
    offset = piece.nextOffset;
  }
  return pieces;
}

describe("boundAnswer", () => {
  it("leaves an answer within the limit as it is", () => {
    const text = JSON.stringify({ id: "t1", payload: words(100) });
    expect(boundAnswer(text, 10_000)).toEqual({ text, cuts: 0 });
  });

  it("keeps the small fields whole and a long string's beginning, saying how much was cut", () => {
    const doc = words(20_000);
    const { text, cuts } = boundAnswer(JSON.stringify({ id: "t1", status: "claimed", leaseToken: 7, payload: { doc, n: 1 } }), 4000);
    expect(cuts).toBe(1);
    expect(text.length).toBeLessThanOrEqual(4000 + SLACK);
    const answer = JSON.parse(text);
    expect(answer).toMatchObject({ id: "t1", status: "claimed", leaseToken: 7, payload: { n: 1 } });
    const [kept, cut] = (answer.payload.doc as string).split("…[cut: ");
    expect(doc.startsWith(kept!)).toBe(true);
    expect(kept!.length).toBeGreaterThan(3000);
    expect(cut).toBe(`${doc.length - kept!.length} more characters]`);
  });

  it("gives each item of a list a share, and past what shares can hold keeps its first items and says how many follow", () => {
    // 50 items: each keeps its id and its payload's beginning.
    const fifty = Array.from({ length: 50 }, (_, i) => ({ id: `t${i}`, payload: words(2000) }));
    const shared = JSON.parse(boundAnswer(JSON.stringify(fifty), 8000).text) as Array<{ id: string; payload: string }>;
    expect(shared.map((item) => item.id)).toEqual(fifty.map((task) => task.id));
    for (const item of shared) expect(item.payload).toMatch(/^word0 word1 .*…\[cut: \d+ more characters\]$/);
    // 500: the first ones, each with room to say something, then a marker.
    const tasks = Array.from({ length: 500 }, (_, i) => ({ id: `t${i}`, payload: words(2000) }));
    const { text, cuts } = boundAnswer(JSON.stringify({ items: tasks, nextCursor: "c" }), 8000);
    expect(text.length).toBeLessThanOrEqual(8000 + SLACK);
    const answer = JSON.parse(text) as { items: Array<{ id: string } | string>; nextCursor: string };
    expect(answer.nextCursor).toBe("c");
    const last = answer.items.at(-1) as string;
    const kept = answer.items.slice(0, -1) as Array<{ id: string }>;
    expect(kept.map((item) => item.id)).toEqual(tasks.slice(0, kept.length).map((task) => task.id));
    expect(kept.length).toBeLessThan(500);
    expect(last).toBe(`…[cut: ${500 - kept.length} more items]`);
    expect(cuts).toBe(kept.length + 1);
  });

  it("keeps as many small items of a long list as fit, not its first alone", () => {
    // Items each smaller than a marker are not squeezed: they are whole or left out.
    for (const list of [Array.from({ length: 20_000 }, (_, i) => i), Array.from({ length: 5000 }, (_, i) => ({ id: `t${i}`, status: "pending" }))]) {
      const { text, cuts } = boundAnswer(JSON.stringify(list), 40_000);
      expect(text.length).toBeLessThanOrEqual(40_000 + SLACK);
      const answer = JSON.parse(text) as unknown[];
      const kept = answer.slice(0, -1);
      expect(kept).toEqual(list.slice(0, kept.length));
      expect(text.length).toBeGreaterThan(40_000 / 2);
      expect(answer.at(-1)).toBe(`…[cut: ${list.length - kept.length} more items]`);
      expect(cuts).toBe(1);
    }
  });

  it("bounds a list of hundreds of thousands of items without running out of stack", () => {
    const list = Array.from({ length: 300_000 }, (_, i) => i);
    const { text } = boundAnswer(JSON.stringify(list), 40_000);
    expect(text.length).toBeLessThanOrEqual(40_000 + SLACK);
    expect((JSON.parse(text) as unknown[]).at(-1)).toMatch(/^…\[cut: \d+ more items\]$/);
  });

  it("bounds an object of thousands of keys too: its first entries, then a marker naming how many keys follow", () => {
    const strings = Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`key${i}`, "x".repeat(100)]));
    const numbers = Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`key${i}`, i]));
    for (const object of [strings, numbers]) {
      const { text, cuts } = boundAnswer(JSON.stringify({ id: "t1", payload: object }), 40_000);
      expect(text.length).toBeLessThanOrEqual(40_000 + SLACK);
      const payload = (JSON.parse(text) as { id: string; payload: Record<string, unknown> }).payload;
      const keys = Object.keys(payload);
      const kept = keys.slice(0, -1);
      expect(kept.length).toBeGreaterThan(100);
      for (const key of kept) expect(payload[key]).toEqual(object[key]);
      expect(keys.at(-1)).toBe(`…[cut: ${10_000 - kept.length} more keys]`);
      // Only what was cut is counted: the one marker.
      expect(cuts).toBe(1);
    }
  });

  it("counts a string by its JSON text and never keeps half a surrogate pair", () => {
    for (const piece of ["\n", "😀", "\u0001"]) {
      const { text } = boundAnswer(JSON.stringify({ s: piece.repeat(50_000) }), 5000);
      expect(text.length, JSON.stringify(piece)).toBeLessThanOrEqual(5000 + SLACK);
      const kept = (JSON.parse(text) as { s: string }).s.split("…[cut:")[0]!;
      expect(kept.length).toBeGreaterThan(0);
      expect(kept).toBe(piece.repeat(kept.length / piece.length));
    }
  });
});

describe("an MCP answer over mcpMaxAnswerChars", () => {
  it("is cut to fit, says so in a second text, as are the task resources, and read_task_value reads the value whole in pieces", async () => {
    t = await startTestServer({ mcpMaxAnswerChars: 4000 });
    const payload = { doc: words(8000), quote: 'a "quoted"\nline', n: 42 };
    const enqueued = await t.api.tasks.enqueue.mutate({ queue: "big", payload });
    const client = await connectMcp(t.url, { "x-agent-id": "reader" });

    const claimed = await toolTexts(client, "claim_task", { queues: ["big"] });
    expect(claimed.isError).toBe(false);
    expect(claimed.texts[0]!.length).toBeLessThanOrEqual(4000 + SLACK);
    const task = JSON.parse(claimed.texts[0]!);
    expect(task).toMatchObject({ id: enqueued.id, status: "claimed", leaseToken: expect.any(Number), payload: { quote: payload.quote, n: 42 } });
    expect(task.payload.doc).toMatch(/…\[cut: \d+ more characters\]$/);
    expect(claimed.texts.at(-1)).toMatch(/^This answer was longer than the 4000 characters an answer here holds \(the server's mcpMaxAnswerChars\): \d+ values? (was|were) cut, each where "…\[cut:" stands/);

    // The resources a host attaches to the context are cut alike.
    for (const uri of [`coordination://tasks/${enqueued.id}`, "coordination://tasks/mine"]) {
      const read = (await client.readResource({ uri })).contents[0] as { text: string };
      expect(read.text.length, uri).toBeLessThanOrEqual(4000 + SLACK);
      const value = JSON.parse(read.text);
      const shown = Array.isArray(value) ? value[0] : value;
      expect(shown, uri).toMatchObject({ id: enqueued.id, payload: { quote: payload.quote, n: 42 } });
      expect(shown.payload.doc, uri).toMatch(/…\[cut: \d+ more characters\]$/);
    }

    const pieces = await readPieces(client, "read_task_value", { taskId: enqueued.id, field: "payload" }, { taskId: enqueued.id, field: "payload", totalChars: JSON.stringify(payload).length }, 4000);
    expect(pieces.length).toBeGreaterThan(10);
    expect(JSON.parse(pieces.join(""))).toEqual(payload);

    // A value that fits comes in one piece; an offset past its end is a tool error naming it.
    const small = await toolTexts(client, "read_task_value", { taskId: enqueued.id, field: "progress" });
    expect(JSON.parse(small.texts[0]!)).toEqual({ taskId: enqueued.id, field: "progress", totalChars: 4, offset: 0, text: "null", nextOffset: null });
    const past = await toolTexts(client, "read_task_value", { taskId: enqueued.id, field: "progress", offset: 5 });
    expect(past.isError).toBe(true);
    expect(JSON.parse(past.texts[0]!)).toMatchObject({ code: "INVALID_INPUT", message: "offset: is past the end of the progress's 4 characters of JSON" });
  });

  it("a tool error is cut to fit too: a refusal carrying a large key keeps its code, message and the entry's version, and says what was cut", async () => {
    t = await startTestServer({ mcpMaxAnswerChars: 4000 });
    const client = await connectMcp(t.url, { "x-agent-id": "writer" });
    const value = { plan: words(3000), step: 3 };
    const set = await toolTexts(client, "set_key", { key: "plans/big", value });
    expect(set.isError).toBe(false);
    const version = JSON.parse(set.texts[0]!).version as number;
    // Each refusal's details.entry is the key as it is: its value is as large as a value may be.
    for (const [tool, args, code] of [
      ["set_key", { key: "plans/big", value: 1, ifVersion: version + 1 }, "VERSION_CONFLICT"],
      ["delete_key", { key: "plans/big", ifVersion: version + 1 }, "VERSION_CONFLICT"],
      ["increment_key", { key: "plans/big", by: 1 }, "INVALID_STATE"],
    ] as const) {
      const refused = await toolTexts(client, tool, args);
      expect(refused.isError, tool).toBe(true);
      expect(refused.texts[0]!.length, tool).toBeLessThanOrEqual(4000 + SLACK);
      const body = JSON.parse(refused.texts[0]!);
      expect(body, tool).toMatchObject({ code, message: expect.stringContaining('key "plans/big"'), details: { key: "plans/big", entry: { key: "plans/big", version, updatedBy: "writer", value: { step: 3 } } } });
      expect(body.details.entry.value.plan, tool).toMatch(/…\[cut: \d+ more characters\]$/);
      expect(refused.texts.at(-1), tool).toMatch(/^This answer was longer than the 4000 characters an answer here holds/);
    }
  });

  it("read_key_value reads a key's value that get_key cut whole, in pieces of one version; an absent key is null of version null", async () => {
    t = await startTestServer({ mcpMaxAnswerChars: 4000 });
    const client = await connectMcp(t.url, { "x-agent-id": "writer" });
    const value = { plan: words(3000), quote: 'a "quoted"\nline 😀', step: 3 };
    const version = JSON.parse((await toolTexts(client, "set_key", { key: "plans/big", value })).texts[0]!).version as number;
    const got = await toolTexts(client, "get_key", { key: "plans/big" });
    expect(JSON.parse(got.texts[0]!).entry.value.plan).toMatch(/…\[cut: \d+ more characters\]$/);
    expect(got.texts.at(-1)).toContain("a key's value with read_key_value");

    const pieces = await readPieces(client, "read_key_value", { key: "plans/big" }, { key: "plans/big", version, totalChars: JSON.stringify(value).length }, 4000);
    expect(pieces.length).toBeGreaterThan(5);
    expect(JSON.parse(pieces.join(""))).toEqual(value);

    // A write between pieces shows as another version.
    const next = JSON.parse((await toolTexts(client, "set_key", { key: "plans/big", value: { ...value, step: 4 } })).texts[0]!).version as number;
    expect(JSON.parse((await toolTexts(client, "read_key_value", { key: "plans/big", offset: 100 })).texts[0]!).version).toBe(next);

    expect(JSON.parse((await toolTexts(client, "read_key_value", { key: "plans/none" })).texts[0]!)).toEqual({ key: "plans/none", version: null, totalChars: 4, offset: 0, text: "null", nextOffset: null });
    const past = await toolTexts(client, "read_key_value", { key: "plans/none", offset: 5 });
    expect(past.isError).toBe(true);
    expect(JSON.parse(past.texts[0]!)).toMatchObject({ code: "INVALID_INPUT", message: "offset: is past the end of the value's 4 characters of JSON" });
  });

  it("read_mailbox takes as many events as fit whole, and leaves the others for the next call: a cut never loses what a read took", async () => {
    t = await startTestServer({ mcpMaxAnswerChars: 4000 });
    const client = await connectMcp(t.url, { "x-agent-id": "reader" });
    expect((await toolTexts(client, "subscribe_events", { types: ["report.*"] })).isError).toBe(false);
    // Direct messages and subscribed events, each of them a fifth of an answer or so.
    const sent: string[] = [];
    for (let i = 0; i < 12; i++) {
      const text = `${i} ${words(120)}`;
      sent.push(text);
      await t.api.events.publish.mutate(i % 3 === 0 ? { type: "report.done", source: "boss", payload: { text } } : { type: "dm", source: "boss", target: "reader", payload: { text } });
    }
    const read: string[] = [];
    for (let calls = 0; calls < 20; calls++) {
      const answer = await toolTexts(client, "read_mailbox", {});
      expect(answer.isError).toBe(false);
      expect(answer.texts, "nothing cut").toHaveLength(1);
      expect(answer.texts[0]!.length).toBeLessThanOrEqual(4000);
      const events = JSON.parse(answer.texts[0]!) as Array<{ payload: { text: string } }>;
      if (events.length === 0) break;
      read.push(...events.map((event) => event.payload.text));
    }
    expect(read).toEqual(sent);
  });

  it("one event larger than an answer comes alone and cut, and read_event_value reads its payload whole; a seq with no event is a tool error", async () => {
    t = await startTestServer({ mcpMaxAnswerChars: 4000 });
    const client = await connectMcp(t.url, { "x-agent-id": "reader" });
    const payload = { text: words(3000), quote: 'a "quoted"\nline 😀', n: 7 };
    const big = await t.api.events.publish.mutate({ type: "dm", source: "boss", target: "reader", payload });
    const after = await t.api.events.publish.mutate({ type: "dm", source: "boss", target: "reader", payload: { text: "next" } });

    const first = await toolTexts(client, "read_mailbox", {});
    const events = JSON.parse(first.texts[0]!) as Array<{ seq: number; payload: { text: string } }>;
    expect(events.map((event) => event.seq)).toEqual([big.seq]);
    expect(events[0]!.payload.text).toMatch(/…\[cut: \d+ more characters\]$/);
    expect(first.texts.at(-1)).toContain("an event's payload with read_event_value");
    // The cut event was read for good: the next read goes on after it.
    expect((JSON.parse((await toolTexts(client, "read_mailbox", {})).texts[0]!) as Array<{ seq: number }>).map((event) => event.seq)).toEqual([after.seq]);

    const pieces = await readPieces(client, "read_event_value", { seq: big.seq }, { seq: big.seq, type: "dm", totalChars: JSON.stringify(payload).length }, 4000);
    expect(pieces.length).toBeGreaterThan(5);
    expect(JSON.parse(pieces.join(""))).toEqual(payload);

    // What the session may see is what events.list shows it (a direct message to another agent
    // only with credentials enforced: security-identity.test.ts); a seq past the head is none.
    for (const seq of [after.seq + 1, after.seq + 100]) {
      const refused = await toolTexts(client, "read_event_value", { seq });
      expect(refused.isError, String(seq)).toBe(true);
      expect(JSON.parse(refused.texts[0]!), String(seq)).toEqual({
        code: "INVALID_INPUT",
        message: `seq: no event ${seq} this session may read: pruned from the log, a direct message to another agent, or not yet published`,
        details: { issues: [{ path: "seq", message: `no event ${seq} this session may read: pruned from the log, a direct message to another agent, or not yet published` }] },
      });
    }
  });

  it("read_task_value moves on by at least one character whatever length asks, so reading to nextOffset null ends", async () => {
    t = await startTestServer();
    const payload = 'say "hi" 😀\\';
    const enqueued = await t.api.tasks.enqueue.mutate({ queue: "small", payload });
    const client = await connectMcp(t.url, { "x-agent-id": "reader" });
    const whole = JSON.stringify(payload);
    const pieces: string[] = [];
    let offset: number | null = 0;
    while (offset !== null) {
      const read = await toolTexts(client, "read_task_value", { taskId: enqueued.id, field: "payload", offset, length: 1 });
      const piece = JSON.parse(read.texts[0]!) as { text: string; nextOffset: number | null };
      // A piece with nothing in it (a '"' costs 2 as JSON text) would send the reader back to the same offset for good.
      expect(piece.text, `at ${offset}`).not.toBe("");
      pieces.push(piece.text);
      offset = piece.nextOffset;
    }
    expect(pieces.join("")).toBe(whole);
  });
});
