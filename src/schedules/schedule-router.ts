// tRPC procedures of schedules (recurring tasks); `meta.rest` also serves each one as a REST
// route (src/rest/). Setting, removing, pausing and resuming are an operator's (admin) calls: a
// schedule enqueues work for every agent of its queue. Each is logged, with the credential that made it.
import { ADMIN, credentialIdOf, READ } from "../auth/access.js";
import { procedure, router } from "../trpc/init.js";
import { listSchedulesInput, scheduleIdInput, scheduleListSchema, scheduleSchema, setScheduleInput, setScheduleResultSchema, triggerScheduleResultSchema } from "./schedule-schemas.js";

const tags = ["schedules"];
const errors = ["SCHEDULE_NOT_FOUND" as const];

export const scheduleRouter = router({
  set: procedure
    .meta({
      access: ADMIN,
      rest: {
        method: "POST",
        path: "/schedules/{scheduleId}",
        tags,
        summary: "Create a schedule, or give it another definition: a task enqueued by a cron pattern in a time zone, or every everyMs; its next run waits in the queue as a delayed task",
      },
    })
    .input(setScheduleInput)
    .output(setScheduleResultSchema)
    .mutation(async ({ ctx, input }) => {
      const setBy = credentialIdOf(ctx.caller);
      const answer = await ctx.services.db.write("schedules.set", { ...input, setBy });
      if (answer.changed) ctx.services.log.info({ scheduleId: input.scheduleId, created: answer.created, nextRunAt: answer.schedule.nextRunAt, setBy }, "schedule set");
      return answer;
    }),

  get: procedure
    .meta({ access: READ, rest: { method: "GET", path: "/schedules/{scheduleId}", tags, summary: "A schedule: its timing, its task, its next run and how many it had", errors } })
    .input(scheduleIdInput)
    .output(scheduleSchema)
    .query(({ ctx, input }) => ctx.services.db.read("schedules.get", input.scheduleId)),

  list: procedure
    .meta({ access: READ, rest: { method: "GET", path: "/schedules", tags, summary: "The schedules by id, a page at a time (nextCursor)" } })
    .input(listSchedulesInput)
    .output(scheduleListSchema)
    .query(({ ctx, input }) => ctx.services.db.read("schedules.list", input ?? { limit: 100 })),

  remove: procedure
    .meta({ access: ADMIN, rest: { method: "DELETE", path: "/schedules/{scheduleId}", tags, summary: "Delete a schedule and cancel its pending run; runs already claimed go on", errors } })
    .input(scheduleIdInput)
    .output(scheduleSchema)
    .mutation(async ({ ctx, input }) => {
      const removedBy = credentialIdOf(ctx.caller);
      const schedule = await ctx.services.db.write("schedules.remove", { scheduleId: input.scheduleId, removedBy });
      ctx.services.log.info({ scheduleId: input.scheduleId, removedBy }, "schedule removed");
      return schedule;
    }),

  pause: procedure
    .meta({ access: ADMIN, rest: { method: "POST", path: "/schedules/{scheduleId}/pause", tags, summary: "Pause a schedule: its pending run is cancelled and none is enqueued until it is resumed", errors } })
    .input(scheduleIdInput)
    .output(scheduleSchema)
    .mutation(async ({ ctx, input }) => {
      const pausedBy = credentialIdOf(ctx.caller);
      const schedule = await ctx.services.db.write("schedules.pause", { scheduleId: input.scheduleId, pausedBy });
      ctx.services.log.info({ scheduleId: input.scheduleId, pausedBy }, "schedule paused");
      return schedule;
    }),

  trigger: procedure
    .meta({
      access: ADMIN,
      rest: {
        method: "POST",
        path: "/schedules/{scheduleId}/trigger",
        tags,
        summary: "Run a schedule now: its pending run is made due at once (an extra run, counted when claimed); the run after it stays as planned",
        errors: ["SCHEDULE_NOT_FOUND", "INVALID_STATE"],
      },
    })
    .input(scheduleIdInput)
    .output(triggerScheduleResultSchema)
    .mutation(async ({ ctx, input }) => {
      const triggeredBy = credentialIdOf(ctx.caller);
      const answer = await ctx.services.db.write("schedules.trigger", { scheduleId: input.scheduleId, triggeredBy });
      ctx.services.log.info({ scheduleId: input.scheduleId, taskId: answer.task.id, triggeredBy }, "schedule triggered");
      return answer;
    }),

  resume: procedure
    .meta({ access: ADMIN, rest: { method: "POST", path: "/schedules/{scheduleId}/resume", tags, summary: "Resume a paused schedule: its next run is the first time it names from now", errors } })
    .input(scheduleIdInput)
    .output(scheduleSchema)
    .mutation(async ({ ctx, input }) => {
      const resumedBy = credentialIdOf(ctx.caller);
      const schedule = await ctx.services.db.write("schedules.resume", { scheduleId: input.scheduleId, resumedBy });
      ctx.services.log.info({ scheduleId: input.scheduleId, resumedBy }, "schedule resumed");
      return schedule;
    }),
});
