// Ids of tasks and memories: UUIDv7 (RFC 9562), time-ordered. A random (v4) id lands on a random
// leaf of its unique index, so every enqueue and every execution record dirtied a page of its
// own, and at a million rows read one from disk first; time-ordered ids append to the index's
// last page (bench/RESULTS.md has the figures). The library lays out and formats the UUID; the
// random bits come from a pool refilled by the CSPRNG, as node's own randomUUID does: asking the
// Web Crypto binding for 16 bytes per id cost 5 µs an id.
import { randomFillSync } from "node:crypto";
import { v7 } from "uuid";

const POOL_BYTES = 16 * 256;
const pool = Buffer.alloc(POOL_BYTES);
let used = POOL_BYTES;

function random16(): Uint8Array {
  if (used === POOL_BYTES) {
    randomFillSync(pool);
    used = 0;
  }
  const bytes = pool.subarray(used, used + 16);
  used += 16;
  return bytes;
}

/** A new UUIDv7 string: 48 bits of Unix ms, then 74 random bits ("0190…-…-7…-…"). */
export const newId = (): string => v7({ random: random16() });
