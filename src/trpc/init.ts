// The tRPC builders the app uses, created once: context, REST meta, superjson on the wire, the
// one error shape, and the base procedures: `procedure` (domain errors keep their code and
// status), `consumingProcedure` (delivery confirmation for calls that take something) and
// `waitingProcedure` (a call that waits, and stops when its client is gone).
import { initTRPC, TRPCError } from "@trpc/server";
import { authorize, unauthorized } from "../auth/access.js";
import type { ConsumingCall, Delivery } from "../delivery/delivery.js";
import { CoordinationError, invalidField } from "../errors.js";
import { findCycle, findRefusedKeyInFields, REFUSED_KEY_PROBLEM } from "../json-checks.js";
import type { Services } from "../services.js";
import type { Context } from "./context.js";
import { toErrorBody, trpcCodeOf, trpcErrorData } from "./error-shape.js";
import type { Meta } from "./meta.js";
import { wireTransformer } from "./wire-encoding.js";

export type { Context, Meta };
export type { RestRoute } from "./meta.js";

const t = initTRPC
  .context<Context>()
  .meta<Meta>()
  .create({
    // superjson on the wire; answers written by our encoder of the same output (wire-encoding.ts).
    transformer: wireTransformer,
    // Never send stack traces to clients; they are logged by the server's onError.
    isDev: false,
    // Subscriptions over WebSocket only. Over SSE (a GET to /trpc/events.onEvent) a stream has no
    // socket to apply backpressure to or close on overflow, and it held shutdown for
    // shutdownTimeoutMs. Disabled, the GET gets one METHOD_NOT_SUPPORTED error event and ends.
    sse: { enabled: false },
    // The one error shape: { code, message, details? } (src/errors.ts), with the message on the error.
    errorFormatter({ shape, error }) {
      const body = toErrorBody(error);
      return { message: body.message, code: shape.code, data: trpcErrorData(body, shape.data.path) };
    },
  });

/**
 * Types the core for procedures (the context keeps it opaque, see context.ts), and re-throws
 * domain errors with the tRPC code of their status; anything else stays an internal error.
 */
const withServices = t.middleware(async ({ ctx, next }) => {
  const result = await next({ ctx: { services: ctx.core as Services } });
  if (!result.ok && result.error.cause instanceof CoordinationError) {
    const cause = result.error.cause;
    throw new TRPCError({ code: trpcCodeOf(cause.code), message: cause.message, cause });
  }
  return result;
});

/**
 * Who may call what (src/auth/access.ts), before the input is validated: an agent credential's
 * agent is filled in where the input names none. A WebSocket authenticated once; a token revoked
 * since is refused here on every later call. Returns the input to validate.
 */
export function admitCall(ctx: Context, meta: Meta | undefined, path: string, given: unknown, type: "query" | "mutation" | "subscription"): unknown {
  const services = ctx.core as Services;
  // A read with no input at all (GET /trpc/agents.list) is one with an empty object, as a REST
  // GET with no query is: its fields take their defaults, a required one is named as missing
  // (zod's "is required" named no field). Not a write: a body tRPC reads as no input may be one
  // sent without superjson's {"json": …} envelope, and an enqueue of {} would store a task its
  // caller never described.
  const rawInput = given === undefined && type === "query" ? {} : given;
  const access = meta?.access;
  // app-router.ts refuses to load a router with a procedure that declares none.
  if (access === undefined) throw new Error(`${path} declares no access`);
  if (!services.credentials.isCurrent(ctx.caller)) throw unauthorized();
  // An in-process caller's objects may contain themselves, which no walk below could finish
  // (json-checks.ts findCycle); every transport reads a tree, so only the program's own calls are looked at.
  if (ctx.caller.kind === "trusted") refuseCycles(rawInput);
  // Before any schema: zod leaves a __proto__ key out of what it parses, so a loose object (an
  // agent card keeps unknown fields) would lose it without a word (json-checks.ts, REFUSED_KEYS).
  // A key of the input itself is a field name: the schema refuses it as an unknown field.
  const refused = findRefusedKeyInFields(rawInput);
  if (refused !== null) throw invalidField(refused, REFUSED_KEY_PROBLEM);
  if (ctx.caller.kind === "trusted" || ctx.caller.kind === "open" || access.role === "open") return rawInput;
  return authorize(access, ctx.caller, path, rawInput, services.log);
}

/** INVALID_INPUT naming where `input` refers back to a container it is inside of, as tRPC's wire format is refused (wire-encoding.ts). */
function refuseCycles(input: unknown): void {
  const cycle = findCycle(input);
  if (cycle !== null) throw invalidField(cycle.at, `refers back to ${cycle.to ?? "the whole input"} (a cycle): an input must be JSON`);
}

const enforceAccess = t.middleware(async ({ ctx, meta, path, type, getRawInput, next }) => {
  const raw = await getRawInput();
  const input = admitCall(ctx, meta, path, raw, type);
  const ended = ctx.transport.callStarted?.(type);
  if (ended === undefined) return input === raw ? next() : next({ getRawInput: () => Promise.resolve(input) });
  try {
    return await (input === raw ? next() : next({ getRawInput: () => Promise.resolve(input) }));
  } finally {
    ended();
  }
});

/**
 * What a call that waits for its client receives (`ctx.call`): whether the client is gone (it
 * left, or its credential was revoked) as a look and as signals, and the transport's note that the
 * call parks by design. `delivery`, when given, is where a call that takes something registers
 * how to undo it. `dispose` lets go of the revocation watch once the call ended.
 */
function watchCall(ctx: Context, signal: AbortSignal | undefined, delivery: Delivery | undefined): { call: ConsumingCall; dispose: () => void } {
  const { credentials } = ctx.core as Services;
  // Ends early if the client leaves, or if its credential is revoked: looked at by every call,
  // watched (signals) only by one that waits.
  let revoked: { signal: AbortSignal; dispose: () => void } | undefined;
  let watching = false;
  const call: ConsumingCall = {
    delivery,
    gone: () => (signal?.aborted ?? false) || ctx.transport.gone() || !credentials.isCurrent(ctx.caller),
    signals: () => {
      if (!watching) {
        watching = true;
        revoked = credentials.watchRevocation(ctx.caller);
      }
      return [signal, ctx.transport.clientGone, revoked?.signal];
    },
    waiting: () => ctx.transport.waiting?.(),
    revoked: () => !credentials.isCurrent(ctx.caller),
  };
  return { call, dispose: () => revoked?.dispose() };
}

/**
 * For procedures that take something for their caller (a claim, a steal, an auto-ack poll): the
 * call ends as soon as its client is gone, and what it took is given back when its answer does
 * not reach the client (src/delivery/delivery.ts). `settle(true)` once the answer passed output
 * validation (an answer that fails it counts as undelivered too), `settle(false)` on failure.
 */
export function startDelivery(ctx: Context, path: string, signal: AbortSignal | undefined): { call: ConsumingCall; settle: (answered: boolean) => void } {
  const delivery = (ctx.core as Services).deliveries.create(path);
  const { call, dispose } = watchCall(ctx, signal, delivery);
  return {
    call,
    settle: (answered) => {
      dispose();
      if (answered) ctx.transport.confirm(delivery);
      else delivery.undelivered();
    },
  };
}

/** For procedures that wait without taking anything (tasks.wait, tasks.waitMany): the call ends as soon as its client is gone; nothing to give back. */
export const startWatch = (ctx: Context, signal: AbortSignal | undefined): { call: ConsumingCall; dispose: () => void } => watchCall(ctx, signal, undefined);

const confirmDelivery = t.middleware(async ({ ctx, path, signal, next }) => {
  const { call, settle } = startDelivery(ctx, path, signal);
  let answered = false;
  try {
    const result = await next({ ctx: { call } });
    answered = result.ok;
    return result;
  } finally {
    settle(answered);
  }
});

const watchClient = t.middleware(async ({ ctx, signal, next }) => {
  const { call, dispose } = startWatch(ctx, signal);
  try {
    return await next({ ctx: { call } });
  } finally {
    dispose();
  }
});

/** Whether a procedure's middlewares (its `_def.middlewares`) include delivery confirmation: it takes something for its caller. */
export const takesForCaller = (middlewares: readonly unknown[]): boolean => confirmDelivery._middlewares.some((m) => middlewares.includes(m));
/** Whether they include the client watch of a call that waits without taking anything. */
export const watchesClient = (middlewares: readonly unknown[]): boolean => watchClient._middlewares.some((m) => middlewares.includes(m));

export const router = t.router;
export const procedure = t.procedure.use(withServices).use(enforceAccess);
export const consumingProcedure = procedure.use(confirmDelivery);
export const waitingProcedure = procedure.use(watchClient);
/** The middlewares whose steps a direct call runs itself (src/rest/direct-call.ts): a procedure with any other is left to tRPC. */
export const directCallMiddlewares: readonly unknown[] = [...consumingProcedure._def.middlewares, ...watchClient._middlewares];
export const createCallerFactory = t.createCallerFactory;
