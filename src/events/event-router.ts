// tRPC procedures of the event stream, including the live WebSocket subscription.
import { TRPCError } from "@trpc/server";
import { z } from "zod";
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
    .meta({ rest: { method: "POST", path: "/events", tags, summary: "Publish an event (with target: a direct message)" } })
    .input(publishInput)
    .output(eventSchema)
    .mutation(({ ctx, input }) => ctx.services.events.publish(input)),

  subscribe: procedure
    .meta({ rest: { method: "POST", path: "/events/subscriptions", tags, summary: "Subscribe an agent to event types", errors: ["EVENTS_PRUNED"] } })
    .input(subscribeInput)
    .output(subscriptionSchema)
    .mutation(({ ctx, input }) => ctx.services.events.subscribe(input)),

  unsubscribe: procedure
    .meta({
      rest: { method: "DELETE", path: "/events/subscriptions/{agentId}", tags, summary: "Drop types, or all of them (the mailbox stays)", errors: ["SUBSCRIPTION_NOT_FOUND"] },
    })
    .input(unsubscribeInput)
    .output(subscriptionSchema)
    .mutation(({ ctx, input }) => ctx.services.events.unsubscribe(input)),

  subscription: procedure
    .meta({ rest: { method: "GET", path: "/events/subscriptions/{agentId}", tags, summary: "An agent's subscription and cursors", errors: ["SUBSCRIPTION_NOT_FOUND"] } })
    .input(agentIdInput)
    .output(subscriptionSchema)
    .query(({ ctx, input }) => ctx.services.events.getSubscription(input.agentId)),

  poll: consumingProcedure
    .meta({ rest: { method: "GET", path: "/events/{agentId}", tags, summary: "Poll an agent's next events (its subscribed types and its mailbox)", errors: ["EVENTS_PRUNED"] } })
    .input(pollInput)
    .output(z.array(eventSchema))
    .mutation(({ ctx, input }) => ctx.services.events.poll(input, ctx.call)),

  ack: procedure
    .meta({ rest: { method: "POST", path: "/events/{agentId}/ack", tags, summary: "Acknowledge events up to seq (manual ack)" } })
    .input(ackInput)
    .output(subscriptionSchema)
    .mutation(({ ctx, input }) => ctx.services.events.ack(input)),

  list: procedure
    .meta({ rest: { method: "GET", path: "/events", tags, summary: "Event history after a seq", errors: ["EVENTS_PRUNED"] } })
    .input(listEventsInput)
    .output(z.array(eventSchema))
    .query(({ ctx, input }) => ctx.services.events.list(input)),

  /** Live events over WebSocket; tracked by seq, so a reconnecting client resumes where it left off. */
  onEvent: procedure.input(onEventInput).subscription(({ ctx, input, signal }) => {
    const { services, transport } = ctx;
    // WebSocket only: backpressure and the overflow close need the socket. Server-sent events are
    // also disabled in src/trpc/init.ts; this names the reason should anything else call it.
    const socket = transport.stream;
    if (!socket) throw new TRPCError({ code: "METHOD_NOT_SUPPORTED", message: "events.onEvent is served over WebSocket only" });
    return streamEvents(
      {
        bus: services.bus,
        service: services.events,
        bufferLimit: services.config.subscriptionBufferEvents,
        onOverflow: (reason) => socket.close(1013, reason.slice(0, 120)),
        socketBacklog: () => socket.backlog(),
      },
      input,
      signal,
    );
  }),
});
