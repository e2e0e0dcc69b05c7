// The client's published types compile on their own. A fresh TypeScript project that installs
// the package (here: node_modules/coordination linked to this repository's build) compiles the
// README's examples with plain `tsc --strict`, no skipLibCheck: every declaration file it
// reaches is checked, so one that drags in the server's dependencies (Prisma, better-sqlite3,
// pino, an OpenAPI library's framework adapters) fails here.
import { execFile } from "node:child_process";
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { makeTempDir } from "./helpers/test-server.js";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const README = readFileSync(join(ROOT, "README.md"), "utf8");
const tsBlocks = [...README.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);

/** A project with the package installed, as `npm install coordination @types/node typescript` would leave it. */
function consumerProject(files: Record<string, string>): string {
  const dir = makeTempDir("coordination-consumer-");
  mkdirSync(join(dir, "node_modules", "@types"), { recursive: true });
  symlinkSync(ROOT, join(dir, "node_modules", "coordination"), "dir");
  symlinkSync(join(ROOT, "node_modules", "@types", "node"), join(dir, "node_modules", "@types", "node"), "dir");
  // A consumer that traces installs OpenTelemetry's API (and an SDK, whose propagator comes from
  // core and context manager from context-async-hooks).
  mkdirSync(join(dir, "node_modules", "@opentelemetry"));
  for (const name of ["api", "core", "context-async-hooks"]) symlinkSync(join(ROOT, "node_modules", "@opentelemetry", name), join(dir, "node_modules", "@opentelemetry", name), "dir");
  writeFileSync(join(dir, "package.json"), JSON.stringify({ type: "module", private: true }));
  writeFileSync(
    join(dir, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: { strict: true, target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", noEmit: true, types: ["node"] },
      include: Object.keys(files),
    }),
  );
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

async function compile(dir: string, ...flags: string[]): Promise<{ ok: boolean; output: string }> {
  const tsc = join(ROOT, "node_modules", "typescript", "bin", "tsc");
  try {
    const { stdout } = await run(process.execPath, [tsc, "-p", dir, ...flags], { timeout: 60_000 });
    return { ok: true, output: stdout };
  } catch (error) {
    return { ok: false, output: String((error as { stdout?: string }).stdout ?? error) };
  }
}

/** The packages whose files a compilation loaded, from tsc --listFiles. */
const packagesLoaded = (listing: string): string[] =>
  [...new Set([...listing.matchAll(/node_modules\/((?:@[^/]+\/)?[^/]+)\//g)].map((m) => m[1]!))].sort();

describe("the client's published types, in a fresh strict project", () => {
  it("compile the README's TypeScript examples with plain tsc --strict (no skipLibCheck), and refuse wrong input types", async () => {
    expect(tsBlocks.length).toBeGreaterThanOrEqual(2);
    const files: Record<string, string> = Object.fromEntries(tsBlocks.map((block, i) => [`example-${i}.ts`, `${block}\nexport {};\n`]));
    files["wrong.ts"] = [
      'import { createCoordinationClient } from "coordination";',
      'const { api } = createCoordinationClient({ url: "http://127.0.0.1:8000" });',
      'await api.tasks.enqueue.mutate({ payload: {}, priority: "high", maxAttempts: "lots" });',
      "export {};",
    ].join("\n");
    // One compilation (tsc takes seconds): the examples must add no error, wrong.ts exactly its two.
    const result = await compile(consumerProject(files), "--listFiles");
    const errors = result.output.split("\n").filter((line) => line.includes("error TS"));
    expect(errors).toHaveLength(2);
    for (const error of errors) expect(error).toMatch(/wrong\.ts\(3,\d+\): error TS2322: Type 'string' is not assignable to type 'number'\.$/);

    // A consumer installs our dependencies, never our devDependencies: none of their types may be needed.
    const manifest = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { devDependencies: Record<string, string> };
    const loaded = packagesLoaded(result.output);
    expect(loaded).toContain("@trpc/client");
    const consumersOwn = new Set(["typescript", "@types/node", "@opentelemetry/api", "@opentelemetry/core", "@opentelemetry/context-async-hooks"]);
    expect(loaded.filter((name) => name in manifest.devDependencies && !consumersOwn.has(name))).toEqual([]);
  });
});
