// Shared state on the event loop: writes go to the writer thread as JSON text, reads to the
// reader, and a watch (kv.get with afterVersion) parks until the key's version moves
// (watch-until.ts), woken by the key's kv.set, kv.deleted or kv.expired from any process on the
// file, or at the key's expiry (no event comes of that until a write or the expiry job meets it).
import type { Database } from "../db/thread/database.js";
import type { ConsumingCall } from "../delivery/delivery.js";
import { invalidField } from "../errors.js";
import { assertJsonDepth } from "../json-value.js";
import { expireRunOut } from "../locks/grant-wait.js";
import { watchUntil, type WatchDeps } from "../watch-until.js";
import type { DeleteRequest, GetRequest, IncrementRequest, KvCounter, KvDeleted, KvEntry, KvPage, KvRead, ListRequest, SetRequest } from "./kv-schemas.js";
import { longPollMs } from "../wakeup.js";

export interface KvServiceDeps extends WatchDeps {
  db: Database;
}

/** An absent key's version, as a watch compares it. */
const versionOf = (read: KvRead): number => read.entry?.version ?? 0;

export class KvService {
  constructor(private readonly d: KvServiceDeps) {}

  /**
   * Writes `request.value` to `request.key` (see kv.set): with `ifVersion`, only if that is the
   * key's version now (0: absent). VERSION_CONFLICT otherwise, `details.entry` the key as it is;
   * a set sent again with its idempotencyKey after its answer was lost gets the entry it wrote
   * while no other write came after it (IDEMPOTENCY_MISMATCH with another value or ifVersion).
   * `ephemeral`: tied to the life of `agentId` (INVALID_INPUT naming `ephemeral` without one;
   * LIMIT_EXCEEDED past maxEphemeralKeysPerAgent).
   */
  set(request: SetRequest): Promise<KvEntry> {
    assertJsonDepth("value", request.value, this.d.config.maxJsonDepth);
    // An agent credential's own agent is filled in before this; an admin's or an open server's set names one.
    if (request.ephemeral === true && request.agentId === undefined) throw invalidField("ephemeral", "ties the key to an agent's life: name the agent (agentId)");
    return this.d.db.write("kv.set", {
      key: request.key,
      value: JSON.stringify(request.value),
      ifVersion: request.ifVersion,
      ttlMs: request.ttlMs ?? null,
      updatedBy: request.agentId ?? null,
      idempotencyKey: request.idempotencyKey ?? null,
      ephemeralOwner: request.ephemeral === true ? request.agentId! : null,
    });
  }

  /**
   * Adds `request.by` to the number `request.key` holds (see kv.increment; absent: 0), within
   * `min` and `max` (OUT_OF_RANGE otherwise, nothing written); INVALID_STATE for a key holding
   * anything but a number. One sent again with its idempotencyKey within 24 hours gets the entry it wrote.
   */
  increment(request: IncrementRequest): Promise<KvCounter> {
    return this.d.db.write("kv.increment", {
      key: request.key,
      by: request.by,
      min: request.min ?? null,
      max: request.max ?? null,
      ttlMs: request.ttlMs ?? null,
      updatedBy: request.agentId ?? null,
      idempotencyKey: request.idempotencyKey ?? null,
    });
  }

  /** Deletes `request.key` (see kv.delete): with `ifVersion`, only at that version (VERSION_CONFLICT otherwise). */
  delete(request: DeleteRequest): Promise<KvDeleted> {
    return this.d.db.write("kv.delete", { key: request.key, ifVersion: request.ifVersion, deletedBy: request.agentId ?? null });
  }

  /**
   * Key `request.key` as it is (entry null: absent). With `afterVersion`, a watch: answered once
   * its version differs from that one (absent: 0), or as it is when `waitMs` (left out, maxWaitMs;
   * never past it) runs out or the client leaves. `parkedAs`: the credential a parked watch counts
   * against (maxParkedPerAgent; undefined: unbounded). LIMIT_EXCEEDED past it; SHUTTING_DOWN when
   * the server stops meanwhile.
   */
  get(request: GetRequest, parkedAs?: string, call: ConsumingCall = {}): Promise<KvRead> {
    const look = () => this.d.db.read("kv.get", { key: request.key, now: Date.now() });
    const { afterVersion } = request;
    const waitMs = longPollMs(request.waitMs, this.d.config.maxWaitMs, this.d.config.maxWaitMs);
    if (afterVersion === undefined || waitMs <= 0) return look();
    return watchUntil(this.d, {
      keys: [request.key],
      waitMs,
      look,
      enough: (read) => versionOf(read) !== afterVersion,
      changesAt: (read) => read.entry?.expiresAt?.getTime() ?? null,
      parkedAs,
      call,
    });
  }

  /** The keys present now, by key, a page (see kv.list). */
  list(request: ListRequest): Promise<KvPage> {
    return this.d.db.read("kv.page", { prefix: request.prefix, ephemeralOwner: request.ephemeralOwner, after: request.after, limit: request.limit, now: Date.now() });
  }

  /**
   * Deletes the keys whose expiry passed, a bounded number a write, each with its kv.expired (the
   * watches of them wake): looked for on the reader first, so a server with none writes nothing.
   * How many.
   */
  expire(): Promise<number> {
    return expireRunOut(
      (now) => this.d.db.read("kv.anyExpired", now),
      (limit) => this.d.db.write("kv.expire", limit),
    );
  }
}
