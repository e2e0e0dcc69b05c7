// Cutting text to a length without splitting a character: a lone surrogate is not valid Unicode,
// and SQLite stores it as replacement characters (a webhook's lastError, an execution record).

/** The first `max` UTF-16 units of `text`, never half of a pair of surrogates (an emoji). */
export function wholeCharacters(text: string, max: number): string {
  const cut = text.slice(0, max);
  return /[\uD800-\uDBFF]$/.test(cut) ? cut.slice(0, -1) : cut;
}
