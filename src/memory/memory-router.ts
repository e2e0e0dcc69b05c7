// tRPC procedures of the pre-execution memory.
import { z } from "zod";
import { procedure, router } from "../trpc/init.js";
import { memoryMatchSchema, memorySchema, recallInput, rememberInput } from "./memory-schemas.js";

const tags = ["memory"];

export const memoryRouter = router({
  remember: procedure
    .meta({ openapi: { method: "POST", path: "/memory", tags, summary: "Store a note or lesson" } })
    .input(rememberInput)
    .output(memorySchema)
    .mutation(({ ctx, input }) => ctx.services.memory.remember(input)),

  recall: procedure
    .meta({ openapi: { method: "GET", path: "/memory/recall", tags, summary: "Memories ranked by relevance, recency and outcome" } })
    .input(recallInput)
    .output(z.array(memoryMatchSchema))
    .query(({ ctx, input }) => ctx.services.memory.recall(input)),
});
