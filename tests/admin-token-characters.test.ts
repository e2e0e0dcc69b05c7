// The configured admin token is presented as `Authorization: Bearer <secret>`: a header is Latin-1
// text, and the secret is what follows "Bearer " up to the first space. A secret with a space (a
// passphrase, a YAML value's stray trailing space) or a character past ASCII was taken at start-up,
// and then no HTTP call could ever present it: the server ran with credentials enforced and every
// call answered 401, its operator left to guess why. Such a value is a configuration error
// naming the setting, never echoing the secret; every printable ASCII character still works.
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { killAllCli, runCli } from "./helpers/cli-process.js";
import { problemsOf } from "./helpers/config-problems.js";
import { http } from "./helpers/secure-server.js";
import { makeTempDir, startTestServer } from "./helpers/test-server.js";

const ALLOWED = "a secret of at least 32 characters, printable ASCII without spaces, as an Authorization: Bearer header carries it (or empty for none)";

let dir: string;
beforeEach(() => {
  dir = makeTempDir("coordination-admin-token-");
});
afterEach(async () => {
  await killAllCli();
  rmSync(dir, { recursive: true, force: true });
});


describe("the configured admin token's characters", () => {
  it("a space, a tab or a character past ASCII is a configuration error naming the setting and the kind of character, never the secret", () => {
    const passphrase = "correct horse battery staple and a few more words";
    expect(problemsOf({ env: { COORDINATION_ADMIN_TOKEN: passphrase } })).toEqual([
      `COORDINATION_ADMIN_TOKEN: must be ${ALLOWED} (got ${passphrase.length} characters, with whitespace characters among them, not shown)`,
    ]);
    const accented = "pässwörd-0123456789-0123456789-0123456789";
    expect(problemsOf({ env: { COORDINATION_ADMIN_TOKEN: accented } })).toEqual([
      `COORDINATION_ADMIN_TOKEN: must be ${ALLOWED} (got ${accented.length} characters, with non-ASCII characters among them, not shown)`,
    ]);
    // A YAML value quoted with a trailing space: the file keeps it.
    const file = join(dir, "config.yaml");
    const spaced = "s".repeat(40) + " ";
    writeFileSync(file, `adminToken: "${spaced}"\n`);
    const fromFile = problemsOf({ configFile: file });
    expect(fromFile).toEqual([`adminToken (in ${file}): must be ${ALLOWED} (got 41 characters, with whitespace characters among them, not shown)`]);
    expect(fromFile[0]).not.toContain("s".repeat(40));
    const tabbed = "t".repeat(20) + "\t" + "t".repeat(20);
    expect(problemsOf({ env: { COORDINATION_ADMIN_TOKEN: tabbed } })).toEqual([
      `COORDINATION_ADMIN_TOKEN: must be ${ALLOWED} (got 41 characters, with whitespace characters among them, not shown)`,
    ]);
  });

  it("the command exits 2 at once with that sentence, rather than serve with a secret no call can present", async () => {
    const result = await runCli({ args: ["--port", "0", "--db", join(dir, "c.db")], env: { COORDINATION_ADMIN_TOKEN: "correct horse battery staple and a few more words" }, cwd: dir });
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(`coordination: invalid configuration: COORDINATION_ADMIN_TOKEN: must be ${ALLOWED} (got 49 characters, with whitespace characters among them, not shown)\n`);
    expect(result.stdout).toBe("");
  });

  it("every printable ASCII character is taken, and the token works over HTTP", async () => {
    const punctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
    const secret = `${punctuation}0123456789ABCxyz`;
    await using t = await startTestServer({ adminToken: secret });
    const answer = await http(t.url, "GET", "/tokens/whoami", { token: secret });
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({ credentialsRequired: true, role: "admin", agentId: null, tokenId: "config:adminToken", name: null, kvPrefixes: null });
  });
});
