// Bearer secrets: 32 random bytes from the CSPRNG (256 bits), base64url, behind a "coord_" prefix
// that secret scanners and people can recognise. Stored only as SHA-256: a secret this random
// cannot be guessed from its hash, so a slow password hash would add nothing but latency to every
// request (the reasoning GitHub and others apply to their API tokens).
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

export const SECRET_PREFIX = "coord_";

export const newSecret = (): string => `${SECRET_PREFIX}${randomBytes(32).toString("base64url")}`;

/** SHA-256 of a secret, lowercase hex (the api_tokens.secretHash column). */
export const hashSecret = (secret: string): string => createHash("sha256").update(secret, "utf8").digest("hex");

/**
 * Compares two hashes in constant time. Comparing hashes, not secrets, keeps the time independent
 * of how long the presented secret is, and of where it first differs from the real one.
 */
export function sameHash(a: string, b: string): boolean {
  const left = Buffer.from(a, "hex");
  const right = Buffer.from(b, "hex");
  return left.length === right.length && timingSafeEqual(left, right);
}

/** The secret in an `Authorization: Bearer <secret>` header; undefined when there is no such header. */
export function bearerSecret(header: string | string[] | undefined): string | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined) return undefined;
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(value);
  // A malformed header is a wrong credential, not a missing one: "" never matches a token.
  return match ? match[1]! : "";
}
