// Every regular expression in the shipped code (server, client, dashboard, command line) matches
// in time linear in its input: none backtracks into polynomial or exponential time on text someone
// else chose (a header, a log message, a URL). `/(\r?\n)+$/` on a log message of 16,384 newlines
// held the command line 0.4 s a line, `/^[ \t]+|[ \t]+$/g` on 50,000 blanks 2.2 s. Read from the
// sources' syntax trees and judged by recheck (an automaton analysis of each pattern; its fuzzer,
// seeded, for patterns with counted repeats), so a new one fails here, not in production.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { beforeAll, describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("..", import.meta.url));

/**
 * Patterns that may backtrack because nobody but this code chooses their input, with the reason.
 * Each must still be in the code (listed, then removed, it would allow its next use unchecked).
 */
const TRUSTED_INPUT: Record<string, string> = {
  "src/db/statements.ts /'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`[^`]*`|\\[[^\\]]*\\]|--[^\\n]*|\\/\\*[\\s\\S]*?(?:\\*\\/|$)/g":
    "the stores' own SQL, read once when a statement is prepared",
  "src/db/statements.ts /\\b(?:LIMIT|OFFSET)\\b[\\s(]*[?:@$]|\\bLIMIT\\b[^,()]*,[\\s(]*[?:@$]/i": "the stores' own SQL, read once when a statement is prepared",
};

/**
 * The constants patterns are built from at run time (`new RegExp`), by name, as the build has
 * them. Each `new RegExp` is read from its own arguments (string and template literals of these
 * names): a pattern built from anything else fails the test until its constant is added here.
 */
const constants = async (): Promise<Record<string, string>> => {
  const { BEYOND_C0 } = (await import(`${root}dist/src/cli-text.js`)) as { BEYOND_C0: string };
  return { BEYOND_C0 };
};

/** A literal's source and flags. */
const split = (literal: string) => {
  const end = literal.lastIndexOf("/");
  return { source: literal.slice(1, end), flags: literal.slice(end + 1) };
};

/** A pattern's source and flags, or why the test cannot tell what it is. */
type Pattern = { source: string; flags: string } | { unreadable: string };

interface Found {
  file: string;
  line: number;
  /** The literal as written (`/…/flags`), or `new RegExp(…)` for one built at run time. */
  text: string;
  /** What the pattern is, given the constants it may be built from. */
  pattern(names: Readonly<Record<string, string>>): Pattern;
  /** The constants a `new RegExp` names (none for a literal). */
  names: string[];
}

/**
 * What `new RegExp(pattern, flags)` builds, read from its arguments: a string or template literal
 * whose substitutions are constants in `names`.
 */
function builtPattern(call: ts.NewExpression | ts.CallExpression): Pick<Found, "pattern" | "names"> {
  const [pattern, flags] = call.arguments ?? [];
  const named: string[] = [];
  const textOf = (node: ts.Expression, names: Readonly<Record<string, string>>): string | undefined => {
    if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) return node.text;
    if (ts.isTemplateExpression(node)) {
      let text = node.head.text;
      for (const span of node.templateSpans) {
        const value = ts.isIdentifier(span.expression) ? names[span.expression.text] : undefined;
        if (value === undefined) return undefined;
        text += value + span.literal.text;
      }
      return text;
    }
    return undefined;
  };
  for (const node of [pattern, flags]) {
    if (node !== undefined && ts.isTemplateExpression(node)) for (const span of node.templateSpans) named.push(span.expression.getText());
  }
  return {
    names: named,
    pattern: (names) => {
      const source = pattern === undefined ? undefined : textOf(pattern, names);
      const flagText = flags === undefined ? "" : textOf(flags, names);
      if (source === undefined || flagText === undefined) {
        return { unreadable: `${call.getText()} is built from what this test cannot read (string or template literals of the constants in its constants())` };
      }
      return { source, flags: flagText };
    },
  };
}

/** Regular expression literals and `new RegExp` calls in one source file. */
function patternsIn(file: string, text: string): Found[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const found: Found[] = [];
  const at = (node: ts.Node) => source.getLineAndCharacterOfPosition(node.getStart()).line + 1;
  const visit = (node: ts.Node): void => {
    if (node.kind === ts.SyntaxKind.RegularExpressionLiteral) {
      const literal = node.getText();
      found.push({ file, line: at(node), text: literal, pattern: () => split(literal), names: [] });
    }
    if ((ts.isNewExpression(node) || ts.isCallExpression(node)) && node.expression.getText() === "RegExp") found.push({ file, line: at(node), text: "new RegExp(…)", ...builtPattern(node) });
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** The shipped sources: what git tracks under the code's folders and the package's own config, the generated Prisma client aside. */
function shippedSources(): string[] {
  const listed = execFileSync("git", ["ls-files", "src", "client", "dashboard", "bin", "scripts", "prisma.config.ts"], { cwd: root, encoding: "utf8" });
  return listed.split("\n").filter((file) => /\.[cm]?[jt]sx?$/.test(file) && !file.startsWith("src/generated/"));
}

/** recheck's verdict on one pattern: "safe", "vulnerable" (with its complexity) or "unknown". */
async function verdict(source: string, flags: string): Promise<string> {
  // The pure-JavaScript backend, in this thread: the same verdict on every machine, no Java or
  // native binary needed. No time limit (a loaded machine must not turn "safe" into "unknown");
  // the fuzzer's seed fixed, so its verdict is the same every run.
  process.env.RECHECK_BACKEND = "pure";
  const { check } = await import("recheck");
  const result = await check(source, flags, { timeout: null, randomSeed: 0 });
  return result.status === "vulnerable" ? `vulnerable (${result.complexity.type}, attack ${JSON.stringify(result.attack.pattern)})` : result.status;
}

/** What is wrong with the patterns `found`: one a line, empty when each is safe (or trusted). */
async function judge(found: readonly Found[], names: Readonly<Record<string, string>>): Promise<string[]> {
  const judged: string[] = [];
  for (const { file, line, text, pattern } of found) {
    const built = pattern(names);
    if ("unreadable" in built) {
      judged.push(`${file}:${line}: ${built.unreadable}`);
      continue;
    }
    const { source, flags } = built;
    if (text !== "new RegExp(…)" && TRUSTED_INPUT[`${file} /${source}/${flags}`] !== undefined) continue;
    const status = await verdict(source, flags);
    if (status !== "safe") judged.push(`${file}:${line}: /${source}/${flags} ${status}`);
  }
  return judged;
}

describe("regular expressions in the shipped code", () => {
  let found: Found[] = [];
  beforeAll(() => {
    found = shippedSources().flatMap((file) => patternsIn(file, readFileSync(`${root}${file}`, "utf8")));
  });

  it("match in linear time, each judged safe by recheck (or listed as reading only the code's own text)", async () => {
    // The scan sees the code: a pattern of each kind the server reads untrusted text with.
    expect(found.map((f) => f.text)).toEqual(expect.arrayContaining(["/;\\s*charset\\s*=\\s*\"?([^\";]*)\"?/i", "/^Bearer[ \\t]+(\\S+)[ \\t]*$/i"]));
    expect(await judge(found, await constants())).toEqual([]);
  }, 600_000);

  it("its lists stay true: each trusted pattern and each run-time one is still in the code", async () => {
    const literals = new Set(found.map((f) => `${f.file} ${f.text}`));
    expect(Object.keys(TRUSTED_INPUT).filter((key) => !literals.has(key))).toEqual([]);
    const named = new Set(found.flatMap((f) => f.names));
    expect(Object.keys(await constants()).filter((name) => !named.has(name))).toEqual([]);
  });

  it("the check tells a backtracking pattern from a linear one", async () => {
    expect(await verdict("(\\r?\\n)+$", "")).toMatch(/^vulnerable \(polynomial/);
    expect(await verdict("^[ \\t]+|[ \\t]+$", "g")).toMatch(/^vulnerable \(polynomial/);
    expect(await verdict("^(a+)+$", "")).toMatch(/^vulnerable \(exponential/);
    expect(await verdict("^\\d+(\\.\\d*)?$", "")).toBe("safe");
    // And the scan finds both kinds of pattern in a file.
    expect(patternsIn("probe.ts", 'const a = /x+$/g; const b = new RegExp(`[${c}]`, "g"); const d = "/not/";').map((f) => f.text)).toEqual(["/x+$/g", "new RegExp(…)"]);
  }, 120_000);

  it("judges each pattern built at run time as its own arguments build it, however many a file has", async () => {
    // A file's second new RegExp, or one changed from what the test expected, is judged too:
    // not a copy of the first's source kept in the test.
    const probe = patternsIn("probe.ts", 'const a = new RegExp(`[${c}]`, "g"); const b = new RegExp("(\\\\r?\\\\n)+$"); const d = RegExp(`${c}+$`, `${f}`);');
    expect(probe.map((p) => p.pattern({ c: "a-z", f: "i" }))).toEqual([
      { source: "[a-z]", flags: "g" },
      { source: "(\\r?\\n)+$", flags: "" },
      { source: "a-z+$", flags: "i" },
    ]);
    expect(await judge(probe, { c: "a-z", f: "i" })).toEqual([expect.stringMatching(/^probe\.ts:1: \/\(\\r\?\\n\)\+\$\/ vulnerable \(polynomial/)]);
    // Built from what the test cannot read (a variable it has no value for, a call): that is the finding.
    const unknown = patternsIn("probe.ts", "const e = new RegExp(`[${other}]`); const g = new RegExp(escape(input));");
    expect(await judge(unknown, { c: "a-z" })).toEqual([
      "probe.ts:1: new RegExp(`[${other}]`) is built from what this test cannot read (string or template literals of the constants in its constants())",
      "probe.ts:1: new RegExp(escape(input)) is built from what this test cannot read (string or template literals of the constants in its constants())",
    ]);
  }, 120_000);
});
