// Trace context: a task keeps the W3C traceparent and tracestate it was enqueued with (the
// enqueue's fields, or else its HTTP request's headers, as an instrumented client sends them) and
// hands them to every run, so the run's spans join the trace that asked for the work; the task's
// first and settling events carry the traceparent (and the tracestate with it), and webhooks deliver them as headers. Malformed
// fields are a 400 naming them; malformed headers are ignored, as the spec asks of a receiver.
import { ROOT_CONTEXT, defaultTextMapGetter, defaultTextMapSetter, propagation, trace, TraceFlags } from "@opentelemetry/api";
import { CompositePropagator, TraceState, W3CBaggagePropagator, W3CTraceContextPropagator } from "@opentelemetry/core";
import { createTRPCClient, createWSClient, wsLink } from "@trpc/client";
import superjson from "superjson";
import { WebSocket } from "ws";
import { afterEach, describe, expect, it } from "vitest";
import { createCoordinationClient, type CoordinationApi } from "../client/index.js";
import type { AppRouter } from "../src/trpc/app-router.js";
import { killAllCli, runOperator } from "./helpers/cli-process.js";
import { closeMcpClients, connectMcp } from "./helpers/mcp-client.js";
import { mcpPostHeaders, openMcpSession } from "./helpers/mcp-http.js";
import { refusal } from "./helpers/refusal.js";
import { listQuery } from "../src/tasks/task-store.js";
import { startTestServer, withDatabase, type TestServer } from "./helpers/test-server.js";
import { startReceiver, type WebhookReceiver } from "./helpers/webhook-receiver.js";

const PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const OTHER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";

let t: TestServer | undefined;
let receiver: WebhookReceiver | undefined;
afterEach(async () => {
  await killAllCli();
  await closeMcpClients();
  await receiver?.close();
  receiver = undefined;
  await t?.stop({ removeFiles: true });
  t = undefined;
});

/** The events of `types` about a task in the log, as [type, traceparent] (undefined: none carried), oldest first. */
const tracesOf = async (api: CoordinationApi, taskId: string) =>
  (await api.events.list.query({ limit: 1000 }))
    .filter((e) => (e.payload as { taskId?: string }).taskId === taskId)
    .map((e) => [e.type, (e.payload as { traceparent?: string }).traceparent] as const);

/** The tracestate each event about a task carries, as [type, tracestate] (undefined: none), oldest first. */
const statesOf = async (api: CoordinationApi, taskId: string) =>
  (await api.events.list.query({ limit: 1000 }))
    .filter((e) => (e.payload as { taskId?: string }).taskId === taskId)
    .map((e) => [e.type, (e.payload as { tracestate?: string }).tracestate] as const);

/** POST `body` as JSON to the server with `headers`: the answer's status and JSON body. */
async function post(path: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  const response = await fetch(`${t!.url}${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
  return { status: response.status, body: await response.json() };
}

describe("task trace context", () => {
  it("an enqueue's traceparent and tracestate are kept, handed to every run, and carried by the task's first and settling events", async () => {
    t = await startTestServer({ retryBaseMs: 0 });
    const api = t.api;
    const task = await api.tasks.enqueue.mutate({ queue: "traced", traceparent: PARENT, tracestate: " rojo=00f067aa0ba902b7 ,, congo=t61rcWkgMzE " });
    // The tracestate as the spec lists it: members trimmed, empty ones left out.
    expect(task).toMatchObject({ traceparent: PARENT, tracestate: "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE" });
    const first = (await api.tasks.claim.mutate({ agentId: "a", queues: ["traced"] }))!;
    expect(first).toMatchObject({ id: task.id, traceparent: PARENT, tracestate: "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE" });
    // A retry is the same work in the same trace.
    await api.tasks.fail.mutate({ taskId: task.id, agentId: "a", leaseToken: first.leaseToken, error: "flaky" });
    const second = (await api.tasks.claim.mutate({ agentId: "b", queues: ["traced"] }))!;
    expect(second).toMatchObject({ id: task.id, attempts: 2, traceparent: PARENT });
    await api.tasks.complete.mutate({ taskId: task.id, agentId: "b", leaseToken: second.leaseToken });
    expect(await tracesOf(api, task.id)).toEqual([
      ["task.enqueued", PARENT],
      ["task.claimed", undefined],
      ["task.failed", undefined],
      ["task.retried", undefined],
      ["task.claimed", undefined],
      ["task.completed", PARENT],
    ]);
    // The tracestate travels with the traceparent it belongs to.
    expect((await statesOf(api, task.id)).filter(([, state]) => state !== undefined)).toEqual([
      ["task.enqueued", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"],
      ["task.completed", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"],
    ]);

    // A dead letter, a cancel, and a cancel its dependency's cancel made say so too.
    const dead = await api.tasks.enqueue.mutate({ queue: "dead", maxAttempts: 1, traceparent: OTHER });
    const held = (await api.tasks.claim.mutate({ agentId: "a", queues: ["dead"] }))!;
    await api.tasks.fail.mutate({ taskId: dead.id, agentId: "a", leaseToken: held.leaseToken, error: "bad input" });
    expect((await tracesOf(api, dead.id)).filter(([type]) => type === "task.dead_lettered")).toEqual([["task.dead_lettered", OTHER]]);
    const cancelled = await api.tasks.enqueue.mutate({ queue: "gone", traceparent: OTHER });
    const dependent = await api.tasks.enqueue.mutate({ queue: "gone", dependsOn: [cancelled.id], traceparent: PARENT, tracestate: "dep=1" });
    const plain = await api.tasks.enqueue.mutate({ queue: "gone", dependsOn: [cancelled.id] });
    await api.tasks.cancel.mutate({ taskId: cancelled.id });
    expect((await tracesOf(api, cancelled.id)).at(-1)).toEqual(["task.cancelled", OTHER]);
    expect((await tracesOf(api, dependent.id)).at(-1)).toEqual(["task.cancelled", PARENT]);
    expect((await statesOf(api, dependent.id)).at(-1)).toEqual(["task.cancelled", "dep=1"]);
    // A task enqueued without one has none, and its events carry none.
    expect(plain).toMatchObject({ traceparent: null, tracestate: null });
    expect(await tracesOf(api, plain.id)).toEqual([
      ["task.enqueued", undefined],
      ["task.cancelled", undefined],
    ]);
  });

  it("without fields of its own, an enqueue keeps its HTTP request's traceparent and tracestate headers, over REST and tRPC; a malformed header is ignored", async () => {
    t = await startTestServer();
    const headers = { traceparent: PARENT, tracestate: "vendor=one" };
    const viaRest = await post("/tasks", { queue: "h" }, headers);
    expect(viaRest.status).toBe(200);
    expect(viaRest.body).toMatchObject({ traceparent: PARENT, tracestate: "vendor=one" });

    // The typed client's HTTP calls: a client made with the headers (an instrumented fetch sends them so).
    const client = createCoordinationClient({ url: t.url, headers });
    try {
      expect(await client.api.tasks.enqueue.mutate({ queue: "h" })).toMatchObject({ traceparent: PARENT, tracestate: "vendor=one" });
      // A task's own trace context passed on to a child as it comes: null is none given, as left out.
      expect(await client.api.tasks.enqueue.mutate({ queue: "h", traceparent: null, tracestate: null })).toMatchObject({ traceparent: PARENT, tracestate: "vendor=one" });
      expect(await t.api.tasks.enqueue.mutate({ queue: "h", traceparent: null, tracestate: null })).toMatchObject({ traceparent: null, tracestate: null });
      // Fields of its own win, whole: the header's tracestate is not mixed into another context.
      expect(await client.api.tasks.enqueue.mutate({ queue: "h", traceparent: OTHER })).toMatchObject({ traceparent: OTHER, tracestate: null });
    } finally {
      await client.close();
    }

    // Calls the typed client batches (made in the same tick) may come from several traces: the
    // HTTP request's headers are none of theirs. A batch of one is one call.
    const batching = createCoordinationClient({ url: t.url, headers });
    try {
      const together = await Promise.all([batching.api.tasks.enqueue.mutate({ queue: "h" }), batching.api.tasks.enqueue.mutate({ queue: "h", traceparent: OTHER })]);
      expect(together.map((task) => task.traceparent)).toEqual([null, OTHER]);
    } finally {
      await batching.close();
    }
    const raw = async (path: string) => {
      const response = await fetch(`${t!.url}/trpc/${path}?batch=1`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(Object.fromEntries(path.split(/,|%2C/).map((_, i) => [i, { json: { queue: "h" } }]))) });
      return ((await response.json()) as Array<{ result: { data: { json: { traceparent: string | null } } } }>).map((one) => one.result.data.json.traceparent);
    };
    expect(await raw("tasks.enqueue")).toEqual([PARENT]);
    expect(await raw("tasks.enqueue,tasks.enqueue")).toEqual([null, null]);
    expect(await raw("tasks.enqueue%2Ctasks.enqueue")).toEqual([null, null]);

    // A REST batch (enqueueMany) is one caller's: each task without its own takes the request's.
    const batch = await post("/tasks/batch", { tasks: [{ queue: "b" }, { queue: "b", traceparent: OTHER, tracestate: "mine=1" }] }, headers);
    expect(batch.status).toBe(200);
    expect(batch.body.map((task: { traceparent: string; tracestate: string }) => [task.traceparent, task.tracestate])).toEqual([
      [PARENT, "vendor=one"],
      [OTHER, "mine=1"],
    ]);

    // As a receiver reads headers: a malformed traceparent (or two of them) is none, not a 400.
    for (const bad of [{ traceparent: "not-a-trace" }, { traceparent: PARENT.toUpperCase() }, { traceparent: `${PARENT}, ${OTHER}` }, { traceparent: "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" }]) {
      const answer = await post("/tasks", { queue: "bad-header" }, { ...bad, tracestate: "vendor=one" });
      expect([answer.status, answer.body.traceparent, answer.body.tracestate]).toEqual([200, null, null]);
    }
    // A malformed tracestate is dropped and the traceparent kept; a later version is kept as version 00, as a propagator passes it on.
    expect((await post("/tasks", { queue: "h" }, { traceparent: PARENT, tracestate: "Upper=1" })).body).toMatchObject({ traceparent: PARENT, tracestate: null });
    const later = await post("/tasks", { queue: "h" }, { traceparent: "cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what-comes-next" });
    expect(later.body.traceparent).toBe(PARENT);
    // Past 512 characters, members go from the end (the oldest vendors) until it fits.
    const members = Array.from({ length: 30 }, (_, i) => `v${String(i).padStart(2, "0")}=${"x".repeat(20)}`);
    const trimmed = (await post("/tasks", { queue: "h" }, { traceparent: PARENT, tracestate: members.join(",") })).body.tracestate as string;
    expect(trimmed).toBe(members.slice(0, 20).join(","));
    expect(trimmed.length).toBeLessThanOrEqual(512);
    // A member past 128 characters goes before the small ones after it (the spec's order).
    const large = `big=${"y".repeat(200)}`;
    const withLarge = (await post("/tasks", { queue: "h" }, { traceparent: PARENT, tracestate: [large, ...members.slice(0, 14)].join(",") })).body.tracestate as string;
    expect(withLarge).toBe(members.slice(0, 14).join(","));
    // A later version's flags that version 00 does not know are passed on as 0.
    expect((await post("/tasks", { queue: "h" }, { traceparent: "cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-ff-more" })).body.traceparent).toBe("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03");
    // Past 32 members, the same: the first 32 are kept.
    const many = Array.from({ length: 40 }, (_, i) => `k${i}=1`);
    expect((await post("/tasks", { queue: "h" }, { traceparent: PARENT, tracestate: many.join(",") })).body.tracestate).toBe(many.slice(0, 32).join(","));
  });

  it("a tracestate of thousands of members, in a header or an MCP request's _meta, is read no further than its first 32", async () => {
    t = await startTestServer();
    const members = (n: number) => Array.from({ length: n }, (_, i) => `k${i.toString(36)}=1`);
    // 32 members, then 9,000 more filling a 64 KiB header (no credential is needed to send one),
    // whose junk and repeats are never read: the first 32 are kept.
    const first = members(32);
    const header = [...first, ...Array.from({ length: 9000 }, (_, i) => (i % 2 === 0 ? "JUNK" : first[0]))].join(",");
    const started = performance.now();
    for (let i = 0; i < 5; i++) {
      const answer = await post("/tasks", { queue: "wide" }, { traceparent: PARENT, tracestate: header });
      expect([answer.status, answer.body.traceparent, answer.body.tracestate]).toEqual([200, PARENT, first.join(",")]);
    }
    // A _meta may be as long as a request body (1 MiB).
    const mcp = await connectMcp(t.url, {});
    const result = (await mcp.callTool({ name: "enqueue_task", arguments: { queue: "wide" }, _meta: { traceparent: PARENT, tracestate: members(40_000).join(",") } })) as { content: Array<{ text: string }> };
    expect(JSON.parse(result.content[0]!.text)).toMatchObject({ traceparent: PARENT, tracestate: first.join(",") });
    // A member with a long run of blanks inside (a regex trimming trailing blanks retries at each).
    const blanks = (await mcp.callTool({ name: "enqueue_task", arguments: { queue: "wide" }, _meta: { traceparent: PARENT, tracestate: `k=${" ".repeat(200_000)}x` } })) as { content: Array<{ text: string }> };
    expect(JSON.parse(blanks.content[0]!.text)).toMatchObject({ traceparent: PARENT, tracestate: null });
    // Each member read against those before it held the event loop 0.8 s a header and 20 s for
    // the _meta (23 s in all); read no further than kept, a few ms each. Bound generously.
    expect(performance.now() - started).toBeLessThan(10_000);
  });

  it("a page of tasks whose tracestate JSON escapes stays within maxResponseBytes, over tRPC and REST", async () => {
    t = await startTestServer({ maxResponseBytes: 65_536 });
    // 512 characters, 507 of them written in two bytes each by JSON.
    const tracestate = `a=${'"'.repeat(256)},b=${"\\".repeat(251)}`;
    expect(tracestate.length).toBe(512);
    const fields = { queue: "escaped", traceparent: PARENT, tracestate, ttlMs: 3_600_000, maxRunMs: 366 * 24 * 3_600_000, backoff: { delayMs: 1000, maxDelayMs: 100_000, jitter: 0.5 } };
    await t.api.tasks.enqueueMany.mutate({ tasks: Array.from({ length: 100 }, () => fields) });
    for (let i = 0; i < 4; i++) await t.api.tasks.claimMany.mutate({ agentId: "holder", queues: ["escaped"], limit: 25, leaseMs: 3_600_000 });
    const overTrpc = await fetch(`${t.url}/trpc/tasks.list?input=${encodeURIComponent(JSON.stringify({ json: { queue: "escaped", limit: 100 } }))}`);
    const overRest = await fetch(`${t.url}/tasks?queue=escaped&limit=100`);
    for (const answer of [overTrpc, overRest]) {
      expect(answer.status).toBe(200);
      // 70,734 bytes over tRPC when its text was counted once.
      expect(Buffer.byteLength(await answer.text())).toBeLessThanOrEqual(65_536);
    }
  });

  it("a WebSocket's upgrade headers are no call's trace context", async () => {
    t = await startTestServer();
    // A socket opened with a traceparent header: the calls it carries later are not in that trace.
    class TracedSocket extends WebSocket {
      constructor(url: string | URL, protocols?: string | string[]) {
        super(url, protocols, { headers: { traceparent: PARENT } });
      }
    }
    const wsClient = createWSClient({ url: t.url.replace(/^http/, "ws"), WebSocket: TracedSocket as unknown as typeof globalThis.WebSocket });
    try {
      const client = createTRPCClient<AppRouter>({ links: [wsLink({ client: wsClient, transformer: superjson })] });
      expect(await client.tasks.enqueue.mutate({ queue: "ws" })).toMatchObject({ traceparent: null });
      expect(await client.tasks.enqueue.mutate({ queue: "ws", traceparent: OTHER })).toMatchObject({ traceparent: OTHER });
    } finally {
      await wsClient.close();
    }
  });

  it("a malformed traceparent or tracestate field is a 400 naming it, and nothing is enqueued", async () => {
    t = await startTestServer();
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ traceparent: "junk" }, 'traceparent: must be a W3C traceparent: version-traceid-parentid-flags in lowercase hex, such as 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01 (got "junk")'],
      [{ traceparent: PARENT.toUpperCase() }, "traceparent: must be a W3C traceparent"],
      [{ traceparent: "00-00000000000000000000000000000000-b7ad6b7169203331-01" }, "traceparent: has a trace id of all zeros, which the spec forbids"],
      [{ traceparent: "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01" }, "traceparent: has a parent id of all zeros, which the spec forbids"],
      [{ traceparent: "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" }, "traceparent: has version ff, which the spec forbids"],
      [{ traceparent: `${PARENT}-extra` }, "traceparent: is version 00, which has exactly four fields (55 characters)"],
      [{ tracestate: "vendor=1" }, "tracestate: needs a traceparent"],
      [{ traceparent: PARENT, tracestate: "vendor" }, 'tracestate: has a list member whose key is not a W3C tracestate key (got "vendor")'],
      [{ traceparent: PARENT, tracestate: "vendor=a,vendor=b" }, 'tracestate: names key "vendor" twice'],
      [{ traceparent: PARENT, tracestate: "vendor=a=b" }, "tracestate: has a list member whose value is not a W3C tracestate value"],
      [{ traceparent: PARENT, tracestate: Array.from({ length: 33 }, (_, i) => `k${i}=1`).join(",") }, "tracestate: has more than the spec's 32 list members"],
      [{ traceparent: PARENT, tracestate: `k=${"x".repeat(600)}` }, "tracestate: must be at most 512 characters (got 602)"],
      [{ traceparent: 55 }, "traceparent"],
    ];
    for (const [fields, message] of cases) {
      const answer = await post("/tasks", { queue: "refused", ...fields });
      expect([answer.status, answer.body.code]).toEqual([400, "INVALID_INPUT"]);
      expect(answer.body.message).toContain(message);
    }
    // The typed client is told the same.
    const refused = await refusal(t.api.tasks.enqueue.mutate({ queue: "refused", traceparent: "junk" }));
    expect(refused.code).toBe("INVALID_INPUT");
    expect(refused.message).toContain("traceparent: must be a W3C traceparent");
    // A task in a batch is named by its place.
    const batch = await post("/tasks/batch", { tasks: [{ queue: "refused" }, { queue: "refused", traceparent: "junk" }] });
    expect(batch.status).toBe(400);
    expect(batch.body.message).toContain("tasks[1].traceparent: must be a W3C traceparent");
    expect((await t.api.tasks.list.query({ queue: "refused" })).items).toEqual([]);
  });

  it("an enqueue sent again with its idempotencyKey from another span is the same task, and a deduplicated enqueue keeps the task's own", async () => {
    t = await startTestServer();
    const api = t.api;
    // A retry of an instrumented call is a new span: its traceparent differs, the request does not.
    const sent = await api.tasks.enqueue.mutate({ queue: "idem", payload: { n: 1 }, idempotencyKey: "k1", traceparent: PARENT });
    const again = await post("/tasks", { queue: "idem", payload: { n: 1 }, idempotencyKey: "k1" }, { traceparent: OTHER });
    expect(again.status).toBe(200);
    expect([again.body.id, again.body.traceparent]).toEqual([sent.id, PARENT]);
    // Its payload still compared: a mismatch names what differs, never the trace.
    const mismatch = await refusal(api.tasks.enqueue.mutate({ queue: "idem", payload: { n: 2 }, idempotencyKey: "k1", traceparent: OTHER }));
    expect(mismatch.details).toEqual({ taskId: sent.id, differs: ["payload"] });

    const kept = await api.tasks.enqueue.mutate({ queue: "dedupe", dedupe: { key: "reindex" }, traceparent: PARENT });
    const duplicate = await api.tasks.enqueue.mutate({ queue: "dedupe", dedupe: { key: "reindex", replace: true }, payload: { newer: true }, traceparent: OTHER });
    expect(duplicate).toMatchObject({ id: kept.id, deduplicated: true, traceparent: PARENT, payload: { newer: true } });
  });

  it("OpenTelemetry's W3C propagator writes the enqueue's fields and reads the claimed task as its carrier", async () => {
    t = await startTestServer();
    const api = t.api;
    const propagator = new W3CTraceContextPropagator();
    // The producer's span, as an SDK holds it; injected as it would be into HTTP headers.
    const producer = { traceId: "0af7651916cd43dd8448eb211c80319c", spanId: "b7ad6b7169203331", traceFlags: TraceFlags.SAMPLED, traceState: new TraceState("vendor=one") };
    const carrier: Record<string, string> = {};
    propagator.inject(trace.setSpanContext(ROOT_CONTEXT, producer), carrier, defaultTextMapSetter);
    expect(carrier).toEqual({ traceparent: PARENT, tracestate: "vendor=one" });
    await api.tasks.enqueue.mutate({ queue: "otel", payload: { q: 1 }, ...carrier });

    // The consumer: the task is the carrier, as it comes.
    const task = (await api.tasks.claim.mutate({ agentId: "consumer", queues: ["otel"] }))!;
    const remote = trace.getSpanContext(propagator.extract(ROOT_CONTEXT, task, defaultTextMapGetter))!;
    expect({ traceId: remote.traceId, spanId: remote.spanId, traceFlags: remote.traceFlags, isRemote: remote.isRemote, traceState: remote.traceState?.serialize() }).toEqual({
      traceId: producer.traceId,
      spanId: producer.spanId,
      traceFlags: TraceFlags.SAMPLED,
      isRemote: true,
      traceState: "vendor=one",
    });
    // A task without a trace gives the extractor nothing: the consumer starts a trace of its own.
    await api.tasks.enqueue.mutate({ queue: "otel" });
    const bare = (await api.tasks.claim.mutate({ agentId: "consumer", queues: ["otel"] }))!;
    expect(trace.getSpanContext(propagator.extract(ROOT_CONTEXT, bare, defaultTextMapGetter))).toBeUndefined();
  });

  it("a carrier a composite propagator filled (NodeSDK's default: tracecontext and baggage) goes into the enqueue whole; another propagator's key is a 400 naming it", async () => {
    t = await startTestServer();
    const api = t.api;
    const propagator = new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] });
    const producer = { traceId: "0af7651916cd43dd8448eb211c80319c", spanId: "b7ad6b7169203331", traceFlags: TraceFlags.SAMPLED, traceState: new TraceState("vendor=one") };
    const withBaggage = propagation.setBaggage(trace.setSpanContext(ROOT_CONTEXT, producer), propagation.createBaggage({ tenant: { value: "acme" } }));
    const carrier: Record<string, string> = {};
    propagator.inject(withBaggage, carrier, defaultTextMapSetter);
    expect(carrier).toEqual({ traceparent: PARENT, tracestate: "vendor=one", baggage: "tenant=acme" });
    // The whole carrier: its three fields are the enqueue's.
    expect(await api.tasks.enqueue.mutate({ queue: "composite", ...carrier })).toMatchObject({ traceparent: PARENT, tracestate: "vendor=one", baggage: "tenant=acme" });
    // A key of another propagator (B3's): an unknown field, refused by name (never a 500), nothing enqueued.
    const b3 = await post("/tasks", { queue: "composite", ...carrier, b3: "0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1" });
    expect([b3.status, b3.body.code, b3.body.message]).toEqual([400, "INVALID_INPUT", 'unknown field "b3"']);
    expect((await api.tasks.list.query({ queue: "composite" })).items).toHaveLength(1);
  });

  it("a webhook delivering an event that carries a traceparent sends it, and its tracestate, as headers", async () => {
    t = await startTestServer();
    receiver = await startReceiver();
    const api = t.api;
    await api.webhooks.create.mutate({ url: receiver.url, types: ["task.enqueued", "task.cancelled", "build.*"] });
    const traced = await api.tasks.enqueue.mutate({ queue: "hooked", traceparent: PARENT, tracestate: "vendor=one" });
    await api.tasks.cancel.mutate({ taskId: traced.id });
    await api.tasks.enqueue.mutate({ queue: "hooked" });
    // A published event may carry a trace context of its own; a malformed one sends no header.
    await api.events.publish.mutate({ source: "ci", type: "build.done", payload: { traceparent: OTHER, tracestate: "ci=7" } });
    await api.events.publish.mutate({ source: "ci", type: "build.failed", payload: { traceparent: "junk", tracestate: "ci=7" } });
    const got = await receiver.waitFor(5);
    expect(got.map((one) => [JSON.parse(one.body).type, one.headers.traceparent, one.headers.tracestate])).toEqual([
      // The task's tracestate goes with its traceparent, as the spec asks of whoever propagates it.
      ["task.enqueued", PARENT, "vendor=one"],
      ["task.cancelled", PARENT, "vendor=one"],
      ["task.enqueued", undefined, undefined],
      ["build.done", OTHER, "ci=7"],
      ["build.failed", undefined, undefined],
    ]);
  });

  it("MCP's enqueue_task keeps the trace context a host sends in the request's _meta (SEP-414), else in its HTTP headers", async () => {
    t = await startTestServer();
    const enqueue = async (client: Awaited<ReturnType<typeof connectMcp>>, meta?: Record<string, string>) => {
      const result = (await client.callTool({ name: "enqueue_task", arguments: { queue: "mcp" }, ...(meta === undefined ? {} : { _meta: meta }) })) as { content: Array<{ text: string }> };
      const task = JSON.parse(result.content[0]!.text) as { traceparent: string | null; tracestate: string | null };
      return [task.traceparent, task.tracestate];
    };
    const plain = await connectMcp(t.url, {});
    expect(await enqueue(plain, { traceparent: PARENT, tracestate: "host=1" })).toEqual([PARENT, "host=1"]);
    expect(await enqueue(plain)).toEqual([null, null]);
    // A malformed one is a host's, not the model's: ignored, as a header is.
    expect(await enqueue(plain, { traceparent: "junk" })).toEqual([null, null]);
    const traced = await connectMcp(t.url, { traceparent: OTHER });
    expect(await enqueue(traced)).toEqual([OTHER, null]);
    expect(await enqueue(traced, { traceparent: PARENT })).toEqual([PARENT, null]);
    // A JSON-RPC batch's headers are no one call's (as a tRPC batch's); each call's _meta is its own.
    const session = await openMcpSession(t.url, {});
    const call = (id: number, meta?: Record<string, string>) => ({ jsonrpc: "2.0", id, method: "tools/call", params: { name: "enqueue_task", arguments: { queue: "mcp-batch" }, ...(meta === undefined ? {} : { _meta: meta }) } });
    const response = await fetch(`${t.url}/mcp`, { method: "POST", headers: mcpPostHeaders({ "mcp-session-id": session, traceparent: OTHER }), body: JSON.stringify([call(2), call(3, { traceparent: PARENT })]) });
    expect(response.status).toBe(200);
    await response.text();
    expect((await t.api.tasks.list.query({ queue: "mcp-batch" })).items.map((task) => task.traceparent)).toEqual([null, PARENT]);
  });

  it("tasks.list's traceId finds the tasks one trace enqueued, from an index range; the CLI's --trace-id and MCP's list_tasks too", async () => {
    t = await startTestServer();
    const api = t.api;
    const traceId = PARENT.split("-")[1]!;
    // Three tasks of one trace from different spans, in two queues; one of another trace; one of none.
    const mine = [
      await api.tasks.enqueue.mutate({ queue: "fan-out", traceparent: PARENT }),
      await api.tasks.enqueue.mutate({ queue: "fan-out", traceparent: `00-${traceId}-1111111111111111-00` }),
      (await post("/tasks", { queue: "summary" }, { traceparent: `00-${traceId}-2222222222222222-01` })).body as { id: string },
    ].map((task) => task.id);
    await api.tasks.enqueue.mutate({ queue: "fan-out", traceparent: OTHER });
    await api.tasks.enqueue.mutate({ queue: "fan-out" });
    expect((await api.tasks.list.query({ traceId })).items.map((task) => task.id)).toEqual(mine);
    expect((await api.tasks.list.query({ traceId, order: "desc", limit: 2 })).items.map((task) => task.id)).toEqual([mine[2], mine[1]]);
    expect((await api.tasks.list.query({ traceId, queue: "fan-out" })).items.map((task) => task.id)).toEqual(mine.slice(0, 2));
    // Pages go on from their cursor.
    const first = await api.tasks.list.query({ traceId, limit: 2 });
    expect((await api.tasks.list.query({ traceId, limit: 2, cursor: first.nextCursor! })).items.map((task) => task.id)).toEqual([mine[2]]);
    const viaRest = await fetch(`${t.url}/tasks?traceId=${traceId}`);
    expect(((await viaRest.json()) as { items: Array<{ id: string }> }).items.map((task) => task.id)).toEqual(mine);
    const bad = await fetch(`${t.url}/tasks?traceId=${traceId.toUpperCase()}`);
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { message: string }).message).toContain("traceId: must be a W3C trace id: 32 lowercase hex digits, not all zeros");
    // The index's range, not a walk of the table.
    const { sql, params } = listQuery({ traceId, order: "asc" }, 50);
    expect(withDatabase(t, (db) => db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params).map((row) => (row as { detail: string }).detail))).toEqual([
      "SEARCH tasks USING INDEX tasks_trace_idx (traceparent>? AND traceparent<?)",
      "USE TEMP B-TREE FOR ORDER BY",
    ]);

    const listed = await runOperator({ args: ["tasks", "list", "--trace-id", traceId, "--json"], env: { COORDINATION_URL: t.url } });
    expect(listed.code).toBe(0);
    expect((JSON.parse(listed.stdout) as { items: Array<{ id: string }> }).items.map((task) => task.id)).toEqual(mine);
    const mcp = await connectMcp(t.url, {});
    const answer = (await mcp.callTool({ name: "list_tasks", arguments: { traceId } })) as { content: Array<{ text: string }> };
    expect((JSON.parse(answer.content[0]!.text) as { items: Array<{ id: string }> }).items.map((task) => task.id)).toEqual(mine);
  });

  it("the operator's CLI shows the trace id a tracing UI finds it by", async () => {
    t = await startTestServer();
    const env = { COORDINATION_URL: t.url };
    const traced = await t.api.tasks.enqueue.mutate({ queue: "cli", traceparent: OTHER });
    const bare = await t.api.tasks.enqueue.mutate({ queue: "cli" });
    const got = await runOperator({ args: ["tasks", "get", traced.id], env });
    expect(got.code).toBe(0);
    expect(got.stdout).toMatch(/^trace\s+trace 4bf92f3577b34da6a3ce929d0e0e4736 \(parent span 00f067aa0ba902b7, not sampled\)$/m);
    expect((await runOperator({ args: ["tasks", "get", bare.id], env })).stdout).toMatch(/^trace\s+none$/m);
  });
});
