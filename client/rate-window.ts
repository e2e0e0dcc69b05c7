// A queue rate (queues.setRate) as people write it: "60/1m" is at most 60 claims in any minute.
// The operator CLI reads and writes rates this way, and the dashboard shows them so; a schedule's
// interval is a window's length written the same way.

/** Window units, in ms. */
const UNITS = [
  ["d", 86_400_000],
  ["h", 3_600_000],
  ["m", 60_000],
  ["s", 1000],
  ["ms", 1],
] as const;

/** A window's length as text: in the largest unit that divides it (1m, 90s, 250ms). */
export function rateWindowText(ms: number): string {
  for (const [unit, size] of UNITS) if (ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}

/**
 * "N/WINDOW" (60/1m, 10/1s, 500/90s, 5/250ms; units ms, s, m, h, d) as `{ maxClaims, perMs }`;
 * undefined when it is not written so. The syntax only: the server bounds both (queues.setRate
 * says how; the CLI checks them before it calls).
 */
export function parseRate(text: string): { maxClaims: number; perMs: number } | undefined {
  const match = /^([1-9][0-9]{0,8})\/(.*)$/.exec(text);
  const perMs = match ? parseDuration(match[2]!) : undefined;
  return perMs === undefined ? undefined : { maxClaims: Number(match![1]), perMs };
}

/**
 * A length of time as people write it (250ms, 90s, 10m, 1h, 1d) in ms; undefined when it is not
 * written so. A schedule's interval (`schedules set --every 10m`) and a rate's window are read so.
 */
export function parseDuration(text: string): number | undefined {
  const match = /^([1-9][0-9]{0,8})(ms|s|m|h|d)$/.exec(text);
  if (!match) return undefined;
  return Number(match[1]) * UNITS.find(([unit]) => unit === match[2])![1];
}
