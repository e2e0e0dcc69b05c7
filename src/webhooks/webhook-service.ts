// Webhooks on the event loop: an operator's calls (each one write, then a look for deliveries to
// start: a new or re-enabled webhook need not wait for the job's next tick) and the deliverer.
import type { Database } from "../db/thread/database.js";
import type { Logger } from "../logger.js";
import { hostOf, type WebhookDeliverer } from "./webhook-deliverer.js";
import type { CreateWebhookRequest, RotateSecretRequest, UpdateWebhookRequest, Webhook, WebhookWithSecret } from "./webhook-schemas.js";

export class WebhookService {
  constructor(
    private readonly db: Database,
    private readonly log: Logger,
    /** Sends the events: started and stopped with the server (services.ts). */
    readonly deliverer: WebhookDeliverer,
  ) {}

  /** A new webhook and its signing secret (answered only now). `createdBy`: the credential (null: none). INVALID_STATE past MAX_WEBHOOKS; EVENTS_PRUNED for a fromSeq behind the retained log. */
  async create(request: CreateWebhookRequest, createdBy: string | null): Promise<WebhookWithSecret> {
    const created = await this.db.write("webhooks.create", { ...request, createdBy });
    // Its host only: a URL's path or query often carries the receiver's secret.
    this.log.info({ webhookId: created.webhook.id, host: hostOf(created.webhook.url), types: request.types, cursor: created.webhook.cursor, createdBy }, "webhook created");
    void this.deliverer.look().catch(() => undefined);
    return created;
  }

  /** Changes url, types, description or enabled (see webhooks.update). WEBHOOK_NOT_FOUND. */
  async update(request: UpdateWebhookRequest, updatedBy: string | null): Promise<Webhook> {
    const { webhook: updated, changed } = await this.db.write("webhooks.update", { ...request, updatedBy });
    if (changed) this.deliverer.interrupt(updated.id);
    this.log.info({ webhookId: updated.id, host: hostOf(updated.url), enabled: updated.enabled, changed: Object.keys(request).filter((key) => key !== "id"), updatedBy }, "webhook changed by an operator");
    void this.deliverer.look().catch(() => undefined);
    return updated;
  }

  /** A new signing secret; the old one signs too for `graceMs`, beside those of earlier rotations still in their grace. WEBHOOK_NOT_FOUND; INVALID_STATE past MAX_RETIRED_SECRETS. */
  async rotateSecret(request: RotateSecretRequest, rotatedBy: string | null): Promise<WebhookWithSecret> {
    const rotated = await this.db.write("webhooks.rotateSecret", { ...request, rotatedBy });
    this.deliverer.interrupt(rotated.webhook.id);
    this.log.info({ webhookId: rotated.webhook.id, previousSecretUntil: rotated.webhook.previousSecretUntil, rotatedBy }, "webhook signing secret rotated");
    void this.deliverer.look().catch(() => undefined);
    return rotated;
  }

  /** Deletes it; a delivery under way stops. Whether there was one. */
  async remove(id: string, removedBy: string | null): Promise<{ removed: boolean }> {
    const answer = await this.db.write("webhooks.remove", { id, removedBy });
    this.deliverer.interrupt(id);
    if (answer.removed) this.log.info({ webhookId: id, removedBy }, "webhook removed");
    return answer;
  }

  /** WEBHOOK_NOT_FOUND. */
  get(id: string): Promise<Webhook> {
    return this.db.read("webhooks.get", id);
  }

  /** Every webhook, oldest first (at most 100). */
  async list(): Promise<{ webhooks: Webhook[] }> {
    return { webhooks: await this.db.read("webhooks.list", undefined) };
  }
}
