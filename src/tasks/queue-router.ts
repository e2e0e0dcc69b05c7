// tRPC procedures of queue pauses; `meta.rest` also serves each one as a REST route (src/rest/).
// Pausing and resuming are an operator's (admin) calls: a pause stops every agent's claims of
// the queue. Each is logged, with the credential that made it.
import { z } from "zod";
import { ADMIN, READ } from "../auth/access.js";
import { procedure, router } from "../trpc/init.js";
import { pauseInput, queuePauseSchema, resumeInput } from "./queue-pause-schemas.js";

const tags = ["queues"];

export const queueRouter = router({
  pause: procedure
    .meta({ access: ADMIN, rest: { method: "POST", path: "/queues/{queue}/pause", tags, summary: "Pause a queue: no claim or steal takes its tasks until it is resumed; enqueues are taken" } })
    .input(pauseInput)
    .output(queuePauseSchema)
    .mutation(async ({ ctx, input }) => {
      const pausedBy = ctx.caller.kind === "token" ? ctx.caller.tokenId : null;
      const pause = await ctx.services.tasks.pause(input, pausedBy);
      ctx.services.log.info({ queue: input.queue, reason: pause.reason, pausedBy: pause.pausedBy }, "queue paused");
      return pause;
    }),

  resume: procedure
    .meta({ access: ADMIN, rest: { method: "POST", path: "/queues/{queue}/resume", tags, summary: "Resume a paused queue: claims take its tasks again, best first" } })
    .input(resumeInput)
    .output(queuePauseSchema)
    .mutation(async ({ ctx, input }) => {
      const resumedBy = ctx.caller.kind === "token" ? ctx.caller.tokenId : null;
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
});
