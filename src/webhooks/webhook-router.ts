// tRPC procedures of webhooks; `meta.rest` also serves each one as a REST route (src/rest/). Every
// call is an operator's (admin): a webhook sends the server's events wherever its URL points, and
// its list names those URLs.
import { z } from "zod";
import { ADMIN, credentialIdOf } from "../auth/access.js";
import { procedure, router } from "../trpc/init.js";
import {
  createWebhookInput,
  rotateSecretInput,
  updateWebhookInput,
  webhookIdInput,
  webhookListSchema,
  webhookRemovedSchema,
  webhookSchema,
  webhookWithSecretSchema,
} from "./webhook-schemas.js";

const tags = ["webhooks"];
const errors = ["WEBHOOK_NOT_FOUND" as const];

export const webhookRouter = router({
  create: procedure
    .meta({
      access: ADMIN,
      rest: { method: "POST", path: "/webhooks", tags, summary: "Create a webhook: the server POSTs each untargeted event matching `types` to `url`, in order, signed (Standard Webhooks); answers its secret, once", errors: ["INVALID_STATE", "EVENTS_PRUNED"] },
    })
    .input(createWebhookInput)
    .output(webhookWithSecretSchema)
    .mutation(({ ctx, input }) => ctx.services.webhooks.create(input, credentialIdOf(ctx.caller))),

  update: procedure
    .meta({ access: ADMIN, rest: { method: "PATCH", path: "/webhooks/{id}", tags, summary: "Change a webhook's url, types or description, disable or enable it, or move its cursor (past an event its receiver refuses for good, or back)", errors: [...errors, "VERSION_CONFLICT", "EVENTS_PRUNED"], bodyRequired: true } })
    .input(updateWebhookInput)
    .output(webhookSchema)
    .mutation(({ ctx, input }) => ctx.services.webhooks.update(input, credentialIdOf(ctx.caller))),

  rotateSecret: procedure
    .meta({ access: ADMIN, rest: { method: "POST", path: "/webhooks/{id}/rotate-secret", tags, summary: "Give a webhook a new signing secret (answered once); the old one signs too for graceMs, beside those of earlier rotations whose grace lasts", errors: [...errors, "INVALID_STATE"] } })
    .input(rotateSecretInput)
    .output(webhookWithSecretSchema)
    .mutation(({ ctx, input }) => ctx.services.webhooks.rotateSecret(input, credentialIdOf(ctx.caller))),

  remove: procedure
    .meta({ access: ADMIN, rest: { method: "DELETE", path: "/webhooks/{id}", tags, summary: "Remove a webhook (removed false when there was none)" } })
    .input(webhookIdInput)
    .output(webhookRemovedSchema)
    .mutation(({ ctx, input }) => ctx.services.webhooks.remove(input.id, credentialIdOf(ctx.caller))),

  get: procedure
    .meta({ access: ADMIN, rest: { method: "GET", path: "/webhooks/{id}", tags, summary: "A webhook: where it sends, what, how far it got, how its last attempts went", errors } })
    .input(webhookIdInput)
    .output(webhookSchema)
    .query(({ ctx, input }) => ctx.services.webhooks.get(input.id)),

  list: procedure
    .meta({ access: ADMIN, rest: { method: "GET", path: "/webhooks", tags, summary: "Every webhook, oldest first" } })
    .input(z.strictObject({}).optional())
    .output(webhookListSchema)
    .query(({ ctx }) => ctx.services.webhooks.list()),
});
