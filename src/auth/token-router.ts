// Admin procedures for credentials: issue, list, revoke. The same as `coordination tokens …` on
// the command line, for operators who manage a running server remotely. Issued and revoked
// tokens take effect in this server before the answer goes out (src/auth/credentials.ts).
import { z } from "zod";
import { invalidField } from "../errors.js";
import { procedure, router } from "../trpc/init.js";
import { ADMIN, READ } from "./access.js";
import { ADMIN_TOKEN_ID, ADMIN_TOKEN_NOT_REVOCABLE } from "./credentials.js";
import { hashSecret } from "./token-secret.js";
import { createTokenInput, issuedTokenSchema, listTokensInput, tokenIdInput, tokenSchema, whoamiSchema, type Whoami } from "./token-schemas.js";

const tags = ["tokens"];

export const tokenRouter = router({
  create: procedure
    .meta({ access: ADMIN, rest: { method: "POST", path: "/tokens", tags, summary: "Issue a credential (its secret is in this answer only)" } })
    .input(createTokenInput)
    .output(issuedTokenSchema)
    .mutation(async ({ ctx, input }) => {
      // A server with no credential trusts every caller; the first one issued closes it to
      // callers without one. Were that an agent or read token, nobody could manage the server
      // through it any more (one anonymous call locked it until someone ran the CLI on its
      // machine): through the API, the first credential is an admin's.
      if (ctx.caller.kind === "open" && input.role !== "admin") {
        throw invalidField("role", `this server has no credential yet, and the first one issued through it closes it to every caller without one: it must be an admin token (role "admin"), which then issues the others`);
      }
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

  whoami: procedure
    .meta({ access: READ, rest: { method: "GET", path: "/tokens/whoami", tags, summary: "Who this call's credential is: its role, its agent and its token" } })
    .input(z.strictObject({}).optional())
    .output(whoamiSchema)
    .query(async ({ ctx }): Promise<Whoami> => {
      const { caller } = ctx;
      // No credential to speak of: an open server (or in-process) trusts every caller as an admin.
      if (caller.kind !== "token") return { credentialsRequired: false, role: "admin", agentId: null, tokenId: null, name: null, kvPrefixes: null };
      const name = caller.tokenId === ADMIN_TOKEN_ID ? null : ((await ctx.services.db.read("tokens.get", caller.tokenId))?.name ?? null);
      return { credentialsRequired: true, role: caller.role, agentId: caller.agentId, tokenId: caller.tokenId, name, kvPrefixes: caller.kvPrefixes === null ? null : [...caller.kvPrefixes] };
    }),

  revoke: procedure
    .meta({ access: ADMIN, rest: { method: "POST", path: "/tokens/{tokenId}/revoke", tags, summary: "Revoke a credential; its open WebSockets are closed", errors: ["TOKEN_NOT_FOUND"] } })
    .input(tokenIdInput)
    .output(tokenSchema)
    .mutation(async ({ ctx, input }) => {
      // whoami names the configured admin token by this id: revoking it was a 404 "not found",
      // for a token that exists and goes on working. Say what ends it instead.
      if (input.tokenId === ADMIN_TOKEN_ID) throw invalidField("tokenId", ADMIN_TOKEN_NOT_REVOCABLE);
      const token = await ctx.services.db.write("tokens.revoke", input.tokenId);
      ctx.services.credentials.applied(token);
      ctx.services.log.info({ tokenId: token.id }, "token revoked");
      return token;
    }),
});
