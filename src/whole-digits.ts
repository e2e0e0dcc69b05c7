// Whole numbers written in digits (a query string's `by=…`, the command line's `--by …`) are read
// as numbers, and a number holds every whole number only up to 2^53: 9007199254740993 is read as
// 9007199254740992. Sent on, it would add or bound by an amount nobody wrote, and the server could
// not tell (what it gets is an exact number). Where the text is still at hand, it is checked.

/** A sign and digits alone: the text whose reading is checked exactly. */
const WHOLE = /^[+-]?\d+$/;

/**
 * What the whole number written as `text` is read as when a number does not hold it exactly
 * (`number` is `Number(text)`), or undefined when it does, or when `text` is no whole number in
 * digits (a decimal, an exponent: read as numbers are, by design).
 */
export function wholeReadAsOther(text: string, number: number): bigint | undefined {
  if (!WHOLE.test(text)) return undefined;
  const read = BigInt(number);
  return BigInt(text) === read ? undefined : read;
}
