// tRPC procedures of semaphores; `meta.rest` also serves each one as a REST route (src/rest/). An
// agent acquires, renews and releases its own permits (AS_AGENT: an agent credential acts as its
// own agentId only); anyone who may read sees them; an operator (admin) may end anyone's.
import { ADMIN, AS_AGENT, credentialIdOf, READ } from "../auth/access.js";
import { consumingProcedure, procedure, router } from "../trpc/init.js";
import {
  acquirePermitInput,
  forceReleasePermitsInput,
  getSemaphoreInput,
  listPermitsInput,
  permitAcquiredSchema,
  permitPageSchema,
  permitReleasedSchema,
  permitSchema,
  permitsForceReleasedSchema,
  releasePermitInput,
  renewPermitInput,
  semaphoreSchema,
} from "./semaphore-schemas.js";

const tags = ["semaphores"];

export const semaphoreRouter = router({
  /** Takes something for its caller (a permit): given back when its answer does not arrive. */
  acquire: consumingProcedure
    .meta({
      access: AS_AGENT,
      rest: {
        method: "POST",
        path: "/semaphores/{name}/acquire",
        tags,
        summary: "Acquire a permit of a semaphore for an agent, with a lease and a fencing token (acquired false while `limit` permits are held, after waitMs)",
        errors: ["LIMIT_EXCEEDED", "IDEMPOTENCY_MISMATCH"],
      },
    })
    .input(acquirePermitInput)
    .output(permitAcquiredSchema)
    .mutation(({ ctx, input }) => ctx.services.semaphores.acquire(input, ctx.call)),

  renew: procedure
    .meta({ access: AS_AGENT, rest: { method: "POST", path: "/semaphores/{name}/renew", tags, summary: "Renew the lease of a permit the agent holds, from now", errors: ["LEASE_CONFLICT"] } })
    .input(renewPermitInput)
    .output(permitSchema)
    .mutation(({ ctx, input }) => ctx.services.semaphores.renew(input)),

  release: procedure
    .meta({ access: AS_AGENT, rest: { method: "POST", path: "/semaphores/{name}/release", tags, summary: "Release a permit the agent holds (released false when it holds none under that token: nothing changed)" } })
    .input(releasePermitInput)
    .output(permitReleasedSchema)
    .mutation(({ ctx, input }) => ctx.services.semaphores.release(input)),

  /** An operator's call: it ends other agents' permits, whatever they believe. Logged. */
  forceRelease: procedure
    .meta({ access: ADMIN, rest: { method: "POST", path: "/semaphores/{name}/force-release", tags, summary: "Release one permit of a semaphore, or all, whoever holds them (an operator's call: their holders' next renewals are refused)" } })
    .input(forceReleasePermitsInput)
    .output(permitsForceReleasedSchema)
    .mutation(async ({ ctx, input }) => {
      const releasedBy = credentialIdOf(ctx.caller);
      const answer = await ctx.services.semaphores.forceRelease(input, releasedBy);
      if (answer.released > 0) ctx.services.log.info({ semaphore: input.name, fencingToken: input.fencingToken ?? null, released: answer.released, reason: input.reason, releasedBy }, "semaphore permits released by an operator");
      return answer;
    }),

  get: procedure
    .meta({ access: READ, rest: { method: "GET", path: "/semaphores/{name}", tags, summary: "A semaphore as it is now: how many permits are held, under which limit, by whom, until when" } })
    .input(getSemaphoreInput)
    .output(semaphoreSchema)
    .query(({ ctx, input }) => ctx.services.semaphores.get(input.name)),

  list: procedure
    .meta({ access: READ, rest: { method: "GET", path: "/semaphores", tags, summary: "The semaphore permits held now, by semaphore name: of one holder, or of names that start with a prefix" } })
    .input(listPermitsInput)
    .output(permitPageSchema)
    .query(({ ctx, input }) => ctx.services.semaphores.list(input)),
});
