// Turns any user text into a safe FTS5 query. FTS5 has its own syntax (quotes, AND/OR/NOT,
// NEAR, column filters, `*`, `^`), so raw text can be a syntax error or mean something else.
// We keep only word tokens and quote each one: the result can never fail to parse.

/** The most words a recall looks up: a question's first, then its task's. */
export const MAX_TERMS = 32;

/** The word tokens of `text`, lower-cased, each once, in the order they first come. */
const wordsOf = (text: string): string[] => [...new Set(text.toLowerCase().match(/[\p{L}\p{N}_]+/gu) ?? [])];

/** Word tokens of `text`, lower-cased, de-duplicated, at most MAX_TERMS, of two characters or more (a task's single letters and digits match nearly everything). */
export function extractTerms(text: string): string[] {
  return wordsOf(text)
    .filter((w) => w.length >= 2)
    .slice(0, MAX_TERMS);
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
 * ("C", "x"), where it is the whole question, not the "s" of "agent's".
 */
export function questionTerms(text: string): string[] {
  const words = wordsOf(text);
  const worded = words.filter((w) => w.length >= 2 || WORD_CHARACTER.test(w));
  return (worded.length > 0 ? worded : words).slice(0, MAX_TERMS);
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
    if (typeof value === "string" || typeof value === "number" || typeof value === "boolean") add(String(value).slice(0, limit));
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
  return parts.join(" ").slice(0, limit);
}
