// Configuration: loadConfig (defaults < YAML file < env < flags), the messages for invalid values,
// and the real `coordination` command's exit codes for them (spawned over the compiled dist/).
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer as createNetServer, type AddressInfo, type Server } from "node:net";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SETTINGS, envName, loadConfig, type SettingName } from "../src/config.js";
import { CliProcess, killAllCli, runCli } from "./helpers/cli-process.js";
import { problemsOf } from "./helpers/config-problems.js";
import { makeTempDir, rest } from "./helpers/test-server.js";

const SETTING_NAMES = Object.keys(SETTINGS) as SettingName[];
const LOG_LEVELS = "fatal, error, warn, info, debug, trace, silent";
const VERSION = (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }).version;

let dir: string;
beforeEach(() => {
  dir = makeTempDir("coordination-config-");
});
afterEach(async () => {
  await killAllCli();
  rmSync(dir, { recursive: true, force: true });
});

function writeYaml(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}


describe("loadConfig", () => {
  it("uses every setting's default when nothing is set, and freezes the result", () => {
    const config = loadConfig({ env: {} });
    expect(config).toEqual(Object.fromEntries(SETTING_NAMES.map((name) => [name, SETTINGS[name].default])));
    expect(Object.isFrozen(config)).toBe(true);
  });

  it("takes flags over env over the YAML file over defaults, setting by setting", () => {
    const file = writeYaml("c.yaml", "port: 1111\nleaseMs: 40000\nmaxAttempts: 7\nhost: 0.0.0.0\n");
    const env = { COORDINATION_PORT: "2222", COORDINATION_LEASE_MS: "50000" };
    const flags = { port: "3333" };

    const all = loadConfig({ env, flags, configFile: file });
    expect(all.port).toBe(3333); // flag beats env and file
    expect(all.leaseMs).toBe(50_000); // env beats file
    expect(all.maxAttempts).toBe(7); // file beats default
    expect(all.host).toBe("0.0.0.0"); // file beats default
    expect(all.retryBaseMs).toBe(SETTINGS.retryBaseMs.default);

    expect(loadConfig({ env, configFile: file }).port).toBe(2222);
    expect(loadConfig({ env: {}, configFile: file }).port).toBe(1111);
    expect(loadConfig({ env: {} }).port).toBe(8000);
    // Programmatic overrides (tests, embedding) beat everything; an undefined override is "not set".
    expect(loadConfig({ env, flags, configFile: file, overrides: { port: 4444 } }).port).toBe(4444);
    expect(loadConfig({ env, flags, configFile: file, overrides: { port: undefined } }).port).toBe(3333);
  });

  it("reads the file named by COORDINATION_CONFIG, unless a config file is given explicitly", () => {
    const fromEnv = writeYaml("env.yaml", "port: 1234\n");
    const explicit = writeYaml("explicit.yaml", "port: 4321\n");
    expect(loadConfig({ env: { COORDINATION_CONFIG: fromEnv } }).port).toBe(1234);
    expect(loadConfig({ env: { COORDINATION_CONFIG: fromEnv }, configFile: explicit }).port).toBe(4321);
  });

  it("parses numbers from strings and YAML numbers alike", () => {
    const file = writeYaml("c.yaml", "busyTimeoutMs: 250\nmaxBodyBytes: '4096'\n");
    const config = loadConfig({ env: { COORDINATION_LEASE_MS: " 60000 " }, configFile: file });
    expect(config.busyTimeoutMs).toBe(250);
    expect(config.maxBodyBytes).toBe(4096);
    expect(config.leaseMs).toBe(60_000);
  });

  it("names the setting as the user wrote it and says what is allowed", () => {
    expect(problemsOf({ env: { COORDINATION_PORT: "abc" } })).toEqual(['COORDINATION_PORT: must be an integer from 0 to 65535 (got "abc")']);
    expect(problemsOf({ env: { COORDINATION_LOG_LEVEL: "loud" } })).toEqual([`COORDINATION_LOG_LEVEL: must be one of ${LOG_LEVELS} (got "loud")`]);
    expect(problemsOf({ env: { COORDINATION_DURABILITY: "maybe" } })).toEqual(['COORDINATION_DURABILITY: must be one of full, normal (got "maybe")']);
    expect(problemsOf({ flags: { port: "70000" } })).toEqual(['--port: must be an integer from 0 to 65535 (got "70000")']);
    expect(problemsOf({ env: { COORDINATION_LEASE_MS: "0" } })).toEqual([
      'COORDINATION_LEASE_MS: must be an integer (milliseconds) from 1 to 604800000 (got "0")',
    ]);
    expect(problemsOf({ env: { COORDINATION_MAX_ATTEMPTS: "1.5" } })).toEqual(['COORDINATION_MAX_ATTEMPTS: must be an integer from 1 to 1000 (got "1.5")']);
    expect(problemsOf({ env: { COORDINATION_MAX_BODY_BYTES: "10" } })).toEqual([
      'COORDINATION_MAX_BODY_BYTES: must be an integer (bytes) from 1024 to 67108864 (got "10")',
    ]);
    expect(problemsOf({ env: { COORDINATION_EVENT_RETENTION_COUNT: "-1" } })).toEqual([
      'COORDINATION_EVENT_RETENTION_COUNT: must be an integer of at least 0 (got "-1")',
    ]);
    // A secret refused is never echoed, from any source: one character short, it is most of the secret.
    const almost = "s".repeat(31);
    expect(problemsOf({ env: { COORDINATION_ADMIN_TOKEN: almost } })).toEqual(["COORDINATION_ADMIN_TOKEN: must be a secret of at least 32 characters, printable ASCII without spaces, as an Authorization: Bearer header carries it (or empty for none) (got 31 characters, not shown)"]);
    const fromFile = problemsOf({ configFile: writeYaml("secret.yaml", `adminToken: ${almost}\n`) });
    expect(fromFile).toHaveLength(1);
    expect(fromFile[0]).not.toContain(almost);
    expect(problemsOf({ configFile: writeYaml("secret-number.yaml", "adminToken: 12345\n") })[0]).toMatch(/\(got a number, not shown\)$/);
    const file = writeYaml("bad.yaml", "logLevel: loud\n");
    expect(problemsOf({ configFile: file })).toEqual([`logLevel (in ${file}): must be one of ${LOG_LEVELS} (got "loud")`]);
  });

  // A Python user's YAML has snake_case keys, as the REST routes take snake_case fields.
  it("reads the YAML file's keys in snake_case as well as camelCase; one setting given both ways is a problem", () => {
    const file = writeYaml("snake.yaml", "db_path: from-snake.db\nlog_level: warning\nlease_ms: 5000\n");
    expect(loadConfig({ env: {}, configFile: file })).toMatchObject({ dbPath: "from-snake.db", logLevel: "warn", leaseMs: 5000 });
    const twice = writeYaml("twice.yaml", "leaseMs: 1000\nlease_ms: 2000\n");
    expect(problemsOf({ configFile: twice })).toEqual([`config file ${twice}: leaseMs is given twice (as leaseMs and in snake_case); keep one`]);
  });

  // The seed is a Python package: its users' settings name Python's levels.
  it("takes Python's log level names, warning and critical, as warn and fatal", () => {
    expect(loadConfig({ env: { COORDINATION_LOG_LEVEL: "WARNING" } }).logLevel).toBe("warn");
    expect(loadConfig({ env: { COORDINATION_LOG_LEVEL: "critical" } }).logLevel).toBe("fatal");
  });

  it("rejects empty, null, boolean and list values instead of reading them as 0, 1 or 80", () => {
    // z.coerce.number() would have turned each of these into a valid-looking port.
    expect(problemsOf({ env: { COORDINATION_PORT: "" } })).toEqual(['COORDINATION_PORT: must be an integer from 0 to 65535 (got "")']);
    expect(problemsOf({ env: { COORDINATION_HOST: "" } })).toEqual(['COORDINATION_HOST: must be a host name or address, without spaces (got "")']);
    expect(problemsOf({ env: { COORDINATION_PORT: "0x50" } })).toEqual(['COORDINATION_PORT: must be an integer from 0 to 65535 (got "0x50")']);
    const file = writeYaml("c.yaml", "port:\nbusyTimeoutMs: true\nmaxAttempts: [3]\nhost: 5\n");
    expect(problemsOf({ configFile: file })).toEqual([
      `host (in ${file}): must be a host name or address, without spaces (got 5)`,
      `port (in ${file}): must be an integer from 0 to 65535 (got null)`,
      `busyTimeoutMs (in ${file}): must be an integer (milliseconds) from 0 to 60000 (got true)`,
      `maxAttempts (in ${file}): must be an integer from 1 to 1000 (got [3])`,
    ]);
  });

  // From a manifest or a quoted YAML value, a space around the address: the start-up check did not
  // take "127.0.0.1 " for loopback and refused to listen "on 127.0.0.1 " without credentials.
  it("a host with a space in it is a problem naming the setting, not a refusal to listen on it", () => {
    expect(problemsOf({ env: { COORDINATION_HOST: "127.0.0.1 " } })).toEqual(['COORDINATION_HOST: must be a host name or address, without spaces (got "127.0.0.1 ")']);
    const file = writeYaml("spaced.yaml", 'host: " localhost"\n');
    expect(problemsOf({ configFile: file })).toEqual([`host (in ${file}): must be a host name or address, without spaces (got " localhost")`]);
  });

  it("reports every problem at once, including file problems", () => {
    const file = writeYaml("c.yaml", "bogus: 1\nport: 80\n");
    const problems = problemsOf({ env: { COORDINATION_PORT: "abc", COORDINATION_DURABILITY: "maybe" }, configFile: file });
    expect(problems).toEqual([
      `config file ${file}: unknown setting "bogus"; --help lists them all`,
      'COORDINATION_PORT: must be an integer from 0 to 65535 (got "abc")',
      'COORDINATION_DURABILITY: must be one of full, normal (got "maybe")',
    ]);
  });

  it("reports a config file that cannot be read or is not a YAML mapping", () => {
    const missing = join(dir, "missing.yaml");
    expect(problemsOf({ configFile: missing })).toEqual([`config file ${missing}: cannot be read (ENOENT)`]);
    const folder = join(dir, "folder.yaml");
    mkdirSync(folder);
    expect(problemsOf({ configFile: folder })).toEqual([`config file ${folder}: cannot be read (EISDIR)`]);
    const list = writeYaml("list.yaml", "- port\n- 80\n");
    expect(problemsOf({ configFile: list })).toEqual([`config file ${list}: must be a mapping of setting names to values`]);
    const broken = writeYaml("broken.yaml", "port: [80\n");
    expect(problemsOf({ configFile: broken })).toEqual([expect.stringMatching(new RegExp(`^config file ${broken}: not valid YAML \\(.+\\)$`))]);
    // An empty file sets nothing.
    expect(problemsOf({ configFile: writeYaml("empty.yaml", "") })).toEqual([]);
  });

  it("checks settings against each other, naming both and where each came from", () => {
    expect(problemsOf({ env: { COORDINATION_AGENT_STALE_MS: "100000" } })).toEqual([
      "COORDINATION_AGENT_OFFLINE_MS = 90000 (default) must be greater than COORDINATION_AGENT_STALE_MS = 100000",
    ]);
    const file = writeYaml("c.yaml", "leaseMs: 90000\nmaxLeaseMs: 60000\n");
    expect(problemsOf({ configFile: file, env: { COORDINATION_RETRY_BASE_MS: "5000", COORDINATION_RETRY_MAX_MS: "4000" } })).toEqual([
      "COORDINATION_RETRY_MAX_MS = 4000 must be at least COORDINATION_RETRY_BASE_MS = 5000",
      `leaseMs (in ${file}) = 90000 must be at most maxLeaseMs (in ${file}) = 60000`,
    ]);
  });
});

describe(".env.example", () => {
  it("lists every setting with its default, commented out, and nothing else", () => {
    const text = readFileSync(new URL("../.env.example", import.meta.url), "utf8");
    const lines = text.split("\n");
    for (const name of SETTING_NAMES) {
      expect(lines, `${envName(name)} in .env.example`).toContain(`# ${envName(name)}=${String(SETTINGS[name].default)}`);
    }
    // Copied to .env it must change nothing: an active line outranks the YAML file (an empty
    // COORDINATION_ADMIN_TOKEN there hid the file's admin token, and the server ran open).
    expect(lines.filter((line) => !line.startsWith("#") && line.trim() !== "")).toEqual([]);
    const documented = new Set([...text.matchAll(/\b(COORDINATION_[A-Z_]+)=/g)].map((match) => match[1]));
    expect([...documented].sort()).toEqual([...SETTING_NAMES.map(envName), "COORDINATION_CONFIG"].sort());
  });
});

describe("the coordination command", () => {
  const invalidConfigurations: Array<{ what: string; args?: string[]; env?: Record<string, string>; yaml?: string; problem: string }> = [
    { what: "a port that is not a number", env: { COORDINATION_PORT: "abc" }, problem: 'COORDINATION_PORT: must be an integer from 0 to 65535 (got "abc")' },
    { what: "an unknown log level", env: { COORDINATION_LOG_LEVEL: "loud" }, problem: `COORDINATION_LOG_LEVEL: must be one of ${LOG_LEVELS} (got "loud")` },
    { what: "an unknown durability", env: { COORDINATION_DURABILITY: "maybe" }, problem: 'COORDINATION_DURABILITY: must be one of full, normal (got "maybe")' },
    { what: "a port flag out of range", args: ["--port", "70000"], problem: '--port: must be an integer from 0 to 65535 (got "70000")' },
    { what: "an inline flag value", args: ["--log-level=loud"], problem: `--log-level: must be one of ${LOG_LEVELS} (got "loud")` },
    { what: "an unknown key in the YAML file", yaml: "port: 0\nbogus: 1\n", problem: `config file {file}: unknown setting "bogus"; --help lists them all` },
    { what: "a near miss in the YAML file", yaml: "port: 0\nleaseMS: 1000\n", problem: `config file {file}: unknown setting "leaseMS" (did you mean leaseMs?)` },
    { what: "a bad value in the YAML file", yaml: "durability: maybe\n", problem: 'durability (in {file}): must be one of full, normal (got "maybe")' },
  ];

  it.each(invalidConfigurations)("exits 2 naming the setting for $what", async ({ args = [], env = {}, yaml, problem }) => {
    const file = yaml === undefined ? undefined : writeYaml("config.yaml", yaml);
    const result = await runCli({ args: file ? [...args, "--config", file] : args, env, cwd: dir });
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(`coordination: invalid configuration: ${problem.replace("{file}", file ?? "")}\n`);
    expect(result.stdout).toBe("");
  });

  it("exits 2 for a config path that cannot be read, given by flag or by COORDINATION_CONFIG", async () => {
    const missing = join(dir, "nope.yaml");
    const viaFlag = await runCli({ args: ["--config", missing], cwd: dir });
    expect(viaFlag.code).toBe(2);
    expect(viaFlag.stderr).toBe(`coordination: invalid configuration: config file ${missing}: cannot be read (ENOENT)\n`);
    const viaEnv = await runCli({ env: { COORDINATION_CONFIG: dir }, cwd: dir });
    expect(viaEnv.code).toBe(2);
    expect(viaEnv.stderr).toBe(`coordination: invalid configuration: config file ${dir}: cannot be read (EISDIR)\n`);
  });

  it("exits 2 on an unknown option, a missing flag value or a stray argument", async () => {
    const unknown = await runCli({ args: ["--bogus"], cwd: dir });
    expect(unknown).toMatchObject({ code: 2, stdout: "", stderr: 'coordination: unknown option "--bogus" (see --help)\n' });
    const missingValue = await runCli({ args: ["--port"], cwd: dir });
    expect(missingValue).toMatchObject({ code: 2, stdout: "", stderr: "coordination: --port needs a value\n" });
    // The next word is another option: the value of --port is what is missing, not an "x.db" option.
    const followedByOption = await runCli({ args: ["--port", "--db", "x.db"], cwd: dir });
    expect(followedByOption).toMatchObject({ code: 2, stdout: "", stderr: "coordination: --port needs a value (found the option --db after it)\n" });
    // Object.prototype names must not pass as flags (they did, and were silently ignored).
    const inherited = await runCli({ args: ["--constructor", "x"], cwd: dir });
    expect(inherited).toMatchObject({ code: 2, stdout: "", stderr: 'coordination: unknown option "--constructor" (see --help)\n' });
    // A word is not called an option: a mistyped command, or a value with no flag before it.
    const word = await runCli({ args: ["stat"], cwd: dir });
    expect(word).toMatchObject({ code: 2, stdout: "", stderr: 'coordination: unexpected "stat": a command comes first and an option starts with "--" (see --help)\n' });
    const stray = await runCli({ args: ["--port", "0", "constructor"], cwd: dir });
    expect(stray).toMatchObject({ code: 2, stdout: "", stderr: 'coordination: unexpected "constructor": a command comes first and an option starts with "--" (see --help)\n' });
    expect(existsSync(join(dir, "coordination.db"))).toBe(false);
  });

  it("--help lists every setting and exits 0; --version prints the package version", async () => {
    const help = await runCli({ args: ["--help"], cwd: dir });
    expect(help.code).toBe(0);
    expect(help.stderr).toBe("");
    expect(help.stdout).toContain("Usage: coordination");
    for (const name of SETTING_NAMES) expect(help.stdout).toContain(envName(name));
    for (const flag of ["--host", "--port", "--db", "--log-level", "--config"]) expect(help.stdout).toContain(flag);
    // Aligned columns: every setting line has its flag column and its default at the same offsets.
    const settingLines = help.stdout.split("\n").filter((line) => line.startsWith("  COORDINATION_"));
    expect(settingLines).toHaveLength(SETTING_NAMES.length);
    expect(new Set(settingLines.map((line) => line.indexOf("default "))).size).toBe(1);
    expect(new Set(settingLines.filter((line) => line.includes(" --")).map((line) => line.indexOf(" --") + 1)).size).toBe(1);

    for (const flag of ["--version", "-v"]) {
      const version = await runCli({ args: [flag], cwd: dir });
      expect(version).toMatchObject({ code: 0, stdout: `${VERSION}\n`, stderr: "" });
    }
    expect(existsSync(join(dir, "coordination.db"))).toBe(false);
  });

  it("every command answers --help with its usage, exit 0, and does nothing else", async () => {
    // migrate --help migrated ./coordination.db; backup --help and mcp --help were usage errors.
    for (const args of [["serve", "--help"], ["migrate", "--help"], ["migrate", "-h"], ["backup", "--help"], ["backup", "x.db", "--help"], ["mcp", "--help"], ["tokens", "--help"], ["tokens", "create", "--role", "admin", "--help"], ["tokens", "revoke", "x", "-h"], ["stats", "--help"], ["tasks", "--help"], ["tasks", "requeue", "--all", "--help"]]) {
      const help = await runCli({ args, cwd: dir });
      expect([args, help.code, help.stderr]).toEqual([args, 0, ""]);
      expect(help.stdout).toContain(args[0] === "serve" ? "Usage: coordination [--host H]" : `coordination ${args[0]}`);
    }
    expect(readdirSync(dir)).toEqual([]);
  });

  it("reads .env in the working directory beneath the environment; names a typo'd variable; any letter case for levels", async () => {
    writeFileSync(join(dir, ".env"), "# comments are fine\nCOORDINATION_PORT=0\nCOORDINATION_LOG_LEVEL=WARN\nOTHER_TOOL=1\n");
    const fromDotenv = new CliProcess({ env: { COORDINATION_LOG_LEVEL: "INFO" }, cwd: dir });
    const url = await fromDotenv.waitForUrl();
    // The environment (INFO, any case) beat .env (WARN): the start-up line is at info level.
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    fromDotenv.kill("SIGTERM");
    expect((await fromDotenv.waitForExit()).code).toBe(0);

    writeFileSync(join(dir, ".env"), "COORDINATION_PORT=abc\n");
    const badDotenv = await runCli({ cwd: dir });
    expect(badDotenv).toMatchObject({ code: 2, stderr: `coordination: invalid configuration: COORDINATION_PORT (in .env): must be an integer from 0 to 65535 (got "abc")\n` });
    rmSync(join(dir, ".env"));

    const typo = await runCli({ env: { COORDINATION_LEASE_MSS: "5000" }, cwd: dir });
    expect(typo).toMatchObject({ code: 2, stdout: "", stderr: "coordination: invalid configuration: COORDINATION_LEASE_MSS: unknown setting (did you mean COORDINATION_LEASE_MS?)\n" });
  });

  it("exits 2 with one line when the database's directory does not exist", async () => {
    const missing = join(dir, "no", "such", "dir", "c.db");
    const result = await runCli({ args: ["--db", missing], cwd: dir });
    expect(result).toMatchObject({ code: 2, stdout: "", stderr: `coordination: invalid configuration: --db = ${missing}: the directory ${join(dir, "no", "such", "dir")} does not exist\n` });
  });

  it("binds the port and database from the flag over env over the YAML file (end to end)", async () => {
    const [filePort, envPort, flagPort] = await freePorts(3);
    const file = writeYaml(
      "config.yaml",
      `port: ${filePort}\nlogLevel: error\ndbPath: ${join(dir, "from-file.db")}\ndurability: normal\n`,
    );
    const cli = new CliProcess({
      args: ["--port", String(flagPort), "--db", join(dir, "from-flag.db")],
      env: { COORDINATION_CONFIG: file, COORDINATION_PORT: String(envPort), COORDINATION_LOG_LEVEL: "info" },
      cwd: dir,
    });
    const url = await cli.waitForUrl();
    expect(url).toBe(`http://127.0.0.1:${flagPort}`); // flag > env > file
    const started = cli.logLines().find((line) => line.url === url)!;
    // The start-up line is at info level: env (info) beat the file (error).
    expect(started).toMatchObject({ level: 30, dbPath: join(dir, "from-flag.db"), durability: "normal" });
    expect((await rest(url, "GET", "/health")).status).toBe(200);
    expect(existsSync(join(dir, "from-flag.db"))).toBe(true);
    expect(existsSync(join(dir, "from-file.db"))).toBe(false);
    cli.kill("SIGTERM");
    expect((await cli.waitForExit()).code).toBe(0);

    const withoutFlag = new CliProcess({
      env: { COORDINATION_CONFIG: file, COORDINATION_PORT: String(envPort), COORDINATION_LOG_LEVEL: "info" },
      cwd: dir,
    });
    expect(await withoutFlag.waitForUrl()).toBe(`http://127.0.0.1:${envPort}`); // env > file
    withoutFlag.kill("SIGTERM");
    expect((await withoutFlag.waitForExit()).code).toBe(0);
  });
});

/** Ports free on 127.0.0.1 right now (held together so they differ, then released). */
async function freePorts(count: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const server = createNetServer();
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(0, "127.0.0.1", () => resolve());
      });
      servers.push(server);
    }
    return servers.map((server) => (server.address() as AddressInfo).port);
  } finally {
    await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  }
}
