// tRPC procedures of the pre-execution memory.
import { z } from "zod";
import { ADMIN, AS_AGENT, READ } from "../auth/access.js";
import { procedure, router } from "../trpc/init.js";
import { forgetInput, memoryMatchSchema, memorySchema, recallInput, rememberInput } from "./memory-schemas.js";

const tags = ["memory"];

export const memoryRouter = router({
  remember: procedure
    .meta({ access: AS_AGENT, rest: { method: "POST", path: "/memory", tags, summary: "Store a note or lesson", errors: ["IDEMPOTENCY_MISMATCH"] } })
    .input(rememberInput)
    .output(memorySchema)
    .mutation(({ ctx, input }) => ctx.services.memory.remember(input)),

  // What every agent is handed with its claims: removing a memory is an operator's decision.
  forget: procedure
    .meta({ access: ADMIN, rest: { method: "DELETE", path: "/memory/{memoryId}", tags, summary: "Delete a memory (a note, lesson or execution record)", errors: ["MEMORY_NOT_FOUND"] } })
    .input(forgetInput)
    .output(memorySchema)
    .mutation(({ ctx, input }) => ctx.services.memory.forget(input)),

  recall: procedure
    .meta({ access: READ,
      rest: [
        { method: "GET", path: "/memory/recall", tags, summary: "Memories ranked by relevance, recency and outcome", errors: ["TASK_NOT_FOUND"] },
        // The same with the input in a body: a query too long for a URL (2,000 CJK characters are 18 KB encoded).
        { method: "POST", path: "/memory/recall", tags, summary: "Recall, with the input in a JSON body", errors: ["TASK_NOT_FOUND"] },
      ],
    })
    .input(recallInput)
    .output(z.array(memoryMatchSchema))
    .query(({ ctx, input }) => ctx.services.memory.recall(input)),
});
