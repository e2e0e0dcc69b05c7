// The operator command's option values, read and refused the same way by every command: a value
// that is not what its option takes is a usage error naming the option (exit 2), never sent.
import { parseDuration } from "../client/rate-window.js";
import type { JsonValue } from "./json-types.js";
import { MAX_DELAY_MS } from "./tasks/task-schemas.js";
import { wholeReadAsOther } from "./whole-digits.js";

/** A command line the operator must mend (an unknown option, a value that is not what it takes): exit 2 with its usage. */
export class OperatorUsageError extends Error {}

/** An option's text; undefined when not given (or given as a flag). */
export const str = (value: string | true | undefined): string | undefined => (typeof value === "string" ? value : undefined);

/** A whole-number option (`min` and up: 0 unless said); undefined when not given. */
export const int = (text: string | true | undefined, flag: string, min = 0): number | undefined => {
  if (text === undefined) return undefined;
  // -1 is a whole number to most people: said as what it is not.
  if (typeof text === "string" && /^-\d+$/.test(text)) throw new OperatorUsageError(`${flag} must be ${min} or more (got ${text})`);
  if (typeof text !== "string" || !/^\d+$/.test(text)) throw new OperatorUsageError(`${flag} must be a whole number`);
  const value = Number(text);
  if (value < min) throw new OperatorUsageError(`${flag} must be ${min} or more (got ${text})`);
  return value;
};

/** A number option (-5, 2.5, 1e6); undefined when not given. */
export const num = (text: string | true | undefined, flag: string): number | undefined => {
  if (text === undefined) return undefined;
  if (typeof text !== "string" || !/^-?(\d+(\.\d*)?|\.\d+)(e[+-]?\d+)?$/i.test(text) || !Number.isFinite(Number(text))) throw new OperatorUsageError(`${flag} must be a number (such as 5, -2 or 0.5)`);
  const value = Number(text);
  const other = wholeReadAsOther(text, value);
  if (other !== undefined) throw new OperatorUsageError(`${flag} ${text} is past 2^53, where a number does not hold every whole number: it would be read as ${other}`);
  return value;
};

/** `text` as a length of time in ms (30s, 5m, 1h, 1d), or 0 for a zero (0, 0s, 0ms…), which parseDuration does not read (it reads lengths from 1 on); undefined for neither. */
const lengthOrZero = (text: string): number | undefined => (/^0+(ms|s|m|h|d)?$/.test(text) ? 0 : parseDuration(text));

/**
 * A length-of-time option (30s, 5m, 1h, 1d) in ms, `min` to `max`; undefined when not given.
 * Refused naming `flag` and what it must be (`wording`: "from 1s to 366d, such as 30m, 2h or 1d").
 */
export function durationOption(value: string | true | undefined, flag: string, min: number, max: number, wording: string): number | undefined {
  const text = str(value);
  if (text === undefined) return undefined;
  // A zero where zero is allowed, as --delay takes it: `rotate-secret --grace 0s` (its help's "0s:
  // stops at once") was refused.
  const ms = min === 0 ? lengthOrZero(text) : parseDuration(text);
  if (ms === undefined || ms < min || ms > max) throw new OperatorUsageError(`${flag} must be a length of time ${wording} (got ${JSON.stringify(text)})`);
  return ms;
}

/** Digits below this (1973-03-03 as Unix ms) are Unix seconds given for ms: no one means a time in 1970. */
const SECONDS_NOT_MS_BELOW = 1e11;

/**
 * A time as `flag` gives it: Unix ms (digits only) or an ISO 8601 date-time, as the API takes it
 * (the server names a bad one). Unix seconds (`date +%s`: 1800000000) are refused, saying so,
 * rather than read as ms: a task due in January 1970 runs at once.
 */
export function timeArg(text: string, flag: string): string | number {
  if (!/^\d+$/.test(text)) return text;
  const ms = Number(text);
  if (ms > 0 && ms < SECONDS_NOT_MS_BELOW) {
    throw new OperatorUsageError(`${flag} ${text} would be ${new Date(ms).toISOString()} (digits are Unix ms): for Unix seconds give ${text}000, or an ISO 8601 time such as 2030-01-01T09:00:00Z`);
  }
  return ms;
}

/** --expires: never (no expiry), a length of time from now (30s, 5m, 1h, 1d: by this machine's clock), or a time. */
export function expiryArg(text: string): string | number | null {
  if (text === "never") return null;
  if (/^0+(ms|s|m|h|d)$/.test(text)) throw new OperatorUsageError(`--expires ${text} would end the task before it could run: give a length of time (30s, 5m, 1h, 1d), a time, or never`);
  const fromNow = parseDuration(text);
  return fromNow === undefined ? timeArg(text, "--expires") : Date.now() + fromNow;
}

/** --delay: a length of time from now in ms (0, 0s…: due now, as delayMs 0 is); undefined when not given. */
export function delayOption(given: string | true | undefined): number | undefined {
  const delay = str(given);
  if (delay === undefined) return undefined;
  const delayMs = lengthOrZero(delay);
  if (delayMs === undefined) throw new OperatorUsageError(`--delay ${JSON.stringify(delay)} is not a duration (30s, 5m, 1h, 1d)`);
  if (delayMs > MAX_DELAY_MS) throw new OperatorUsageError(`--delay is at most ${MAX_DELAY_MS / 86_400_000}d, 100 years (got ${JSON.stringify(delay)})`);
  return delayMs;
}

/** A comma-separated list option's values (`a, b,` is a and b: blanks between commas are left out); undefined when not given. */
export const listOption = (given: string | true | undefined): string[] | undefined =>
  str(given)
    ?.split(",")
    .map((item) => item.trim())
    .filter((item) => item !== "");

/** A JSON option's value (undefined when not given); a usage error naming `flag` when it is not JSON. */
export function jsonOption(given: string | true | undefined, flag: string): JsonValue | undefined {
  const text = str(given);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as JsonValue;
  } catch {
    throw new OperatorUsageError(`${flag} must be JSON (got ${JSON.stringify(text.slice(0, 64))})`);
  }
}
