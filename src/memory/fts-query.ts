// Turns any user text into a safe FTS5 query. FTS5 has its own syntax (quotes, AND/OR/NOT,
// NEAR, column filters, `*`, `^`), so raw text can be a syntax error or mean something else.
// We keep only word tokens and quote each one: the result can never fail to parse.

import { wholeCharacters } from "../whole-characters.js";

/** The most words a recall looks up (each costs a look at the index): a question's first, then its task's. */
export const MAX_TERMS = 32;

/**
 * The word tokens of `text`, each once, in the order they first come. A word is spelled as it
 * was written and FTS5 folds its case (unicode61, by its own Unicode 6.1 tables): JavaScript's
 * toLowerCase folds by newer ones, and its words can be ones the index never holds ("İ" becomes
 * "i" and a combining dot, a separator to the index, so "İSTANBUL" looked up "stanbul"; the
 * Cherokee capitals become small letters FTS5 does not know).
 */
function wordsOf(text: string): string[] {
  const seen = new Set<string>();
  const words: string[] = [];
  for (const word of text.match(/[\p{L}\p{N}_]+/gu) ?? []) {
    const key = sameWordKey(word);
    if (seen.has(key)) continue;
    seen.add(key);
    words.push(word);
  }
  return words;
}

/**
 * What two spellings of one word share: an ASCII word in any case is one word (Report, REPORT);
 * beyond ASCII only the same spelling is, since JavaScript would pair cases (Ꭰ and ꭰ) that the
 * index keeps apart, and a word looked up twice costs less than one never looked up.
 */
const sameWordKey = (word: string): string => (/^[\x00-\x7F]*$/.test(word) ? word.toLowerCase() : word);

/** The length of `word` in characters (code points, so a letter outside the BMP is one). */
const characters = (word: string): number => {
  let n = 0;
  for (const _ of word) n++;
  return n;
};

/**
 * At most `max` of `words`, in their order: all of them if they fit, else the longest (the
 * earlier of two alike). A long prompt's specific words ("narwhal", "escalation") say more of
 * it than its "the", "of" and "and", which nearly every memory holds.
 */
export function mostSpecific(words: readonly string[], max: number): string[] {
  if (words.length <= max) return [...words];
  const kept = new Set(
    words
      .map((word, at) => ({ word, at, length: characters(word) }))
      .sort((a, b) => b.length - a.length || a.at - b.at)
      .slice(0, max)
      .map(({ at }) => at),
  );
  return words.filter((_, at) => kept.has(at));
}

/** Word tokens of `text`, de-duplicated, of two characters or more (a task's single letters and digits match nearly everything), at most `max` (mostSpecific). */
export function extractTerms(text: string, max = MAX_TERMS): string[] {
  return mostSpecific(
    wordsOf(text).filter((w) => characters(w) >= 2),
    max,
  );
}

/**
 * A claim's words: its queue's and capability's first (a queue's name is what its memories most
 * often share), then its payload's, the most specific ones where they are more than MAX_TERMS.
 */
export function taskTerms(queue: string, capability: string | null, payload: unknown): string[] {
  const named = extractTerms(`${queue} ${capability ?? ""}`);
  const keys = new Set(named.map(sameWordKey));
  const rest = extractTerms(payloadText(payload), Infinity).filter((term) => !keys.has(sameWordKey(term)));
  return [...named, ...mostSpecific(rest, MAX_TERMS - named.length)];
}

/** The terms of `first`, then those of `second` not in it (sameWordKey), at most `max`. */
export function union(first: readonly string[], second: readonly string[], max = MAX_TERMS): string[] {
  const seen = new Set(first.map(sameWordKey));
  const terms = first.slice(0, max);
  for (const term of second) {
    if (terms.length >= max) break;
    if (seen.has(sameWordKey(term))) continue;
    seen.add(sameWordKey(term));
    terms.push(term);
  }
  return terms;
}

/**
 * A single character outside ASCII: a word by itself (an ideograph, a kana), or what the index
 * splits a word into (the letters of Devanagari and other scripts with combining marks, which the
 * tokenizer and this module's pattern both cut at each mark): kept, as the index has them.
 */
const WORD_CHARACTER = /^[^\x00-\x7F]$/u;

/**
 * The words of a question a caller typed: as extractTerms, and also a single character outside
 * ASCII ("猫"); a single ASCII letter or digit counts only in a question with no longer word
 * ("C", "x"), where it is the whole question, not the "s" of "agent's". At most MAX_TERMS, the
 * most specific (mostSpecific).
 */
export function questionTerms(text: string): string[] {
  const words = wordsOf(text);
  const worded = words.filter((w) => characters(w) >= 2 || WORD_CHARACTER.test(w));
  return mostSpecific(worded.length > 0 ? worded : words, MAX_TERMS);
}

/** One term as an FTS5 string literal: matched as a word, never read as syntax. */
export const quoteTerm = (term: string): string => `"${term.replaceAll('"', '""')}"`;

/** An FTS5 MATCH expression matching any of the terms (each quoted, so never read as syntax). */
export const matchAny = (terms: readonly string[]): string => terms.map(quoteTerm).join(" OR ");

/**
 * The searchable text of a JSON payload: its keys and string/number values, at most `limit`
 * characters. Stops walking once it has enough: a claim must not pay for a megabyte payload.
 */
export function payloadText(payload: unknown, limit = 2000): string {
  const parts: string[] = [];
  let length = 0;
  const add = (text: string) => {
    parts.push(text);
    length += text.length + 1;
  };
  const visit = (value: unknown): void => {
    if (length >= limit) return;
    if (typeof value === "string" || typeof value === "number" || typeof value === "boolean") add(wholeCharacters(String(value), limit));
    else if (Array.isArray(value)) {
      for (const item of value) {
        if (length >= limit) return;
        visit(item);
      }
    } else if (value && typeof value === "object") {
      for (const [key, inner] of Object.entries(value)) {
        if (length >= limit) return;
        add(key);
        visit(inner);
      }
    }
  };
  visit(payload);
  return wholeCharacters(parts.join(" "), limit);
}
