// Wire shapes of webhooks (webhooks.create, update, rotateSecret, remove, get, list): the server
// POSTs each untargeted event matching a webhook's type patterns to its URL, in seq order, signed
// (Standard Webhooks). Inputs are strict: an unknown field is a 400 naming it.
import { z } from "zod";
import { typePatternSchema } from "../events/event-schemas.js";
import { int, text } from "../schema-parts.js";

/** The most webhooks a server keeps: each is delivered by its own loop, and every event is matched against each. */
export const MAX_WEBHOOKS = 100;
/** The longest URL a webhook may have. */
export const MAX_WEBHOOK_URL = 2048;

/**
 * The ports fetch refuses to connect to ("bad ports" of the Fetch standard, fetch.spec.whatwg.org
 * #port-blocking: SMTP, IRC, X11, SIP and the like): a webhook there would fail every delivery
 * with "bad port" until it is disabled days later, so it is refused when it is named.
 */
const FETCH_BLOCKED_PORTS = new Set([
  1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101, 102, 103, 104, 109, 110, 111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161,
  179, 389, 427, 465, 512, 513, 514, 515, 526, 530, 531, 532, 540, 548, 554, 556, 563, 587, 601, 636, 989, 990, 993, 995, 1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060,
  5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080,
]);

/** Why a URL cannot be a webhook's: undefined when it can. */
export function webhookUrlProblem(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return "must be an absolute URL (http://… or https://…)";
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return `must be an http or https URL, not ${url.protocol}`;
  // Before the written form's check: the parser drops whitespace around the URL, which that check would call a misplaced host.
  if (/\s/.test(value)) return "must not hold spaces or other whitespace: write them %20";
  // The URL parser reads "http:///hooks/x", "http:/host/x" and "http:host" as http://hooks/x,
  // http://host/x and http://host/: a host the operator may never have meant (a missing one taken
  // from the path), while the list shows the URL as written. Only the written form is taken.
  if (!/^https?:\/\/[^/\\]/i.test(value)) return `must be written ${url.protocol}//HOST/… with the host right after the two slashes (as written it would send to ${url.host})`;
  // fetch refuses to send them (a Request cannot carry credentials in its URL): refused here, not at each delivery.
  if (url.username !== "" || url.password !== "") return "must not carry a user name or password (user:pass@): put a secret in the path or query, or check the signature";
  if (url.hash !== "") return "must not have a fragment (#…): it is never sent";
  if (url.port === "0") return "must not name port 0: nothing listens there";
  // An http URL's default port (80, 443) is never blocked: url.port is "" for them.
  if (url.port !== "" && FETCH_BLOCKED_PORTS.has(Number(url.port))) return `must not name port ${url.port}: fetch never sends there (a port the Fetch standard blocks, such as SMTP's or IRC's)`;
  return undefined;
}

const webhookUrl = () =>
  text(MAX_WEBHOOK_URL)
    .superRefine((value, ctx) => {
      const problem = webhookUrlProblem(value);
      if (problem !== undefined) ctx.addIssue({ code: "custom", message: problem });
    })
    .describe("Where each event is POSTed: an http or https URL (https outside loopback; the server sends to any address an admin names, loopback and private networks included)");
const types = () =>
  z
    .array(typePatternSchema)
    .min(1)
    .max(100)
    .describe('The events to deliver: exact types, prefix.* wildcards, or * for every event ("task.dead_lettered", "build.*"). Direct messages (events with a target) are never delivered');
const description = () => text(500).describe("What it is for, in the operator's words");
const webhookId = () => text(100).describe("The webhook's id, as create answered it");

export const createWebhookInput = z.strictObject({
  url: webhookUrl(),
  types: types(),
  description: description().optional(),
  fromSeq: int(0)
    .optional()
    .describe("Deliver the matching events after this seq (0: every retained one) before new ones; left out, only events published from now on"),
});
export type CreateWebhookRequest = z.output<typeof createWebhookInput>;

export const updateWebhookInput = z
  .strictObject({
  id: webhookId(),
  url: webhookUrl().optional(),
  types: types().optional(),
  description: description().nullable().optional().describe("What it is for; null removes it"),
  enabled: z
    .boolean()
    .optional()
    .describe("false stops its deliveries (its events wait, as long as the log keeps them); true starts them again at once, its failures forgotten, from the event it stopped at"),
  reason: text(1000).optional().describe("Why it is disabled, in the operator's words (with enabled false): its disabledReason and webhook.disabled event"),
  cursor: int(0)
    .optional()
    .describe(
      "Where its deliveries go on from: the matching events after this seq. Forward, the events up to it are never sent: past an event its receiver refuses for good, give that event's seq. Back, those after it are sent again (each with its own webhook-id, as before). 0: every retained event. Its failures are forgotten and it is tried at once",
    ),
  ifCursor: int(0)
    .optional()
    .describe("Change it only while its cursor is still this seq (else a 409 VERSION_CONFLICT, details.cursor where it is, nothing changed): pass over the event it fails on without passing over one it delivered meanwhile"),
  })
  .superRefine((input, ctx) => {
    if (input.url === undefined && input.types === undefined && input.description === undefined && input.enabled === undefined && input.cursor === undefined) {
      ctx.addIssue({ code: "custom", path: [], message: "names nothing to change: give url, types, description, enabled or cursor" });
    }
    if (input.reason !== undefined && input.enabled !== false) ctx.addIssue({ code: "custom", path: ["reason"], message: "goes with enabled false (it is why the webhook is disabled)" });
  });
export type UpdateWebhookRequest = z.output<typeof updateWebhookInput>;

export const webhookIdInput = z.strictObject({ id: webhookId() });

export const rotateSecretInput = z.strictObject({
  id: webhookId(),
  graceMs: int(0, 7 * 24 * 3_600_000)
    .default(24 * 3_600_000)
    .describe("How long requests are signed with the old secret too (webhook-signature then carries a signature of each secret that signs), in ms: time to give the receiver the new one. Old secrets of earlier rotations still in their grace keep signing until it ends (at most 8 at once: past them 409 INVALID_STATE). 24 hours by default; 0, every old secret stops at once"),
});
export type RotateSecretRequest = z.output<typeof rotateSecretInput>;

export const webhookSchema = z
  .object({
    id: z.string(),
    url: z.string(),
    types: z.array(z.string()),
    description: z.string().nullable(),
    /** False: no request is sent (disabled by an operator, or failing for webhookDisableAfterMs). */
    enabled: z.boolean(),
    disabledReason: z.string().nullable(),
    /** The last seq delivered or passed over: the next request carries the first matching event after it. */
    cursor: z.number().int(),
    /** Failed attempts in a row on the event it is at (0: none). */
    failures: z.number().int(),
    failingSince: z.date().nullable(),
    lastError: z.string().nullable(),
    /** The HTTP status of the last attempt (null: none yet, or no answer: a refused connection, a timeout). */
    lastStatus: z.number().int().nullable(),
    lastAttemptAt: z.date().nullable(),
    lastDeliveredAt: z.date().nullable(),
    /** Events delivered since it was created. */
    delivered: z.number().int(),
    /** Times the log pruned events it might have delivered before it could: the cursor moved past them (logged with their seqs). */
    gaps: z.number().int(),
    /** When the next request may go (after a failure, the backoff's end). */
    nextAttemptAt: z.date(),
    /** Until when the last of the old secrets signs too: rotations with a grace keep each old one until its grace ends (past: none signs now; null: none kept). */
    previousSecretUntil: z.date().nullable(),
    createdAt: z.date(),
    /** The credential that created it (a token id; null on an open server or in-process). */
    createdBy: z.string().nullable(),
    updatedAt: z.date(),
  })
  .meta({ id: "Webhook" });
export type Webhook = z.infer<typeof webhookSchema>;

/** What create and rotateSecret answer: the webhook, and its signing secret (answered only then). */
export const webhookWithSecretSchema = z
  .object({
    webhook: webhookSchema,
    secret: z.string().describe('The signing secret, "whsec_" and base64 (Standard Webhooks): keep it, it is not answered again'),
  })
  .meta({ id: "WebhookWithSecret" });
export type WebhookWithSecret = z.infer<typeof webhookWithSecretSchema>;

export const webhookListSchema = z.object({ webhooks: z.array(webhookSchema) }).meta({ id: "WebhookList" });
export const webhookRemovedSchema = z.object({ removed: z.boolean() }).meta({ id: "WebhookRemoved" });
