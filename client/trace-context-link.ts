// An enqueue carries its caller's trace by itself. The server keeps an enqueue's HTTP
// `traceparent`/`tracestate` headers as its task's trace context when the call names none, but
// only from a request that holds that one call: a batch holds several callers' calls, of any
// number of traces (src/tasks/trace-context.ts). This client batches the calls made in one tick,
// so enqueues made together from several traces (two requests a web server handles at once)
// reached the server with no headers of theirs, and their tasks carried no trace.
//
// With `traceContext`, each enqueue asks it for its caller's context as the call is made (in
// the caller's own async context: OpenTelemetry's context.active() is the caller's span), and
// goes in a request of its own carrying the answer as its headers. Headers, not the enqueue's
// fields: the server reads them as it reads any instrumented request's, leniently (an upstream
// tracestate past 32 members or 512 characters is cut, not refused with a 400), and an enqueue
// that names its own traceparent keeps it. Headers of the client's own name, not `traceparent`:
// OpenTelemetry's undici instrumentation appends its own traceparent to every request, beside
// one already there, and a request with two has none (the server reads these first).
import type { Operation, TRPCLink } from "@trpc/client";
import type { AppRouter } from "./types.js";

/**
 * A W3C Trace Context carrier: `traceparent` ("00-<trace id>-<parent span id>-<flags>") and
 * `tracestate`, and W3C Baggage's `baggage` ("tenant=acme,user=42"), as OpenTelemetry's
 * `propagation.inject` fills an object (the baggage with a composite propagator, as NodeSDK's
 * default). Other keys are not sent.
 */
export interface TraceCarrier {
  traceparent?: string;
  tracestate?: string;
  baggage?: string;
}

/** The headers the server reads an enqueue's trace context from before traceparent and tracestate (src/tasks/trace-context.ts). */
const TRACEPARENT_HEADER = "coordination-traceparent";
const TRACESTATE_HEADER = "coordination-tracestate";
const BAGGAGE_HEADER = "coordination-baggage";

/** The calls whose task takes the caller's trace context (the server takes it for these alone). */
const TAKES_TRACE = new Set(["tasks.enqueue", "tasks.enqueueMany"]);

/**
 * Whether `value` may go in a header as it is: printable ASCII (what both fields are made of), and
 * short enough that no server refuses the request's headers for it (the server keeps 512
 * characters of a tracestate at most). Anything else would fail the call in the HTTP client or
 * the server: it is not sent.
 */
const sendable = (value: unknown): value is string => typeof value === "string" && value !== "" && value.length <= 8192 && /^[\x20-\x7e]+$/.test(value);

/**
 * The headers of what `traceContext` answers now, but those the enqueue names itself (`skipTrace`:
 * its traceparent; `skipBaggage`: its baggage); undefined for none. Whatever it does (throws,
 * answers a carrier whose getters throw, a proxy, a promise) is read inside the try: a broken
 * tracer costs the call its trace context, never the call.
 */
function headersOf(traceContext: () => TraceCarrier | undefined, skipTrace: boolean, skipBaggage: boolean): Record<string, string> | undefined {
  try {
    const carrier = traceContext();
    const headers: Record<string, string> = {};
    const traceparent: unknown = skipTrace ? undefined : carrier?.traceparent;
    if (sendable(traceparent)) {
      headers[TRACEPARENT_HEADER] = traceparent;
      const tracestate: unknown = carrier?.tracestate;
      if (sendable(tracestate)) headers[TRACESTATE_HEADER] = tracestate;
    }
    // Baggage travels with or without a trace.
    const baggage: unknown = skipBaggage ? undefined : carrier?.baggage;
    if (sendable(baggage)) headers[BAGGAGE_HEADER] = baggage;
    return Object.keys(headers).length === 0 ? undefined : headers;
  } catch {
    return undefined;
  }
}

/** The trace headers traceContextLink gave `op`; undefined when it gave none. */
export const traceHeadersOf = (op: Operation): Record<string, string> | undefined => (op.context as { traceHeaders?: Record<string, string> }).traceHeaders;

/**
 * Put before the links that route calls: an enqueue whose `traceContext()` answers a traceparent
 * or baggage is marked with its headers (traceHeadersOf), which send it alone. An answer with none (or one
 * no header can carry: sendable), or a `traceContext` that throws, leaves the enqueue as it was:
 * tracing never fails a call.
 */
export function traceContextLink(traceContext: () => TraceCarrier | undefined): TRPCLink<AppRouter> {
  return () =>
    ({ op, next }) => {
      if (op.type !== "mutation" || !TAKES_TRACE.has(op.path)) return next(op);
      // An enqueue naming its own keeps it (the server prefers the fields): what it names is not
      // asked, and one naming both may go in a batch.
      const own = op.path === "tasks.enqueue" ? (op.input as { traceparent?: unknown; baggage?: unknown } | undefined) : undefined;
      const ownTrace = typeof own?.traceparent === "string";
      const ownBaggage = typeof own?.baggage === "string";
      if (ownTrace && ownBaggage) return next(op);
      const traceHeaders = headersOf(traceContext, ownTrace, ownBaggage);
      return traceHeaders === undefined ? next(op) : next({ ...op, context: { ...op.context, traceHeaders } });
    };
}
