// A webhook receiver's side: checks that a request came from the server (its webhook-signature,
// Standard Webhooks' HMAC-SHA256 over "id.timestamp.body" with the webhook's secret) and is recent,
// then hands back the event it carries. Web Crypto only, so it runs in Node, Deno, Bun, browsers
// and edge functions alike.
import type { RouterOutputs } from "./types.js";

/** An event as a webhook delivers it: what events.list answers. */
export type WebhookEvent = RouterOutputs["events"]["list"][number];

/** A delivery that is not the server's, or not recent: answer it 400 (or 401), never act on it. */
export class WebhookVerificationError extends Error {
  override name = "WebhookVerificationError";
}

/** What verifyWebhook reads of a request's headers: a fetch Headers, or node's IncomingHttpHeaders (lower-case names). */
export type WebhookHeaders = Headers | Record<string, string | string[] | undefined>;

export interface VerifyWebhookOptions {
  /** How far the request's webhook-timestamp may be from now, either way, in ms: 5 minutes by default (a replayed request is refused past it). */
  toleranceMs?: number;
  /** The time now in Unix ms (tests). */
  now?: () => number;
}

/** A verified delivery: its message id (the same on every attempt: deduplicate by it), when it was signed, and its event. */
export interface VerifiedWebhook {
  id: string;
  timestamp: Date;
  event: WebhookEvent;
}

const DEFAULT_TOLERANCE_MS = 5 * 60_000;

/** Header `name` (lower-case) of either kind, whatever the case a plain object's names are in. */
function header(headers: WebhookHeaders, name: string): string | undefined {
  if (typeof (headers as Headers).get === "function") return (headers as Headers).get(name) ?? undefined;
  const record = headers as Record<string, string | string[] | undefined>;
  const key = name in record ? name : Object.keys(record).find((k) => k.toLowerCase() === name);
  const value = key === undefined ? undefined : record[key];
  return Array.isArray(value) ? value[0] : value;
}

function base64Bytes(text: string): Uint8Array {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function bytesBase64(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/** Compares two strings in time that depends on their length only. */
function sameText(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let differs = 0;
  for (let i = 0; i < a.length; i++) differs |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return differs === 0;
}

/**
 * Verifies a webhook delivery and returns its event. `secret`: the webhook's ("whsec_…", as
 * webhooks.create or rotateSecret answered it), or several (the new and the old, while a rotation
 * is under way): any one signature of any one secret passes. `body`: the request's body exactly
 * as received (raw text or bytes, not a re-serialized object: one byte changed fails).
 * Throws WebhookVerificationError when a header is missing, the timestamp is further than
 * `toleranceMs` from now, or no signature matches.
 */
export async function verifyWebhook(secret: string | readonly string[], headers: WebhookHeaders, body: string | Uint8Array, options: VerifyWebhookOptions = {}): Promise<VerifiedWebhook> {
  const id = header(headers, "webhook-id");
  const timestamp = header(headers, "webhook-timestamp");
  const signatures = header(headers, "webhook-signature");
  if (id === undefined || timestamp === undefined || signatures === undefined) {
    throw new WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature header: not a webhook delivery");
  }
  const seconds = Number(timestamp);
  if (!/^\d+$/.test(timestamp) || !Number.isSafeInteger(seconds)) throw new WebhookVerificationError(`webhook-timestamp ${JSON.stringify(timestamp)} is not Unix seconds`);
  const now = (options.now ?? Date.now)();
  const tolerance = options.toleranceMs ?? DEFAULT_TOLERANCE_MS;
  if (Math.abs(now - seconds * 1000) > tolerance) {
    throw new WebhookVerificationError(`webhook-timestamp ${timestamp} is more than ${tolerance} ms from now: refused as a replay (or the clocks disagree)`);
  }
  const text = typeof body === "string" ? body : new TextDecoder().decode(body);
  const signed = new TextEncoder().encode(`${id}.${timestamp}.${text}`);
  const offered = signatures.split(" ").flatMap((part) => (part.startsWith("v1,") ? [part.slice(3)] : []));
  for (const one of typeof secret === "string" ? [secret] : secret) {
    let key: Awaited<ReturnType<typeof crypto.subtle.importKey>>;
    try {
      key = await crypto.subtle.importKey("raw", base64Bytes(one.startsWith("whsec_") ? one.slice("whsec_".length) : one), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    } catch {
      throw new WebhookVerificationError('the secret is not "whsec_" and base64, as webhooks.create answered it (no spaces, not empty)');
    }
    const expected = bytesBase64(new Uint8Array(await crypto.subtle.sign("HMAC", key, signed)));
    if (offered.some((signature) => sameText(signature, expected))) {
      const parsed = JSON.parse(text) as Omit<WebhookEvent, "createdAt"> & { createdAt: string };
      return { id, timestamp: new Date(seconds * 1000), event: { ...parsed, createdAt: new Date(parsed.createdAt) } as WebhookEvent };
    }
  }
  throw new WebhookVerificationError("no webhook-signature matches the secret: not sent by this server's webhook (or the body was changed on the way)");
}
