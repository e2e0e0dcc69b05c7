// Webhooks, as the database threads run them: an operator's changes (each one write with its
// webhook.* event) and the deliverer's bookkeeping (webhook-deliverer.ts): whose turn it is to
// deliver a webhook, how far it got, how its last attempt went. A delivery's write checks the turn
// is still its own, so a webhook an operator changed, disabled or removed mid-delivery, or one
// another process took over, records nothing from the old turn.
import { randomBytes } from "node:crypto";
import type { WriteContext } from "../db/writer.js";
import { CoordinationError, notFound } from "../errors.js";
import { assertReadable, retainedFrom } from "../events/event-positions.js";
import type { CoordinationEvent } from "../events/event-schemas.js";
import type { EventStore } from "../events/event-store.js";
import { mergePatterns } from "../events/type-patterns.js";
import { newId } from "../ids.js";
import { retryDelayMs } from "../tasks/retry-backoff.js";
import type { CreateWebhookRequest, UpdateWebhookRequest, Webhook, WebhookWithSecret } from "./webhook-schemas.js";
import { MAX_WEBHOOKS } from "./webhook-schemas.js";
import type { Attempt, RetiredSecret, Turn, WebhookRow, WebhookStore } from "./webhook-store.js";

export interface WebhookDeps {
  webhooks: WebhookStore;
  events: EventStore;
}

/** A new signing secret: "whsec_" and 24 random bytes in base64 (Standard Webhooks' form). */
const newSecret = (): string => `whsec_${randomBytes(24).toString("base64")}`;

const date = (ms: number | null): Date | null => (ms === null ? null : new Date(Number(ms)));

/** Type patterns as given, each once (the first time it is given): a pattern twice matches nothing more. */
const distinct = (patterns: readonly string[]): string[] => [...new Set(patterns)];

/** Whether two lists hold the same patterns, whatever their order. */
const samePatterns = (a: readonly string[], b: readonly string[]): boolean => {
  const set = new Set(b);
  return a.length === set.size && a.every((pattern) => set.has(pattern));
};

/**
 * How many secrets of earlier rotations may sign at once: each is one more HMAC of every request
 * and one more signature in its header. A rotation with a grace past them is refused, not made by
 * cutting one short: a receiver was promised its grace.
 */
export const MAX_RETIRED_SECRETS = 8;

/**
 * Every secret `row`'s rotations retired, the oldest rotation first (some may have ended). The
 * older versions' columns say the last rotation's: none, a rotation with no grace (by any version:
 * an older one leaves the list as it was), so none signs; one the list lacks, a rotation by an
 * older version, after those of the list.
 */
const retiredOf = (row: WebhookRow): RetiredSecret[] => {
  if (row.previousSecret === null || row.previousSecretUntil === null) return [];
  const retired = JSON.parse(row.retiredSecrets) as RetiredSecret[];
  const last = row.previousSecret;
  return retired.some((one) => one.secret === last) ? retired : [...retired, { secret: last, until: Number(row.previousSecretUntil) }];
};

/** Those of `retired` whose grace has not ended at `now`. */
const inGrace = (retired: readonly RetiredSecret[], now: number): RetiredSecret[] => retired.filter((one) => one.until > now);

/** The retired secrets of `row` that still sign at `now`, the oldest rotation first. */
const signingAt = (row: WebhookRow, now: number): RetiredSecret[] => inGrace(retiredOf(row), now);

/** A webhook as answered: never its secrets. */
export function toWebhook(row: WebhookRow): Webhook {
  return {
    id: row.id,
    url: row.url,
    types: JSON.parse(row.types) as string[],
    description: row.description,
    enabled: Number(row.enabled) === 1,
    disabledReason: row.disabledReason,
    cursor: Number(row.cursor),
    failures: Number(row.failures),
    failingSince: date(row.failingSince),
    lastError: row.lastError,
    lastStatus: row.lastStatus === null ? null : Number(row.lastStatus),
    lastAttemptAt: date(row.lastAttemptAt),
    lastDeliveredAt: date(row.lastDeliveredAt),
    delivered: Number(row.delivered),
    gaps: Number(row.gaps),
    nextAttemptAt: new Date(Number(row.nextAttemptAt)),
    // When the last of the old secrets stops signing (past: none signs now).
    previousSecretUntil: date(retiredOf(row).reduce<number | null>((last, retired) => (last === null || retired.until > last ? retired.until : last), null)),
    createdAt: new Date(Number(row.createdAt)),
    createdBy: row.createdBy,
    updatedAt: new Date(Number(row.updatedAt)),
  };
}

/** What the deliverer needs of a webhook whose turn it took: where, what, how to sign, from where. */
export interface WebhookTurn {
  id: string;
  url: string;
  types: string[];
  /** The current secret: it signs every request. */
  secret: string;
  /**
   * Those of earlier rotations whose grace lasted when the turn began, each with its end: a turn
   * may outlast one (a backlog, a slow receiver), so each request is signed with those still in
   * their grace as it goes (signingSecrets).
   */
  retiredSecrets: RetiredSecret[];
  cursor: number;
  /** Failed attempts in a row before this turn (its first success logs "delivering again"). */
  failures: number;
}

/** The secrets a request of `turn` sent at `now` is signed with: the current one, and the old ones whose grace has not ended. */
export const signingSecrets = (turn: WebhookTurn, now: number): string[] => [
  turn.secret,
  ...inGrace(turn.retiredSecrets, now).map((retired) => retired.secret),
];

/** How a failed attempt left the webhook: disabled, or tried again at nextAttemptAt. */
export interface FailureRecorded {
  disabled: boolean;
  failures: number;
  nextAttemptAt: number;
  /** Whether this failure began a streak (the one before succeeded, or none was made). */
  first: boolean;
}

/** How far a webhook's cursor may lag behind the log's head, over events it does not deliver, before a turn moves it on. */
const CURSOR_LAG = 1000;

/** Each failed attempt waits longer before the next: 1 s doubling (shortened by up to 20% at random), up to the server's webhookMaxBackoffMs. */
const backoffOf = (maxDelayMs: number) => ({ type: "exponential" as const, delayMs: Math.min(1000, maxDelayMs), maxDelayMs, jitter: 0.2 });

/** Webhook `id`'s row. WEBHOOK_NOT_FOUND. */
function rowOf(webhooks: WebhookStore, id: string): WebhookRow {
  const row = webhooks.get(id);
  if (row === undefined) throw notFound("WEBHOOK_NOT_FOUND", id);
  return row;
}

export function webhookCommands(d: WebhookDeps) {
  const find = (id: string): WebhookRow => rowOf(d.webhooks, id);
  return {
    /** A new webhook, delivering from `fromSeq` (left out: the log's head). INVALID_STATE past MAX_WEBHOOKS; EVENTS_PRUNED or INVALID_INPUT for a fromSeq outside the retained log. */
    "webhooks.create": (ctx: WriteContext, request: CreateWebhookRequest & { createdBy: string | null }): WebhookWithSecret => {
      if (d.webhooks.count() >= MAX_WEBHOOKS) {
        throw new CoordinationError("INVALID_STATE", `the server keeps at most ${MAX_WEBHOOKS} webhooks: remove one first (webhooks.remove)`, { maxWebhooks: MAX_WEBHOOKS });
      }
      // 0 is every retained event, however much was pruned (as a subscription's fromSeq 0 is).
      if (request.fromSeq !== undefined && request.fromSeq !== 0) assertReadable(d.events, request.fromSeq, "fromSeq");
      const row: WebhookRow = {
        id: newId(),
        url: request.url,
        types: JSON.stringify(distinct(request.types)),
        description: request.description ?? null,
        secret: newSecret(),
        retiredSecrets: "[]",
        previousSecret: null,
        previousSecretUntil: null,
        // Left out: from the events after its own webhook.created on (this write appends it next, as seq head + 1).
        cursor: request.fromSeq === 0 ? d.events.prunedThroughSeq() : (request.fromSeq ?? d.events.headSeq() + 1),
        enabled: 1,
        disabledReason: null,
        failures: 0,
        failingSince: null,
        lastError: null,
        lastStatus: null,
        lastAttemptAt: null,
        lastDeliveredAt: null,
        delivered: 0,
        gaps: 0,
        nextAttemptAt: ctx.now,
        turnOwner: null,
        turnUntil: null,
        createdAt: ctx.now,
        createdBy: request.createdBy,
        updatedAt: ctx.now,
      };
      d.webhooks.insert(row);
      // Its URL stays out of the event: a URL often carries a secret of the receiver's (a path or a query token).
      d.events.appendSystem(ctx, "webhook.created", { webhookId: row.id, types: distinct(request.types), cursor: row.cursor, createdBy: request.createdBy });
      return { webhook: toWebhook(row), secret: row.secret };
    },

    /**
     * An operator's change of url, types, description, enabled or cursor. A change of what or where it
     * sends (url, types, cursor, enabled, or failures forgotten) ends a delivery under way (the next one
     * starts from the same cursor with what is new); a description, or what it already is, does
     * not. Enabling forgets the failures and makes it due at once, as does a new URL or a moved
     * cursor (EVENTS_PRUNED or INVALID_INPUT for one outside the retained log). New types on
     * a webhook with nothing pending start from the log's head (its cursor may lag behind events
     * it never matched: those are not replayed). `changed`: whether a delivery under way must end.
     * WEBHOOK_NOT_FOUND.
     */
    "webhooks.update": (ctx: WriteContext, request: UpdateWebhookRequest & { updatedBy: string | null }): { webhook: Webhook; changed: boolean } => {
      const before = find(request.id);
      if (request.ifCursor !== undefined && Number(before.cursor) !== request.ifCursor) {
        throw new CoordinationError(
          "VERSION_CONFLICT",
          `webhook ${before.id} is at seq ${before.cursor}, not ${request.ifCursor}: it delivered or passed over events since; nothing changed`,
          { cursor: Number(before.cursor) },
        );
      }
      const row: WebhookRow = { ...before };
      const wasEnabled = Number(before.enabled) === 1;
      const urlChanged = request.url !== undefined && request.url !== before.url;
      // The same patterns in another order, or one of them twice, are no change.
      const newTypes = request.types === undefined ? undefined : distinct(request.types);
      const typesChanged = newTypes !== undefined && !samePatterns(newTypes, JSON.parse(before.types) as string[]);
      const descriptionChanged = request.description !== undefined && request.description !== before.description;
      if (urlChanged) row.url = request.url!;
      if (typesChanged) {
        const oldTypes = JSON.parse(before.types) as string[];
        const pending = d.events.readLogPage(Math.max(Number(before.cursor), d.events.prunedThroughSeq()), 1, Number.POSITIVE_INFINITY, oldTypes, null).events.length > 0;
        if (!pending) row.cursor = Math.max(Number(before.cursor), d.events.headSeq());
        row.types = JSON.stringify(newTypes);
      }
      if (descriptionChanged) row.description = request.description!;
      // Moved by the operator (past a poison event, or back to send again): after types, which may move it too.
      // 0 is every retained event, however much was pruned (as create's fromSeq 0 is).
      if (request.cursor !== undefined && request.cursor !== 0) assertReadable(d.events, request.cursor, "cursor");
      const cursor = request.cursor === undefined ? undefined : request.cursor === 0 ? d.events.prunedThroughSeq() : request.cursor;
      const cursorMoved = cursor !== undefined && cursor !== Number(row.cursor);
      if (cursorMoved) row.cursor = cursor;
      // A new URL, or enabled again while failing: tried at once, its failures forgotten (the old ones were another receiver's, or are what the operator acts on).
      const forgetFailures = wasEnabled && (urlChanged || cursorMoved || request.enabled === true) && Number(before.failures) > 0;
      if (forgetFailures) Object.assign(row, { failures: 0, failingSince: null, nextAttemptAt: ctx.now });
      const enabling = request.enabled === true && !wasEnabled;
      const disabling = request.enabled === false && wasEnabled;
      if (enabling) Object.assign(row, { enabled: 1, disabledReason: null, failures: 0, failingSince: null, nextAttemptAt: ctx.now });
      if (disabling) Object.assign(row, { enabled: 0, disabledReason: request.reason ?? "disabled by an operator" });
      // Disabled already (by an operator, or for failing): a new reason given replaces the old one.
      const reasonChanged = !wasEnabled && request.enabled === false && request.reason !== undefined && request.reason !== before.disabledReason;
      if (reasonChanged) row.disabledReason = request.reason!;
      const changed = urlChanged || typesChanged || cursorMoved || enabling || disabling || forgetFailures;
      if (!changed && !descriptionChanged && !reasonChanged) return { webhook: toWebhook(before), changed: false };
      row.updatedAt = ctx.now;
      d.webhooks.update(row);
      // The change ends a turn under way: the deliverer's next write finds it is no longer its own.
      if (changed) d.webhooks.endTurnForChange(row.id);
      if (enabling) d.events.appendSystem(ctx, "webhook.enabled", { webhookId: row.id, cursor: Number(row.cursor), by: request.updatedBy });
      if (disabling || reasonChanged) d.events.appendSystem(ctx, "webhook.disabled", { webhookId: row.id, reason: row.disabledReason!, by: request.updatedBy, cursor: Number(row.cursor) });
      if (urlChanged || typesChanged || descriptionChanged || cursorMoved) {
        d.events.appendSystem(ctx, "webhook.updated", {
          webhookId: row.id,
          changed: [...(urlChanged ? ["url"] : []), ...(typesChanged ? ["types"] : []), ...(descriptionChanged ? ["description"] : []), ...(cursorMoved ? ["cursor"] : [])],
          types: JSON.parse(row.types) as string[],
          by: request.updatedBy,
          ...(cursorMoved ? { cursor: Number(row.cursor), from: Number(before.cursor) } : {}),
        });
      }
      return { webhook: toWebhook(d.webhooks.get(row.id)!), changed };
    },

    /**
     * A new signing secret; the old one signs too for `graceMs` more, beside those of earlier
     * rotations whose grace has not ended (graceMs 0 stops every old one at once: a leak). A
     * delivery under way ends (the next signs with each). WEBHOOK_NOT_FOUND; INVALID_STATE when
     * MAX_RETIRED_SECRETS old secrets sign already.
     */
    "webhooks.rotateSecret": (ctx: WriteContext, request: { id: string; graceMs: number; rotatedBy: string | null }): WebhookWithSecret => {
      const before = find(request.id);
      const signing = signingAt(before, ctx.now);
      if (request.graceMs > 0 && signing.length >= MAX_RETIRED_SECRETS) {
        const firstEnds = new Date(Math.min(...signing.map((retired) => retired.until))).toISOString();
        throw new CoordinationError(
          "INVALID_STATE",
          `${signing.length} secrets of earlier rotations still sign this webhook's requests, the most it keeps: rotate with graceMs 0 (every old secret stops at once) or after ${firstEnds}, when the first one's grace ends`,
          { maxRetiredSecrets: MAX_RETIRED_SECRETS, firstGraceEnds: firstEnds },
        );
      }
      const secret = newSecret();
      d.webhooks.setSecret(before.id, secret, request.graceMs > 0 ? [...signing, { secret: before.secret, until: ctx.now + request.graceMs }] : [], ctx.now);
      d.webhooks.endTurnForChange(before.id);
      const webhook = toWebhook(d.webhooks.get(before.id)!);
      // An audit trail's line: who changed how requests are signed, and until when old secrets sign.
      d.events.appendSystem(ctx, "webhook.secret_rotated", { webhookId: before.id, previousSecretUntil: webhook.previousSecretUntil?.toISOString() ?? null, by: request.rotatedBy });
      return { webhook, secret };
    },

    /** Deletes the webhook (a delivery under way stops at its next write). Whether there was one. */
    "webhooks.remove": (ctx: WriteContext, request: { id: string; removedBy: string | null }): { removed: boolean } => {
      const row = d.webhooks.get(request.id);
      if (row === undefined) return { removed: false };
      d.webhooks.remove(row.id);
      d.events.appendSystem(ctx, "webhook.removed", { webhookId: row.id, cursor: Number(row.cursor), delivered: Number(row.delivered), by: request.removedBy });
      return { removed: true };
    },

    /** Gives webhook `id`'s turn to `turn.owner` until `turn.until` if no process holds it, it is enabled and due. What to deliver; null: not taken. */
    "webhooks.takeTurn": (ctx: WriteContext, request: { id: string; turn: Turn }): WebhookTurn | null => {
      const row = d.webhooks.get(request.id);
      if (row === undefined || Number(row.nextAttemptAt) > ctx.now || !d.webhooks.takeTurn(row.id, request.turn, ctx.now)) return null;
      return {
        id: row.id,
        url: row.url,
        types: JSON.parse(row.types) as string[],
        secret: row.secret,
        retiredSecrets: signingAt(row, ctx.now),
        cursor: Number(row.cursor),
        failures: Number(row.failures),
      };
    },

    /** Event `seq` reached webhook `id` (`attempt`): its cursor moves to it and `owner`'s turn runs to `until`. False: the turn is no longer `owner`'s (nothing recorded). */
    "webhooks.delivered": (ctx: WriteContext, request: { id: string; owner: string; seq: number; attempt: Attempt; until: number }): boolean => {
      const row = d.webhooks.heldBy(request.id, request.owner, ctx.now);
      if (row === undefined) {
        d.webhooks.releaseEndedTurn(request.id);
        return false;
      }
      d.webhooks.delivered(row.id, request.seq, request.attempt, request.until);
      if (Number(row.failures) > 0) d.events.appendSystem(ctx, "webhook.recovered", { webhookId: row.id, seq: request.seq, failedAttempts: Number(row.failures), failingSince: new Date(Number(row.failingSince ?? request.attempt.at)).toISOString() });
      return true;
    },

    /**
     * An attempt to deliver to webhook `id` failed: tried again after a backoff (1 s doubling,
     * shortened by up to 20% at random, up to `maxBackoffMs`), or after the receiver's
     * `retryAfterMs` (its Retry-After) when that is longer, up to `maxBackoffMs` too; or disabled
     * when it has been failing for `disableAfterMs` (webhook.disabled). `owner`'s turn ends.
     * Null: the turn was no longer `owner`'s.
     */
    "webhooks.failed": (ctx: WriteContext, request: { id: string; owner: string; seq: number; attempt: Attempt; maxBackoffMs: number; disableAfterMs: number; retryAfterMs?: number }): FailureRecorded | null => {
      const row = d.webhooks.heldBy(request.id, request.owner, ctx.now);
      if (row === undefined) {
        d.webhooks.releaseEndedTurn(request.id);
        return null;
      }
      const failures = Number(row.failures) + 1;
      const failingSince = row.failingSince === null ? request.attempt.at : Number(row.failingSince);
      const backoffMs = retryDelayMs(backoffOf(request.maxBackoffMs), failures, { retryBaseMs: 1000, retryMaxMs: request.maxBackoffMs });
      const nextAttemptAt = ctx.now + Math.max(backoffMs, Math.min(request.retryAfterMs ?? 0, request.maxBackoffMs));
      d.webhooks.failed(row.id, request.attempt, nextAttemptAt, failingSince);
      const disabled = ctx.now - failingSince >= request.disableAfterMs;
      if (disabled) {
        const failing = `failing since ${new Date(failingSince).toISOString()} (${failures} attempts on event ${request.seq})`;
        const reason = `${failing}: ${request.attempt.error ?? "no answer"}`;
        d.webhooks.disable(row.id, reason, ctx.now);
        // The event leaves the receiver's answer out (its lastError, an admin's): any reader sees events.
        d.events.appendSystem(ctx, "webhook.disabled", { webhookId: row.id, reason: failing, by: null, cursor: Number(row.cursor), failed: true });
      }
      return { disabled, failures, nextAttemptAt, first: failures === 1 };
    },

    /** `owner`'s turn of webhook `id` ends, its cursor at least at `cursor` (no matching event up to it is left). */
    "webhooks.endTurn": (_ctx: WriteContext, request: { id: string; owner: string; cursor: number }): null => {
      d.webhooks.endTurn(request.id, request.owner, request.cursor);
      return null;
    },

    /** Events up to `through` were pruned before `owner` could deliver them to webhook `id`: its cursor moves past them, one gap more. False: not its turn. */
    "webhooks.skip": (ctx: WriteContext, request: { id: string; owner: string; through: number }): boolean => {
      if (d.webhooks.heldBy(request.id, request.owner, ctx.now) === undefined) {
        d.webhooks.releaseEndedTurn(request.id);
        return false;
      }
      d.webhooks.skip(request.id, request.through);
      return true;
    },

    /** Every turn `owner` holds ends (its process stops): another process may deliver them at once. */
    "webhooks.endTurnsOf": (_ctx: WriteContext, owner: string): null => {
      d.webhooks.endTurnsOf(owner);
      return null;
    },
  };
}

/** The next events a webhook delivers, and what the log looks like from its cursor. */
export interface WebhookPage {
  events: CoordinationEvent[];
  /** More matching events may follow the page. */
  more: boolean;
  /** The log's newest seq when read: with no more, nothing matching up to it is left. */
  head: number;
  /** Set when events it might have delivered were pruned after its cursor: the seq they were pruned through. */
  prunedThrough: number | null;
}

export function webhookQueries(d: WebhookDeps & { maxResponseBytes: number }) {
  /** Where a webhook at `cursor` reads untargeted events of `types` from; null: some it would deliver were pruned after `cursor` (a gap). */
  const startOf = (cursor: number, types: string[]): number | null => retainedFrom(d.events, cursor, { patterns: types, recipient: null });
  /**
   * Whether webhook `row` has an event to deliver after its cursor, or fell behind the retained
   * log: one indexed read, so a webhook of rare types costs no write per tick on a busy log (its
   * cursor moves on with the next event it delivers).
   */
  const hasWork = (row: WebhookRow, headSeq: number): boolean => {
    // Far behind the head with nothing to deliver (events of other types, or direct messages): a
    // turn moves its cursor to the head, so no look reads that stretch again.
    if (headSeq - Number(row.cursor) > CURSOR_LAG) return true;
    const types = JSON.parse(row.types) as string[];
    const from = startOf(Number(row.cursor), types);
    return from === null || d.events.readLogPage(from, 1, d.maxResponseBytes, types, null).events.length > 0;
  };
  return {
    "webhooks.list": (_: undefined): Webhook[] => d.webhooks.all().map(toWebhook),
    /** WEBHOOK_NOT_FOUND. */
    "webhooks.get": (id: string): Webhook => toWebhook(rowOf(d.webhooks, id)),
    /** Ids of up to `limit` webhooks due at `now` with events after their cursor that no process delivers, but those in `excluding`; and the type patterns of every enabled webhook. */
    "webhooks.due": (args: { now: number; excluding: string[]; limit: number }): { due: string[]; patterns: string[] } => {
      const headSeq = d.events.headSeq();
      return {
        due: d.webhooks
          .due(args.now, headSeq, args.excluding, args.limit)
          .filter((row) => hasWork(row, headSeq))
          .map((row) => row.id),
        patterns: mergePatterns([], d.webhooks.enabledTypes().flatMap((types) => JSON.parse(types) as string[])),
      };
    },
    /** Untargeted events of `types` after `afterSeq`, up to `limit` and the answer budget. */
    "webhooks.next": (args: { types: string[]; afterSeq: number; limit: number }): WebhookPage => {
      const head = d.events.headSeq();
      const from = startOf(args.afterSeq, args.types);
      if (from === null) return { events: [], more: true, head, prunedThrough: d.events.prunedThroughSeq() };
      const page = d.events.readLogPage(from, args.limit, d.maxResponseBytes, args.types, null);
      return { events: page.events, more: page.more, head, prunedThrough: null };
    },
    "webhooks.counts": (_: undefined) => d.webhooks.countsByState(),
  };
}
