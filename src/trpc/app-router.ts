// The root router: composes the capability routers and the health check. Its type is what
// the client (client/) imports to get end-to-end types.
import { z } from "zod";
import { agentRouter } from "../agents/agent-router.js";
import { eventRouter } from "../events/event-router.js";
import { memoryRouter } from "../memory/memory-router.js";
import { taskRouter } from "../tasks/task-router.js";
import { VERSION } from "../version.js";
import { procedure, router } from "./init.js";

const startedAt = Date.now();

const healthSchema = z.object({
  status: z.literal("ok"),
  version: z.string(),
  uptimeMs: z.number(),
  db: z.literal("ok"),
});

export const appRouter = router({
  health: procedure
    .meta({ rest: { method: "GET", path: "/health", tags: ["health"], summary: "Health check (queries the database)" } })
    .input(z.strictObject({}).optional())
    .output(healthSchema)
    .query(async ({ ctx }) => {
      // A round trip to the database file, on the reader thread: never waits behind writes.
      // A writer thread that died fails it too: the server could answer reads but take no write.
      const failure = ctx.services.db.failure;
      if (failure) throw failure;
      await ctx.services.db.read("health.check", undefined);
      return { status: "ok" as const, version: VERSION, uptimeMs: Date.now() - startedAt, db: "ok" as const };
    }),
  tasks: taskRouter,
  events: eventRouter,
  agents: agentRouter,
  memory: memoryRouter,
});

export type AppRouter = typeof appRouter;
