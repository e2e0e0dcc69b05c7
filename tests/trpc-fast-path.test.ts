// The typed client's HTTP calls are answered without tRPC's adapter (src/trpc/http-fast-path.ts),
// and must be answered exactly as tRPC's own handler answers them: every request here is sent
// twice, as the client sends it, and with a `trpc-accept: application/json` header, which tRPC
// reads as plain JSON and the fast path leaves to tRPC. Status, headers and body must match.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCoordinationClient } from "../client/index.js";
import { ADMIN_SECRET, startSecureServer, type SecureServer } from "./helpers/secure-server.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

interface Answer {
  status: number;
  headers: Record<string, string | null>;
  body: unknown;
  /** Answered by the fast path: it declares the length; tRPC's handler streams (chunked). */
  fast: boolean;
}

async function post(url: string, path: string, body: string, headers: Record<string, string> = {}): Promise<Answer> {
  const response = await fetch(`${url}/trpc/${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body });
  const text = await response.text();
  const pick = (name: string) => response.headers.get(name);
  return {
    status: response.status,
    headers: { "content-type": pick("content-type"), vary: pick("vary"), "retry-after": pick("retry-after"), "www-authenticate": pick("www-authenticate") },
    body: JSON.parse(text),
    fast: response.headers.get("content-length") !== null && response.headers.get("transfer-encoding") === null,
  };
}

/** The request through the fast path and through tRPC's handler: the same answer, and each took its path. */
async function same(url: string, path: string, input: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const body = JSON.stringify(input);
  const fast = await post(url, path, body, headers);
  const viaTrpc = await post(url, path, body, { ...headers, "trpc-accept": "application/json" });
  expect({ ...fast, fast: undefined }, path).toEqual({ ...viaTrpc, fast: undefined });
  expect([fast.fast, viaTrpc.fast], `${path}: which path answered`).toEqual([true, false]);
  return fast;
}

const envelope = (input: unknown) => ({ json: input });

describe("tRPC calls without tRPC's adapter", () => {
  let t: TestServer;
  let taskId: string;
  beforeAll(async () => {
    t = await startTestServer({ maxBatchCalls: 4 });
    taskId = (await t.api.tasks.enqueue.mutate({ queue: "fast", payload: { when: "now" }, idempotencyKey: "fast-1" })).id;
  });
  afterAll(async () => {
    await t.stop({ removeFiles: true });
  });

  it("answers as tRPC does: results, domain and validation errors, batches of one status or many", async () => {
    const got = await same(t.url, "tasks.get", envelope({ taskId }));
    expect(got.status).toBe(200);
    expect(got.body).toMatchObject({ result: { data: { json: { id: taskId, queue: "fast", payload: { when: "now" } }, meta: { values: expect.any(Object) } } } });
    // An idempotent enqueue answers the same task both times.
    expect((await same(t.url, "tasks.enqueue", envelope({ queue: "fast", payload: { when: "now" }, idempotencyKey: "fast-1" }))).status).toBe(200);
    expect((await same(t.url, "tasks.enqueue", envelope({ queue: "fast", payload: { when: "later" }, idempotencyKey: "fast-1" }))).status).toBe(409);
    expect((await same(t.url, "tasks.get", envelope({ taskId: "nope" }))).status).toBe(404);
    expect((await same(t.url, "tasks.enqueue", envelope({ queue: "fast", priority: -1, colour: "red" }))).body).toMatchObject({
      error: { json: { code: -32600, data: { code: "INVALID_INPUT", httpStatus: 400, path: "tasks.enqueue" } } },
    });
    expect((await same(t.url, "tasks.get", envelope(undefined))).status).toBe(400);
    expect((await same(t.url, "tasks.get", { taskId })).status).toBe(400); // no superjson envelope: no input
    const batch = { 0: envelope({ taskId }), 1: envelope({ taskId: "nope" }), 2: envelope({}) };
    expect((await same(t.url, "tasks.get,tasks.get,tasks.list?batch=1", batch)).status).toBe(207);
    expect((await same(t.url, "tasks.get,tasks.get?batch=1", { 0: envelope({ taskId: "a" }), 1: envelope({ taskId: "b" }) })).status).toBe(404);
    expect((await same(t.url, "tasks.get,tasks.list?batch=1", { 0: envelope({ taskId }), 1: envelope({ queue: "fast" }) })).status).toBe(200);
    // A query sent as a POST (the client sends every query so), a call with no input at all.
    expect((await same(t.url, "tokens.list", {})).status).toBe(200);
  });

  it("serves the typed client, and leaves to tRPC what it does not read itself", async () => {
    // The typed client's own requests take the fast path (they declare their length).
    const response = await fetch(`${t.url}/trpc/tasks.get?batch=1`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ 0: envelope({ taskId }) }) });
    expect(response.headers.get("content-length")).not.toBeNull();
    await response.text();
    // Each of these is tRPC's to answer: malformed JSON, an unknown procedure, a batch over maxBatchCalls, a batch body that is not an object, a GET.
    const slow = async (path: string, body: string) => {
      const answer = await post(t.url, path, body);
      expect(answer.fast, path).toBe(false);
      return answer;
    };
    expect((await slow("tasks.get", '{"json":')).body).toMatchObject({ error: { json: { data: { code: "MALFORMED_JSON", httpStatus: 400 } } } });
    expect((await slow("tasks.nope", "{}")).status).toBe(404);
    expect((await slow("tasks.get,tasks.get,tasks.get,tasks.get,tasks.get?batch=1", "{}")).body).toMatchObject({ error: { json: { data: { code: "LIMIT_EXCEEDED" } } } });
    expect((await slow("tasks.get,tasks.get?batch=1", "[1]")).status).toBe(400);
    // A batch mixing a query and a mutation is refused by tRPC, and the mutation does not run.
    const mixed = await slow("tasks.list,tasks.enqueue?batch=1", JSON.stringify({ 0: envelope({}), 1: envelope({ queue: "mixed" }) }));
    expect(mixed.status).toBe(400);
    // A streaming answer asked for with Accept: tRPC's; a single call cannot stream, and does not run.
    const streaming = await post(t.url, "tasks.enqueue", JSON.stringify(envelope({ queue: "mixed" })), { accept: "application/jsonl" });
    expect([streaming.fast, streaming.status]).toEqual([false, 400]);
    expect((await t.api.tasks.list.query({ queue: "mixed" })).items).toEqual([]);
    // Only an empty body is no input: whitespace is malformed JSON, on both paths.
    expect((await slow("tokens.list", "   ")).body).toMatchObject({ error: { json: { data: { code: "MALFORMED_JSON" } } } });
    const get = await fetch(`${t.url}/trpc/tasks.get?input=${encodeURIComponent(JSON.stringify(envelope({ taskId })))}`);
    expect(get.headers.get("content-length")).toBeNull();
    expect(((await get.json()) as { result: { data: { json: { id: string } } } }).result.data.json.id).toBe(taskId);
  });
});

describe("tRPC calls without tRPC's adapter, with credentials", () => {
  let s: SecureServer;
  beforeAll(async () => {
    s = await startSecureServer();
  });
  afterAll(async () => {
    await s.stop();
  });

  it("refuses as tRPC does: no credential (with the bearer challenge), a role without the right", async () => {
    // No credential: refused before the request is read, here whichever answer it asked for
    // (tRPC's handler would read a malformed input first, and answer its 400).
    for (const headers of [{}, { "trpc-accept": "application/json" }] as Array<Record<string, string>>) {
      const none = await post(s.url, "tasks.list", JSON.stringify(envelope({})), headers);
      expect([none.status, none.headers["www-authenticate"], none.fast]).toEqual([401, "Bearer", true]);
      expect(none.body).toMatchObject({ error: { json: { data: { code: "UNAUTHORIZED", httpStatus: 401, path: "tasks.list" } } } });
    }
    const read = await s.issue("read");
    const denied = await same(s.url, "tasks.enqueue", envelope({ queue: "q" }), { authorization: `Bearer ${read}` });
    expect(denied.status).toBe(403);
    const admin = await same(s.url, "tasks.list,tasks.get?batch=1", { 0: envelope({}), 1: envelope({ taskId: "nope" }) }, { authorization: `Bearer ${ADMIN_SECRET}` });
    expect(admin.status).toBe(207);
    // The typed client with a token works through the fast path end to end.
    const client = createCoordinationClient({ url: s.url, token: ADMIN_SECRET });
    const task = await client.api.tasks.enqueue.mutate({ queue: "secure" });
    expect((await client.api.tasks.get.query({ taskId: task.id })).id).toBe(task.id);
    await client.close();
  });
});
