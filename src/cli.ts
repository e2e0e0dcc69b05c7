// The `coordination` command: reads configuration (flags > env > file > defaults), starts the
// server, and shuts it down gracefully on SIGINT/SIGTERM. Exit codes: 0 clean stop; 1 failure to
// start or to stop cleanly (a database thread lost, a WAL checkpoint failed on a full disk: the
// message says what is safe; the database file locked by another process past busyTimeoutMs), 2 invalid configuration or usage (or a non-loopback host without
// credentials), 3 a database file refused at start-up (damaged, read-only, another version's).
import { bearerToken } from "../client/bearer-token.js";
import { ConfigError, FLAGS, SETTINGS, SWITCHES, envName, loadConfig, type Config, type SettingName } from "./config.js";
import { shownUrl } from "./cli-text.js";
import { createLogger } from "./logger.js";
import { whenParentGone } from "./parent-watch.js";
import type { CoordinationServer } from "./server/create-server.js";
import { VERSION } from "./version.js";

interface ParsedArgs {
  flags: Partial<Record<SettingName, string>>;
  configFile?: string;
  help: boolean;
  version: boolean;
}

class UsageError extends Error {}

/**
 * The options in `argv`, by the settings they name. A word that is no option and no option's
 * value is refused, or, with `positional` (backup FILE), collected there in order.
 */
export function parseArgs(argv: string[], positional?: string[]): ParsedArgs {
  const parsed: ParsedArgs = { flags: {}, help: false, version: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--help" || arg === "-h") parsed.help = true;
    else if (arg === "--version" || arg === "-v") parsed.version = true;
    else {
      const [flag, inline] = arg.includes("=") ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)] : [arg, undefined];
      // A word is a mistyped command ("coordination stat") or a stray value, not an option.
      if (!arg.startsWith("-")) {
        if (positional !== undefined) {
          positional.push(arg);
          continue;
        }
        throw new UsageError(`unexpected "${arg}": a command comes first and an option starts with "--" (see --help)`);
      }
      // hasOwn, not `in`: "--constructor" or "--toString" must not pass as flags.
      if (flag !== "--config" && !Object.hasOwn(FLAGS, flag)) throw new UsageError(`unknown option "${arg}" (see --help)`);
      if (SWITCHES.has(flag) && inline === undefined) {
        parsed.flags[FLAGS[flag]!] = "true";
        continue;
      }
      const value = inline ?? argv[++i];
      if (value === undefined) throw new UsageError(`${flag} needs a value`);
      // "--port --db x.db": the next word is another option, not the value that is missing.
      if (inline === undefined && value.startsWith("--")) throw new UsageError(`${flag} needs a value (found the option ${value} after it)`);
      if (flag === "--config") parsed.configFile = value;
      else parsed.flags[FLAGS[flag]!] = value;
    }
  }
  return parsed;
}

function helpText(): string {
  const flagFor = (name: SettingName) => Object.entries(FLAGS).find(([, s]) => s === name)?.[0] ?? "";
  const names = Object.keys(SETTINGS) as SettingName[];
  // Three aligned columns (variable, flag, default), the description on the line below.
  const envWidth = Math.max(...names.map((name) => envName(name).length)) + 2;
  const flagWidth = Math.max(...names.map((name) => flagFor(name).length)) + 2;
  const lines = names.map((name) => {
    const setting = SETTINGS[name];
    return `  ${envName(name).padEnd(envWidth)}${flagFor(name).padEnd(flagWidth)}default ${JSON.stringify(setting.default)}\n      ${setting.doc}`;
  });
  return [
    `coordination ${VERSION}: queue/event coordination server for multi-agent systems`,
    "",
    "Usage: coordination [--host H] [--port P] [--db PATH] [--log-level L] [--config FILE.yaml]",
    "                    [--insecure] [--tls-cert FILE --tls-key FILE]",
    "       coordination serve …                       the same, said explicitly",
    "       coordination migrate [--db PATH]           check the file, apply pending migrations, exit",
    "       coordination backup FILE [--db PATH]       an online, consistent copy (safe while a server runs)",
    "       coordination stats | tasks … | queues … | schedules … | agents … | locks … | semaphores … | webhooks … | kv … | events tail|publish … | memory … | whoami",
    "                                                  a running server's state and controls (coordination stats --help)",
    "       coordination tokens create|list|revoke …   (coordination tokens --help)",
    "       coordination mcp --url URL [--token T] [--agent A]   MCP over stdio, relayed to a running server",
    "",
    "Settings (flags > environment > .env in the working directory > config file > defaults;",
    "the YAML file uses the camelCase names, or snake_case: leaseMs or lease_ms):",
    ...lines,
  ].join("\n");
}

/** The configuration from flags, the environment, .env and the config file; undefined after saying what is wrong (the caller exits 2). */
function configOrExplain(flags: Partial<Record<SettingName, string>>, configFile: string | undefined): Config | undefined {
  try {
    return loadConfig({ flags, dotenvFile: ".env", ...(configFile ? { configFile } : {}) });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`coordination: ${error.message}\n`);
    return undefined;
  }
}

/**
 * `… | head` closes the pipe early: that ends a command that prints, it is not an error. For the
 * commands that print what they were asked (the operator's and `tokens`): `tokens list | head -3`
 * died with an unhandled EPIPE and a stack trace once the list outgrew what head read. Not for
 * the server, whose output is its log.
 */
function endQuietlyWhenOutputCloses(lost?: string): void {
  process.stdout.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code !== "EPIPE") throw error;
    // Unless what went unwritten cannot be had again (a token's secret, shown once): then it is a failure, and says what to do.
    if (lost === undefined) process.exit(0);
    process.stderr.write(`coordination: ${lost}\n`);
    process.exit(1);
  });
}

/** `coordination tokens …` (src/cli-tokens.ts). */
async function tokensMain(argv: string[]): Promise<number> {
  endQuietlyWhenOutputCloses(
    argv[0] === "create" ? "the output closed before the new token's secret was written, and it is shown only once: revoke the token issued above (coordination tokens revoke ID) and create another" : undefined,
  );
  const { parseTokensArgs, runTokensCommand, TOKENS_USAGE, TokensUsageError } = await import("./cli-tokens.js");
  // Help and nothing else, wherever it is on the line: `tokens create --help` creates nothing.
  if (argv.length === 0 || argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(`${TOKENS_USAGE}\n`);
    return argv.length === 0 ? 2 : 0;
  }
  let parsed;
  try {
    parsed = parseTokensArgs(argv);
  } catch (error) {
    if (!(error instanceof TokensUsageError)) throw error;
    process.stderr.write(`coordination: ${error.message}\n${TOKENS_USAGE}\n`);
    return 2;
  }
  const config = configOrExplain(parsed.db === undefined ? {} : { dbPath: parsed.db }, parsed.configFile);
  if (config === undefined) return 2;
  try {
    return await runTokensCommand(parsed.command, config, { stdout: (text) => process.stdout.write(text), stderr: (text) => process.stderr.write(text) });
  } catch (error) {
    return databaseSentence(error);
  }
}

/** Commands that talk to a running server (src/cli-operator.ts). */
const OPERATOR_COMMANDS = new Set(["stats", "tasks", "queues", "schedules", "agents", "locks", "semaphores", "webhooks", "kv", "events", "memory", "whoami"]);

/** Options every operator command takes, with a value: they may come before the command too. */
const LEADING_VALUE_OPTIONS = new Set(["--url", "--token", "--config"]);

/**
 * The word after the leading options every operator command takes (`coordination --url U --json
 * queues rates`: "queues"); undefined when another option comes first (the server's own flags).
 */
function commandAfterOptions(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith("--")) return arg;
    if (arg === "--json" || LEADING_VALUE_OPTIONS.has(arg.slice(0, arg.indexOf("=")))) continue;
    if (!LEADING_VALUE_OPTIONS.has(arg)) return undefined;
    i++;
  }
  return undefined;
}

/** How long a command interrupted (SIGINT, SIGTERM) has to end by itself before the process ends (exit 130, 143). */
const INTERRUPT_GRACE_MS = 10_000;

async function operatorMain(argv: string[]): Promise<number> {
  const { runOperatorCommand } = await import("./cli-operator.js");
  const { INTERRUPTED_EXIT, readStream } = await import("./cli-value-files.js");
  endQuietlyWhenOutputCloses();
  // Ctrl-C (or a supervisor's SIGTERM) ends a command that waits (a tail, tasks wait, a drain)
  // cleanly, at once. A command stuck on a call to a server that does not answer (frozen with its
  // port open) would not notice: `timeout 70 coordination tasks enqueue` ran 304 s. It is given
  // INTERRUPT_GRACE_MS to end by itself, then the process ends as an interrupted one does.
  const stop = new AbortController();
  let ended = false;
  let interruptedBy: "SIGINT" | "SIGTERM" | undefined;
  const interrupt = (signal: "SIGINT" | "SIGTERM") => {
    interruptedBy = signal;
    stop.abort();
    setTimeout(() => {
      if (ended) return;
      process.stderr.write(`coordination: interrupted (${signal}) while waiting for the server's answer: what was asked may have been done\n`);
      process.exit(signal === "SIGINT" ? 130 : 143);
    }, INTERRUPT_GRACE_MS).unref();
  };
  process.once("SIGINT", () => interrupt("SIGINT"));
  process.once("SIGTERM", () => interrupt("SIGTERM"));
  // The server's own settings, read as `serve` reads them: where it listens, and its admin token.
  const settings = (configFile: string | undefined) => {
    const config = loadConfig({ dotenvFile: ".env", ...(configFile ? { configFile } : {}) });
    return { host: config.host, port: config.port, tls: config.tlsCert !== "", adminToken: config.adminToken };
  };
  try {
    const stdin = () => {
      if (process.stdin.isTTY) process.stderr.write("coordination: reading the value from this terminal: end it with Ctrl-D\n");
      return readStream(process.stdin, stop.signal);
    };
    const code = await runOperatorCommand(argv, process.env, { stdout: (text) => process.stdout.write(text), stderr: (text) => process.stderr.write(text), stdin }, stop.signal, settings);
    // Interrupted while reading a value: the exit code says which signal, as the grace's does.
    return code === INTERRUPTED_EXIT && interruptedBy === "SIGTERM" ? 143 : code;
  } finally {
    ended = true;
  }
}

/**
 * Start-up failures an operator fixes, by error name, and the exit code each gets with its one
 * sentence: a refusal to run insecurely and a TLS file the server cannot read are configuration
 * (2); a port in use or an address not this machine's, a failure to start (1); a database file
 * the server cannot use (damaged, read-only, another version's, not creatable), 3.
 */
const SENTENCE_EXITS: Readonly<Record<string, number>> = { InsecureBindError: 2, ConfigError: 2, ListenError: 1, DatabaseLocked: 1, DatabaseRefused: 3 };

/** A database file refused or locked, said in one sentence with its exit code (SENTENCE_EXITS); anything else thrown on. */
function databaseSentence(error: unknown): number {
  if (!(error instanceof Error && (error.name === "DatabaseRefused" || error.name === "DatabaseLocked"))) throw error;
  process.stderr.write(`coordination: ${error.message}\n`);
  return SENTENCE_EXITS[error.name]!;
}

const DATABASE_USAGE = {
  migrate: [
    "Usage: coordination migrate [--db PATH] [--config FILE.yaml]",
    "Checks the database file (--db, or the settings) and applies its pending migrations, then exits.",
    "Exit 0 done, 1 the file locked by another process past busyTimeoutMs, 2 usage or settings, 3 a file the server would refuse (damaged, another version's, not creatable).",
  ],
  backup: [
    "Usage: coordination backup FILE [--db PATH] [--config FILE.yaml]",
    "An online, consistent copy of the database file (--db, or the settings) at FILE, safe while a server runs:",
    "written beside FILE, checked, then renamed. Exit 0 done, 2 usage or settings, 3 a file it cannot copy.",
  ],
};

/** `coordination migrate` and `coordination backup FILE` (src/cli-database.ts): the database file from --db or the settings. */
async function databaseMain(command: "migrate" | "backup", argv: string[]): Promise<number> {
  // Read by the one parser: any option's value is its value, whatever it looks like (a FILE
  // named like the --db path, a --log-level's level), never taken for the FILE.
  const positional: string[] = [];
  let args: ParsedArgs;
  try {
    args = parseArgs(argv, positional);
    // Help and nothing else: `migrate --help` migrated ./coordination.db.
    if (args.help) {
      process.stdout.write(`${DATABASE_USAGE[command].join("\n")}\n`);
      return 0;
    }
    if (command === "backup" ? positional.length !== 1 : positional.length !== 0) throw new UsageError(command === "backup" ? "backup takes one FILE" : `migrate: unexpected "${positional[0]}"`);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`coordination: ${error.message}\n`);
    return 2;
  }
  const config = configOrExplain(args.flags, args.configFile);
  if (config === undefined) return 2;
  const { runMigrate, runBackup } = await import("./cli-database.js");
  const out = { stdout: (text: string) => process.stdout.write(text), stderr: (text: string) => process.stderr.write(text) };
  try {
    return command === "migrate" ? await runMigrate(config, out) : await runBackup(config, positional[0]!, out);
  } catch (error) {
    return databaseSentence(error);
  }
}

/** `coordination mcp --url URL [--token T] [--agent A]`: MCP over stdio, relayed to a running server (src/mcp/mcp-stdio-proxy.ts). */
const MCP_USAGE = [
  "Usage: coordination mcp [--url URL] [--token TOKEN] [--agent AGENT_ID]",
  "MCP over stdio, relayed to a running server (--url, else COORDINATION_URL, else http://127.0.0.1:8000;",
  "--token, else COORDINATION_TOKEN). --agent: the agent the tools act as (an agent token names its own).",
].join("\n");

async function mcpMain(argv: string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(`${MCP_USAGE}\n`);
    return 0;
  }
  const options: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    if (!["--url", "--token", "--agent"].includes(flag) || argv[i + 1] === undefined) {
      process.stderr.write(`coordination: mcp takes --url URL, --token TOKEN and --agent AGENT_ID (got "${flag}")\n`);
      return 2;
    }
    options[flag] = argv[++i]!;
  }
  const url = options["--url"] ?? process.env.COORDINATION_URL ?? "http://127.0.0.1:8000";
  // Checked before anything starts: a URL with no scheme ("127.0.0.1:8000") threw from deep in
  // the relay, with a stack trace and exit code 1.
  if (!URL.canParse(url) || !["http:", "https:"].includes(new URL(url).protocol)) {
    process.stderr.write(`coordination: mcp --url must be the server's http:// or https:// address, e.g. http://127.0.0.1:8000 (got ${JSON.stringify(shownUrl(url))})\n`);
    return 2;
  }
  // fetch refuses a URL holding a user or password: every relayed call failed, in words that
  // carried the password into the model's context.
  const { username, password } = new URL(url);
  if (username !== "" || password !== "") {
    process.stderr.write(`coordination: mcp --url must not hold a user or password, which the relay cannot send (got ${JSON.stringify(shownUrl(url))}): give the server's address alone, and its token with --token\n`);
    return 2;
  }
  const token = options["--token"] ?? process.env.COORDINATION_TOKEN;
  // A token no header can carry is said now, not as every relayed request failing.
  try {
    if (token !== undefined) bearerToken(token, `coordination: mcp ${options["--token"] === undefined ? "COORDINATION_TOKEN" : "--token"}`);
  } catch (error) {
    if (!(error instanceof TypeError)) throw error;
    process.stderr.write(`${error.message}\n`);
    return 2;
  }
  const { runMcpStdioProxy } = await import("./mcp/mcp-stdio-proxy.js");
  await runMcpStdioProxy(
    { url, token, agentId: options["--agent"] },
    (text) => process.stderr.write(text),
  );
  return 0;
}

async function main(): Promise<number> {
  const [command, ...rest] = process.argv.slice(2);
  if (command === "tokens") return tokensMain(rest);
  if (command === "mcp") return mcpMain(rest);
  // An operator command, its options first or not (the server's flags never name one).
  const operatorCommand = command?.startsWith("--") ? commandAfterOptions(process.argv.slice(2)) : command;
  if (operatorCommand !== undefined && OPERATOR_COMMANDS.has(operatorCommand)) return operatorMain(process.argv.slice(2));
  if (command === "migrate" || command === "backup") return databaseMain(command, rest);
  let args: ParsedArgs;
  try {
    // `coordination serve …` is the explicit form of the default.
    args = parseArgs(process.argv.slice(command === "serve" ? 3 : 2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`coordination: ${error.message}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(`${helpText()}\n`);
    return 0;
  }
  if (args.version) {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  const config = configOrExplain(args.flags, args.configFile);
  if (config === undefined) return 2;
  const log = createLogger(config.logLevel, config.logFormat);
  // The handlers go in before the server starts: a supervisor (or a test) may send SIGTERM as soon
  // as it reads the start-up line, and a signal nobody handles yet kills the process uncleanly.
  // A signal that arrives during start-up stops the server as soon as it is up. Each handler runs
  // once: a second Ctrl-C forces the exit.
  const handlers: Array<[NodeJS.Signals, () => void]> = [];
  const signalled = new Promise<NodeJS.Signals>((resolve) => {
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      handlers.push([signal, () => resolve(signal)]);
      process.once(signal, handlers.at(-1)![1]);
    }
  });
  let server: CoordinationServer | undefined;
  try {
    // Loaded only now: --help, --version and configuration errors answer without loading the server.
    const { createServer } = await import("./server/create-server.js");
    server = createServer(config, log);
    await server.start();
  } catch (error) {
    // Why first, then what stopping the half-started server logs ("shutting down", "stopped").
    // The failures an operator fixes are one sentence on stderr (SENTENCE_EXITS); a port in use
    // is also in the log, with the system's code, for whoever reads the logs.
    const exitCode = error instanceof Error ? SENTENCE_EXITS[error.name] : undefined;
    if (exitCode === undefined) log.fatal({ err: error }, "failed to start");
    else {
      const { name, message, cause } = error as Error;
      if (name === "ListenError") log.fatal({ code: (cause as NodeJS.ErrnoException | undefined)?.code }, `failed to start: ${message}`);
      process.stderr.write(`coordination: ${message}\n`);
    }
    // Nothing waits for a signal any more: one that comes while this process winds down ends it.
    for (const [signal, handler] of handlers) process.off(signal, handler);
    await server?.stop().catch(() => undefined);
    return exitCode ?? 1;
  }
  // Under `npm start`, npm's shell dies of a supervisor's SIGTERM without passing it on: the
  // parent gone is that signal (parent-watch.ts).
  const parentWatch = whenParentGone();
  const orphaned = parentWatch.gone.then(() => "parent exited" as const);
  const ended = await Promise.race([signalled, server.services.db.lost, orphaned]);
  parentWatch.stop();
  if (ended instanceof Error) {
    // A database thread died: nothing can be written any more. Exit for a supervisor to restart
    // us; everything acknowledged is already in the file.
    log.fatal({ err: ended }, "database thread lost; stopping");
    await server.stop().catch(() => undefined);
    return 1;
  }
  if (ended === "parent exited") log.info("the npm process that started the server exited; stopping");
  else log.info({ signal: ended }, "signal received");
  try {
    await server.stop();
    return 0;
  } catch (error) {
    log.error({ err: error }, "shutdown failed");
    process.stderr.write(`coordination: shutdown failed: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`coordination: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  },
);
