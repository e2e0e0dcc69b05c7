// W3C Baggage on tasks: the key-value pairs a producer's context carries beside its trace (a
// tenant, a user, an experiment) are kept with the task it enqueues and handed to every run, so
// the consumer's context holds them as the producer's did (OpenTelemetry's W3CBaggagePropagator
// reads them from the claimed task as from a request). Taken from the enqueue's field, its
// `baggage` header, the typed client's traceContext answer, or an MCP request's _meta.
import { AsyncLocalStorage } from "node:async_hooks";
import { context, propagation, ROOT_CONTEXT, trace, type TextMapGetter } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from "@opentelemetry/core";
import { afterEach, describe, expect, it } from "vitest";
import { createCoordinationClient, type CoordinationClient, type TraceCarrier } from "../client/index.js";
import { baggageOfHeader } from "../src/tasks/trace-context.js";
import { killAllCli, runOperator } from "./helpers/cli-process.js";
import { callTool, closeMcpClients, connectMcp } from "./helpers/mcp-client.js";
import { rest, startTestServer, type TestServer } from "./helpers/test-server.js";
import { startReceiver, type WebhookReceiver } from "./helpers/webhook-receiver.js";

let t: TestServer | undefined;
let receiver: WebhookReceiver | undefined;
const clients: CoordinationClient[] = [];
afterEach(async () => {
  await killAllCli();
  await closeMcpClients();
  await Promise.all(clients.splice(0).map((client) => client.close()));
  await t?.stop({ removeFiles: true });
  await receiver?.close();
  t = undefined;
  receiver = undefined;
});

/** POST /tasks with `headers`: the status and body. */
async function enqueueWith(url: string, body: unknown, headers: Record<string, string>): Promise<{ status: number; body: any }> {
  const response = await fetch(`${url}/tasks`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
  return { status: response.status, body: await response.json() };
}

/** A task's fields as an OpenTelemetry carrier: what a consumer hands its propagator. */
const taskGetter: TextMapGetter<Record<string, unknown>> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => (typeof carrier[key] === "string" ? (carrier[key] as string) : undefined),
};

describe("tasks.enqueue's baggage", () => {
  it("is carried by the task's first and settling events, and a webhook sends it as its baggage header, with or without a trace", async () => {
    t = await startTestServer();
    receiver = await startReceiver();
    const { api } = t;
    const PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    await api.webhooks.create.mutate({ url: receiver.url, types: ["task.enqueued", "task.completed", "task.cancelled", "task.dead_lettered", "note.*"] });
    const both = await api.tasks.enqueue.mutate({ queue: "b", traceparent: PARENT, baggage: "tenant=acme,user=42" });
    const alone = await api.tasks.enqueue.mutate({ queue: "b", baggage: "tenant=globex" });
    const none = await api.tasks.enqueue.mutate({ queue: "b" });
    // Settled three ways: completed, dead-lettered, and a dependent cancelled with its dependency.
    const run = await api.tasks.claim.mutate({ agentId: "w", queues: ["b"], context: false });
    expect(run?.id).toBe(both.id);
    await api.tasks.complete.mutate({ taskId: both.id, agentId: "w", leaseToken: run!.leaseToken });
    await api.tasks.cancel.mutate({ taskId: none.id });
    const dependent = await api.tasks.enqueue.mutate({ queue: "later", dependsOn: [alone.id], onDependencyFailure: "cancel", baggage: "tenant=initech" });
    const second = await api.tasks.claim.mutate({ agentId: "w", queues: ["b"], context: false });
    await api.tasks.fail.mutate({ taskId: alone.id, agentId: "w", leaseToken: second!.leaseToken, error: "broke", retry: false });
    // A published event may carry baggage of its own; a malformed one sends no header.
    await api.events.publish.mutate({ source: "ci", type: "note.ok", payload: { baggage: "build=7" } });
    await api.events.publish.mutate({ source: "ci", type: "note.bad", payload: { baggage: "not baggage" } });

    const events = await api.events.list.query({ afterSeq: 0, types: ["task.enqueued", "task.completed", "task.cancelled", "task.dead_lettered"], limit: 100 });
    expect(events.map((event) => [event.type, (event.payload as { taskId: string }).taskId, (event.payload as { baggage?: string }).baggage])).toEqual([
      ["task.enqueued", both.id, "tenant=acme,user=42"],
      ["task.enqueued", alone.id, "tenant=globex"],
      ["task.enqueued", none.id, undefined],
      ["task.completed", both.id, "tenant=acme,user=42"],
      ["task.cancelled", none.id, undefined],
      ["task.enqueued", dependent.id, "tenant=initech"],
      ["task.dead_lettered", alone.id, "tenant=globex"],
      ["task.cancelled", dependent.id, "tenant=initech"],
    ]);
    const got = await receiver.waitFor(10);
    expect(got.map((one) => [JSON.parse(one.body).type, one.headers.traceparent, one.headers.baggage])).toEqual([
      ["task.enqueued", PARENT, "tenant=acme,user=42"],
      ["task.enqueued", undefined, "tenant=globex"],
      ["task.enqueued", undefined, undefined],
      ["task.completed", PARENT, "tenant=acme,user=42"],
      ["task.cancelled", undefined, undefined],
      ["task.enqueued", undefined, "tenant=initech"],
      ["task.dead_lettered", undefined, "tenant=globex"],
      ["task.cancelled", undefined, "tenant=initech"],
      ["note.ok", undefined, "build=7"],
      ["note.bad", undefined, undefined],
    ]);
  });

  it("keeps an enqueue's W3C Baggage, with or without a trace, as a consumer's propagator reads it; refuses a malformed one naming why", async () => {
    t = await startTestServer();
    const api = t.api;
    // Optional whitespace around members, keys, values and properties is not kept.
    const given = await api.tasks.enqueue.mutate({ queue: "q", baggage: " tenant = acme ; tier=gold , user=42,flag=1;beta " });
    expect(given.baggage).toBe("tenant=acme;tier=gold,user=42,flag=1;beta");
    const claimed = (await api.tasks.claim.mutate({ agentId: "w", queues: ["q"] }))!;
    expect([claimed.id, claimed.baggage, claimed.traceparent]).toEqual([given.id, "tenant=acme;tier=gold,user=42,flag=1;beta", null]);
    expect((await api.tasks.enqueue.mutate({ queue: "q", baggage: null })).baggage).toBeNull();
    expect((await api.tasks.enqueue.mutate({ queue: "q", baggage: " " })).baggage).toBeNull();
    expect((await api.tasks.enqueue.mutate({ queue: "q" })).baggage).toBeNull();

    // OpenTelemetry's own propagator reads the claimed task as the producer's context wrote it.
    const read = new W3CBaggagePropagator().extract(ROOT_CONTEXT, claimed as unknown as Record<string, unknown>, taskGetter);
    const entries = propagation.getBaggage(read)?.getAllEntries().map(([key, entry]) => [key, entry.value]);
    expect(entries).toEqual([
      ["tenant", "acme"],
      ["user", "42"],
      ["flag", "1"],
    ]);

    for (const [baggage, reason] of [
      ["tenant=acme corp", /^baggage: has a list member that is not W3C Baggage \(got "tenant=acme corp"\)/],
      ["tenant=acme,,user=1", /^baggage: has an empty list member/],
      ['quote="x"', /^baggage: has a list member that is not W3C Baggage/],
      ["=novalue", /^baggage: has a list member that is not W3C Baggage/],
      ["flag", /^baggage: has a list member that is not W3C Baggage/],
      [Array.from({ length: 181 }, (_, i) => `k${i}=v`).join(","), /^baggage: has more than the 180 list members the W3C Baggage grammar allows \(got 181\)/],
      [`k=${"v".repeat(8_200)}`, /^baggage: must be at most 8192 characters, what the W3C Baggage spec asks every platform to propagate \(got 8202\)/],
    ] as const) {
      const refused = await rest(t.url, "POST", "/tasks", { queue: "q", baggage });
      expect([refused.status, refused.body.code, refused.body.message], baggage.slice(0, 40)).toEqual([400, "INVALID_INPUT", expect.stringMatching(reason)]);
    }
    // What OpenTelemetry's propagator writes is taken whole: up to 180 members (its limit and the
    // grammar's; the spec's 64 is what a platform must carry at least, not a most), within 8,192 bytes.
    const otelEntries = Object.fromEntries(Array.from({ length: 180 }, (_, i) => [`key${i}`, { value: `value ${i}` }]));
    const carrier: Record<string, string> = {};
    new W3CBaggagePropagator().inject(propagation.setBaggage(ROOT_CONTEXT, propagation.createBaggage(otelEntries)), carrier, { set: (c, key, value) => void ((c as Record<string, string>)[key] = value) });
    expect(carrier.baggage!.split(",")).toHaveLength(180);
    const fromOtel = await rest(t.url, "POST", "/tasks", { queue: "q", ...carrier });
    expect([fromOtel.status, fromOtel.body.baggage]).toEqual([200, carrier.baggage]);
    // Percent-encoded values (spaces, commas) are baggage octets.
    expect((await api.tasks.enqueue.mutate({ queue: "q", baggage: "name=Acme%20Corp%2C%20Inc" })).baggage).toBe("name=Acme%20Corp%2C%20Inc");
    // An operator reads it with the task.
    const shown = await runOperator({ args: ["tasks", "get", given.id], env: { COORDINATION_URL: t.url } });
    expect([shown.code, shown.stdout.match(/^baggage\s+(.*)$/m)?.[1]]).toEqual([0, "tenant=acme;tier=gold,user=42,flag=1;beta"]);
  });

  it("takes the request's baggage header when the enqueue names none, leniently: malformed members dropped, the first 180 that fit kept", async () => {
    t = await startTestServer();
    const taken = await enqueueWith(t.url, { queue: "q" }, { baggage: "tenant=acme, not a member, user=42;source=web" });
    expect([taken.status, taken.body.baggage]).toEqual([200, "tenant=acme,user=42;source=web"]);
    // The enqueue's own wins; a header with nothing valid is none.
    expect((await enqueueWith(t.url, { queue: "q", baggage: "tenant=mine" }, { baggage: "tenant=header" })).body.baggage).toBe("tenant=mine");
    expect((await enqueueWith(t.url, { queue: "q" }, { baggage: "nothing valid here" })).body.baggage).toBeNull();
    // A header is not refused for the spec's limits: members past them are left out.
    const many = Array.from({ length: 190 }, (_, i) => `k${i}=v${i}`).join(",");
    expect((await enqueueWith(t.url, { queue: "q" }, { baggage: many })).body.baggage).toBe(many.split(",").slice(0, 180).join(","));
    // A batch's tasks each take it, beside the trace header.
    const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const batch = await fetch(`${t.url}/tasks/batch`, {
      method: "POST",
      headers: { "content-type": "application/json", baggage: "tenant=acme", traceparent },
      body: JSON.stringify({ tasks: [{ queue: "q" }, { queue: "q", baggage: "tenant=other" }] }),
    });
    const tasks = (await batch.json()) as Array<{ baggage: string | null; traceparent: string | null }>;
    expect(tasks.map((task) => [task.baggage, task.traceparent])).toEqual([
      ["tenant=acme", traceparent],
      ["tenant=other", traceparent],
    ]);
  });

  it("reads a header member by member, each once: a 16 KiB header of one-character junk keeps what is valid", () => {
    const junk = Array.from({ length: 8_000 }, () => "x").join(",");
    expect(baggageOfHeader(`${junk},tenant=acme`)).toBe("tenant=acme");
    expect(baggageOfHeader(["tenant=acme", "user=42"])).toBe("tenant=acme,user=42");
    // A member that would pass 8,192 bytes is dropped whole, those after it that fit kept.
    expect(baggageOfHeader(`a=${"1".repeat(8_000)},b=${"2".repeat(500)},c=3`)).toBe(`a=${"1".repeat(8_000)},c=3`);
    expect(baggageOfHeader(undefined)).toBeUndefined();
  });

  it("goes from a producer's OpenTelemetry context through the typed client's traceContext, and from an MCP request's _meta", async () => {
    t = await startTestServer();
    const manager = new AsyncLocalStorageContextManager().enable();
    context.setGlobalContextManager(manager);
    const propagator = new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] });
    try {
      const client = createCoordinationClient({
        url: t.url,
        traceContext: () => {
          const carrier: TraceCarrier = {};
          propagator.inject(context.active(), carrier, { set: (c, key, value) => void ((c as Record<string, string>)[key] = value) });
          return carrier;
        },
      });
      clients.push(client);
      const spanContext = { traceId: "0af7651916cd43dd8448eb211c80319c", spanId: "b7ad6b7169203331", traceFlags: 1 };
      const withBaggage = propagation.setBaggage(ROOT_CONTEXT, propagation.createBaggage({ tenant: { value: "acme" }, user: { value: "42" } }));
      // Two enqueues made together, one in a traced context with baggage, one with baggage alone.
      const [traced, alone] = await Promise.all([
        context.with(trace.setSpanContext(withBaggage, spanContext), () => client.api.tasks.enqueue.mutate({ queue: "q" })),
        context.with(propagation.setBaggage(ROOT_CONTEXT, propagation.createBaggage({ tenant: { value: "globex" } })), () => client.api.tasks.enqueue.mutate({ queue: "q" })),
      ]);
      expect([traced.baggage, traced.traceparent, alone.baggage, alone.traceparent]).toEqual(["tenant=acme,user=42", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tenant=globex", null]);
      // One naming its own keeps it.
      const own = await context.with(withBaggage, () => client.api.tasks.enqueue.mutate({ queue: "q", baggage: "tenant=own" }));
      expect(own.baggage).toBe("tenant=own");
    } finally {
      context.disable();
    }

    const mcp = await connectMcp(t.url, { "x-agent-id": "planner" });
    const result = (await mcp.callTool({ name: "enqueue_task", arguments: { queue: "mcp" }, _meta: { baggage: "tenant=acme,session=s-1" } })) as { content: Array<{ text: string }> };
    expect(JSON.parse(result.content[0]!.text).baggage).toBe("tenant=acme,session=s-1");
    expect((await callTool(mcp, "enqueue_task", { queue: "mcp" })).baggage).toBeNull();
  });

  it("an MCP request's _meta gives what it holds: baggage alone keeps the HTTP headers' trace context, a traceparent alone the headers' baggage", async () => {
    t = await startTestServer();
    const parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const other = "00-11111111111111111111111111111111-2222222222222222-01";
    const enqueue = async (client: Awaited<ReturnType<typeof connectMcp>>, meta: Record<string, string>) => {
      const result = (await client.callTool({ name: "enqueue_task", arguments: { queue: "mcp" }, _meta: meta })) as { content: Array<{ text: string }> };
      const task = JSON.parse(result.content[0]!.text) as { traceparent: string | null; tracestate: string | null; baggage: string | null };
      return [task.traceparent, task.tracestate, task.baggage];
    };
    const headed = await connectMcp(t.url, { traceparent: parent, tracestate: "vendor=1", baggage: "tenant=header" });
    // Before: a _meta holding baggage alone dropped the headers' traceparent (it was read as the whole carrier).
    expect(await enqueue(headed, { baggage: "tenant=meta" })).toEqual([parent, "vendor=1", "tenant=meta"]);
    expect(await enqueue(headed, { traceparent: other })).toEqual([other, null, "tenant=header"]);
    expect(await enqueue(headed, { traceparent: other, tracestate: "host=2", baggage: "tenant=meta" })).toEqual([other, "host=2", "tenant=meta"]);
    expect(await enqueue(headed, {})).toEqual([parent, "vendor=1", "tenant=header"]);
  });
});
