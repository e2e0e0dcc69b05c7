// Small hooks the views share.
import { useEffect, useRef, useState } from "preact/hooks";
import { errorCode } from "./api.js";

export interface Polled<T> {
  data: T | undefined;
  error: unknown;
  refresh: () => void;
}

/**
 * Calls `load` now and every `everyMs`, keeping the last good answer through failures (a server
 * restart shows as an error line, then heals by itself). `onUnauthorized` hears of a 401.
 */
export function usePolling<T>(load: () => Promise<T>, everyMs: number, deps: unknown[], onUnauthorized: () => void): Polled<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const [tick, setTick] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    let alive = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const run = async () => {
      try {
        const value = await loadRef.current();
        if (!alive) return;
        setData(value);
        setError(undefined);
      } catch (failure) {
        if (!alive) return;
        setError(failure);
        if (errorCode(failure) === "UNAUTHORIZED") onUnauthorized();
      }
      if (alive) timer = setTimeout(run, everyMs);
    };
    void run();
    return () => {
      alive = false;
      clearTimeout(timer);
    };
  }, [...deps, tick]);
  return { data, error, refresh: () => setTick((n) => n + 1) };
}

/** "3 s", "2 min", "5 h" for a duration in ms. */
export function age(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return "-";
  if (ms < 60_000) return `${Math.round(ms / 1000)} s`;
  if (ms < 3_600_000) return `${Math.round(ms / 60_000)} min`;
  if (ms < 172_800_000) return `${Math.round(ms / 3_600_000)} h`;
  return `${Math.round(ms / 86_400_000)} days`;
}

/**
 * A time of day for today's, with its date for another day's: an agent offline since yesterday, or
 * a dead letter of last week, shown by its time of day alone read as today's.
 */
export function time(date: Date | null | undefined): string {
  if (!date) return "-";
  return date.toDateString() === new Date().toDateString() ? date.toLocaleTimeString() : date.toLocaleString();
}
export const json = (value: unknown): string => JSON.stringify(value, null, 2) ?? "undefined";
