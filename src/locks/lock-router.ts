// tRPC procedures of named locks; `meta.rest` also serves each one as a REST route (src/rest/).
// An agent acquires, renews and releases its own locks (AS_AGENT: an agent credential acts as its
// own agentId only); anyone who may read sees them; an operator (admin) may end anyone's.
import { ADMIN, AS_AGENT, credentialIdOf, READ } from "../auth/access.js";
import { consumingProcedure, procedure, router } from "../trpc/init.js";
import { acquiredSchema, acquireInput, forceReleasedSchema, forceReleaseInput, getLockInput, listLocksInput, lockPageSchema, lockSchema, releasedSchema, releaseInput, renewInput } from "./lock-schemas.js";

const tags = ["locks"];

export const lockRouter = router({
  /** Takes something for its caller (a grant): given back when its answer does not arrive. */
  acquire: consumingProcedure
    .meta({
      access: AS_AGENT,
      rest: { method: "POST", path: "/locks/{name}/acquire", tags, summary: "Acquire a named lock for an agent, with a lease and a fencing token (acquired false while another acquire holds it, after waitMs)", errors: ["LIMIT_EXCEEDED"] },
    })
    .input(acquireInput)
    .output(acquiredSchema)
    .mutation(({ ctx, input }) => ctx.services.locks.acquire(input, ctx.call)),

  renew: procedure
    .meta({ access: AS_AGENT, rest: { method: "POST", path: "/locks/{name}/renew", tags, summary: "Renew the lease of a lock the agent holds, from now", errors: ["LEASE_CONFLICT"] } })
    .input(renewInput)
    .output(lockSchema)
    .mutation(({ ctx, input }) => ctx.services.locks.renew(input)),

  release: procedure
    .meta({ access: AS_AGENT, rest: { method: "POST", path: "/locks/{name}/release", tags, summary: "Release a lock the agent holds (released false when it holds none: nothing changed)" } })
    .input(releaseInput)
    .output(releasedSchema)
    .mutation(({ ctx, input }) => ctx.services.locks.release(input)),

  /** An operator's call: it ends another agent's grant, whatever that agent believes. Logged. */
  forceRelease: procedure
    .meta({ access: ADMIN, rest: { method: "POST", path: "/locks/{name}/force-release", tags, summary: "Release a lock whoever holds it (an operator's call: its holder's next renewal is refused)" } })
    .input(forceReleaseInput)
    .output(forceReleasedSchema)
    .mutation(async ({ ctx, input }) => {
      const releasedBy = credentialIdOf(ctx.caller);
      const answer = await ctx.services.locks.forceRelease(input, releasedBy);
      // The fields of the lock.expired line (operator-log.ts): one query finds both.
      if (answer.released) ctx.services.log.info({ lock: input.name, agentId: answer.holder, fencingToken: answer.fencingToken, reason: input.reason, releasedBy }, "lock released by an operator");
      return answer;
    }),

  get: procedure
    .meta({ access: READ, rest: { method: "GET", path: "/locks/{name}", tags, summary: "A lock as it is now: who holds it, under which fencing token, until when (held false: free)" } })
    .input(getLockInput)
    .output(lockSchema)
    .query(({ ctx, input }) => ctx.services.locks.get(input.name)),

  list: procedure
    .meta({ access: READ, rest: { method: "GET", path: "/locks", tags, summary: "The locks held now, by name: of one holder, or whose names start with a prefix" } })
    .input(listLocksInput)
    .output(lockPageSchema)
    .query(({ ctx, input }) => ctx.services.locks.list(input)),
});
