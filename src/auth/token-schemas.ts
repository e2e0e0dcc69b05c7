// Wire shapes of credential management (admin procedures tokens.*, and the CLI's output).
import { z } from "zod";
import { MAX_KEY } from "../kv/kv-schemas.js";
import { name, text } from "../schema-parts.js";

export const ROLES = ["admin", "agent", "read"] as const;

/** Who a call's credential is (tokens.whoami): what a client checks before it acts, and a dashboard before it offers an admin's buttons. */
export const whoamiSchema = z
  .object({
    /** False: the server has no credential yet (or runs in-process) and trusts every caller as an admin. */
    credentialsRequired: z.boolean(),
    /** What the credential may do: admin everything; agent act as its agentId only; read read and follow. */
    role: z.enum(ROLES),
    /** The agent an agent credential speaks for; null for the other roles. */
    agentId: z.string().nullable(),
    /** The credential's id (tokens.list, tokens.revoke): "config:adminToken" for COORDINATION_ADMIN_TOKEN; null without a credential. */
    tokenId: z.string().nullable(),
    /** The name it was issued with; null for the configured admin token and without a credential. */
    name: z.string().nullable(),
    /** The shared state's keys an agent credential may write: those starting with one of these; null: any key. */
    kvPrefixes: z.array(z.string()).nullable(),
  })
  .meta({ id: "Whoami" });
export type Whoami = z.infer<typeof whoamiSchema>;

/** A credential as listed: never its secret (only its hash is stored). */
export const tokenSchema = z
  .object({
    id: z.string(),
    /** admin: everything; agent: acts as one agent only; read: reads and live events, no direct messages. */
    role: z.enum(ROLES),
    /** The agent an agent credential speaks for; null for other roles. */
    agentId: z.string().nullable(),
    name: z.string(),
    /** The shared state's keys an agent credential may write (kv.set, kv.increment, kv.delete): those starting with one of these; null: any key. */
    kvPrefixes: z.array(z.string()).nullable(),
    createdAt: z.date(),
    /** Last authenticated use, to the minute; null if never used. */
    lastUsedAt: z.date().nullable(),
    /** Set once revoked: the token is refused from then on, and its open WebSockets are closed. */
    revokedAt: z.date().nullable(),
  })
  .meta({ id: "Token" });
export type TokenView = z.infer<typeof tokenSchema>;

/** What issuing a credential answers: the token and its secret, shown this once. */
export const issuedTokenSchema = z.object({ token: tokenSchema, secret: z.string() }).meta({ id: "IssuedToken" });
export type IssuedToken = z.infer<typeof issuedTokenSchema>;

/** The most key prefixes one credential may be given: each key written is compared with each. */
export const MAX_KV_PREFIXES = 20;

/** Agent ids a credential may not speak for: the server's own event source. */
export const RESERVED_AGENT_IDS = new Set(["coordination"]);

export const createTokenInput = z
  .strictObject({
    role: z.enum(ROLES).describe("admin: everything; agent: acts as one agent only; read: reads and live events, no direct messages"),
    agentId: name().optional().describe("The agent an agent credential speaks for: required for role agent, refused for the others"),
    name: text(200).optional().describe("A label to tell credentials apart; left out, the empty string"),
    kvPrefixes: z
      .array(text(MAX_KEY).describe("A key prefix, matched as text (case-sensitive, no Unicode normalization): agents/worker-1/. A whole key given here also covers every longer key that starts with it (config/model covers config/model-old): end a prefix with a separator"))
      .min(1)
      .max(MAX_KV_PREFIXES)
      .optional()
      .describe(
        `Role agent only: the shared state's keys the credential may write (kv.set, kv.increment, kv.delete), those starting with one of these (1 to ${MAX_KV_PREFIXES}); others are 403. Reads are not limited. Left out, any key`,
      ),
  })
  .superRefine((input, ctx) => {
    if (input.role === "agent" && input.agentId === undefined) ctx.addIssue({ code: "custom", path: ["agentId"], message: "is required for role agent" });
    if (input.role !== "agent" && input.agentId !== undefined) ctx.addIssue({ code: "custom", path: ["agentId"], message: `is for role agent only (role is ${input.role})` });
    if (input.role !== "agent" && input.kvPrefixes !== undefined) ctx.addIssue({ code: "custom", path: ["kvPrefixes"], message: `is for role agent only (role is ${input.role})` });
    if (input.agentId !== undefined && RESERVED_AGENT_IDS.has(input.agentId)) ctx.addIssue({ code: "custom", path: ["agentId"], message: `"${input.agentId}" is reserved for the server's own events` });
  });
export type CreateTokenRequest = z.output<typeof createTokenInput>;

export const tokenIdInput = z.strictObject({ tokenId: name().describe("The credential's id (not its secret)") });
export const listTokensInput = z.strictObject({ includeRevoked: z.boolean().default(false).describe("List revoked credentials too") }).optional();
