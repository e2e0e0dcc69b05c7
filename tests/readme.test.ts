// Keeps the README honest: its shell and TypeScript examples run against a real server.
import { execFile } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { startTestServer } from "./helpers/test-server.js";

const run = promisify(execFile);
const README = readFileSync(fileURLToPath(new URL("../README.md", import.meta.url)), "utf8");
const blocks = (lang: string) => [...README.matchAll(new RegExp("```" + lang + "\\n([\\s\\S]*?)```", "g"))].map((m) => m[1]!);

describe("README", () => {
  it("opens with the install-and-start command and the test command", () => {
    const first = blocks("bash")[0]!;
    expect(first).toContain("npm ci && npx coordination");
    expect(first).toContain("npm test");
    expect(readFileSync(fileURLToPath(new URL("../.ci/run", import.meta.url)), "utf8")).toMatch(/^npm test$/m);
  });

  it("runs the curl session as written", async () => {
    await using t = await startTestServer();
    const port = new URL(t.url).port;
    const session = blocks("bash")
      .filter((b) => b.includes("curl"))
      .join("\n")
      .replaceAll("localhost:8000", `127.0.0.1:${port}`);
    const { stdout } = await run("bash", ["-euo", "pipefail", "-c", session], { timeout: 20_000 });
    expect(stdout).toContain('"status":"ok"');
    expect(stdout).toContain('"summary":"done"');
    expect(stdout).toContain('"type":"task.assigned"');
    const stats = await t.api.tasks.stats.query();
    expect(stats.totals.completed).toBe(1);
  });

  it("runs the TypeScript example as written (it is plain JavaScript at run time)", async () => {
    await using t = await startTestServer();
    const example = blocks("ts")[0]!
      .replace("http://127.0.0.1:8000", t.url)
      .replace("// later: ", "await new Promise((r) => setTimeout(r, 300));\n");
    // Inside the repository the package resolves itself by name ("coordination" → dist/client).
    const file = fileURLToPath(new URL(`../readme-example-${process.pid}.mjs`, import.meta.url));
    writeFileSync(file, example);
    try {
      const { stdout } = await run(process.execPath, [file], { timeout: 20_000 });
      expect(stdout).toMatch(/task\.(enqueued|claimed|completed)/);
    } finally {
      rmSync(file, { force: true });
    }
    const agents = await t.api.agents.list.query({});
    expect(agents.map((a) => a.agentId)).toEqual(["agent-1"]);
    expect((await t.api.tasks.stats.query()).totals.completed).toBe(1);
  });
});
