// The tRPC builders the app uses, created once: context, OpenAPI meta, superjson on the wire,
// and the single translation of domain errors into tRPC codes (which REST turns into statuses).
import { initTRPC, TRPCError } from "@trpc/server";
import superjson from "superjson";
import type { OpenApiMeta } from "trpc-to-openapi";
import type { WebSocket } from "ws";
import { ZodError } from "zod";
import { CoordinationError, ERROR_REASONS } from "../errors.js";
import type { ConsumingCall } from "../delivery/delivery.js";
import type { Transport } from "../delivery/transports.js";
import type { Services } from "../services.js";
import { linkSignals } from "../wakeup.js";

export interface Context {
  services: Services;
  /** How answers reach this client: tells when it is gone and whether an answer was delivered. */
  transport: Transport;
  /** The client's socket, for subscriptions over WebSocket (backpressure and closing). */
  socket?: WebSocket;
}

/** "priority: Too small: expected number to be >=0; queue: ..." from zod issues. */
export function describeIssues(issues: ReadonlyArray<{ path: PropertyKey[]; message: string }>): string {
  return issues.map((issue) => `${issue.path.length ? issue.path.join(".") : "input"}: ${issue.message}`).join("; ");
}

const t = initTRPC
  .context<Context>()
  .meta<OpenApiMeta>()
  .create({
    transformer: superjson,
    // Never send stack traces to clients; they are logged by the server's onError.
    isDev: false,
    // Subscriptions over WebSocket only. Over SSE (a GET to /trpc/events.onEvent) a stream has no
    // socket to apply backpressure to or close on overflow, and it held shutdown for
    // shutdownTimeoutMs. Disabled, the GET gets one METHOD_NOT_SUPPORTED error event and ends.
    sse: { enabled: false },
    errorFormatter({ shape, error }) {
      const cause = error.cause;
      const { stack: _stack, ...data } = shape.data;
      if (cause instanceof ZodError) {
        return { ...shape, message: `Invalid input: ${describeIssues(cause.issues)}`, data: { ...data, issues: cause.issues } };
      }
      if (error.code === "INTERNAL_SERVER_ERROR") return { ...shape, message: "Internal server error", data };
      const reason = cause instanceof CoordinationError ? cause.reason : undefined;
      return { ...shape, data: { ...data, ...(reason ? { reason } : {}) } };
    },
  });

/** Re-throws domain errors with their tRPC code; anything else stays an internal error. */
const translateDomainErrors = t.middleware(async ({ next }) => {
  const result = await next();
  if (!result.ok && result.error.cause instanceof CoordinationError) {
    const cause = result.error.cause;
    throw new TRPCError({ code: ERROR_REASONS[cause.reason], message: cause.message, cause });
  }
  return result;
});

/**
 * For procedures that take something for their caller (a claim, a steal, an auto-ack poll): the
 * call ends as soon as its client is gone, and what it took is given back when its answer does
 * not reach the client (src/delivery/delivery.ts). Runs inside the output validation, so an
 * answer that fails it counts as undelivered too.
 */
const confirmDelivery = t.middleware(async ({ ctx, path, signal, next }) => {
  const delivery = ctx.services.deliveries.create(path);
  const stop = linkSignals([signal, ctx.transport.clientGone]);
  try {
    const call: ConsumingCall = { signal: stop.signal, delivery };
    const result = await next({ ctx: { call } });
    if (result.ok) ctx.transport.confirm(delivery);
    else delivery.undelivered();
    return result;
  } finally {
    stop.dispose();
  }
});

export const router = t.router;
export const procedure = t.procedure.use(translateDomainErrors);
export const consumingProcedure = procedure.use(confirmDelivery);
export const createCallerFactory = t.createCallerFactory;
