// Answer-or-nothing, first half: whatever can be stored can be read back by every route and
// transport. JSON deeper than maxJsonDepth, times outside 1970..9999 and answers past
// maxResponseBytes used to be accepted, committed, and then fail to serialize: a 500 after the
// cursor moved, the lease was taken or the task was stored. Now they are 400s naming the field
// before anything is written, or pages cut short; a value too deep that an older version stored
// reads back as a marker, and a task whose payload is one is dead-lettered at claim time.
import Database from "better-sqlite3";
import { TRPCClientError } from "@trpc/client";
import { describe, expect, it } from "vitest";
import type { JsonValue } from "../src/json-types.js";
import { rest, startTestServer, type TestServer } from "./helpers/test-server.js";

/** [[[…[1]…]]], `levels` arrays deep. */
const nested = (levels: number): JsonValue => {
  let value: JsonValue = 1;
  for (let i = 0; i < levels; i++) value = [value];
  return value;
};
/** The same as JSON text, built without recursion (JSON.stringify gives up near 4,000 levels). */
const nestedText = (levels: number): string => `${"[".repeat(levels)}1${"]".repeat(levels)}`;

const badRequest = { data: { code: "INVALID_INPUT", httpStatus: 400 } };

async function expectBadRequest(call: Promise<unknown>, field: string): Promise<void> {
  const error = await call.then(
    () => new Error("resolved"),
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(TRPCClientError);
  expect(error).toMatchObject(badRequest);
  expect((error as Error).message).toContain(field);
}

/**
 * A tRPC mutation sent as raw HTTP (superjson's wire form, JSON text built by hand): the typed
 * client cannot even serialize a value this deep, but any other client can send one.
 */
async function rawMutation(t: TestServer, path: string, inputJson: string): Promise<{ status: number; code: string; message: string }> {
  const response = await fetch(`${t.url}/trpc/${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: `{"json":${inputJson}}` });
  const body = (await response.json()) as { error?: { json: { message: string; data: { code: string } } } };
  return { status: response.status, code: body.error?.json.data.code ?? "", message: body.error?.json.message ?? "" };
}

/** Writes straight into the database file, as an older version without the bounds could have. */
function writeDirectly(t: TestServer, sql: string, ...params: unknown[]): void {
  const db = new Database(t.dbPath);
  try {
    db.prepare(sql).run(...params);
  } finally {
    db.close();
  }
}

describe("answer bounds: JSON depth", () => {
  it("case 1: an event nested 1,500 levels is refused; the poll after it delivers the next event and moves the cursor past it only", async () => {
    await using t = await startTestServer();
    await t.api.events.subscribe.mutate({ agentId: "agent-1", types: ["job.*"] });
    const deep = await rawMutation(t, "events.publish", `{"type":"job.deep","source":"s","payload":${nestedText(1500)}}`);
    expect(deep).toMatchObject({ status: 400, code: "INVALID_INPUT" });
    expect(deep.message).toContain("payload");
    const normal = await t.api.events.publish.mutate({ type: "job.normal", source: "s", payload: { n: 2 } });
    const polled = await t.api.events.poll.mutate({ agentId: "agent-1" });
    expect(polled.map((e) => [e.type, e.payload])).toEqual([["job.normal", { n: 2 }]]);
    expect((await t.api.events.subscription.query({ agentId: "agent-1" })).cursor).toBe(normal.seq);
    expect(await t.api.events.poll.mutate({ agentId: "agent-1" })).toEqual([]);
  });

  it("case 4: a task nested 1,500 levels (tRPC) or 4,111 levels (REST) is a 400 naming payload, and nothing is stored", async () => {
    await using t = await startTestServer();
    for (const levels of [1500, 100_000]) {
      const deep = await rawMutation(t, "tasks.enqueue", `{"queue":"q","payload":${nestedText(levels)}}`);
      expect(deep).toMatchObject({ status: 400, code: "INVALID_INPUT" });
      expect(deep.message).toContain("payload");
    }
    await expectBadRequest(t.api.tasks.enqueueMany.mutate({ tasks: [{ queue: "q", payload: {} }, { queue: "q", payload: nested(100) }] }), "tasks[1].payload");
    const overRest = await rest(t.url, "POST", "/tasks", `{"queue":"q","payload":${nestedText(4111)}}`);
    expect(overRest.status).toBe(400);
    expect(overRest.body.message).toContain("payload");
    const eventOverRest = await rest(t.url, "POST", "/events", `{"type":"job.deep","source":"s","payload":${nestedText(2600)}}`);
    expect(eventOverRest.status).toBe(400);
    expect(eventOverRest.body.message).toContain("payload");
    expect((await t.api.tasks.list.query({ queue: "q" })).items).toEqual([]);
    expect((await t.api.tasks.stats.query()).totals.pending).toBe(0);
    // tasks.list on the queue still answers, over both transports.
    expect((await rest(t.url, "GET", "/tasks?queue=q")).status).toBe(200);
  });

  it("holds every stored JSON value to maxJsonDepth (default 64): payload, result, event payload, metadata, memory data", async () => {
    await using t = await startTestServer();
    const deepest = nested(64);
    const task = await t.api.tasks.enqueue.mutate({ queue: "q", payload: deepest });
    expect(task.payload).toEqual(deepest);
    await expectBadRequest(t.api.tasks.enqueue.mutate({ queue: "q", payload: nested(65) }), "payload: nests deeper than 64 levels");
    const claimed = await t.api.tasks.claim.mutate({ agentId: "a1" });
    expect(claimed?.payload).toEqual(deepest);
    await expectBadRequest(t.api.tasks.complete.mutate({ taskId: task.id, agentId: "a1", result: nested(65) }), "result");
    expect((await t.api.tasks.get.query({ taskId: task.id })).status).toBe("claimed");
    await expectBadRequest(t.api.events.publish.mutate({ type: "x", source: "s", payload: { a: nested(64) } }), "payload");
    await expectBadRequest(t.api.agents.register.mutate({ agentId: "a2", capabilities: [], metadata: { a: nested(64) } }), "metadata");
    await expectBadRequest(t.api.memory.remember.mutate({ content: "c", data: nested(65) }), "data");
    // Over REST the same values come back as plain JSON.
    expect((await rest(t.url, "GET", `/tasks/${task.id}`)).body.payload).toEqual(deepest);
  });

  it("maxJsonDepth is a setting", async () => {
    await using t = await startTestServer({ maxJsonDepth: 3 });
    await t.api.tasks.enqueue.mutate({ payload: { a: { b: [1] } } });
    await expectBadRequest(t.api.tasks.enqueue.mutate({ payload: { a: { b: [[1]] } } }), "payload: nests deeper than 3 levels");
  });

  it("case 5: a value too deep that an older version stored reads back as a marker; live streams and polls carry on past it", async () => {
    await using t = await startTestServer();
    await t.api.events.subscribe.mutate({ agentId: "reader", types: ["job.*"] });
    const received: number[] = [];
    const errors: unknown[] = [];
    let started!: () => void;
    const isStarted = new Promise<void>((resolve) => (started = resolve));
    const live = t.api.events.onEvent.subscribe(
      { types: ["job.*"] },
      { onStarted: () => started(), onData: ({ data }) => received.push(data.seq), onError: (e) => errors.push(e) },
    );
    await isStarted;
    writeDirectly(t, `INSERT INTO events (type, source, payload, target, createdAt) VALUES ('job.deep', 's', ?, NULL, ?)`, nestedText(2600), Date.now());
    const after = await t.api.events.publish.mutate({ type: "job.after", source: "s" });
    await expect.poll(() => received.at(-1), { timeout: 30_000 }).toBe(after.seq);
    expect(received).toEqual([after.seq - 1, after.seq]);
    expect(errors).toEqual([]);
    const polled = await t.api.events.poll.mutate({ agentId: "reader" });
    expect(polled.map((e) => e.payload)).toEqual([{ undeliverable: "stored value nests deeper than 512 levels and cannot be delivered" }, {}]);
    live.unsubscribe();
  });

  it("a task whose stored payload no transport can carry is dead-lettered at claim time, and the next task is claimed", async () => {
    await using t = await startTestServer();
    writeDirectly(
      t,
      `INSERT INTO tasks (id, queue, payload, priority, runAt, createdAt, updatedAt) VALUES ('poison', 'q', ?, 0, 0, 0, 0)`,
      nestedText(3000),
    );
    const good = await t.api.tasks.enqueue.mutate({ queue: "q", payload: { ok: true } });
    const claimed = await t.api.tasks.claim.mutate({ agentId: "a1", queues: ["q"] });
    expect(claimed?.id).toBe(good.id);
    const poison = await t.api.tasks.get.query({ taskId: "poison" });
    expect(poison).toMatchObject({ status: "dead_letter", lastError: "the stored payload cannot be delivered: it nests too deep for any transport" });
    expect((await rest(t.url, "GET", "/tasks/poison")).status).toBe(200);
  });
});

describe("answer bounds: keys tRPC's wire format refuses", () => {
  // superjson throws on an object with a key __proto__, constructor or prototype; values holding
  // one were taken in over REST and then failed every tRPC answer carrying them with a 500.
  it("a key __proto__, constructor or prototype is a 400 naming where it is, on every JSON input, over REST and tRPC", async () => {
    await using t = await startTestServer();
    const enqueued = await rest(t.url, "POST", "/tasks", '{"queue":"k","payload":{"job":{"constructor":{"name":"X"}}}}');
    expect(enqueued.status).toBe(400);
    expect(enqueued.body).toMatchObject({ code: "INVALID_INPUT" });
    expect(enqueued.body.message).toContain("payload");
    expect(enqueued.body.message).toContain("job.constructor");
    // JSON.parse keeps "__proto__" as a key of its own: refused like the others, escaped or not.
    for (const payload of ['{"__proto__":{"polluted":true}}', '[{"\\u0070rototype":1}]']) {
      const refused = await rest(t.url, "POST", "/tasks", `{"queue":"k","payload":${payload}}`);
      expect(refused.status, payload).toBe(400);
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    // An agent card keeps unknown fields: zod would leave a __proto__ key out of it without a word.
    for (const card of ['{"name":"x","skills":[],"__proto__":{"evil":1}}', '{"name":"x","skills":[{"id":"s","name":"S","__proto__":1}]}']) {
      const registered = await rest(t.url, "POST", "/agents", `{"agentId":"carded","card":${card}}`);
      expect(registered.status, card).toBe(400);
      expect(registered.body.message, card).toContain("__proto__");
    }
    // The typed client's own superjson refuses to send one; any other tRPC client can.
    await expect(t.api.tasks.enqueue.mutate({ queue: "k", payload: { prototype: 1 } })).rejects.toThrow("Detected property prototype");
    expect(await rawMutation(t, "tasks.enqueue", '{"queue":"k","payload":{"prototype":1}}')).toMatchObject({ status: 400, code: "INVALID_INPUT", message: expect.stringContaining("payload") });
    const task = await t.api.tasks.enqueue.mutate({ queue: "k", payload: { ok: true } });
    await t.api.tasks.claim.mutate({ agentId: "a1", queues: ["k"] });
    const completed = await rest(t.url, "POST", `/tasks/${task.id}/complete`, `{"agentId":"a1","result":{"out":[{"constructor":1}]}}`);
    expect(completed.status).toBe(400);
    expect(completed.body.message).toContain("result");
    expect((await t.api.tasks.get.query({ taskId: task.id })).status).toBe("claimed");
    for (const [path, input, field] of [
      ["events.publish", '{"type":"x","source":"s","payload":{"constructor":1}}', "payload"],
      ["agents.register", '{"agentId":"a2","capabilities":[],"metadata":{"prototype":"p"}}', "metadata"],
      ["memory.remember", '{"content":"c","data":{"a":{"constructor":1}}}', "data"],
      // superjson's copy of an input would drop this one without a word: it is refused before.
      ["memory.remember", '{"content":"c","data":{"a":{"__proto__":{"x":1}}}}', "data.a.__proto__"],
      ["tasks.enqueue", '{"queue":"k","payload":[{"__proto__":1}]}', "payload[0].__proto__"],
    ] as const) {
      expect(await rawMutation(t, path, input), path).toMatchObject({ status: 400, code: "INVALID_INPUT", message: expect.stringContaining(field) });
    }
    expect(await t.api.events.list.query({ types: ["x"] })).toEqual([]);
    expect((await t.api.tasks.list.query({ queue: "k" })).items).toHaveLength(1);
    // In a batch, the call with such an input fails alone.
    const batch = await fetch(`${t.url}/trpc/tasks.enqueue,memory.remember?batch=1`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"0":{"json":{"queue":"k","payload":{"n":2}}},"1":{"json":{"content":"c","data":{"__proto__":{}}}}}',
    });
    expect(batch.status).toBe(207);
    const [first, second] = (await batch.json()) as Array<{ result?: unknown; error?: { json: { data: { code: string } } } }>;
    expect(first).toHaveProperty("result");
    expect(second?.error?.json.data.code).toBe("INVALID_INPUT");
    // A value that only mentions the words is fine.
    expect((await t.api.tasks.enqueue.mutate({ queue: "k", payload: { role: "constructor", note: "__proto__ prototype" } })).payload).toEqual({
      role: "constructor",
      note: "__proto__ prototype",
    });
  });

  it("a value holding one that an older version stored reads back as a marker over tRPC; its task is dead-lettered at claim time", async () => {
    await using t = await startTestServer();
    writeDirectly(t, `INSERT INTO tasks (id, queue, payload, priority, runAt, createdAt, updatedAt) VALUES ('legacy', 'k', ?, 0, 0, 0, 0)`, '{"constructor":{"x":1}}');
    writeDirectly(t, `INSERT INTO events (type, source, payload, target, createdAt) VALUES ('job.legacy', 's', ?, NULL, ?)`, '{"a":[{"\\u0063onstructor":1}]}', Date.now());
    const good = await t.api.tasks.enqueue.mutate({ queue: "k", payload: { ok: true } });
    const marker = { undeliverable: "stored value holds a key tRPC's wire format refuses (__proto__, constructor, prototype) and cannot be delivered" };
    // A list holding it answers, over tRPC as over REST.
    expect((await t.api.tasks.list.query({ queue: "k" })).items.map((task) => task.payload)).toEqual([marker, { ok: true }]);
    expect((await t.api.events.list.query({ types: ["job.*"] })).map((event) => event.payload)).toEqual([marker]);
    const claimed = await t.api.tasks.claim.mutate({ agentId: "a1", queues: ["k"] });
    expect(claimed?.id).toBe(good.id);
    expect(await t.api.tasks.get.query({ taskId: "legacy" })).toMatchObject({
      status: "dead_letter",
      lastError: "the stored payload cannot be delivered: it holds a key tRPC's wire format refuses (__proto__, constructor, prototype)",
    });
  });
});

describe("answer bounds: times", () => {
  it("case 6: runAt past year 9999, past 8.64e15 or at 2^53-1 is a 400 naming runAt, not a database error", async () => {
    await using t = await startTestServer();
    for (const runAt of [8_640_000_000_000_001, Number.MAX_SAFE_INTEGER, 253_402_300_800_000, -1, "+275760-09-13T00:00:00.000Z", "2026-02-30T00:00:00Z"]) {
      const answer = await rest(t.url, "POST", "/tasks", { runAt });
      expect(answer.status, `runAt ${runAt}`).toBe(400);
      expect(answer.body.message).toContain("runAt");
    }
    await expectBadRequest(t.api.tasks.enqueue.mutate({ runAt: new Date(Number.NaN) }), "runAt");
    const latest = await rest(t.url, "POST", "/tasks", { runAt: "9999-12-31T23:59:59.999Z" });
    expect(latest.status).toBe(200);
    expect(latest.body.runAt).toBe("9999-12-31T23:59:59.999Z");
    expect((await t.api.tasks.get.query({ taskId: latest.body.id })).runAt.getTime()).toBe(253_402_300_799_999);
  });
});

describe("times: what is wrong with one is named", () => {
  it("a fraction of a ms, a malformed text, a leap second or an impossible date each say so; lowercase t and z are RFC 3339's", async () => {
    await using t = await startTestServer();
    const refused = async (runAt: unknown) => {
      const answer = await rest(t.url, "POST", "/tasks", { queue: "times", runAt });
      expect(answer.status, JSON.stringify(runAt)).toBe(400);
      return answer.body.message as string;
    };
    // Python's time.time() * 1000.
    expect(await refused(1796194247103.996)).toBe("runAt: must be whole Unix milliseconds (got 1796194247103.996: round it first)");
    expect(await refused("2026-12-31T23:59:60Z")).toBe('runAt: cannot be a leap second (got "2026-12-31T23:59:60Z"): give :59.999 instead');
    expect(await refused("2026-12-02T06:50Z")).toContain("must be an ISO 8601 date-time with an offset");
    expect(await refused("2026-12-02 06:50")).toBe('runAt: must be an ISO 8601 date-time with an offset (Z or ±hh:mm), such as 2026-12-02T06:50:00Z, or Unix ms (got "2026-12-02 06:50")');
    expect(await refused("2026-02-30T00:00:00Z")).toBe('runAt: is not a date and time of the calendar (got "2026-02-30T00:00:00Z")');
    expect(await refused("2026-12-02T25:00:00Z")).toBe('runAt: is not a date and time of the calendar (got "2026-12-02T25:00:00Z")');
    expect(await refused(-1)).toBe("runAt: must be a time between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z (got -1)");
    const lower = await rest(t.url, "POST", "/tasks", { queue: "times", runAt: "2026-12-02t06:50:00.5z" });
    expect([lower.status, lower.body.runAt]).toEqual([200, "2026-12-02T06:50:00.500Z"]);
  });
});

describe("answer bounds: size", () => {
  it("case 1, size: a poll, a list and events.list stop at maxResponseBytes; the rest comes on the next page, nothing skipped", async () => {
    await using t = await startTestServer({ maxResponseBytes: 256 * 1024 });
    await t.api.events.subscribe.mutate({ agentId: "agent-1", types: ["job.*"] });
    const blob = "x".repeat(60 * 1024);
    const published: number[] = [];
    for (let i = 0; i < 20; i++) published.push((await t.api.events.publish.mutate({ type: "job.big", source: "s", payload: { i, blob } })).seq);
    for (let i = 0; i < 20; i++) await t.api.tasks.enqueue.mutate({ queue: "big", payload: { i, blob } });

    const pages: number[][] = [];
    for (;;) {
      const page = await rest(t.url, "GET", "/events/agent-1?limit=1000");
      expect(page.status).toBe(200);
      if (page.body.length === 0) break;
      expect(page.body.length).toBeLessThanOrEqual(5);
      pages.push(page.body.map((e: { seq: number }) => e.seq));
    }
    expect(pages.flat()).toEqual(published);
    expect(pages.length).toBeGreaterThanOrEqual(4);

    const listed: number[] = [];
    let cursor: string | null | undefined;
    do {
      const page = await t.api.tasks.list.query({ queue: "big", limit: 500, ...(cursor ? { cursor } : {}) });
      expect(page.items.length).toBeLessThanOrEqual(5);
      listed.push(...page.items.map((task) => (task.payload as { i: number }).i));
      cursor = page.nextCursor;
    } while (cursor);
    expect(listed).toEqual([...Array(20).keys()]);

    const history = await t.api.events.list.query({ types: ["job.*"], limit: 1000 });
    expect(history.map((e) => e.seq)).toEqual(published.slice(0, history.length));
    expect(history.length).toBeLessThanOrEqual(5);

    const many = await t.api.tasks.claimMany.mutate({ agentId: "a1", queues: ["big"], limit: 100 });
    expect(many.length).toBeGreaterThanOrEqual(1);
    expect(many.length).toBeLessThanOrEqual(5);
    expect((await t.api.tasks.stats.query()).totals.claimed).toBe(many.length);
  });

  // The bound is in bytes: 20 KiB characters of CJK text are 60 KiB of UTF-8, and counted as
  // characters a page went three times past it.
  it("counts maxResponseBytes in UTF-8 bytes: a poll, a list, a task list, recall and claimMany of CJK text", async () => {
    await using t = await startTestServer({ maxResponseBytes: 256 * 1024 });
    await t.api.events.subscribe.mutate({ agentId: "agent-1", types: ["cjk.*"] });
    const text = "漢".repeat(20 * 1024);
    for (let i = 0; i < 20; i++) await t.api.events.publish.mutate({ type: "cjk.x", source: "s", payload: { i, text } });
    for (let i = 0; i < 20; i++) await t.api.tasks.enqueue.mutate({ queue: "cjk", payload: { i, text } });
    for (let i = 0; i < 20; i++) await t.api.memory.remember.mutate({ content: `note ${i} ${"漢".repeat(15_000)}`, data: { text }, queue: "cjk" });
    // Each item is ~60 KiB: at most 4 fit in 256 KiB, and the first one always goes.
    const bytes = (body: unknown) => Buffer.byteLength(JSON.stringify(body));
    const poll = await rest(t.url, "GET", "/events/agent-1?limit=1000");
    const list = await rest(t.url, "GET", "/events?limit=1000");
    const tasks = await rest(t.url, "GET", "/tasks?queue=cjk&limit=500");
    const recall = await t.api.memory.recall.query({ queue: "cjk", limit: 100 });
    const claimed = await t.api.tasks.claimMany.mutate({ agentId: "a1", queues: ["cjk"], limit: 100 });
    expect([poll.body.length, list.body.length, tasks.body.items.length, recall.length, claimed.length].every((n) => n >= 1 && n <= 5)).toBe(true);
    for (const body of [poll.body, list.body, tasks.body]) expect(bytes(body)).toBeLessThanOrEqual(256 * 1024 + 64 * 1024);
  });
});

// A task's names and keys are counted as its JSON is: a queue, a capability, a target agent and a
// lease owner of 200 CJK characters and an idempotency key of 500 are 3.9 kB of a task's answer,
// and counted as a fixed 600 bytes, 100 such tasks went out in one answer of 384 kB (a list,
// waitMany) or 462 kB (claimMany) against a maxResponseBytes of 64 KiB.
describe("answer bounds: a task's names", () => {
  const budget = 65_536;
  const wide = (char: string) => char.repeat(200);
  const queue = wide("漢");
  // The thief's id is longer than the claimer's: a steal weighs its victims with the thief's.
  const claimer = "甲";
  const thief = wide("乙");

  /** A call over HTTP as any client makes it, with the size of the answer on the wire. */
  async function onWire(t: TestServer, path: string, body?: unknown): Promise<{ bytes: number; json: any }> {
    const response = await fetch(`${t.url}${path}`, body === undefined ? {} : { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const text = await response.text();
    expect(response.status).toBe(200);
    return { bytes: Buffer.byteLength(text), json: JSON.parse(text) };
  }

  it("a list, waitMany, claimMany and a steal of tasks with long names stay within maxResponseBytes, and their pages cover every task once", async () => {
    await using t = await startTestServer({ maxResponseBytes: budget, leaseSweepMs: 60_000 });
    const ids: string[] = [];
    for (let i = 0; i < 100; i++) {
      const key = `${String(i).padStart(3, "0")}${"鍵".repeat(497)}`;
      ids.push((await t.api.tasks.enqueue.mutate({ queue, capability: queue, idempotencyKey: key, payload: { i } })).id);
    }

    const waited = await onWire(t, `/tasks/wait?taskIds=${ids.map(encodeURIComponent).join(",")}&waitMs=0`);
    expect(waited.bytes).toBeLessThanOrEqual(budget);
    expect(waited.json.tasks.length).toBeGreaterThanOrEqual(10);
    expect([...waited.json.tasks.map((task: { id: string }) => task.id), ...waited.json.omitted].sort()).toEqual([...ids].sort());

    const listed: string[] = [];
    let cursor: string | null = null;
    do {
      const page = await onWire(t, `/tasks?queue=${encodeURIComponent(queue)}&limit=500${cursor ? `&cursor=${cursor}` : ""}`);
      expect(page.bytes).toBeLessThanOrEqual(budget);
      expect(page.json.items.length).toBeGreaterThanOrEqual(Math.min(10, ids.length - listed.length));
      listed.push(...page.json.items.map((task: { id: string }) => task.id));
      cursor = page.json.nextCursor;
    } while (cursor);
    expect(listed).toEqual(ids);

    // Leases of 1 ms: over at once, for the thief to take (the sweep that would end them waits a minute).
    const claimed: string[] = [];
    while (claimed.length < ids.length) {
      const answer = await onWire(t, "/trpc/tasks.claimMany", { json: { agentId: claimer, queues: [queue], capabilities: [queue], limit: 100, leaseMs: 1 } });
      expect(answer.bytes).toBeLessThanOrEqual(budget);
      expect(answer.json.result.data.json.length).toBeGreaterThanOrEqual(Math.min(10, ids.length - claimed.length));
      claimed.push(...answer.json.result.data.json.map((task: { id: string }) => task.id));
    }
    expect(claimed).toEqual(ids);

    const stolen: string[] = [];
    while (stolen.length < ids.length) {
      const answer = await onWire(t, "/trpc/tasks.steal", { json: { agentId: thief, capabilities: [queue], limit: 100 } });
      expect(answer.bytes).toBeLessThanOrEqual(budget);
      expect(answer.json.result.data.json.length).toBeGreaterThanOrEqual(Math.min(5, ids.length - stolen.length));
      stolen.push(...answer.json.result.data.json.map((task: { id: string }) => task.id));
      // A lease the steal ended is one it took: none went back to the queue (weighed as they were,
      // before the steal wrote its error into them, a round ended more leases than it had room to take).
      expect((await t.api.tasks.list.query({ queue, status: "pending", limit: 1 })).items).toEqual([]);
    }
    expect(stolen).toEqual(ids);
    const owners = await t.api.tasks.list.query({ queue, status: "claimed", limit: 10 });
    expect(owners.items.map((task) => task.leaseOwner)).toEqual(Array(owners.items.length).fill(thief));
  });
  it("a page of tasks with every time set (an expiry, a lease, a run's deadline, progress, a dedupe's replace) stays within maxResponseBytes over tRPC, where superjson names each time twice", async () => {
    await using t = await startTestServer({ maxResponseBytes: budget, leaseSweepMs: 60_000 });
    await t.api.tasks.enqueueMany.mutate({ tasks: Array.from({ length: 120 }, () => ({ queue: "q", payload: 0, ttlMs: 3_600_000, maxRunMs: 366 * 24 * 3_600_000 })) });
    const leases = [];
    while (leases.length < 120) leases.push(...(await t.api.tasks.claimMany.mutate({ agentId: "a", queues: ["q"], limit: 100, context: false })));
    for (const lease of leases) await t.api.tasks.heartbeat.mutate({ taskId: lease.id, agentId: "a", leaseToken: lease.leaseToken, progress: 1 });
    // As a dedupe that replaced each one's payload left it, with an ordering key of the widest share (keys of one character: the texts are counted apart).
    writeDirectly(t, `UPDATE tasks SET dedupeKey = 'k', orderingKey = 'o', keyConcurrency = 1000, duplicates = 1000000000, replacedAt = ? WHERE queue = 'q'`, Date.now());
    const input = encodeURIComponent(JSON.stringify({ json: { queue: "q", limit: 500 } }));
    const page = await onWire(t, `/trpc/tasks.list?input=${input}`);
    expect(page.bytes).toBeLessThanOrEqual(budget);
    expect(page.json.result.data.json.items.length).toBeGreaterThanOrEqual(40);
    // With ten failed runs each: every entry's time goes out as an ISO string, and its path again in superjson's meta.
    const history = JSON.stringify(Array.from({ length: 10 }, (_, i) => ({ attempt: i + 1, agentId: "a", error: "e", at: Date.now() })));
    writeDirectly(t, `UPDATE tasks SET errorHistory = ? WHERE queue = 'q'`, history);
    const failedPage = await onWire(t, `/trpc/tasks.list?input=${input}`);
    expect(failedPage.bytes).toBeLessThanOrEqual(budget);
    expect(failedPage.json.result.data.json.items[0].errorHistory).toHaveLength(10);
    const waitInput = encodeURIComponent(JSON.stringify({ json: { taskIds: leases.slice(0, 100).map((lease) => lease.id), waitMs: 0 } }));
    expect((await onWire(t, `/trpc/tasks.waitMany?input=${waitInput}`)).bytes).toBeLessThanOrEqual(budget);
  });

  it("a steal whose first victim is dead-lettered (not handed out) still hands out the next, however large", async () => {
    await using t = await startTestServer({ maxResponseBytes: budget, leaseSweepMs: 60_000 });
    const last = await t.api.tasks.enqueue.mutate({ queue: "q", priority: 0, maxAttempts: 1, payload: {} });
    const large = await t.api.tasks.enqueue.mutate({ queue: "q", priority: 1, payload: { blob: "x".repeat(budget) } });
    for (const task of [last, large]) expect((await t.api.tasks.claim.mutate({ agentId: "a1", queues: ["q"], leaseMs: 1 }))?.id).toBe(task.id);
    const stolen = await t.api.tasks.steal.mutate({ agentId: "a2", limit: 2 });
    expect(stolen.map((task) => task.id)).toEqual([large.id]);
    expect((await t.api.tasks.get.query({ taskId: last.id })).status).toBe("dead_letter");
  });

  it("a claimMany that dead-letters an undeliverable payload picks its next round within what its answer has left", async () => {
    await using t = await startTestServer({ maxResponseBytes: budget });
    writeDirectly(t, `INSERT INTO tasks (id, queue, payload, priority, runAt, createdAt, updatedAt) VALUES ('poison', 'q', ?, 0, 0, 0, 0)`, nestedText(3000));
    const blob = "x".repeat(10_000);
    for (let i = 0; i < 20; i++) await t.api.tasks.enqueue.mutate({ queue: "q", payload: { i, blob } });
    const answer = await onWire(t, "/trpc/tasks.claimMany", { json: { agentId: "a1", queues: ["q"], limit: 100 } });
    // The first task of the round after the dead letter goes (a round takes at least one): past the
    // bound by one task at most, where each round had the whole of it (ten tasks, 110 kB).
    expect(answer.bytes).toBeLessThanOrEqual(budget + 11_000);
    expect(answer.json.result.data.json.map((task: { payload: { i: number } }) => task.payload.i)).toEqual([0, 1, 2, 3, 4, 5]);
    expect((await t.api.tasks.get.query({ taskId: "poison" })).status).toBe("dead_letter");
  });

  it("so are an event's target and source in a mailbox poll and events.list, and a memory's names in a recall", async () => {
    await using t = await startTestServer({ maxResponseBytes: budget });
    const agent = wide("丙");
    const source = wide("丁");
    await t.api.events.subscribe.mutate({ agentId: agent, types: ["m.*"] });
    const published: number[] = [];
    for (let i = 0; i < 150; i++) published.push((await t.api.events.publish.mutate({ type: "m.x", source, target: agent, payload: { i } })).seq);
    const polled: number[] = [];
    for (;;) {
      const page = await onWire(t, `/events/${encodeURIComponent(agent)}?limit=1000`);
      expect(page.bytes).toBeLessThanOrEqual(budget);
      if (page.json.length === 0) break;
      expect(page.json.length).toBeGreaterThanOrEqual(Math.min(10, published.length - polled.length));
      polled.push(...page.json.map((event: { seq: number }) => event.seq));
    }
    expect(polled).toEqual(published);
    const history = await onWire(t, "/events?limit=1000");
    expect(history.bytes).toBeLessThanOrEqual(budget);
    expect(history.json.map((event: { seq: number }) => event.seq)).toEqual(published.slice(0, history.json.length));

    for (let i = 0; i < 100; i++) await t.api.memory.remember.mutate({ content: `note ${i}`, agentId: agent, queue, capability: source, taskId: wide("戊") });
    const recalled = await onWire(t, `/memory/recall?queue=${encodeURIComponent(queue)}&limit=100`);
    expect(recalled.bytes).toBeLessThanOrEqual(budget);
    expect(recalled.json.length).toBeGreaterThanOrEqual(10);
  });

  // A memory's content is plain text, which JSON writes escaped: a control character takes six
  // bytes (\u0001), a quote two. Weighed as its UTF-8 alone, a recall of such notes went out at
  // five times maxResponseBytes, and a claim's context past it too.
  it("a recall and a claim's context of notes whose content and names JSON escapes stay within maxResponseBytes", async () => {
    await using t = await startTestServer({ maxResponseBytes: budget, memoryContextLimit: 50 });
    const escaped = "\u0001".repeat(2_000);
    const quoted = '"'.repeat(200);
    for (let i = 0; i < 30; i++) await t.api.memory.remember.mutate({ content: `walrus ${i} ${escaped}`, queue: "esc", agentId: quoted, capability: quoted, taskId: quoted });
    const recalled = await onWire(t, "/memory/recall?query=walrus&limit=100");
    expect(recalled.bytes).toBeLessThanOrEqual(budget);
    expect(recalled.json.length).toBeGreaterThanOrEqual(1);
    await t.api.tasks.enqueue.mutate({ queue: "esc", payload: { animal: "walrus" } });
    const claimed = await onWire(t, "/tasks/claim", { agentId: "a1", queues: ["esc"] });
    expect(claimed.bytes).toBeLessThanOrEqual(budget);
    expect(claimed.json.context.length).toBeGreaterThanOrEqual(1);
  });
});

// agents.list and findByCapability answer bare arrays, where a page shorter than its limit reads
// as the last one: a list past maxResponseBytes is refused, saying how many fit, never cut short.
describe("answer bounds: the agent registry", () => {
  // Small agents, many of them: each one's fixed part is most of its weight. Over tRPC superjson
  // names each Date's path again ("12.cordon.until"); a cordon adds its times and reason. Before
  // they were weighed so, 299 agents went out in 97 kB against a maxResponseBytes of 64 KiB.
  it("a list of small agents, cordoned or not, some with a status JSON escapes, fits in maxResponseBytes over REST and tRPC, or is refused naming how many do", async () => {
    const budget = 65_536;
    await using t = await startTestServer({ maxResponseBytes: budget });
    for (let i = 0; i < 400; i++) {
      const agentId = `a${String(i).padStart(3, "0")}`;
      await t.api.agents.register.mutate({ agentId, capabilities: ["x"] });
      if (i % 2 === 0) await t.api.agents.cordon.mutate({ agentId, reason: "r".repeat(40), forMs: 3_600_000 });
      // JSON writes a control character in six bytes, a quote or a backslash in two.
      if (i % 3 === 0) await t.api.agents.heartbeat.mutate({ agentId, status: `${"\u0001".repeat(98)}"\\` });
    }
    for (const filter of [{}, { cordoned: true }, { cordoned: false }]) {
      for (const over of ["rest", "trpc"] as const) {
        const wire = async (limit?: number) => {
          const input = { ...filter, ...(limit === undefined ? {} : { limit }) };
          const path = over === "rest" ? `/agents?${new URLSearchParams(Object.entries(input).map(([k, v]): [string, string] => [k, String(v)]))}` : `/trpc/agents.list?input=${encodeURIComponent(JSON.stringify({ json: input }))}`;
          const response = await fetch(`${t.url}${path}`);
          const text = await response.text();
          return { status: response.status, bytes: Buffer.byteLength(text), json: JSON.parse(text) };
        };
        const first = await wire();
        let page = first;
        if (first.status === 400) {
          const fits = over === "rest" ? first.json.details.fits : first.json.error.json.data.details.fits;
          expect(fits, `${over} ${JSON.stringify(filter)}`).toBeGreaterThanOrEqual(50);
          page = await wire(fits);
          const items = over === "rest" ? page.json : page.json.result.data.json;
          expect(items).toHaveLength(fits);
        }
        expect(page.status).toBe(200);
        expect(page.bytes, `${over} ${JSON.stringify(filter)}`).toBeLessThanOrEqual(budget);
      }
    }
  });

  it("agents.list and findByCapability past maxResponseBytes are a 400 naming limit with details.fits; pages within it list every agent once", async () => {
    await using t = await startTestServer({ maxResponseBytes: 256 * 1024 });
    const blob = "漢".repeat(20 * 1024); // 60 KiB of UTF-8: four agents fit, not five
    const ids = Array.from({ length: 10 }, (_, i) => `agent-${String(i).padStart(2, "0")}`);
    for (const [i, agentId] of ids.entries()) {
      await t.api.agents.register.mutate({ agentId, capabilities: ["gpu"], metadata: { blob } });
      await t.api.agents.heartbeat.mutate({ agentId, load: 10 - i });
    }
    const bytes = (body: unknown) => Buffer.byteLength(JSON.stringify(body));

    const unbounded = await rest(t.url, "GET", "/agents");
    expect(unbounded.status).toBe(400);
    expect(unbounded.body).toMatchObject({ code: "INVALID_INPUT", details: { fits: 4, issues: [{ path: "limit" }] } });
    expect(unbounded.body.message).toContain("maxResponseBytes (262144 bytes)");
    const tooMany = await t.api.agents.list.query({ limit: 5 }).catch((e: unknown) => e);
    expect(tooMany).toMatchObject({ data: { code: "INVALID_INPUT", httpStatus: 400, details: { fits: 4 } } });
    expect((tooMany as Error).message).toContain("pass a smaller limit (the first 4 fit) and page with after");

    const listed: string[] = [];
    for (;;) {
      const after = listed.at(-1);
      const page = await t.api.agents.list.query({ limit: 4, ...(after ? { after } : {}) });
      expect(bytes(page)).toBeLessThanOrEqual(256 * 1024);
      listed.push(...page.map((a) => a.agentId));
      if (page.length < 4) break;
    }
    expect(listed).toEqual(ids);

    const found = await rest(t.url, "GET", "/agents/capability/gpu");
    expect(found.status).toBe(400);
    expect(found.body).toMatchObject({ code: "INVALID_INPUT", details: { fits: 4, issues: [{ path: "limit" }] } });
    // The best first: least loaded, so the last registered.
    const best = await rest(t.url, "GET", "/agents/capability/gpu?limit=3");
    expect(best.status).toBe(200);
    expect(best.body.map((a: { agentId: string }) => a.agentId)).toEqual(["agent-09", "agent-08", "agent-07"]);
    expect((await t.api.agents.findByCapability.query({ capability: "gpu", limit: 1 })).map((a) => a.agentId)).toEqual(["agent-09"]);
  });

  it("findByCapability breaks ties in health and load by agentId in byte order, as list orders", async () => {
    await using t = await startTestServer();
    // localeCompare would put "b" before "B" and "a-2" after "a10"; byte order puts capitals first.
    for (const agentId of ["b", "B", "a10", "a-2"]) await t.api.agents.register.mutate({ agentId, capabilities: ["x"] });
    expect((await t.api.agents.findByCapability.query({ capability: "x" })).map((a) => a.agentId)).toEqual(["B", "a-2", "a10", "b"]);
    expect((await t.api.agents.list.query({ capability: "x" })).map((a) => a.agentId)).toEqual(["B", "a-2", "a10", "b"]);
  });
});
