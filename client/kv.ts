// Shared state from the client's side: updateKey reads a key, computes its next value and writes
// it only at the version it read (compare-and-set), again from the key as the conflict found it
// until the write holds; watchKey yields a key's every new state, a long-poll at a time. Both go on
// through transient failures (no answer, a 5xx, a restart's 503): each write carries a key of its
// own, so one sent again after its answer was lost finds its own write on the server, unless
// another write came after it (then its outcome is unknown, and updateKey says so rather than guess).
import { randomUUID } from "node:crypto";
import { isTRPCClientError } from "@trpc/client";
import { paceRound, untilAnswered } from "./lease-calls.js";
import { mayHaveBeenServed, outcomeUnknown } from "./served.js";
import type { CoordinationApi, JsonValue, RouterOutputs } from "./types.js";
import { sentOnce } from "./send-once.js";

/** A key as the server answers it (kv.set, and kv.get's entry). */
export type KvEntry = RouterOutputs["kv"]["set"];

/** updateKey met a newer version on each of its `attempts`: other writers keep winning the key. */
export class KeyContended extends Error {
  constructor(
    readonly key: string,
    readonly attempts: number,
    /** The key as the last conflict found it (null: absent). */
    readonly entry: KvEntry | null,
  ) {
    super(`key ${JSON.stringify(key)}: ${attempts} writes in a row met a newer version (other writers keep changing it)`);
    this.name = "KeyContended";
  }
}

export interface UpdateKeyOptions {
  key: string;
  /** The agent making the write, kept as the key's updatedBy (an agent credential's own, when left out). */
  agentId?: string;
  /** The written key reads as absent this many ms later (left out: never). */
  ttlMs?: number;
  /**
   * true: the written key is tied to the writing agent's life (kv.set's ephemeral): deleted when it
   * is seen offline or deregisters. Each write says its own: left out, the key written outlives its
   * writer, whatever it was before.
   */
  ephemeral?: boolean;
  /** How many writes may meet a newer version before KeyContended (100 by default). */
  maxAttempts?: number;
  /** Stops the update between attempts (its reason is thrown); a write under way is let finish, so its outcome is known (or KeyWriteUnknown says it is not). */
  signal?: AbortSignal;
}

/**
 * updateKey's write got no answer, and sent again it met another writer's newer version (or the
 * update was stopped before it was sent again): whether the first one was stored is unknown. Read the key and decide: an update that
 * is idempotent (a field set to a value) may simply run again; a bare increment may not.
 */
export class KeyWriteUnknown extends Error {
  constructor(
    readonly key: string,
    /** The version the lost write was conditional on. */
    readonly ifVersion: number,
    /** The key as the resend found it (null: absent; undefined: not sent again, the caller stopped first). */
    readonly entry: KvEntry | null | undefined,
    override readonly cause: unknown,
  ) {
    super(
      entry === undefined
        ? `key ${JSON.stringify(key)}: a write at version ${ifVersion} got no answer, and the update was stopped before it was sent again: whether it was stored is unknown`
        : `key ${JSON.stringify(key)}: a write at version ${ifVersion} got no answer, and sent again it found version ${entry?.version ?? 0} of another write: whether it was stored is unknown`,
    );
    this.name = "KeyWriteUnknown";
    // Its write may have been stored, whatever its cause's own chain says (mayHaveBeenServed).
    outcomeUnknown(this);
  }
}

/** The key a VERSION_CONFLICT names (its details' entry), or undefined when `error` is another. */
function conflictEntry(error: unknown): KvEntry | null | undefined {
  if (!isTRPCClientError(error) || error.data?.code !== "VERSION_CONFLICT") return undefined;
  const details = (error.data as { details?: { entry?: KvEntry | null } }).details;
  return details?.entry ?? null;
}

/**
 * Reads `options.key`, asks `update` for its next value (given the key as it is: null when absent)
 * and writes it only at the version read; when another write came between, `update` is asked
 * again with the key as that conflict found it. `update` returning undefined writes nothing.
 * Resolves with the key as written (or, when `update` wrote nothing, as it was). Rejects with
 * KeyContended after `maxAttempts` conflicts; with KeyWriteUnknown when a write got no answer and
 * its resend met another writer's version (it may have been stored: `update` is not asked again,
 * as an increment would then count twice); with the server's error for input it refuses (a value
 * past 64 KiB), and with `update`'s own error.
 */
export async function updateKey(api: CoordinationApi, options: UpdateKeyOptions, update: (current: KvEntry | null) => JsonValue | undefined | Promise<JsonValue | undefined>): Promise<KvEntry | null> {
  const { key, signal } = options;
  const maxAttempts = options.maxAttempts ?? 100;
  let current = (await untilAnswered(() => api.kv.get.query({ key }, sentOnce(signal)), signal)).entry;
  for (let attempt = 1; ; attempt++) {
    signal?.throwIfAborted();
    const value = await update(current);
    if (value === undefined) return current;
    const request = {
      key,
      value,
      ifVersion: current?.version ?? 0,
      // This attempt's own: its resends are found as its write, another attempt's are not.
      idempotencyKey: `updateKey:${randomUUID()}`,
      ...(options.agentId === undefined ? {} : { agentId: options.agentId }),
      ...(options.ttlMs === undefined ? {} : { ttlMs: options.ttlMs }),
      ...(options.ephemeral === undefined ? {} : { ephemeral: options.ephemeral }),
    };
    // A write got no answer: it may be stored. Sent again it finds itself (its key), unless another
    // write came after it; stopped by the caller meanwhile, its outcome is unknown. Only a try that
    // may have been served counts (a refused connection stored nothing; a 500 INTERNAL may have),
    // and the first such: a later refusal does not make it one that reached no server.
    let lost: unknown;
    const noAnswer = (error: unknown) => {
      if (lost === undefined && mayHaveBeenServed(error)) lost = error;
      if (!signal?.aborted) return;
      if (lost !== undefined) throw new KeyWriteUnknown(key, request.ifVersion, undefined, lost);
      // Every failure so far was answered: nothing was stored, and the caller's stop is all there is to say.
      signal.throwIfAborted();
    };
    try {
      // Not cut short by the signal: a write under way is let finish, so its outcome is known.
      return await untilAnswered(() => api.kv.set.mutate(request, sentOnce()), undefined, noAnswer);
    } catch (error) {
      const found = conflictEntry(error);
      if (found === undefined) throw error;
      if (lost !== undefined) throw new KeyWriteUnknown(key, request.ifVersion, found, lost);
      if (attempt >= maxAttempts) throw new KeyContended(key, attempt, found);
      current = found;
    }
  }
}

export interface WatchKeyOptions {
  key: string;
  /** The version last seen (an absent key's is 0): the first state yielded is the next one. Left out, the key as it is now comes first. */
  afterVersion?: number;
  /** One long-poll's wait, in ms (left out: the server's maxWaitMs). */
  waitMs?: number;
  /** Ends the watch: the generator returns (a long-poll under way is aborted). */
  signal?: AbortSignal;
}

/**
 * The key's states, each new one as it comes (null: absent), until `options.signal` aborts or the
 * caller stops iterating. States that came and went between two long-polls are not seen: a watch
 * yields the newest each time, as etcd's and Consul's blocking reads do.
 */
export async function* watchKey(api: CoordinationApi, options: WatchKeyOptions): AsyncGenerator<KvEntry | null, void, undefined> {
  const { key, signal } = options;
  let seen = options.afterVersion;
  try {
    while (!signal?.aborted) {
      const sentAt = performance.now();
      const input = { key, ...(seen === undefined ? {} : { afterVersion: seen }), ...(options.waitMs === undefined ? {} : { waitMs: options.waitMs }) };
      const { entry } = await untilAnswered(() => api.kv.get.query(input, sentOnce(signal)), signal);
      const version = entry?.version ?? 0;
      if (version === seen) {
        await paceRound(sentAt, signal);
        continue;
      }
      seen = version;
      yield entry;
    }
  } catch (error) {
    // Stopped by the caller: the watch ends, as iterating stops.
    if (signal?.aborted) return;
    throw error;
  }
}
