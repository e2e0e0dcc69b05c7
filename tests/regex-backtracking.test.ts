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
 * Patterns built at run time (`new RegExp`), by file: their source as the code builds it, from
 * constants the test reads from the build. A new one must be added here to be checked.
 */
const built = async (): Promise<Record<string, Array<{ source: string; flags: string }>>> => {
  const { BEYOND_C0 } = (await import(`${root}dist/src/cli-text.js`)) as { BEYOND_C0: string };
  return {
    "src/cli-text.ts": [{ source: `[\\u0000-\\u001f${BEYOND_C0}]`, flags: "g" }],
    "src/cli-operator.ts": [{ source: `[${BEYOND_C0}]`, flags: "g" }],
  };
};

interface Found {
  file: string;
  line: number;
  /** The literal as written (`/…/flags`), or `new RegExp(…)` for one built at run time. */
  text: string;
}

/** Regular expression literals and `new RegExp` calls in one source file. */
function patternsIn(file: string, text: string): Found[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const found: Found[] = [];
  const at = (node: ts.Node) => source.getLineAndCharacterOfPosition(node.getStart()).line + 1;
  const visit = (node: ts.Node): void => {
    if (node.kind === ts.SyntaxKind.RegularExpressionLiteral) found.push({ file, line: at(node), text: node.getText() });
    if ((ts.isNewExpression(node) || ts.isCallExpression(node)) && node.expression.getText() === "RegExp") found.push({ file, line: at(node), text: "new RegExp(…)" });
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** The shipped sources: what git tracks under the code's folders, the generated Prisma client aside. */
function shippedSources(): string[] {
  const listed = execFileSync("git", ["ls-files", "src", "client", "dashboard", "bin", "scripts"], { cwd: root, encoding: "utf8" });
  return listed.split("\n").filter((file) => /\.(ts|tsx|mjs|js)$/.test(file) && !file.startsWith("src/generated/"));
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

const split = (literal: string) => {
  const end = literal.lastIndexOf("/");
  return { source: literal.slice(1, end), flags: literal.slice(end + 1) };
};

describe("regular expressions in the shipped code", () => {
  let found: Found[] = [];
  beforeAll(() => {
    found = shippedSources().flatMap((file) => patternsIn(file, readFileSync(`${root}${file}`, "utf8")));
  });

  it("match in linear time, each judged safe by recheck (or listed as reading only the code's own text)", async () => {
    // The scan sees the code: a pattern of each kind the server reads untrusted text with.
    expect(found.map((f) => f.text)).toEqual(expect.arrayContaining(["/;\\s*charset\\s*=\\s*\"?([^\";]*)\"?/i", "/^Bearer[ \\t]+(\\S+)[ \\t]*$/i"]));
    const dynamic = await built();
    const judged: string[] = [];
    for (const { file, line, text } of found) {
      const patterns = text === "new RegExp(…)" ? (dynamic[file] ?? []) : [split(text)];
      if (text === "new RegExp(…)" && patterns.length === 0) judged.push(`${file}:${line}: new RegExp with no entry in this test's built() to check it by`);
      for (const { source, flags } of patterns) {
        if (TRUSTED_INPUT[`${file} /${source}/${flags}`] !== undefined) continue;
        const status = await verdict(source, flags);
        if (status !== "safe") judged.push(`${file}:${line}: /${source}/${flags} ${status}`);
      }
    }
    expect(judged).toEqual([]);
  }, 600_000);

  it("its lists stay true: each trusted pattern and each run-time one is still in the code", async () => {
    const literals = new Set(found.map((f) => `${f.file} ${f.text}`));
    expect(Object.keys(TRUSTED_INPUT).filter((key) => !literals.has(key))).toEqual([]);
    const dynamicFiles = found.filter((f) => f.text === "new RegExp(…)").map((f) => f.file);
    expect(Object.keys(await built()).sort()).toEqual([...new Set(dynamicFiles)].sort());
  });

  it("the check tells a backtracking pattern from a linear one", async () => {
    expect(await verdict("(\\r?\\n)+$", "")).toMatch(/^vulnerable \(polynomial/);
    expect(await verdict("^[ \\t]+|[ \\t]+$", "g")).toMatch(/^vulnerable \(polynomial/);
    expect(await verdict("^(a+)+$", "")).toMatch(/^vulnerable \(exponential/);
    expect(await verdict("^\\d+(\\.\\d*)?$", "")).toBe("safe");
    // And the scan finds both kinds of pattern in a file.
    expect(patternsIn("probe.ts", 'const a = /x+$/g; const b = new RegExp(`[${c}]`, "g"); const d = "/not/";').map((f) => f.text)).toEqual(["/x+$/g", "new RegExp(…)"]);
  }, 120_000);
});
