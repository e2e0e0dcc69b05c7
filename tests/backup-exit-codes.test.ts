// `coordination backup`'s exit codes as its --help states them: "Exit 0 done, 2 usage or
// settings, 3 a file it cannot copy". A --db that is no database is a file it cannot copy (3, as
// `migrate` and `tokens` answer the same file), not 1 (which elsewhere means "the server refused
// the call or could not be reached").
import { existsSync, lstatSync, readdirSync, readlinkSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { killAllCli, runCli } from "./helpers/cli-process.js";
import { makeTempDir } from "./helpers/test-server.js";

afterEach(killAllCli);

describe("coordination backup exit codes", () => {
  it("says 3 for a --db file it cannot copy, as its --help and migrate say", async () => {
    const dir = makeTempDir();
    const notDb = join(dir, "notes.txt");
    writeFileSync(notDb, "this is not a database, it is a text file of some length\n".repeat(20));
    const help = await runCli({ args: ["backup", "--help"] });
    expect(help.stdout).toContain("3 a file it cannot copy");
    const migrate = await runCli({ args: ["migrate", "--db", notDb] });
    expect(migrate.code).toBe(3);
    const target = join(dir, "copy.db");
    const backup = await runCli({ args: ["backup", target, "--db", notDb] });
    expect(backup.stderr).toContain("cannot be read as a database");
    expect(backup.code).toBe(3);
    // Nothing left behind under the target's name or as a partial file.
    expect(existsSync(target)).toBe(false);
    expect(readdirSync(dir).filter((name) => name.startsWith("copy.db"))).toEqual([]);
  });

  // VACUUM INTO could not make the partial file, and removing that file, which was never made,
  // threw in turn: the command died with ENAMETOOLONG and rmSync's stack.
  it("says 3, in one line, for a target the file system cannot make (a name too long)", async () => {
    const dir = makeTempDir();
    const db = join(dir, "c.db");
    expect((await runCli({ args: ["migrate", "--db", db] })).code).toBe(0);
    const target = join(dir, `${"b".repeat(300)}.db`);
    const backup = await runCli({ args: ["backup", target, "--db", db] });
    expect([backup.code, backup.stderr]).toEqual([3, expect.stringMatching(/^coordination backup: cannot write \S+\.db \(.*\)\n$/)]);
    expect(readdirSync(dir).filter((name) => name.startsWith("b"))).toEqual([]);
  });

  // Someone else's SQLite file, or an empty one, passed the "is it a database" check; the copy's
  // own check then died on "no such table: tasks": exit 1 with a stack, and the partial file left.
  it("says 3, in one line, for a --db that is a database but no coordination database (someone else's, an empty file)", async () => {
    const dir = makeTempDir();
    const other = join(dir, "other.db");
    const db = new Database(other);
    db.exec("CREATE TABLE invoices (id INTEGER PRIMARY KEY)");
    db.close();
    const empty = join(dir, "empty.db");
    writeFileSync(empty, "");
    for (const [source, said] of [
      [other, /^coordination backup: \S+other\.db is not a coordination database \(it has tables invoices and no migration history\)\n$/],
      [empty, /^coordination backup: \S+empty\.db is an empty database, no coordination database: nothing to back up\n$/],
    ] as const) {
      const backup = await runCli({ args: ["backup", join(dir, "copy.db"), "--db", source] });
      expect([backup.code, backup.stderr]).toEqual([3, expect.stringMatching(said)]);
      expect(readdirSync(dir).filter((name) => name.startsWith("copy.db"))).toEqual([]);
    }
  });

  it("says 2 for an empty FILE (an unset shell variable), not a crash renaming the copy to nothing", async () => {
    const dir = makeTempDir();
    const db = join(dir, "c.db");
    expect((await runCli({ args: ["migrate", "--db", db] })).code).toBe(0);
    const backup = await runCli({ args: ["backup", "", "--db", db], cwd: dir });
    expect([backup.code, backup.stderr]).toEqual([2, "coordination backup: FILE is empty; give the copy's path\n"]);
    expect(readdirSync(dir).filter((name) => name.includes("partial"))).toEqual([]);
  });

  // existsSync follows links: a symbolic link to a file not there yet passed the check, and the
  // copy's rename replaced the link. The copy now takes a name only where none is, in one step.
  it("never replaces what is at FILE: a symbolic link to nothing is a name in use (exit 2), left as it was", async () => {
    const dir = makeTempDir();
    const db = join(dir, "c.db");
    expect((await runCli({ args: ["migrate", "--db", db] })).code).toBe(0);
    const link = join(dir, "latest.db");
    symlinkSync(join(dir, "not-yet.db"), link);
    const backup = await runCli({ args: ["backup", link, "--db", db] });
    expect([backup.code, backup.stderr]).toEqual([2, `coordination backup: ${link} exists; give a new file (a backup never overwrites)\n`]);
    expect([lstatSync(link).isSymbolicLink(), readlinkSync(link)]).toEqual([true, join(dir, "not-yet.db")]);
    expect(readdirSync(dir).filter((name) => name.includes("partial"))).toEqual([]);
    // A free name: the copy is there, and no partial file beside it.
    const fresh = join(dir, "copy.db");
    expect((await runCli({ args: ["backup", fresh, "--db", db] })).code).toBe(0);
    expect(readdirSync(dir).filter((name) => name.startsWith("copy.db"))).toEqual(["copy.db"]);
  });
});
