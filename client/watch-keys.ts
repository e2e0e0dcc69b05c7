// The keys under a prefix, watched: who is here (presence/), who works on what (working-on/). Keys
// tied to an agent's life come and go with their agents; a coordinator wants each change as it
// happens, as ZooKeeper's child watches and etcd's prefix watches give it. The keys present come
// first (kv.list), then each change the event log says a key of the prefix took (kv.set, kv.deleted,
// kv.expired on the client's WebSocket, from the log's head as it was before the listing), read
// back from the key: the newest state, each version once.
import { setTimeout as sleep } from "node:timers/promises";
import { ClientClosedError } from "./closing-link.js";
import { isUnanswered, RETRY_MAX_MS, RETRY_START_MS, untilAnswered } from "./lease-calls.js";
import type { KvEntry } from "./kv.js";
import { isSystemEvent } from "./system-events.js";
import type { CoordinationApi } from "./types.js";
import { sentOnce } from "./send-once.js";

export interface WatchKeysOptions {
  /** The keys that start with this text (case-sensitive, byte for byte, as kv.list's prefix): "presence/". "" watches every key. */
  prefix: string;
  /** Ends the watch: the generator returns (the stream is closed). */
  signal?: AbortSignal;
  /**
   * The most changes told by the stream and not yet read (10,000 by default): past it, they are
   * dropped and the prefix is listed again, each difference with what was yielded told as a
   * change (a key gone: null), so a slow consumer holds bounded memory and misses no final state.
   */
  maxPending?: number;
}

/** A key of the prefix as it is now: `entry` null once it is absent (deleted, expired, gone with its agent). */
export interface KeyChange {
  key: string;
  entry: KvEntry | null;
}

const KV_EVENTS = ["kv.set", "kv.deleted", "kv.expired"];
/** kv.list's largest page. */
const PAGE = 1000;

/**
 * The keys under `options.prefix`: those present first (by key), then each new state of a key of the
 * prefix as it comes (a set, a delete, an expiry, a key gone with its agent), until the signal
 * aborts or the caller stops iterating. A key's versions are yielded in order, each at most once;
 * states that came and went before the key was read are not seen (the newest is). Reads go on
 * through transient failures, and the stream resumes from its last event after a reconnect. Throws
 * what the stream is refused with (a credential that may not read events: UNAUTHORIZED,
 * FORBIDDEN), and ClientClosedError once the client is closed (as watchKey does); a stream
 * behind the retained log (EVENTS_PRUNED) lists the prefix again instead.
 */
export async function* watchKeys(api: CoordinationApi, options: WatchKeysOptions): AsyncGenerator<KeyChange, void, undefined> {
  const { prefix, signal } = options;
  const maxPending = options.maxPending ?? 10_000;
  /**
   * The version last yielded for each key of the prefix present as last yielded. A key yielded
   * gone is dropped (absent reads as 0): presence/<agent> keys come and go for ever, and keeping
   * each one ever seen grew a long watch's memory without bound.
   */
  const seen = new Map<string, number>();
  /** Keys the stream said changed, not read yet, in the order told (a key once). */
  let pending = new Set<string>();
  let resync = false;
  let failure: unknown;
  let wake: (() => void) | undefined;
  const woken = () => {
    wake?.();
    wake = undefined;
  };
  /** The seq of the last event the stream gave (the head read, before any): where a stream cut by a failure resumes. */
  let position = 0;
  const open = (from: number) => {
    position = from;
    // Set once this stream is closed here (replaced, stopped): what it says after is not heard.
    let closed = false;
    const subscription = api.events.onEvent.subscribe(
      { types: KV_EVENTS, lastEventId: String(from) },
      {
        onData: ({ data: event }) => {
          if (closed) return;
          position = Math.max(position, event.seq);
          if (!isSystemEvent(event, "kv.set") && !isSystemEvent(event, "kv.deleted") && !isSystemEvent(event, "kv.expired")) return;
          const { key, version } = event.payload;
          if (!key.startsWith(prefix) || (event.type === "kv.set" && version <= (seen.get(key) ?? 0))) return;
          pending.add(key);
          if (pending.size > maxPending) {
            pending = new Set();
            resync = true;
          }
          woken();
        },
        onError: (error) => {
          if (closed) return;
          failure = error;
          woken();
        },
        // Ended without an error, and not by this watch: the client was closed (its close()
        // completes every subscription). Waiting on would wait for ever: end as watchKey does.
        onComplete: () => {
          if (closed) return;
          failure = new ClientClosedError();
          woken();
        },
      },
    );
    return {
      unsubscribe: () => {
        closed = true;
        subscription.unsubscribe();
      },
    };
  };
  let stream: { unsubscribe(): void } | undefined;
  // Aborted: the stream closes, and a wait for the next change ends.
  const stop = () => {
    stream?.unsubscribe();
    woken();
  };
  signal?.addEventListener("abort", stop, { once: true });
  try {
    // In the try: a signal aborted before the watch starts, or while the head is read, ends the
    // watch as an abort later does (it returns), rather than rejecting with an AbortError.
    const { head } = await untilAnswered(() => api.events.head.query(undefined, sentOnce(signal)), signal);
    // Opened before the listing: a change made while it is read is told too (and yielded once).
    stream = open(head);
    // Each key of the prefix as it is, and null for each yielded before that is gone: the first
    // listing, and again after a resync.
    async function* listing(): AsyncGenerator<KeyChange> {
      const present = new Set<string>();
      let after: string | undefined;
      do {
        // kv.list refuses an empty prefix (a 400): "" is every key, a listing of all, named by none.
        const page = await untilAnswered(() => api.kv.list.query({ ...(prefix === "" ? {} : { prefix }), limit: PAGE, ...(after === undefined ? {} : { after }) }, sentOnce(signal)), signal);
        for (const entry of page.items) {
          present.add(entry.key);
          if (seen.get(entry.key) === entry.version) continue;
          seen.set(entry.key, entry.version);
          yield { key: entry.key, entry };
        }
        after = page.nextCursor ?? undefined;
      } while (after !== undefined);
      for (const key of [...seen.keys()]) {
        if (present.has(key) || !seen.has(key)) continue;
        seen.delete(key);
        yield { key, entry: null };
      }
    }
    yield* listing();
    let retryMs = RETRY_START_MS;
    while (!signal?.aborted) {
      if (failure !== undefined) {
        const code = (failure as { data?: { code?: unknown } }).data?.code;
        if (isUnanswered(failure) && code !== "EVENTS_PRUNED") {
          // Cut by a failure no refusal (a dropped connection's own error, a 5xx): opened again
          // from the last event it gave, after a pause, as the reads go on through theirs.
          failure = undefined;
          stream?.unsubscribe();
          await sleep(retryMs, undefined, { signal });
          retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
          stream = open(position);
          continue;
        }
        if (code !== "EVENTS_PRUNED") throw failure;
        // Behind the retained log: the changes it missed are read from the keys themselves.
        failure = undefined;
        stream.unsubscribe();
        const { head: now } = await untilAnswered(() => api.events.head.query(undefined, sentOnce(signal)), signal);
        stream = open(now);
        resync = true;
      }
      if (resync) {
        resync = false;
        pending = new Set();
        yield* listing();
        continue;
      }
      const [key] = pending;
      if (key === undefined) {
        await new Promise<void>((resolve) => {
          wake = resolve;
          if (signal?.aborted || failure !== undefined || resync || pending.size > 0) woken();
        });
        continue;
      }
      pending.delete(key);
      const { entry } = await untilAnswered(() => api.kv.get.query({ key }, sentOnce(signal)), signal);
      const version = entry?.version ?? 0;
      if ((seen.get(key) ?? 0) === version) continue;
      if (entry === null) seen.delete(key);
      else seen.set(key, version);
      yield { key, entry };
    }
  } catch (error) {
    // Stopped by the caller: the watch ends, as iterating stops.
    if (signal?.aborted) return;
    throw error;
  } finally {
    signal?.removeEventListener("abort", stop);
    stream?.unsubscribe();
  }
}
