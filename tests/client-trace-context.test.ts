// The typed client's traceContext option: each enqueue asks for its caller's W3C trace context as
// the call is made and sends it as that call's headers, in a request of its own, so enqueues made
// together from several traces (which the client would batch, and the server takes no batch's
// headers) each carry their own. Real client, real server, real OpenTelemetry context manager.
import { AsyncLocalStorage } from "node:async_hooks";
import diagnosticsChannel from "node:diagnostics_channel";
import { context, propagation, ROOT_CONTEXT, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { afterEach, describe, expect, it } from "vitest";
import { createCoordinationClient, runWorker, type CoordinationClient, type TraceCarrier } from "../client/index.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

let t: TestServer | undefined;
const clients: CoordinationClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.close()));
  await t?.stop({ removeFiles: true });
  t = undefined;
});

/** A version-00 traceparent of trace `n` (32 hex digits) and span `n`, sampled. */
const traceparentOf = (n: number) => `00-${n.toString(16).padStart(32, "0")}-${n.toString(16).padStart(16, "0")}-01`;

/** Every HTTP request the client sends: its path and query, and the trace context its headers carry. */
interface Sent {
  path: string;
  traceparent: string | null;
  tracestate: string | null;
}

function tracingClient(url: string, traceContext: () => TraceCarrier | undefined) {
  const sent: Sent[] = [];
  const client = createCoordinationClient({
    url,
    traceContext,
    fetch: (input, init) => {
      const headers = new Headers(init?.headers as ConstructorParameters<typeof Headers>[0]);
      const target = new URL(String(input));
      // The client's own trace headers, which the server reads before traceparent and tracestate.
      sent.push({ path: `${target.pathname}${target.search}`, traceparent: headers.get("coordination-traceparent"), tracestate: headers.get("coordination-tracestate") });
      return fetch(input as string, init as RequestInit);
    },
  });
  clients.push(client);
  return { api: client.api, sent };
}

describe("the typed client's traceContext", () => {
  it("sends each enqueue made together with its own caller's trace context, alone; other calls stay batched", async () => {
    t = await startTestServer();
    const callers = new AsyncLocalStorage<TraceCarrier>();
    const { api, sent } = tracingClient(t.url, () => callers.getStore());
    const own = traceparentOf(9);
    const longState = Array.from({ length: 40 }, (_, i) => `k${i}=v${i}`).join(",");

    // All made in one tick: without the option the client sends them as one batch, and no task
    // carries a trace (the server takes no batch's headers).
    const [one, two, many, keeps, none, malformed, long, unsendable] = await Promise.all([
      callers.run({ traceparent: traceparentOf(1), tracestate: "vendor=one" }, () => api.tasks.enqueue.mutate({ queue: "traced", payload: 1 })),
      callers.run({ traceparent: traceparentOf(2) }, () => api.tasks.enqueue.mutate({ queue: "traced", payload: 2 })),
      callers.run({ traceparent: traceparentOf(3) }, () => api.tasks.enqueueMany.mutate({ tasks: [{ queue: "traced", payload: 3 }, { queue: "traced", payload: 4, traceparent: own }] })),
      callers.run({ traceparent: traceparentOf(4) }, () => api.tasks.enqueue.mutate({ queue: "traced", payload: 5, traceparent: own })),
      api.tasks.enqueue.mutate({ queue: "traced", payload: 6 }),
      // A context the server cannot read is ignored, as any header is: never a 400.
      callers.run({ traceparent: "00-not-a-trace" }, () => api.tasks.enqueue.mutate({ queue: "traced", payload: 7 })),
      // An upstream tracestate past 32 members is cut as a header's is, not refused as a field's.
      callers.run({ traceparent: traceparentOf(5), tracestate: longState }, () => api.tasks.enqueue.mutate({ queue: "traced", payload: 8 })),
      // No header can carry a line break: the enqueue goes as without a context.
      callers.run({ traceparent: `${traceparentOf(6)}\r\nx-forged: 1` }, () => api.tasks.enqueue.mutate({ queue: "traced", payload: 9 })),
    ]);
    expect([one.traceparent, one.tracestate]).toEqual([traceparentOf(1), "vendor=one"]);
    expect([two.traceparent, two.tracestate]).toEqual([traceparentOf(2), null]);
    expect(many.map((task) => task.traceparent)).toEqual([traceparentOf(3), own]);
    expect(keeps.traceparent).toBe(own);
    expect([none.traceparent, malformed.traceparent, unsendable.traceparent]).toEqual([null, null, null]);
    expect([long.traceparent, long.tracestate]).toEqual([traceparentOf(5), longState.split(",").slice(0, 32).join(",")]);
    // The claimed task carries it too.
    const claimed = await api.tasks.claim.mutate({ agentId: "reader", queues: ["traced"], context: false });
    expect([claimed?.id, claimed?.traceparent]).toEqual([one.id, traceparentOf(1)]);

    // Each traced enqueue went alone with its headers; the rest (its own traceparent, none) in one batch.
    const enqueues = sent.filter((request) => request.path.includes("tasks.enqueue"));
    const alone = enqueues.filter((request) => !request.path.includes(","));
    expect(alone.map((request) => [request.traceparent, request.tracestate]).sort()).toEqual(
      [
        [traceparentOf(1), "vendor=one"],
        [traceparentOf(2), null],
        [traceparentOf(3), null],
        ["00-not-a-trace", null],
        [traceparentOf(5), longState],
      ].sort(),
    );
    expect(enqueues.filter((request) => request.path.includes(",")).map((request) => [request.path.split("?")[0], request.traceparent])).toEqual([["/trpc/tasks.enqueue,tasks.enqueue,tasks.enqueue", null]]);
    // Calls that take no trace context never ask for one, nor go alone for it.
    expect(sent.filter((request) => request.path.includes("tasks.claim")).map((request) => request.traceparent)).toEqual([null]);
  });

  it("keeps each caller's trace when an HTTP instrumentation adds a traceparent of its own to every request", async () => {
    t = await startTestServer();
    // What OpenTelemetry's undici instrumentation (which the Node SDK's auto-instrumentations turn
    // on) does to every request the client sends: it appends its client span's traceparent to the
    // request's headers, beside any there already (open-telemetry/opentelemetry-js-contrib#2796).
    // A request with two traceparent headers has none, as the spec reads it.
    const instrumentation = (message: unknown) => (message as { request: { addHeader(name: string, value: string): void } }).request.addHeader("traceparent", traceparentOf(99));
    diagnosticsChannel.subscribe("undici:request:create", instrumentation);
    try {
      const callers = new AsyncLocalStorage<TraceCarrier>();
      const client = createCoordinationClient({ url: t.url, traceContext: () => callers.getStore() });
      clients.push(client);
      const tasks = await Promise.all(
        [1, 2].map((n) => callers.run({ traceparent: traceparentOf(n), tracestate: `vendor=${n}` }, () => client.api.tasks.enqueue.mutate({ queue: "q", payload: n }))),
      );
      expect(tasks.map((task) => [task.traceparent, task.tracestate])).toEqual([
        [traceparentOf(1), "vendor=1"],
        [traceparentOf(2), "vendor=2"],
      ]);
      // Without a traceContext answer, the instrumentation's header is the request's trace context, as before.
      expect((await client.api.tasks.enqueue.mutate({ queue: "q" })).traceparent).toBe(traceparentOf(99));
    } finally {
      diagnosticsChannel.unsubscribe("undici:request:create", instrumentation);
    }
  });

  it("a traceContext that throws, answers nothing, or a carrier that cannot be read leaves the enqueue as without it", async () => {
    t = await startTestServer();
    let answer: () => TraceCarrier | undefined = () => {
      throw new Error("a broken tracer");
    };
    const { api } = tracingClient(t.url, () => answer());
    expect((await api.tasks.enqueue.mutate({ queue: "q" })).traceparent).toBeNull();
    answer = () => undefined;
    expect((await api.tasks.enqueue.mutate({ queue: "q" })).traceparent).toBeNull();
    answer = () => ({ tracestate: "vendor=one" });
    expect((await api.tasks.enqueue.mutate({ queue: "q" })).tracestate).toBeNull();
    // A carrier whose reading throws (a getter, a proxy), or no carrier at all (a promise).
    answer = () => ({
      get traceparent(): string {
        throw new Error("a broken getter");
      },
    });
    expect((await api.tasks.enqueue.mutate({ queue: "q" })).traceparent).toBeNull();
    answer = () =>
      new Proxy({} as TraceCarrier, {
        get() {
          throw new Error("a broken proxy");
        },
      });
    expect((await api.tasks.enqueue.mutate({ queue: "q" })).traceparent).toBeNull();
    answer = () => Promise.resolve({ traceparent: traceparentOf(1) }) as unknown as TraceCarrier;
    expect((await api.tasks.enqueue.mutate({ queue: "q" })).traceparent).toBeNull();
  });

  it("with OpenTelemetry's context manager, a run's children carry the run's trace, enqueued together", async () => {
    t = await startTestServer();
    const manager = new AsyncLocalStorageContextManager().enable();
    context.setGlobalContextManager(manager);
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    try {
      const { api } = tracingClient(t.url, () => {
        const carrier = {};
        propagation.inject(context.active(), carrier);
        return carrier;
      });
      const parents = await Promise.all([1, 2].map((n) => api.tasks.enqueue.mutate({ queue: "parents", payload: n, traceparent: traceparentOf(n) })));
      const tracer = trace.getTracer("test");
      const worker = await runWorker({
        api,
        agentId: "fan-out",
        queues: ["parents"],
        concurrency: 2,
        // Each run's span in its task's trace; its three children enqueued at once, in that span.
        handler: (task) =>
          tracer.startActiveSpan("run", {}, propagation.extract(ROOT_CONTEXT, task), async (span) => {
            try {
              const children = await Promise.all([1, 2, 3].map((i) => api.tasks.enqueue.mutate({ queue: "children", payload: { parent: task.id, i } })));
              return children.map((child) => child.id);
            } finally {
              span.end();
            }
          }),
      });
      try {
        for (const parent of parents) {
          const done = await api.tasks.wait.query({ taskId: parent.id, waitMs: 30_000 });
          expect(done.status).toBe("completed");
          const children = await Promise.all((done.result as string[]).map((taskId) => api.tasks.get.query({ taskId })));
          expect(children.map((child) => child.traceparent?.split("-")[1])).toEqual(Array(3).fill(parent.traceparent!.split("-")[1]));
        }
      } finally {
        await worker.stop();
      }
    } finally {
      context.disable();
      propagation.disable();
    }
  });
});
