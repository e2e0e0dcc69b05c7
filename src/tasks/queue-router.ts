// tRPC procedures of queue pauses, concurrency limits and rate limits; `meta.rest` also serves each one as a
// REST route (src/rest/). Pausing, resuming, limiting and rate-limiting are an operator's (admin) calls: they
// bound every agent's claims of the queue. Each is logged, with the credential that made it.
import { z } from "zod";
import { ADMIN, credentialIdOf, READ } from "../auth/access.js";
import { procedure, router } from "../trpc/init.js";
import { pauseInput, queuePauseSchema, resumeInput } from "./queue-pause-schemas.js";
import { limitQueueInput, queueLimitSchema, setLimitInput } from "./queue-limit-schemas.js";
import { queueRateSchema, rateQueueInput, setRateInput } from "./queue-rate-schemas.js";

const tags = ["queues"];

export const queueRouter = router({
  pause: procedure
    .meta({ access: ADMIN, rest: { method: "POST", path: "/queues/{queue}/pause", tags, summary: "Pause a queue: no claim or steal takes its tasks until it is resumed; enqueues are taken" } })
    .input(pauseInput)
    .output(queuePauseSchema)
    .mutation(async ({ ctx, input }) => {
      const pausedBy = credentialIdOf(ctx.caller);
      const pause = await ctx.services.tasks.pause(input, pausedBy);
      ctx.services.log.info({ queue: input.queue, reason: pause.reason, pausedBy: pause.pausedBy }, "queue paused");
      return pause;
    }),

  resume: procedure
    .meta({ access: ADMIN, rest: { method: "POST", path: "/queues/{queue}/resume", tags, summary: "Resume a paused queue: claims take its tasks again, best first" } })
    .input(resumeInput)
    .output(queuePauseSchema)
    .mutation(async ({ ctx, input }) => {
      const resumedBy = credentialIdOf(ctx.caller);
      const pause = await ctx.services.tasks.resume(input.queue, resumedBy);
      ctx.services.log.info({ queue: input.queue, resumedBy }, "queue resumed");
      return pause;
    }),

  status: procedure
    .meta({ access: READ, rest: { method: "GET", path: "/queues/{queue}/pause", tags, summary: "Whether a queue is paused, since when, why and by whom" } })
    .input(resumeInput)
    .output(queuePauseSchema)
    .query(({ ctx, input }) => ctx.services.db.read("queues.get", input.queue)),

  paused: procedure
    .meta({ access: READ, rest: { method: "GET", path: "/queues/paused", tags, summary: "The paused queues (and resumed ones whose tasks are still being brought back)" } })
    .input(z.strictObject({}).optional())
    .output(z.array(queuePauseSchema))
    .query(({ ctx }) => ctx.services.tasks.pauses()),

  setLimit: procedure
    .meta({
      access: ADMIN,
      rest: { method: "POST", path: "/queues/{queue}/limit", tags, summary: "Limit a queue: at most maxLeased of its tasks are leased at once, whichever agents hold them; claims take its tasks only while fewer are" },
    })
    .input(setLimitInput)
    .output(queueLimitSchema)
    .mutation(async ({ ctx, input }) => {
      const setBy = credentialIdOf(ctx.caller);
      const limit = await ctx.services.tasks.setLimit(input, setBy);
      ctx.services.log.info({ queue: input.queue, maxLeased: input.maxLeased, setBy }, "queue limit set");
      return limit;
    }),

  removeLimit: procedure
    .meta({ access: ADMIN, rest: { method: "DELETE", path: "/queues/{queue}/limit", tags, summary: "Remove a queue's limit: claims take its tasks without a bound again, best first" } })
    .input(limitQueueInput)
    .output(queueLimitSchema)
    .mutation(async ({ ctx, input }) => {
      const removedBy = credentialIdOf(ctx.caller);
      const limit = await ctx.services.tasks.removeLimit(input.queue, removedBy);
      ctx.services.log.info({ queue: input.queue, removedBy }, "queue limit removed");
      return limit;
    }),

  limit: procedure
    .meta({ access: READ, rest: { method: "GET", path: "/queues/{queue}/limit", tags, summary: "A queue's limit and how many of its tasks are leased now" } })
    .input(limitQueueInput)
    .output(queueLimitSchema)
    .query(({ ctx, input }) => ctx.services.db.read("queues.limit", input.queue)),

  limits: procedure
    .meta({ access: READ, rest: { method: "GET", path: "/queues/limits", tags, summary: "The limited queues, with how many of each one's tasks are leased now (and removed limits whose tasks are still being brought back)" } })
    .input(z.strictObject({}).optional())
    .output(z.array(queueLimitSchema))
    .query(({ ctx }) => ctx.services.tasks.limits()),

  setRate: procedure
    .meta({
      access: ADMIN,
      rest: {
        method: "POST",
        path: "/queues/{queue}/rate",
        tags,
        summary: "Rate-limit a queue: at most maxClaims of its tasks are claimed in any window of perMs milliseconds, whichever agents claim them; claims take its tasks only while the window has room",
      },
    })
    .input(setRateInput)
    .output(queueRateSchema)
    .mutation(async ({ ctx, input }) => {
      const setBy = credentialIdOf(ctx.caller);
      const rate = await ctx.services.tasks.setRate(input, setBy);
      ctx.services.log.info({ queue: input.queue, maxClaims: input.maxClaims, perMs: input.perMs, setBy }, "queue rate set");
      return rate;
    }),

  removeRate: procedure
    .meta({ access: ADMIN, rest: { method: "DELETE", path: "/queues/{queue}/rate", tags, summary: "Remove a queue's rate: claims take its tasks without it again, best first" } })
    .input(rateQueueInput)
    .output(queueRateSchema)
    .mutation(async ({ ctx, input }) => {
      const removedBy = credentialIdOf(ctx.caller);
      const rate = await ctx.services.tasks.removeRate(input.queue, removedBy);
      ctx.services.log.info({ queue: input.queue, removedBy }, "queue rate removed");
      return rate;
    }),

  rate: procedure
    .meta({ access: READ, rest: { method: "GET", path: "/queues/{queue}/rate", tags, summary: "A queue's rate, how many claims its window holds now, and when it has room if it is full" } })
    .input(rateQueueInput)
    .output(queueRateSchema)
    .query(({ ctx, input }) => ctx.services.db.read("queues.rate", input.queue)),

  rates: procedure
    .meta({ access: READ, rest: { method: "GET", path: "/queues/rates", tags, summary: "The rate-limited queues, with the claims each one's window holds now (and removed rates whose tasks are still being brought back)" } })
    .input(z.strictObject({}).optional())
    .output(z.array(queueRateSchema))
    .query(({ ctx }) => ctx.services.tasks.rates()),
});
