// `coordination tokens list | head -3`: head reads what it wants and closes the pipe. The tokens
// command wrote on, and died of the EPIPE with "Unhandled 'error' event" and a stack trace (exit
// 1), where the operator commands end quietly (exit 0): a closed pipe ends a command that
// prints, it is no error.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { startSecureServer, type SecureServer } from "./helpers/secure-server.js";
import { CLI_PATH } from "./helpers/cli-process.js";
import { withDatabase } from "./helpers/test-server.js";

let t: SecureServer | undefined;
afterEach(async () => {
  await t?.stop({ removeFiles: true });
  t = undefined;
});

describe("the tokens command's output piped to a reader that stops early", () => {
  it("ends the command quietly, exit 0, as the operator commands do", async () => {
    t = await startSecureServer();
    // 3,000 names of 200 characters: a list of ~1 MB, many times what a pipe holds, so the
    // command is still writing when the reader closes.
    withDatabase(t, (db) => {
      const insert = db.prepare(`INSERT INTO api_tokens (id, role, agentId, name, kvPrefixes, secretHash, createdAt) VALUES (?, 'read', NULL, ?, NULL, ?, ?)`);
      db.transaction(() => {
        for (let i = 0; i < 3000; i++) insert.run(`token-${i}`, `${String(i).padStart(4, "0")}${"n".repeat(196)}`, createHash("sha256").update(`secret-${i}`).digest("hex"), Date.now());
      })();
    });
    const child = spawn(process.execPath, [CLI_PATH, "tokens", "list", "--db", t.dbPath], {
      env: Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("COORDINATION_"))),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    // As head does: the first chunk read, then the pipe closed.
    const first = await new Promise<string>((resolve) => child.stdout.once("data", (chunk: Buffer) => resolve(chunk.toString("utf8"))));
    child.stdout.destroy();
    const code = await new Promise<number | null>((resolve) => child.once("close", (exitCode) => resolve(exitCode)));
    expect(first.startsWith("ID ")).toBe(true);
    expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
  });

  it("a token created with no one to read its secret (shown once) is a failure, exit 1, saying to revoke it", async () => {
    t = await startSecureServer();
    const child = spawn(process.execPath, [CLI_PATH, "tokens", "create", "--role", "read", "--db", t.dbPath], {
      env: Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("COORDINATION_"))),
      stdio: ["ignore", "pipe", "pipe"],
    });
    // The reader is gone before the command writes anything (`… | true`).
    child.stdout.destroy();
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    const code = await new Promise<number | null>((resolve) => child.once("close", (exitCode) => resolve(exitCode)));
    const [issued, lost] = stderr.trimEnd().split("\n");
    expect(issued).toMatch(/^issued token (\S+) \(role read\); its secret follows, shown this once$/);
    expect({ code, lost }).toEqual({
      code: 1,
      lost: "coordination: the output closed before the new token's secret was written, and it is shown only once: revoke the token issued above (coordination tokens revoke ID) and create another",
    });
  });
});
