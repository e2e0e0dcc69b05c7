// A tRPC input is read as the JSON tree its body's `json` is. superjson's meta can say that two
// places of the input are one object (referentialEqualities), and deserialize made them so:
// from a crafted body of a hundred bytes, an input that contains itself. The input checks that
// run before anything else (a refused key, json-checks.ts) walked it forever, and the server ran
// out of memory on one request, before the caller was even authenticated. Objects shared level
// on level (not a cycle) made 2^n nodes of a body of n. Now a cycle is a 400 naming where it
// points back, and other shared places are read as `json` has them (in full, as superjson's
// client writes them), on every transport: POST, GET, batches, WebSocket.
import superjson, { SuperJSON } from "superjson";
import { WebSocket } from "ws";
import { describe, expect, it } from "vitest";
import { deserializeInput } from "../src/trpc/wire-encoding.js";
import { rest, startTestServer, type TestServer } from "./helpers/test-server.js";

/**
 * A tRPC call as raw HTTP: POST of `body`, or GET with it as `?input=`, bounded for a server slow
 * to answer. A server caught in a synchronous loop blocks this test's own event loop (it runs in
 * the test's process), so no timer fires: deserializeInput is also tested directly, below.
 */
async function call(t: TestServer, path: string, body: unknown, method: "POST" | "GET" = "POST", token?: string): Promise<{ status: number; body: any }> {
  const text = JSON.stringify(body);
  const authorization: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` };
  const response =
    method === "POST"
      ? await fetch(`${t.url}/trpc/${path}`, { method, headers: { "content-type": "application/json", ...authorization }, body: text, signal: AbortSignal.timeout(20_000) })
      : await fetch(`${t.url}/trpc/${path}?input=${encodeURIComponent(text)}`, { headers: authorization, signal: AbortSignal.timeout(20_000) });
  return { status: response.status, body: await response.json() };
}

const refusal = (path: string, problem: string) => ({
  // About the whole input, the message is the problem alone (errors.ts invalidField).
  error: { json: { message: path === "input" ? problem : `${path}: ${problem}`, data: { code: "INVALID_INPUT", httpStatus: 400, details: { issues: [{ path, message: problem }] } } } },
});
const cycleAt = (path: string, source: string) => refusal(path, `refers back to ${source} (a cycle, meta.referentialEqualities): an input must be JSON`);

/** A payload whose object at `payload` contains itself at payload.a.b once superjson applies the meta. */
const cyclic = { json: { queue: "graph", payload: { a: {} } }, meta: { referentialEqualities: { payload: ["payload.a.b"] } } };

async function expectHealthy(t: TestServer): Promise<void> {
  expect((await rest(t.url, "GET", "/health")).status).toBe(200);
}

describe("tRPC inputs are JSON trees", () => {
  it("an input made to contain itself is a 400 naming where, on POST, GET and a batch; nothing is stored and the server goes on", async () => {
    await using t = await startTestServer();
    expect(await call(t, "tasks.enqueue", cyclic)).toMatchObject({ status: 400, body: cycleAt("payload.a.b", "payload") });
    // The other form superjson writes: places equal to the whole input.
    const toRoot = { json: { queue: "graph", payload: { me: null } }, meta: { referentialEqualities: [["payload.me"]] } };
    expect(await call(t, "tasks.enqueue", toRoot)).toMatchObject({ status: 400, body: refusal("payload.me", "refers back to the whole input (a cycle, meta.referentialEqualities): an input must be JSON") });
    // A path equal to its source is a cycle too.
    const self = { json: { queue: "graph", payload: { a: {} } }, meta: { referentialEqualities: { "payload.a": ["payload.a"] } } };
    expect(await call(t, "tasks.enqueue", self)).toMatchObject({ status: 400, body: cycleAt("payload.a", "payload.a") });
    const listed = { json: { queue: "graph", x: {} }, meta: { referentialEqualities: { x: ["x.y"] } } };
    expect(await call(t, "tasks.list", listed, "GET")).toMatchObject({ status: 400, body: cycleAt("x.y", "x") });
    const batch = await fetch(`${t.url}/trpc/tasks.enqueue,tasks.enqueue?batch=1`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ 0: cyclic, 1: { json: { queue: "graph", payload: { fine: true } } } }),
      signal: AbortSignal.timeout(20_000),
    });
    const [first, second] = (await batch.json()) as any[];
    expect(first).toMatchObject(cycleAt("payload.a.b", "payload"));
    expect(second.result.data.json).toMatchObject({ queue: "graph", payload: { fine: true } });
    expect((await t.api.tasks.list.query({ queue: "graph" })).items.map((task) => task.payload)).toEqual([{ fine: true }]);
    await expectHealthy(t);
  });

  it("the same over WebSocket: the subscription is refused with the reason, and the socket serves the next call", async () => {
    await using t = await startTestServer();
    const socket = new WebSocket(`${t.url.replace(/^http/, "ws")}/trpc`);
    try {
      await new Promise<void>((resolve, reject) => socket.once("open", () => resolve()).once("error", reject));
      const answers = new Map<number | null, any>();
      socket.on("message", (data) => {
        const message = JSON.parse(String(data)) as { id: number | null };
        answers.set(message.id, message);
      });
      const input = { json: { types: ["job.*"], x: {} }, meta: { referentialEqualities: { x: ["x.y"] } } };
      socket.send(JSON.stringify({ id: 1, method: "subscription", params: { path: "events.onEvent", input } }));
      // tRPC's WebSocket adapter reads a message's input with the message itself: what it cannot
      // read is answered as a parse error without the request's id.
      await expect.poll(() => answers.get(null), { timeout: 20_000, interval: 20 }).toBeDefined();
      expect(answers.get(null)).toMatchObject({ id: null, error: { json: { message: "x.y: refers back to x (a cycle, meta.referentialEqualities): an input must be JSON", data: { code: "INVALID_INPUT" } } } });
      socket.send(JSON.stringify({ id: 2, method: "query", params: { path: "tasks.stats", input: { json: {} } } }));
      await expect.poll(() => answers.get(2), { timeout: 20_000, interval: 20 }).toBeDefined();
      expect(answers.get(2)).toMatchObject({ id: 2, result: { type: "data" } });
    } finally {
      socket.terminate();
    }
    await expectHealthy(t);
  });

  it("with credentials required: no token is a 401 before the input is read; with one, a cycle is a 400; the server goes on", async () => {
    const admin = "admin-secret-0123456789abcdef-0123456789";
    await using t = await startTestServer({ adminToken: admin });
    expect(await call(t, "tasks.enqueue", cyclic)).toMatchObject({ status: 401, body: { error: { json: { data: { code: "UNAUTHORIZED" } } } } });
    expect(await call(t, "tasks.enqueue", cyclic, "POST", admin)).toMatchObject({ status: 400, body: cycleAt("payload.a.b", "payload") });
    expect(await call(t, "tasks.get", cyclic, "GET", admin)).toMatchObject({ status: 400 });
    await expectHealthy(t);
  });

  it("places shared without a cycle are read as `json` has them: the typed client's input whole, a crafted one as small as sent", async () => {
    await using t = await startTestServer();
    // The typed client writes an object met twice in full at each place, and lists the places as one.
    const step = { tool: "search", args: { q: "lease" } };
    const sent = await t.api.tasks.enqueue.mutate({ queue: "shared", payload: { first: step, again: step, steps: [step, step] } });
    expect((await t.api.tasks.get.query({ taskId: sent.id })).payload).toEqual({ first: step, again: step, steps: [step, step] });
    // Forty levels, each naming its two children one object: 2^40 paths once shared, 40 objects as sent.
    let payload: Record<string, unknown> = {};
    const equalities: Record<string, string[]> = {};
    let path = "payload";
    for (let level = 0; level < 40; level++) {
      equalities[`${path}.l`] = [`${path}.r`];
      path = `${path}.l`;
    }
    for (let level = 0; level < 40; level++) payload = { l: payload, r: {} };
    const crafted = await call(t, "tasks.enqueue", { json: { queue: "shared", payload }, meta: { referentialEqualities: equalities } });
    expect(crafted.status).toBe(200);
    expect((await t.api.tasks.get.query({ taskId: crafted.body.result.data.json.id })).payload).toEqual(payload);
    await expectHealthy(t);
  });

  it("a body that is not superjson's form, or whose meta cannot be applied, is a 400 that says so", async () => {
    await using t = await startTestServer();
    expect(await call(t, "tasks.enqueue", null)).toMatchObject({ status: 400, body: refusal("input", `must be superjson's wire form, {"json": …, "meta": …} (got null)`) });
    expect(await call(t, "tasks.enqueue", [{ json: {} }])).toMatchObject({ status: 400, body: refusal("input", `must be superjson's wire form, {"json": …, "meta": …} (got an array)`) });
    const unknownClass = { json: { queue: "q", payload: { x: 1 } }, meta: { values: { "payload.x": ["class", "Foo"] } } };
    expect(await call(t, "tasks.enqueue", unknownClass)).toMatchObject({
      status: 400,
      // Read as [type, children], "Foo" is a string where a tree goes, which superjson walked until its stack ran out.
      body: refusal("meta.values", "holds a string where superjson reads a tree, which it would walk until its stack ran out: send them as superjson writes them (each annotated value's path in full, to its type)"),
    });
    const unknownType = { json: { queue: "q", payload: { x: 1 } }, meta: { values: { "payload.x": ["nonsense"] } } };
    expect(await call(t, "tasks.enqueue", unknownType)).toMatchObject({ status: 400, body: refusal("meta", "superjson could not read the input by it: Unknown transformation: nonsense") });
    expect(await t.api.tasks.list.query({ queue: "q" })).toMatchObject({ items: [] });
    await expectHealthy(t);
  });

  it("a field of the input named __proto__ is refused as REST refuses it, not dropped", async () => {
    await using t = await startTestServer();
    const body = JSON.parse('{"json":{"__proto__":{"queue":"polluted"},"payload":1}}') as unknown;
    expect(await call(t, "tasks.enqueue", body)).toMatchObject({ status: 400, body: refusal("__proto__", "is a key tRPC's wire format (superjson) refuses to carry; rename it") });
    expect(await t.api.tasks.list.query({})).toMatchObject({ items: [] });
  });
});

/** What the client's superjson writes, as the server receives it: JSON text parsed (serialize's own output may share objects). */
const sent = (value: unknown, writer: { serialize: (value: any) => unknown } = superjson): unknown => JSON.parse(JSON.stringify(writer.serialize(value)));

/** What deserializeInput throws for `value` (its message), or "" when it reads it. */
function refusedWith(value: unknown): string {
  try {
    deserializeInput(value);
    return "";
  } catch (error) {
    return (error as Error).message;
  }
}

/** Every object reachable from `value`, counted by identity: a tree has each once. */
function sharedObjects(value: unknown): number {
  const seen = new Set<object>();
  let shared = 0;
  const stack = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (v === null || typeof v !== "object") continue;
    if (seen.has(v)) {
      shared++;
      continue;
    }
    seen.add(v);
    stack.push(...(v instanceof Map ? [...v.entries()] : v instanceof Set ? [...v] : Object.values(v)));
  }
  return shared;
}

describe("deserializeInput (the one door of tRPC inputs)", () => {
  it("reads what superjson's client writes as the same value, a tree, with shared objects, dates, maps and keys holding dots or backslashes", () => {
    const step = { at: new Date(0), "a.b": { "c\\d": [1, 2] }, tags: new Set(["x"]) };
    const input = { first: step, again: step, byName: new Map([["s", step]]), list: [step, { nested: step }], "x.y": step };
    const read = deserializeInput(sent(input));
    expect(read).toEqual(input);
    expect(sharedObjects(read)).toBe(0);
  });

  it("refuses every cycle the client can write, wherever superjson lists it: below the first place or below another", () => {
    const self: Record<string, unknown> = { n: 1 };
    self.self = self;
    expect(refusedWith(sent({ payload: { a: self } }))).toBe("payload.a.self: refers back to payload.a (a cycle, meta.referentialEqualities): an input must be JSON");
    // The object's first place is payload.z; the cycle closes below its second.
    expect(refusedWith(sent({ payload: { b: { c: self }, z: self } }))).toBe(
      "payload.b.c.self: refers back to payload.b.c (a cycle, meta.referentialEqualities): an input must be JSON",
    );
    // Across two objects: each comes again below itself.
    const a: Record<string, unknown> = {};
    const b: Record<string, unknown> = { a };
    a.b = b;
    expect(refusedWith(sent({ payload: a }))).toContain("(a cycle, meta.referentialEqualities)");
    // Listed in any order: the place inside may come before the one holding it.
    expect(refusedWith({ json: { p: { a: {}, b: {} } }, meta: { referentialEqualities: { "p.b": ["p.a.x.y", "p.a"] } } })).toBe(
      "p.a.x.y: refers back to p.a (a cycle, meta.referentialEqualities): an input must be JSON",
    );
    // Deep paths are walked key by key, once (a crafted path of 100,000 keys).
    const deep = `p${".k".repeat(100_000)}`;
    expect(refusedWith({ json: { p: {}, q: {} }, meta: { referentialEqualities: { q: [deep, "p"] } } })).toBe(`${deep}: refers back to p (a cycle, meta.referentialEqualities): an input must be JSON`);
    // A key holding a dot is one key: "p\\.q" is not inside "p".
    expect(refusedWith({ json: { p: {}, "p.q": {} }, meta: { referentialEqualities: { p: ["p\\.q"] } } })).toBe("");
  });

  it("refuses what superjson's dedupe option writes (null where the equality fills the object in), saying so", () => {
    const step = { tool: "search" };
    expect(refusedWith(sent({ first: step, again: step }, new SuperJSON({ dedupe: true })))).toBe(
      "again: is null, to be filled in from first by meta.referentialEqualities (superjson's dedupe option): send inputs without dedupe",
    );
  });

  it("reads forty levels of crafted sharing as the forty objects sent, not 2^40", () => {
    let payload: Record<string, unknown> = {};
    const equalities: Record<string, string[]> = {};
    for (let level = 0, path = "payload"; level < 40; level++, path += ".l") equalities[`${path}.l`] = [`${path}.r`];
    for (let level = 0; level < 40; level++) payload = { l: payload, r: {} };
    const read = deserializeInput({ json: { payload }, meta: { referentialEqualities: equalities } }) as { payload: unknown };
    // Identity first: comparing a graph of 2^40 paths by value would not end.
    expect(sharedObjects(read)).toBe(0);
    expect(read.payload).toEqual(payload);
  });
});

// superjson's deserialize walks meta.values copying the path so far at every node and walking
// each node's path again from the root (setDeep goes on through places `json` lacks): a key of K
// segments over M children cost K × M, and 350 KB of meta held the event loop 19 s on one call.
// A string where a tree goes made it recurse until its stack ran out. Annotations are taken as
// long as superjson walks about what they spell; beyond, the call is a 400 naming meta.values.
describe("meta.values costs what it spells", () => {
  /** One key of `segments` segments over `children` children: what superjson walks is their product. */
  const fanOut = (segments: number, children: number) => ({
    json: { queue: "q" },
    meta: { values: { [Array.from({ length: segments }, () => "a").join(".")]: ["undefined", Object.fromEntries(Array.from({ length: children }, (_, i) => [String(i), ["undefined"]]))] } },
  });
  const walksTooMuch = "meta.values: nest so that superjson would walk more than 4 path segments for each they spell: send them as superjson writes them (each annotated value's path in full, to its type)";

  it("a key fanned out over many children, or annotations nested level on level, is a 400 before superjson walks it; a string tree too", async () => {
    await using t = await startTestServer();
    expect(await call(t, "tasks.list", fanOut(2000, 2000))).toMatchObject({ status: 400, body: refusal("meta.values", walksTooMuch.slice("meta.values: ".length)) });
    let nested: unknown = ["undefined"];
    for (let level = 0; level < 200; level++) nested = ["undefined", { a: nested }];
    expect(refusedWith({ json: { queue: "q" }, meta: { values: nested } })).toBe(walksTooMuch);
    expect(refusedWith({ json: { queue: "q" }, meta: { values: "x" } })).toContain("meta.values: holds a string where superjson reads a tree");
    expect(refusedWith({ json: { queue: "q" }, meta: { values: { queue: ["undefined", "xy"] } } })).toContain("meta.values: holds a string where superjson reads a tree");
    await expectHealthy(t);
  });

  // setDeep steps into a Set or Map by counting its members from the first (getNthKey): a key that
  // goes through one superjson made already (a sibling key of its record, applied first) costs its
  // index. 40,000 such keys under one Set of 40,000 (978 KB) held the event loop ~3 s, within the
  // count above (each key spells 2 segments, walks 4). superjson's client writes a Map's or Set's
  // members as its children, read before it is made, and never one key of a record under another.
  it("keys that go through a Map or Set superjson already made are a 400 before it counts through it", () => {
    const throughSet = (n: number) => {
      const values: Record<string, unknown> = { a: ["set"] };
      for (let i = n - 1; i >= 0; i--) values[`a.${i}`] = ["Date"];
      return { json: { a: Array.from({ length: n }, (_, i) => i) }, meta: { values, v: 1 } };
    };
    const through = "meta.values: holds a key under another key of its record, which superjson never writes (a Map's or Set's members are its children): send them as superjson writes them (each annotated value's path in full, to its type)";
    // Refused by the check before superjson reads anything (its walk through the Set is what cost).
    expect(refusedWith(throughSet(20_000))).toBe(through);
    // Under a node whose child is the Set, too; and a Map's row.
    expect(refusedWith({ json: { x: { y: [1, 2, 3, 4] } }, meta: { values: { x: ["undefined", { y: ["set"] }], "x.y.3": ["Date"] }, v: 1 } })).toBe(through);
    expect(refusedWith({ json: { m: [[1, 2], [3, 4]] }, meta: { values: { m: ["map"], "m.1.1": ["undefined"] }, v: 1 } })).toBe(through);
    // A Set's members written as its children, as superjson's client writes them, are read.
    const at = new Date(0);
    const dates = new Set(Array.from({ length: 20_000 }, (_, i) => new Date(i)));
    const input = { dates, at, deeper: { byName: new Map([["k", new Set([at, new Date(1)])]]) } };
    const read = deserializeInput(sent(input)) as typeof input;
    // Compared as lists of times: a deep equality of two Sets pairs each member with each (20,000², minutes).
    expect([...read.dates].map((date) => date.getTime())).toEqual([...dates].map((date) => date.getTime()));
    expect({ ...read, dates: null }).toEqual({ ...input, dates: null });
  });

  it("what superjson's client writes is read, however many values it annotates and however deep they are", () => {
    const at = new Date(0);
    let deep: Record<string, unknown> = { at };
    for (let level = 0; level < 500; level++) deep = { next: deep, at };
    const input = { items: Array.from({ length: 20_000 }, (_, i) => ({ at, n: i, gone: undefined })), deep, byName: new Map([["k", { at, tags: new Set([at]) }]]) };
    expect(deserializeInput(sent(input))).toEqual(input);
    // A few children under a key, as a Map or Set of dates writes them: within the slack.
    expect(refusedWith(fanOut(40, 40))).toBe("");
  });
});
