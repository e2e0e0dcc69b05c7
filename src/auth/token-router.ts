// Admin procedures for credentials: issue, list, revoke. The same as `coordination tokens …` on
// the command line, for operators who manage a running server remotely. Issued and revoked
// tokens take effect in this server before the answer goes out (src/auth/credentials.ts).
import { z } from "zod";
import { procedure, router } from "../trpc/init.js";
import { ADMIN } from "./access.js";
import { hashSecret } from "./token-secret.js";
import { createTokenInput, issuedTokenSchema, listTokensInput, tokenIdInput, tokenSchema } from "./token-schemas.js";

const tags = ["tokens"];

export const tokenRouter = router({
  create: procedure
    .meta({ access: ADMIN, rest: { method: "POST", path: "/tokens", tags, summary: "Issue a credential (its secret is in this answer only)" } })
    .input(createTokenInput)
    .output(issuedTokenSchema)
    .mutation(async ({ ctx, input }) => {
      const issued = await ctx.services.db.write("tokens.create", input);
      ctx.services.credentials.applied(issued.token, hashSecret(issued.secret));
      ctx.services.log.info({ tokenId: issued.token.id, role: issued.token.role, agentId: issued.token.agentId }, "token issued");
      return issued;
    }),

  list: procedure
    .meta({ access: ADMIN, rest: { method: "GET", path: "/tokens", tags, summary: "List credentials (never their secrets)" } })
    .input(listTokensInput)
    .output(z.array(tokenSchema))
    .query(({ ctx, input }) => ctx.services.db.read("tokens.list", { includeRevoked: input?.includeRevoked ?? false })),

  revoke: procedure
    .meta({ access: ADMIN, rest: { method: "POST", path: "/tokens/{tokenId}/revoke", tags, summary: "Revoke a credential; its open WebSockets are closed", errors: ["TOKEN_NOT_FOUND"] } })
    .input(tokenIdInput)
    .output(tokenSchema)
    .mutation(async ({ ctx, input }) => {
      const token = await ctx.services.db.write("tokens.revoke", input.tokenId);
      ctx.services.credentials.applied(token);
      ctx.services.log.info({ tokenId: token.id }, "token revoked");
      return token;
    }),
});
