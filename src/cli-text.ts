// How the command line writes what it did not choose: text agents or admins chose (names, errors,
// ids), with every control character visible; and times, in UTC to the second. The operator's
// commands (cli-operator.ts) and the token commands on the database file (cli-tokens.ts) alike.

/** DEL, the C1 controls, and the bidirectional overrides and isolates (a regular expression's class ranges). */
export const BEYOND_C0 = "\\u007f-\\u009f\\u202a-\\u202e\\u2066-\\u2069";

/**
 * C0 and C1 control characters and DEL: ESC among them, with which a text moves a terminal's
 * cursor, clears its screen or sets its title; and the bidirectional overrides and isolates, with
 * which a text reorders how the rest of its line reads.
 */
const CONTROL = new RegExp(`[\\u0000-\\u001f${BEYOND_C0}]`, "g");

/**
 * Text agents chose (queue names, statuses, errors, ids) as a terminal may show it: every
 * control character as a visible escape (`\x1b`, `\n`). Names and errors are stored as given,
 * and an agent's ESC sequences printed raw could forge lines of the operator's output.
 */
const NAMED: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };
export const printable = (text: string): string => text.replace(CONTROL, (c) => NAMED[c] ?? escapeCode(c));
const escapeCode = (c: string): string => (c.charCodeAt(0) <= 0xff ? `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}` : `\\u${c.charCodeAt(0).toString(16)}`);

// A server address with its password hidden: the client says it too, when it refuses a url.
export { shownUrl } from "../client/server-address.js";

/** A time in UTC to the second, unmarked ("2026-12-04 21:55:00"): for text that says UTC itself (a schedule's lines, a column headed so). */
export const utc = (date: Date | null | undefined): string => (date ? date.toISOString().replace("T", " ").slice(0, 19) : "-");
/** A time as the tables show it: UTC to the second, marked so ("2026-12-04 21:55:00Z"): an operator elsewhere read it as local time. */
export const when = (date: Date | null | undefined): string => (date ? `${utc(date)}Z` : "-");

/** A credential's key prefixes (kvPrefixes) as a terminal shows them: each quoted (a prefix may hold spaces), escaped as agents' text is. */
export const keyPrefixesText = (prefixes: readonly string[]): string => printable(prefixes.map((prefix) => JSON.stringify(prefix)).join(" "));

/** A table: columns padded to their widest cell, every cell printable. */
export function table(header: string[], rows: string[][]): string {
  const cells = rows.map((row) => row.map(printable));
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((row) => (row[i] ?? "").length)));
  return [header, ...cells].map((row) => row.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n") + "\n";
}

/** `text` cut to `max` characters (not UTF-16 units: half an emoji prints as a replacement character), with an ellipsis. */
export const cut = (text: string, max: number): string => {
  const characters = Array.from(text);
  return characters.length > max ? `${characters.slice(0, max - 1).join("")}…` : text;
};
