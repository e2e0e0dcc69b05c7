// Signing a webhook request, as the Standard Webhooks specification (standardwebhooks.com) lays
// it out, so receivers can verify it with any of its libraries (or client/webhooks.ts):
//   webhook-id:        the message's id, the same on every attempt (receivers deduplicate by it)
//   webhook-timestamp: when this attempt was signed, in Unix seconds (receivers refuse old ones)
//   webhook-signature: "v1,<base64 HMAC-SHA256 of `${id}.${timestamp}.${body}`>", one per
//                      secret, space-separated (two while a rotated secret's grace lasts)
// A secret is "whsec_" and its key's bytes in base64.
import { createHmac } from "node:crypto";

/** The key bytes of a "whsec_…" secret. */
export const secretKey = (secret: string): Buffer => Buffer.from(secret.startsWith("whsec_") ? secret.slice("whsec_".length) : secret, "base64");

/** The webhook-signature header of `body` sent as message `id` at `timestamp` (Unix seconds), signed with each of `secrets`. */
export function signatureHeader(secrets: readonly string[], id: string, timestamp: number, body: string): string {
  return secrets.map((secret) => `v1,${createHmac("sha256", secretKey(secret)).update(`${id}.${timestamp}.${body}`).digest("base64")}`).join(" ");
}
