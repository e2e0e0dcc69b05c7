// A test waits for a condition, and the bound on that wait is there only so that a broken server
// fails the test instead of hanging it: it must never decide a verdict on a slow machine. Every
// vi.waitFor and expect.poll in the tests names its timeout, at least MIN_WAIT_MS (vi.waitFor's
// own default is 1 s, which a loaded 2-core machine misses). Read from the tests' syntax trees,
// so a new short wait fails here, not some day in CI.
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const MIN_WAIT_MS = 10_000;

/** The waits in `text` whose timeout is missing or under MIN_WAIT_MS, as "file:line: call". */
function shortWaits(file: string, text: string): string[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isCallExpression(node) && isWait(node.expression)) {
      const options = node.arguments[1];
      const timeout = options && ts.isObjectLiteralExpression(options) ? options.properties.find((p) => p.name?.getText(source) === "timeout") : undefined;
      const value =
        timeout === undefined
          ? undefined
          : ts.isShorthandPropertyAssignment(timeout)
            ? parameterDefault(node, "timeout")
            : ts.isPropertyAssignment(timeout)
              ? ts.isIdentifier(timeout.initializer)
                ? parameterDefault(node, timeout.initializer.text)
                : numberOf(timeout.initializer)
              : undefined;
      if (value === undefined || value < MIN_WAIT_MS) {
        const line = source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1;
        found.push(`${file}:${line}: ${node.expression.getText(source)} ${value === undefined ? "names no timeout as a number" : `waits ${value} ms`}`);
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

const numberOf = (node: ts.Node | undefined): number | undefined => (node && ts.isNumericLiteral(node) ? Number(node.text.replaceAll("_", "")) : undefined);

/** The numeric default of the parameter `name` of a function around `node` (a helper's `timeout = 30_000`). */
function parameterDefault(node: ts.Node, name: string): number | undefined {
  for (let scope: ts.Node | undefined = node.parent; scope; scope = scope.parent) {
    if (!ts.isFunctionLike(scope)) continue;
    const parameter = scope.parameters.find((p) => ts.isIdentifier(p.name) && p.name.text === name);
    if (parameter) return numberOf(parameter.initializer);
  }
  return undefined;
}

/** `vi.waitFor` or `expect.poll`. */
const isWait = (callee: ts.Expression): boolean =>
  ts.isPropertyAccessExpression(callee) && ts.isIdentifier(callee.expression) && ((callee.expression.text === "vi" && callee.name.text === "waitFor") || (callee.expression.text === "expect" && callee.name.text === "poll"));

describe("waits in the tests", () => {
  it("every vi.waitFor and expect.poll names a timeout of at least 10 s", () => {
    const dir = fileURLToPath(new URL("./", import.meta.url));
    const files = readdirSync(dir, { recursive: true, encoding: "utf8" }).filter((file) => file.endsWith(".ts"));
    expect(files.length).toBeGreaterThan(40);
    expect(files.flatMap((file) => shortWaits(file, readFileSync(`${dir}${file}`, "utf8")))).toEqual([]);
  });

  it("the check tells a short or missing bound from a generous one", () => {
    const probe = [
      "await vi.waitFor(() => expect(1).toBe(1));",
      "await vi.waitFor(() => expect(1).toBe(1), { timeout: 5000, interval: 10 });",
      "await expect.poll(() => 1, { interval: 10 }).toBe(1);",
      "await vi.waitFor(() => expect(1).toBe(1), { timeout: LIMIT });",
      "await vi.waitFor(() => expect(1).toBe(1), { timeout: 30_000, interval: 10 });",
      "await expect.poll(() => 1, { timeout: 10_000 }).toBe(1);",
      "await other.waitFor(() => 1);",
      "const until = (c, timeout = 30_000) => vi.waitFor(c, { timeout, interval: 50 });",
      "const soon = (c, timeout = 2000) => vi.waitFor(c, { timeout });",
    ].join("\n");
    expect(shortWaits("probe.ts", probe)).toEqual([
      "probe.ts:1: vi.waitFor names no timeout as a number",
      "probe.ts:2: vi.waitFor waits 5000 ms",
      "probe.ts:3: expect.poll names no timeout as a number",
      "probe.ts:4: vi.waitFor names no timeout as a number",
      "probe.ts:9: vi.waitFor waits 2000 ms",
    ]);
  });
});
