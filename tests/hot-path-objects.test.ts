// What runs per task or per request builds objects with copyWith (src/copy-with.ts), not with a
// literal that starts with a spread and goes on with more fields, and never as a literal with a
// getter or setter (a class instead): in Node 20's V8 both leave garbage that young collections
// promote, the second holding whatever it captured (bench/RESULTS.md, 2026-11-30). Read from the
// sources' syntax trees, so a new one in these files fails here, not in a benchmark.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";

/** The files whose code runs for every enqueue, claim, complete or request. */
const HOT_FILES = [
  "src/tasks/task-store.ts",
  "src/tasks/task-commands.ts",
  "src/tasks/task-transitions.ts",
  "src/tasks/task-service.ts",
  "src/tasks/trace-context.ts",
  "src/memory/memory-store.ts",
  "src/memory/memory-commands.ts",
  "src/events/event-store.ts",
  "src/db/writer.ts",
  "src/db/thread/database.ts",
  "src/db/thread/database-thread.ts",
  "src/db/thread/thread-client.ts",
  "src/rest/direct-call.ts",
  "src/rest/rest-handler.ts",
  "src/rest/rest-input.ts",
  "src/trpc/init.ts",
  "src/trpc/http-fast-path.ts",
  "src/errors.ts",
  "src/delivery/transports.ts",
  "src/delivery/delivery.ts",
  "src/server/http-io.ts",
];

/** Object literals in `text` that start with a spread and have more fields, or have an accessor, as "file:line: text". */
function promotingLiterals(file: string, text: string): string[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    const spreadFirst = (literal: ts.ObjectLiteralExpression) => literal.properties.length > 1 && ts.isSpreadAssignment(literal.properties[0]!);
    const accessor = (literal: ts.ObjectLiteralExpression) => literal.properties.some((p) => ts.isGetAccessorDeclaration(p) || ts.isSetAccessorDeclaration(p));
    if (ts.isObjectLiteralExpression(node) && (spreadFirst(node) || accessor(node))) {
      const line = source.getLineAndCharacterOfPosition(node.getStart()).line + 1;
      found.push(`${file}:${line}: ${node.getText().replace(/\s+/g, " ").slice(0, 80)}`);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

describe("objects built on the hot paths", () => {
  it("never start a literal with a spread followed by more fields, nor give one an accessor", () => {
    const read = (file: string) => readFileSync(fileURLToPath(new URL(`../${file}`, import.meta.url)), "utf8");
    expect(HOT_FILES.flatMap((file) => promotingLiterals(file, read(file)))).toEqual([]);
  });

  it("the check tells the kind it refuses from the ones it allows", () => {
    const probe = [
      "const a = { ...row, status: 'claimed' };",
      "const b = { ...row };",
      "const c = { seq, ...row, status };",
      "const d = copyWith(row, { status });",
      "const e = { get gone() { return res.destroyed; } };",
      "class F { get gone() { return true; } }",
    ].join("\n");
    expect(promotingLiterals("probe.ts", probe)).toEqual(["probe.ts:1: { ...row, status: 'claimed' }", "probe.ts:5: { get gone() { return res.destroyed; } }"]);
  });
});
