// The README's restore: "stop the server, replace the database file with the copy (and delete
// its -wal and -shm files), start the server". A copy put in place with the old -wal left beside
// it is refused at start-up with a sentence naming the -wal to delete (SQLite would otherwise
// replay the old file's log into the copy: "malformed" at best), and once they are deleted the
// restored copy serves what it held.
import { copyFileSync, existsSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { CliProcess, killAllCli, runCli } from "./helpers/cli-process.js";
import { makeTempDir, rest } from "./helpers/test-server.js";

afterEach(killAllCli);

describe("restore with the old -wal left beside the copy", () => {
  it("is refused naming the -wal, and starts once it and the -shm are deleted", async () => {
    const dir = makeTempDir();
    const db = join(dir, "live.db");
    const server = new CliProcess({ args: ["--port", "0", "--db", db] });
    const url = await server.waitForUrl();
    const before: string[] = [];
    for (let i = 0; i < 20; i++) before.push((await rest(url, "POST", "/tasks", { queue: "before", payload: { i, text: "x".repeat(500) } })).body.id);
    const copy = join(dir, "copy.db");
    expect((await runCli({ args: ["backup", copy, "--db", db] })).code).toBe(0);
    for (let i = 0; i < 200; i++) expect((await rest(url, "POST", "/tasks", { queue: "after", payload: { i, text: "y".repeat(2000) } })).status).toBe(200);
    // A crash (or a stop that left its log): the -wal holds the old file's pages.
    server.child.kill("SIGKILL");
    await server.waitForExit();
    expect(statSync(`${db}-wal`).size).toBeGreaterThan(0);
    // The copy put in place of the file, its -wal and -shm left.
    copyFileSync(copy, db);
    const refused = await runCli({ args: ["--port", "0", "--db", db] });
    expect(refused.code).toBe(3);
    expect(refused.stderr).toContain(`${db}-wal`);
    expect(refused.stderr).toContain("delete");
    // Nothing was written: the file is still the copy, and the restore done as the README says starts.
    rmSync(`${db}-wal`);
    rmSync(`${db}-shm`, { force: true });
    expect(existsSync(`${db}-wal`)).toBe(false);
    const restored = new CliProcess({ args: ["--port", "0", "--db", db] });
    const restoredUrl = await restored.waitForUrl();
    expect((await rest(restoredUrl, "GET", `/tasks/${before[0]}`)).status).toBe(200);
    expect((await rest(restoredUrl, "GET", "/stats/tasks?queue=after")).body.queues.find((q: { queue: string }) => q.queue === "after")).toBeUndefined();
    restored.child.kill("SIGTERM");
    expect((await restored.waitForExit()).code).toBe(0);
  });
});
