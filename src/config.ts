// The one place configuration is read. Sources, lowest precedence first:
// built-in defaults < YAML file (COORDINATION_CONFIG or --config) < COORDINATION_* env < CLI flags.
// Every value is validated with zod; all problems are reported at once, each naming the
// setting the way the user wrote it (env name, flag or file key) and what is allowed.
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { z } from "zod";

const ms = (max = 7 * 24 * 3_600_000) => z.coerce.number().int().min(0).max(max);
const positiveMs = (max?: number) => ms(max).refine((v) => v > 0, "must be greater than 0");

/** Every setting: its schema, default and one line of documentation (also used by --help and .env.example). */
export const SETTINGS = {
  host: { schema: z.string().min(1), default: "127.0.0.1", doc: "Server bind address" },
  port: { schema: z.coerce.number().int().min(0).max(65_535), default: 8000, doc: "Server port (0 picks a free one)" },
  dbPath: { schema: z.string().min(1), default: "coordination.db", doc: "SQLite database path (created and migrated at start-up)" },
  logLevel: {
    schema: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]),
    default: "info",
    doc: "Logging level (debug logs one line per request)",
  },
  durability: {
    schema: z.enum(["full", "normal"]),
    default: "full",
    doc: "SQLite synchronous mode: full = an acknowledged write survives power loss; normal = faster, may lose the last commits on power loss",
  },
  busyTimeoutMs: { schema: ms(60_000), default: 5000, doc: "How long a write waits for another process holding the database lock" },
  maxBodyBytes: { schema: z.coerce.number().int().min(1024).max(64 * 1024 * 1024), default: 1_048_576, doc: "Largest accepted request body (413 above it)" },
  shutdownTimeoutMs: { schema: positiveMs(60_000), default: 5000, doc: "How long shutdown waits for in-flight requests" },
  leaseMs: { schema: positiveMs(), default: 30_000, doc: "Default task lease length when a claim names none" },
  maxLeaseMs: { schema: positiveMs(), default: 3_600_000, doc: "Longest lease a claim or heartbeat may ask for" },
  maxAttempts: { schema: z.coerce.number().int().min(1).max(1000), default: 3, doc: "Default attempts before a task is dead-lettered" },
  retryBaseMs: { schema: ms(), default: 1000, doc: "Backoff after the first failure; doubles with each attempt" },
  retryMaxMs: { schema: ms(), default: 300_000, doc: "Longest retry backoff" },
  leaseSweepMs: { schema: positiveMs(60_000), default: 1000, doc: "How often expired leases are returned to the queue" },
  maxWaitMs: { schema: ms(300_000), default: 30_000, doc: "Longest long-poll (waitMs) a claim or poll may ask for" },
  crossProcessPollMs: {
    schema: positiveMs(10_000),
    default: 250,
    doc: "How often waiting claims, polls and live streams re-read the database for writes by other server processes on the same file",
  },
  eventRetentionMs: { schema: ms(3650 * 24 * 3_600_000), default: 7 * 24 * 3_600_000, doc: "Prune events older than this (0 keeps them forever)" },
  eventRetentionCount: { schema: z.coerce.number().int().min(0), default: 1_000_000, doc: "Keep at most this many events (0 = no limit)" },
  eventPruneMs: { schema: positiveMs(), default: 60_000, doc: "How often the event log is pruned" },
  subscriptionBufferEvents: {
    schema: z.coerce.number().int().min(1).max(1_000_000),
    default: 10_000,
    doc: "Events buffered for one slow WebSocket subscriber before its stream is closed (it resumes by lastEventId)",
  },
  agentStaleMs: { schema: positiveMs(), default: 30_000, doc: "An agent with no heartbeat for this long is stale" },
  agentOfflineMs: { schema: positiveMs(), default: 90_000, doc: "An agent with no heartbeat for this long is offline and its tasks are released" },
  agentHealthCheckMs: { schema: positiveMs(60_000), default: 1000, doc: "How often agent health is re-evaluated" },
  memoryContextLimit: { schema: z.coerce.number().int().min(0).max(50), default: 5, doc: "Memories handed out with each claimed task (0 turns pre-execution recall off)" },
} as const;

type Settings = typeof SETTINGS;
export type SettingName = keyof Settings;
export type Config = Readonly<{ [K in SettingName]: z.output<Settings[K]["schema"]> }>;

/** Settings that have a command-line flag, beside --config, --help and --version. */
export const FLAGS: Record<string, SettingName> = {
  "--host": "host",
  "--port": "port",
  "--db": "dbPath",
  "--log-level": "logLevel",
};

export const envName = (name: SettingName): string =>
  `COORDINATION_${name.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

interface RawValue {
  value: unknown;
  /** How the user named the setting: "COORDINATION_PORT", "--port", "port (in config.yaml)". */
  origin: string;
}

export interface ConfigSources {
  env?: NodeJS.ProcessEnv;
  /** Flag values already split from argv, keyed by setting. */
  flags?: Partial<Record<SettingName, string>>;
  /** Path of a YAML file; falls back to env COORDINATION_CONFIG. */
  configFile?: string;
  /** Programmatic overrides (tests, embedding); highest precedence. */
  overrides?: Partial<Record<SettingName, unknown>>;
}

function readConfigFile(path: string, problems: string[]): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    problems.push(`config file ${path}: cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
    return {};
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch (error) {
    problems.push(`config file ${path}: not valid YAML (${(error as Error).message.split("\n")[0]})`);
    return {};
  }
  if (parsed == null) return {};
  if (typeof parsed !== "object" || Array.isArray(parsed)) {
    problems.push(`config file ${path}: must be a mapping of setting names to values`);
    return {};
  }
  const known = new Set(Object.keys(SETTINGS));
  for (const key of Object.keys(parsed)) {
    if (!known.has(key)) problems.push(`config file ${path}: unknown setting "${key}" (known: ${[...known].join(", ")})`);
  }
  return parsed as Record<string, unknown>;
}

function describeAllowed(name: SettingName, issue: z.core.$ZodIssue): string {
  const schema = SETTINGS[name].schema;
  if (schema instanceof z.ZodEnum) return `one of ${schema.options.join(", ")}`;
  return issue.message;
}

/** Builds the frozen, validated configuration or throws ConfigError listing every problem. */
export function loadConfig(sources: ConfigSources = {}): Config {
  const env = sources.env ?? process.env;
  const problems: string[] = [];
  const configFile = sources.configFile ?? env.COORDINATION_CONFIG;
  const fileValues = configFile ? readConfigFile(configFile, problems) : {};

  const result: Record<string, unknown> = {};
  for (const name of Object.keys(SETTINGS) as SettingName[]) {
    const raw = pickRawValue(name, { env, fileValues, configFile, sources });
    if (!raw) {
      result[name] = SETTINGS[name].default;
      continue;
    }
    const parsed = SETTINGS[name].schema.safeParse(raw.value === "" ? undefined : raw.value);
    if (parsed.success) {
      result[name] = parsed.data;
    } else {
      const issue = parsed.error.issues[0]!;
      problems.push(`${raw.origin}: ${describeAllowed(name, issue)} (got ${JSON.stringify(raw.value)})`);
    }
  }
  if (problems.length === 0) checkRelations(result as Config, problems);
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(result) as Config;
}

function pickRawValue(
  name: SettingName,
  ctx: { env: NodeJS.ProcessEnv; fileValues: Record<string, unknown>; configFile: string | undefined; sources: ConfigSources },
): RawValue | undefined {
  const { sources } = ctx;
  if (sources.overrides && name in sources.overrides) return { value: sources.overrides[name], origin: name };
  const flag = Object.entries(FLAGS).find(([, setting]) => setting === name)?.[0];
  if (flag && sources.flags?.[name] !== undefined) return { value: sources.flags[name], origin: flag };
  const fromEnv = ctx.env[envName(name)];
  if (fromEnv !== undefined) return { value: fromEnv, origin: envName(name) };
  if (name in ctx.fileValues) return { value: ctx.fileValues[name], origin: `${name} (in ${ctx.configFile})` };
  return undefined;
}

function checkRelations(config: Config, problems: string[]): void {
  if (config.agentOfflineMs <= config.agentStaleMs) {
    problems.push(`${envName("agentOfflineMs")}: must be greater than ${envName("agentStaleMs")} (${config.agentStaleMs})`);
  }
  if (config.retryMaxMs < config.retryBaseMs) {
    problems.push(`${envName("retryMaxMs")}: must be at least ${envName("retryBaseMs")} (${config.retryBaseMs})`);
  }
  if (config.leaseMs > config.maxLeaseMs) {
    problems.push(`${envName("leaseMs")}: must be at most ${envName("maxLeaseMs")} (${config.maxLeaseMs})`);
  }
}
