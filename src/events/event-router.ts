// tRPC procedures of the event stream, including the live WebSocket subscription.
import { TRPCError } from "@trpc/server";
import { z } from "zod";
import { AS_AGENT, assertMayPublish, mailboxViewOf, READ, unauthorized } from "../auth/access.js";
import { linkSignals } from "../wakeup.js";
import { consumingProcedure, procedure, router } from "../trpc/init.js";
import {
  ackInput,
  agentIdInput,
  eventSchema,
  listEventsInput,
  onEventInput,
  pollInput,
  publishInput,
  subscribeInput,
  subscriptionSchema,
  unsubscribeInput,
} from "./event-schemas.js";
import { streamEvents } from "./event-stream.js";

const tags = ["events"];

export const eventRouter = router({
  publish: procedure
    .meta({ access: { role: "agent", actingAs: { field: "source", fill: true } }, rest: { method: "POST", path: "/events", tags, summary: "Publish an event (with target: a direct message)", errors: ["IDEMPOTENCY_MISMATCH"] } })
    .input(publishInput)
    .output(eventSchema)
    .mutation(({ ctx, input }) => {
      assertMayPublish(ctx.caller, input.type);
      return ctx.services.events.publish(input);
    }),

  subscribe: procedure
    .meta({ access: AS_AGENT, rest: { method: "POST", path: "/events/subscriptions", tags, summary: "Subscribe an agent to event types", errors: ["EVENTS_PRUNED"] } })
    .input(subscribeInput)
    .output(subscriptionSchema)
    .mutation(({ ctx, input }) => ctx.services.events.subscribe(input)),

  unsubscribe: procedure
    .meta({ access: AS_AGENT,
      rest: { method: "DELETE", path: "/events/subscriptions/{agentId}", tags, summary: "Drop types, or all of them (the mailbox stays)", errors: ["SUBSCRIPTION_NOT_FOUND"] },
    })
    .input(unsubscribeInput)
    .output(subscriptionSchema)
    .mutation(({ ctx, input }) => ctx.services.events.unsubscribe(input)),

  subscription: procedure
    .meta({ access: AS_AGENT, rest: { method: "GET", path: "/events/subscriptions/{agentId}", tags, summary: "An agent's subscription and cursors", errors: ["SUBSCRIPTION_NOT_FOUND"] } })
    .input(agentIdInput)
    .output(subscriptionSchema)
    .query(({ ctx, input }) => ctx.services.events.getSubscription(input.agentId)),

  poll: consumingProcedure
    .meta({ access: AS_AGENT, rest: { method: "GET", path: "/events/{agentId}", tags, summary: "Poll an agent's next events (its subscribed types and its mailbox)", errors: ["EVENTS_PRUNED"] } })
    .input(pollInput)
    .output(z.array(eventSchema))
    .mutation(({ ctx, input }) => ctx.services.events.poll(input, ctx.call)),

  ack: procedure
    .meta({ access: AS_AGENT, rest: { method: "POST", path: "/events/{agentId}/ack", tags, summary: "Acknowledge events up to seq (manual ack)" } })
    .input(ackInput)
    .output(subscriptionSchema)
    .mutation(({ ctx, input }) => ctx.services.events.ack(input)),

  /** Where the log stands: its head (highest seq) and how far it has been pruned. */
  head: procedure
    .meta({ access: READ, rest: { method: "GET", path: "/stats/events", tags, summary: "The event log's head seq and pruned-through seq" } })
    .input(z.strictObject({}).optional())
    .output(z.object({ head: z.number().int(), prunedThrough: z.number().int() }))
    .query(({ ctx }) => ctx.services.db.read("events.window", undefined)),

  list: procedure
    .meta({ access: READ, rest: { method: "GET", path: "/events", tags, summary: "Event history after a seq", errors: ["EVENTS_PRUNED"] } })
    .input(listEventsInput)
    .output(z.array(eventSchema))
    // Direct messages are their target's: an agent credential sees its own, a read credential none.
    .query(({ ctx, input }) => ctx.services.events.list({ ...input, ...mailboxViewOf(ctx.caller) })),

  /** Live events over WebSocket; tracked by seq, so a reconnecting client resumes where it left off. */
  onEvent: procedure
    // Streams untargeted events and, with agentId, that agent's mailbox: an agent credential may
    // name only itself; left out, the stream follows the types asked for, as it does for anyone.
    .meta({ access: { role: "read", actingAs: { field: "agentId", fill: false } } })
    .input(onEventInput)
    .subscription(({ ctx, input, signal }) => {
    const { services, transport } = ctx;
    // WebSocket only: backpressure and the overflow close need the socket. Server-sent events are
    // also disabled in src/trpc/init.ts; this names the reason should anything else call it.
    const socket = transport.stream;
    if (!socket) throw new TRPCError({ code: "METHOD_NOT_SUPPORTED", message: "events.onEvent is served over WebSocket only" });
    // Counted against the socket's maxSubscriptionsPerSocket until the stream ends.
    const release = socket.admitStream();
    signal?.addEventListener("abort", release, { once: true });
    // Ends the moment its credential is revoked, with a 401, before the socket itself closes
    // (once its calls in progress are answered: create-server.ts): nothing committed after the
    // revocation reaches it.
    const revocation = services.credentials.watchRevocation(ctx.caller);
    const ends = linkSignals([signal, revocation?.signal]);
    const ended = () => {
      release();
      ends.dispose();
      revocation?.dispose();
    };
    return countedStream(ended, () => !services.credentials.isCurrent(ctx.caller), streamEvents(
      {
        bus: services.bus,
        service: services.events,
        bufferLimit: services.config.subscriptionBufferEvents,
        bufferBytesLimit: services.config.subscriptionBufferBytes,
        onOverflow: (reason) => socket.close(1013, reason.slice(0, 120)),
        socketBacklog: () => socket.backlog(),
      },
      input,
      ends.signal,
    ));
  }),
});

/** Runs `release` when the stream ends, however it ends; UNAUTHORIZED when it ended because its credential was revoked. */
async function* countedStream<T>(release: () => void, revoked: () => boolean, stream: AsyncGenerator<T>): AsyncGenerator<T> {
  try {
    yield* stream;
    if (revoked()) throw new TRPCError({ code: "UNAUTHORIZED", message: unauthorized().message });
  } finally {
    release();
  }
}
