// A task's retry backoff (Task.backoff) as people read it: the operator CLI's `tasks get` and the
// dashboard's task page show it so.
import { rateWindowText } from "./rate-window.js";

/** A task's backoff as the server answers it. */
export interface BackoffShape {
  type: "exponential" | "fixed";
  delayMs: number;
  maxDelayMs: number;
  jitter: number;
}

/** A wait as text in the largest unit that divides it (1m, 90s, 250ms); 0s for none. */
const length = (ms: number): string => (ms === 0 ? "0s" : rateWindowText(ms));

/**
 * "exponential from 1s, doubling up to 10m", "fixed 30s", each with ", jitter 20%" when it has
 * some; "the server's" for a task with none (null); "-" from a server older than backoffs.
 */
export function backoffText(backoff: BackoffShape | null | undefined): string {
  if (backoff === undefined) return "-";
  if (backoff === null) return "the server's";
  // In tenths of a percent: a jitter of 0.004 is some, not 0%.
  const jitter = backoff.jitter === 0 ? "" : `, jitter ${Math.round(backoff.jitter * 1000) / 10}%`;
  if (backoff.type === "fixed") return `fixed ${length(backoff.delayMs)}${jitter}`;
  return `exponential from ${length(backoff.delayMs)}, doubling up to ${length(backoff.maxDelayMs)}${jitter}`;
}
