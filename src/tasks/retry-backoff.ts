// How long a failed run waits before its task may be claimed again: the task's own backoff
// (tasks.enqueue's `backoff`), or the server's (retryBaseMs doubling to retryMaxMs) when it has
// none. A failure's retryAfterMs (tasks.fail) overrides both; an expired lease retries at once.
import { MAX_BACKOFF_MS, type Backoff, type EnqueueRequest } from "./task-schemas.js";

/** The server's backoff settings (config.ts). */
export interface ServerBackoff {
  retryBaseMs: number;
  retryMaxMs: number;
}

/**
 * An enqueue's backoff as stored (JSON text) and answered: every field filled in, always in this
 * order. A fixed backoff's longest wait is its delay; an exponential one's, left out,
 * MAX_BACKOFF_MS. (An idempotencyKey sent again compares backoffs by what they do: sameBackoff.)
 */
export function storedBackoff(input: NonNullable<EnqueueRequest["backoff"]>): string {
  const backoff: Backoff = {
    type: input.type,
    delayMs: input.delayMs,
    maxDelayMs: input.type === "fixed" ? input.delayMs : (input.maxDelayMs ?? MAX_BACKOFF_MS),
    jitter: input.jitter,
  };
  return JSON.stringify(backoff);
}

/**
 * The wait, in ms, after the failed run numbered `attempt` (1: the task's first run since it was
 * enqueued or requeued): exponential doubles the delay at each failure up to its longest wait,
 * fixed waits the delay every time. With jitter j the wait is drawn uniformly from
 * [wait × (1 − j), wait] (`random` returns [0, 1), as Math.random), never beyond the longest.
 */
export function retryDelayMs(backoff: Backoff | null, attempt: number, server: ServerBackoff, random: () => number = Math.random): number {
  // Past 2^52 every delay above 0 is at its cap; 0 × 2^1024 would be NaN.
  const doublings = Math.min(Math.max(0, attempt - 1), 52);
  if (backoff === null) return Math.min(server.retryMaxMs, server.retryBaseMs * 2 ** doublings);
  const wait = backoff.type === "fixed" ? backoff.delayMs : Math.min(backoff.maxDelayMs, backoff.delayMs * 2 ** doublings);
  return backoff.jitter === 0 ? wait : Math.round(wait * (1 - backoff.jitter * random()));
}

/**
 * Whether two stored backoffs (JSON texts, null for the server's) wait the same after every
 * failure: an exponential one whose longest wait is its delay, or whose delay is 0, is the fixed
 * one. What an idempotencyKey sent again compares: the same policy spelled another way is the
 * same task.
 */
export function sameBackoff(a: string | null, b: string | null): boolean {
  if (a === b) return true;
  if (a === null || b === null) return false;
  return canonical(JSON.parse(a) as Backoff) === canonical(JSON.parse(b) as Backoff);
}

const canonical = (backoff: Backoff): string =>
  JSON.stringify(
    backoff.delayMs === 0
      ? // Never a wait, whatever its type and jitter (a share of none is none).
        { type: "fixed", delayMs: 0, maxDelayMs: 0, jitter: 0 }
      : backoff.type === "exponential" && backoff.maxDelayMs === backoff.delayMs
        ? { type: "fixed", delayMs: backoff.delayMs, maxDelayMs: backoff.delayMs, jitter: backoff.jitter }
        : { type: backoff.type, delayMs: backoff.delayMs, maxDelayMs: backoff.maxDelayMs, jitter: backoff.jitter },
  );
