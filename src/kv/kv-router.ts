// tRPC procedures of shared state; `meta.rest` also serves each one as a REST route (src/rest/).
// Agents (and admins) write, as themselves (an agent credential's writes are its own agent's:
// updatedBy); anyone who may read reads and watches.
import { credentialIdOf, READ, WRITES_KEY } from "../auth/access.js";
import { procedure, router, waitingProcedure } from "../trpc/init.js";
import { deleteInput, getInput, incrementInput, kvCounterSchema, kvDeletedSchema, kvEntrySchema, kvPageSchema, kvReadSchema, listInput, setInput } from "./kv-schemas.js";

const tags = ["kv"];

export const kvRouter = router({
  set: procedure
    .meta({
      access: WRITES_KEY,
      rest: { method: "PUT", path: "/kv/{key}", tags, summary: "Write a key's value (with ifVersion: only at that version, a compare-and-set)", errors: ["VERSION_CONFLICT", "IDEMPOTENCY_MISMATCH", "LIMIT_EXCEEDED"] },
    })
    .input(setInput)
    .output(kvEntrySchema)
    .mutation(({ ctx, input }) => ctx.services.kv.set(input)),

  /** Adds to a key's number in one write: a counter, a budget with a cap. */
  increment: procedure
    .meta({
      access: WRITES_KEY,
      rest: { method: "POST", path: "/kv/{key}/increment", tags, summary: "Add to a key's number (absent: 0) in one write, kept within min and max: a counter, a budget with a cap", errors: ["OUT_OF_RANGE", "INVALID_STATE", "IDEMPOTENCY_MISMATCH"] },
    })
    .input(incrementInput)
    .output(kvCounterSchema)
    .mutation(({ ctx, input }) => ctx.services.kv.increment(input)),

  delete: procedure
    .meta({ access: WRITES_KEY, rest: { method: "DELETE", path: "/kv/{key}", tags, summary: "Delete a key (deleted false when it was absent; with ifVersion: only at that version)", errors: ["VERSION_CONFLICT"] } })
    .input(deleteInput)
    .output(kvDeletedSchema)
    .mutation(({ ctx, input }) => ctx.services.kv.delete(input)),

  /** A key as it is; with afterVersion, a long-poll for its next change (a watch). */
  get: waitingProcedure
    .meta({ access: READ, rest: { method: "GET", path: "/kv/{key}", tags, summary: "A key as it is (entry null: absent); with afterVersion, once its version differs from that one, waiting up to waitMs" } })
    .input(getInput)
    .output(kvReadSchema)
    .query(({ ctx, input }) => ctx.services.kv.get(input, credentialIdOf(ctx.caller) ?? undefined, ctx.call)),

  list: procedure
    .meta({ access: READ, rest: { method: "GET", path: "/kv", tags, summary: "The keys present, by key, with their values: those starting with a prefix" } })
    .input(listInput)
    .output(kvPageSchema)
    .query(({ ctx, input }) => ctx.services.kv.list(input)),
});
