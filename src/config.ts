// The one place configuration is read. Sources, lowest precedence first:
// built-in defaults < YAML file (COORDINATION_CONFIG or --config) < .env file < COORDINATION_* env < CLI flags.
// Every value is validated with zod; all problems are reported at once, each naming the
// setting the way the user wrote it (env name, flag or file key) and what is allowed.
import { existsSync, readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { parseEnv } from "node:util";
import { createSecureContext } from "node:tls";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { SENDABLE, unsendableKinds } from "../client/bearer-token.js";

/**
 * Numbers arrive as strings from the environment and flags and as YAML scalars from the file.
 * Only a number or a decimal string is accepted: z.coerce would turn "" and YAML null into 0,
 * true into 1 and [80] into 80, silently.
 */
const toNumber = (value: unknown): unknown => (typeof value === "string" && /^\s*[+-]?\d+(\.\d+)?\s*$/.test(value) ? Number(value) : value);
/** An integer setting and the sentence that says what is allowed (used in error messages). */
const int = (min: number, max?: number, unit = "") => ({
  schema: z.preprocess(toNumber, max === undefined ? z.number().int().min(min) : z.number().int().min(min).max(max)),
  allowed: max === undefined ? `an integer${unit} of at least ${min}` : `an integer${unit} from ${min} to ${max}`,
});
const WEEK_MS = 7 * 24 * 3_600_000;
const ms = (max = WEEK_MS) => int(0, max, " (milliseconds)");
const positiveMs = (max = WEEK_MS) => int(1, max, " (milliseconds)");
const nonEmptyString = () => ({ schema: z.string().min(1), allowed: "a non-empty string" });
/** One of `values`, in any letter case (COORDINATION_LOG_LEVEL=DEBUG is debug), or another name for one (`aliases`). */
const oneOf = <const T extends readonly [string, ...string[]]>(values: T, aliases: Record<string, T[number]> = {}) => ({
  schema: z.preprocess((v) => (typeof v === "string" ? (Object.hasOwn(aliases, v.toLowerCase()) ? aliases[v.toLowerCase()] : v.toLowerCase()) : v), z.enum(values)),
  allowed: `one of ${values.join(", ")}`,
});

/** true or false; from text, "true"/"false" (any case), "1"/"0", "yes"/"no". */
const bool = () => ({
  schema: z.preprocess((v) => {
    if (typeof v !== "string") return v;
    const word = v.trim().toLowerCase();
    return ["true", "1", "yes"].includes(word) ? true : ["false", "0", "no"].includes(word) ? false : v;
  }, z.boolean()),
  allowed: "true or false",
});
/** A list: a YAML sequence, or comma-separated text from the environment ("" is the empty list). */
const list = (item: z.ZodType<string>, what: string) => ({
  schema: z.preprocess(
    (v) => (typeof v === "string" ? v.split(",").map((part) => part.trim()).filter((part) => part !== "") : v),
    z.array(item),
  ),
  allowed: `a comma-separated list of ${what}`,
});
/** An optional text setting: "" means unset. */
const optionalText = (min: number, what: string) => ({
  schema: z.union([z.literal(""), z.string().min(min)]),
  allowed: `${what} (or empty for none)`,
});
/** An origin as browsers send it: scheme://host[:port], nothing after. */
const origin = z.string().regex(/^https?:\/\/[^/\s]+$/i);

/**
 * Every setting: its schema, what it allows (said in error messages), its default and one line of
 * documentation (also used by --help and .env.example).
 */
export const SETTINGS = {
  // No host name or address holds whitespace: one around it (a manifest's "127.0.0.1 ") was not
  // loopback to the start-up check, which refused to listen "on 127.0.0.1 " without credentials.
  host: { schema: z.string().regex(/^\S+$/), allowed: "a host name or address, without spaces", default: "127.0.0.1", doc: "Server bind address" },
  port: { ...int(0, 65_535), default: 8000, doc: "Server port (0 picks a free one)" },
  dbPath: { ...nonEmptyString(), default: "coordination.db", doc: "SQLite database path (created and migrated at start-up)" },
  logLevel: {
    // Python's names too (the seed's users set them: logging.WARNING, uvicorn's --log-level critical).
    ...oneOf(["fatal", "error", "warn", "info", "debug", "trace", "silent"], { warning: "warn", critical: "fatal" }),
    default: "info",
    doc: "Logging level (debug logs one line per request; Python's warning and critical are warn and fatal)",
  },
  logFormat: {
    ...oneOf(["auto", "json", "pretty"]),
    default: "auto",
    doc: "json: one JSON object per line; pretty: readable lines; auto: pretty on a terminal, JSON otherwise",
  },
  durability: {
    ...oneOf(["full", "normal"]),
    default: "full",
    doc: "SQLite synchronous mode: full = an acknowledged write survives power loss; normal = faster, may lose the last commits on power loss",
  },
  busyTimeoutMs: { ...ms(60_000), default: 5000, doc: "How long a write waits for another process holding the database lock; on a file other servers write to, a lease counts as expired, or an agent offline, twice this long after it was due" },
  maxBodyBytes: { ...int(1024, 64 * 1024 * 1024, " (bytes)"), default: 1_048_576, doc: "Largest accepted request body (413 above it)" },
  maxJsonDepth: {
    ...int(1, 512),
    default: 64,
    doc: "Deepest nesting of a stored JSON value (payloads, results, metadata, data, keys' values); deeper is a 400 naming the field",
  },
  maxTaskLogBytes: {
    ...int(65_536, 64 * 1024 * 1024, " (bytes)"),
    default: 1024 * 1024,
    doc: "Most a task's log (tasks.appendLog) keeps, in bytes (each line's message and data as UTF-8, its agent and 64 more): past it the oldest lines are deleted, whichever run wrote them, and a read says how many went (dropped)",
  },
  maxResponseBytes: {
    ...int(65_536, 256 * 1024 * 1024, " (bytes)"),
    default: 8 * 1024 * 1024,
    doc: "Soft bound on one answer, in UTF-8 bytes, names and keys counted: polls, lists, claimMany and recall return fewer items (at least one; a claimed task's context, only what fits) rather than exceed it; the agent lists, which have no page signal, are refused (400 naming limit)",
  },
  shutdownTimeoutMs: { ...positiveMs(60_000), default: 5000, doc: "How long shutdown waits for in-flight requests" },
  leaseMs: { ...positiveMs(), default: 30_000, doc: "Default lease length when a claim (or a named lock's or semaphore's acquire) names none" },
  maxLeaseMs: { ...positiveMs(), default: 3_600_000, doc: "Longest lease a claim or heartbeat (or a named lock's or semaphore permit's acquire or renewal) may ask for" },
  maxAttempts: { ...int(1, 1000), default: 3, doc: "Default attempts before a task is dead-lettered" },
  maxRunMs: {
    ...ms(366 * 24 * 3_600_000),
    default: 0,
    doc: "Run time limit of a task enqueued without maxRunMs, kept with it: no run of it lasts longer than this from its claim, whatever its heartbeats (the lease sweeper ends it, charged, as a lease that ran out). 0 (the default): none",
  },
  retryBaseMs: { ...ms(), default: 1000, doc: "Backoff after the first failure of a task enqueued without a backoff of its own; doubles with each attempt" },
  retryMaxMs: { ...ms(), default: 300_000, doc: "Longest retry backoff of a task enqueued without a backoff of its own" },
  leaseSweepMs: { ...positiveMs(60_000), default: 1000, doc: "How often expired leases are returned to the queue, and tasks whose expiry came (tasks.enqueue's expiresAt or ttlMs) cancelled" },
  quarantineAfterFailures: {
    ...int(0, 1_000_000),
    default: 0,
    doc: "Cordon an agent for quarantineMs once it failed this many runs in a row with no complete between (tasks.fail; counted per server process): an agent that fails everything it takes cannot drain its queues into dead letters. 0 (the default) turns it off",
  },
  quarantineMs: { ...positiveMs(WEEK_MS), default: 300_000, doc: "How long an automatic quarantine (quarantineAfterFailures) keeps an agent cordoned; agents.uncordon lifts it sooner" },
  maxWaitMs: { ...ms(300_000), default: 30_000, doc: "Longest long-poll (waitMs) a claim, poll, lock or semaphore acquire, task wait, key watch or log follow may ask for (a task wait or key watch that names none waits this long)" },
  crossProcessPollMs: {
    ...positiveMs(10_000),
    default: 250,
    doc: "How often waiting claims, polls and live streams re-read the database for writes by other server processes on the same file",
  },
  eventRetentionMs: { ...ms(3650 * 24 * 3_600_000), default: 7 * 24 * 3_600_000, doc: "Prune events older than this (0 keeps them forever)" },
  eventRetentionCount: { ...int(0), default: 1_000_000, doc: "Keep at most this many events (0 = no limit)" },
  eventPruneMs: { ...positiveMs(), default: 60_000, doc: "How often the event log is pruned" },
  subscriptionBufferEvents: {
    ...int(1, 1_000_000),
    default: 10_000,
    doc: "Events buffered for one slow WebSocket subscriber before its stream is closed (it resumes by lastEventId)",
  },
  subscriptionBufferBytes: {
    ...int(65_536, 1_073_741_824),
    default: 16_777_216,
    doc: "Bytes of events (as JSON) buffered for one slow WebSocket subscriber before its stream is closed, whatever their count (it resumes by lastEventId); and of answers a WebSocket's client leaves unread before its new calls are refused (429)",
  },
  agentStaleMs: { ...positiveMs(), default: 30_000, doc: "An agent with no heartbeat for this long is stale" },
  agentOfflineMs: { ...positiveMs(), default: 90_000, doc: "An agent with no heartbeat for this long is offline and its tasks are released" },
  agentStartupGraceMs: {
    ...ms(),
    default: 90_000,
    doc: "For this long after start-up, heartbeat age counts from start-up at the earliest, so a server outage does not make every agent offline; an agent stale or offline before it stays so until a sign of life (0 = off)",
  },
  agentHealthCheckMs: { ...positiveMs(60_000), default: 1000, doc: "How often agent health is re-evaluated" },
  adminToken: {
    // What an `Authorization: Bearer` header can carry: a header is Latin-1 text and the secret
    // is what follows "Bearer " up to the first space. A secret with a space or tab (a passphrase,
    // a .env line's stray whitespace) or a character past ASCII (hashed as UTF-8, read from a
    // header as Latin-1) was taken, and then no HTTP call could ever present it: every one a 401.
    schema: z.union([z.literal(""), z.string().min(32).regex(SENDABLE)]),
    allowed: "a secret of at least 32 characters, printable ASCII without spaces, as an Authorization: Bearer header carries it (or empty for none)",
    // A value refused is not echoed: one character short, it is still most of a secret.
    secret: true,
    default: "",
    doc: "Bearer secret with every right; set it (or issue tokens with `coordination tokens create`) and every call but /health needs a credential. Keep it out of shell history: use the environment or the config file",
  },
  insecure: {
    ...bool(),
    default: false,
    doc: "Allow listening on a non-loopback address with no credentials configured (anyone who reaches the port controls every agent)",
  },
  allowedOrigins: {
    ...list(origin, "origins (https://app.example.com)"),
    default: [] as string[],
    doc: "Browser origins allowed to call the API (CORS) and open WebSockets; requests from any other origin are refused",
  },
  allowedHosts: {
    ...list(z.string().min(1), "host names"),
    default: [] as string[],
    doc: "Host header values served besides localhost, 127.0.0.1 and [::1] when bound to loopback (DNS-rebinding defence); when bound elsewhere, the only ones served if set",
  },
  publicDocs: { ...bool(), default: true, doc: "Serve /openapi.json without a credential when credentials are enforced" },
  publicMetrics: { ...bool(), default: false, doc: "Serve /metrics without a credential when credentials are enforced (else any valid token may scrape)" },
  slowRequestMs: {
    ...positiveMs(600_000),
    default: 1000,
    doc: "A request taking longer is logged at info (long-polls, which wait by design, are not)",
  },
  tlsCert: { ...optionalText(1, "a PEM certificate file path"), default: "", doc: "Serve HTTPS and WSS with this certificate (PEM; with tlsKey)" },
  tlsKey: { ...optionalText(1, "a PEM private key file path"), default: "", doc: "Private key of tlsCert (PEM)" },
  tokenRefreshMs: {
    ...positiveMs(60_000),
    default: 2000,
    doc: "How often the server re-reads credentials, so tokens issued or revoked by the CLI or another process take effect",
  },
  maxBatchCalls: { ...int(1, 10_000), default: 100, doc: "Most calls in one tRPC batch, over HTTP or in one WebSocket frame, and in progress at once on one WebSocket" },
  maxSubscriptionsPerSocket: { ...int(1, 100_000), default: 100, doc: "Most live subscriptions (events.onEvent) open on one WebSocket" },
  maxSubscriptionsPerCredential: {
    ...int(1, 1_000_000),
    default: 2000,
    doc: "Most live subscriptions open under one credential, over all its WebSockets (without credentials, all callers share one): each costs memory and a share of every event's fan-out",
  },
  maxParkedPerAgent: { ...int(1, 100_000), default: 64, doc: "Most long-polls (claims, polls, lock and semaphore acquires with waitMs) one agent may have waiting at once; and apart from those, most task waits, key watches and log follows (tasks.wait, tasks.waitMany: one each, however many tasks; kv.get with afterVersion; tasks.log with waitMs) one credential may have waiting at once" },
  webhookTimeoutMs: {
    ...positiveMs(300_000),
    default: 10_000,
    doc: "How long a webhook's receiver has to answer a delivery (headers and body) before it counts as failed and is tried again",
  },
  webhookMaxBackoffMs: {
    ...positiveMs(),
    default: 600_000,
    doc: "Longest wait before a failing webhook is tried again: the wait starts at 1 s and doubles with each failure in a row (each wait shortened by up to 20%, at random) up to this; a 429 or 503 whose Retry-After asks a longer wait gets it, up to this",
  },
  webhookDisableAfterMs: {
    ...positiveMs(30 * 24 * 3_600_000),
    default: 3 * 24 * 3_600_000,
    doc: "A webhook whose deliveries have failed for this long with none succeeding is disabled (webhook.disabled; webhooks.update with enabled true starts it again from the event it stopped at)",
  },
  maxLocksPerAgent: { ...int(1, 1_000_000), default: 1000, doc: "Most named locks and semaphore permits one agent may hold at once, together (locks.acquire and semaphores.acquire answer LIMIT_EXCEEDED past it): each is a row, and its deregistration releases them all in one write" },
  maxEphemeralKeysPerAgent: {
    // MAX_EPHEMERAL_KEYS_PER_AGENT (kv-commands.ts): what one write deletes when the agent goes.
    ...int(1, 10_000),
    default: 1000,
    doc: "Most keys tied to one agent's life at once (kv.set with ephemeral; kv.set answers LIMIT_EXCEEDED past it): the write that sees the agent offline, or deregisters it, deletes them all",
  },
  maxMcpSessionsPerAgent: {
    ...int(1, 10_000),
    default: 8,
    doc: "Most MCP sessions open at once for one agent and credential; a new one ends the least recently used (its client initializes again)",
  },
  maxMcpSessions: {
    ...int(1, 1_000_000),
    default: 1000,
    doc: "Most MCP sessions open at once in all (each holds an MCP server and a listener: ~90 KB); a new one past it ends the least recently used",
  },
  mcpStreamBufferBytes: {
    ...int(65_536, 1_073_741_824),
    default: 8_388_608,
    doc: "Bytes of notifications one MCP session's stream may hold for a client that does not read them before the stream is closed (its client reconnects; the direct messages it missed stay in the mailbox, read_mailbox)",
  },
  mcpMaxAnswerChars: {
    ...int(4_000, 100_000_000, " (characters)"),
    default: 40_000,
    doc: "Most characters of JSON an MCP tool answers (a model's host refuses or cuts far less than maxResponseBytes): past it the answer's large values are cut, each marked \"…[cut:\", small fields kept whole, and a second text says so; a task's payload, result, checkpoint or progress is read whole, in pieces, with read_task_value, a shared key's value with read_key_value",
  },
  mcpSessionIdleMs: {
    ...positiveMs(),
    default: 600_000,
    doc: "An MCP session with no request and no open stream for this long is ended (its client initializes again)",
  },
  maxMetricsQueues: {
    ...int(0, 100_000),
    default: 100,
    doc: "Most queues given a label of their own in /metrics (the first this process sees); the others are counted together in series labelled queue_overflow=\"true\", so client-chosen queue names cannot grow the metrics without bound",
  },
  maxConnections: { ...int(1, 1_000_000), default: 10_000, doc: "Most open connections (HTTP and WebSocket); more are answered 429 and closed" },
  headersTimeoutMs: {
    ...int(1000, 600_000, " (milliseconds)"),
    default: 10_000,
    doc: "How long a client may take to send a request's URL and headers; past it, 408 and the connection closes (a client that trickles its headers cannot hold a maxConnections slot longer)",
  },
  requestTimeoutMs: {
    ...int(1000, 3_600_000, " (milliseconds)"),
    default: 120_000,
    doc: "How long a client may take to send a whole request, body included; past it, 408 and the connection closes (not the answer's wait: a long-poll is sent before it waits). A body of maxBodyBytes must arrive at maxBodyBytes / this per ms at least: raise it with maxBodyBytes for slow links",
  },
  wsAuthTimeoutMs: {
    ...positiveMs(600_000),
    default: 10_000,
    doc: "How long a WebSocket opened with ?connectionParams=1 may take to send them (its credential) before it is closed with 4401",
  },
  settledTaskRetentionMs: {
    ...ms(3650 * 24 * 3_600_000),
    default: 30 * 24 * 3_600_000,
    doc: "Delete completed, dead-lettered and cancelled tasks this long after they settled (0 keeps them)",
  },
  settledTaskRetentionCount: { ...int(0), default: 0, doc: "Keep at most this many settled tasks, the newest (0 = no limit)" },
  executionRetentionMs: { ...ms(3650 * 24 * 3_600_000), default: 30 * 24 * 3_600_000, doc: "Delete execution records (memories of finished runs) this much older (0 keeps them)" },
  executionRetentionCount: { ...int(0), default: 0, doc: "Keep at most this many execution records, the newest (0 = no limit)" },
  noteRetentionMs: { ...ms(3650 * 24 * 3_600_000), default: 0, doc: "Delete agents' notes and lessons this much older (0, the default, keeps them)" },
  noteRetentionCount: { ...int(0), default: 0, doc: "Keep at most this many notes and lessons, the newest (0 = no limit)" },
  agentRetentionMs: {
    ...ms(3650 * 24 * 3_600_000),
    default: 7 * 24 * 3_600_000,
    doc: "Remove agents offline with no heartbeat for this long, as a deregistration would (0 keeps them): every claim, heartbeat or MCP session registers its agent",
  },
  revokedTokenRetentionMs: {
    ...ms(3650 * 24 * 3_600_000),
    default: 30 * 24 * 3_600_000,
    doc: "Delete credentials this long after they were revoked (0 keeps them); calls still need a credential once one was ever issued",
  },
  retentionPruneMs: { ...positiveMs(), default: 60_000, doc: "How often settled tasks, memories, long-gone agents and revoked credentials are pruned to their retention" },
  memoryIndexCompactMs: {
    ...ms(),
    default: 10_000,
    doc: "How often the memory search index is compacted, in small steps, to keep recall fast on a server that ran long, and notes a server of an earlier version on the same file stored are indexed (0 turns it off)",
  },
  memoryContextLimit: { ...int(0, 50), default: 5, doc: "Memories handed out with each claimed task (0 turns pre-execution recall off)" },
  recordExecutions: {
    ...bool(),
    default: true,
    doc: "Write an execution record (a memory) when a run completes, fails or is dead-lettered; off, recall draws on notes, lessons and the records kept from before, and a run's writes skip a row, three indexes and a search-index entry",
  },
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
  "--insecure": "insecure",
  "--tls-cert": "tlsCert",
  "--tls-key": "tlsKey",
};

/** Flags that take no value: present means true. */
export const SWITCHES = new Set(["--insecure"]);

export const envName = (name: SettingName): string =>
  `COORDINATION_${name.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;

/** Settings that are not valid: `problems` lists every one, each naming the setting as the user wrote it. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    // One problem is one line; several are listed under a heading.
    super(problems.length === 1 ? `invalid configuration: ${problems[0]}` : `Invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

interface RawValue {
  value: unknown;
  /** How the user named the setting: "COORDINATION_PORT", "--port", "port (in config.yaml)". */
  origin: string;
}

/** The lease a claim, steal or acquire is granted, in ms: the one it asked for (0 or none: the server's leaseMs), cut to maxLeaseMs. */
export const leaseLength = (config: Pick<Config, "leaseMs" | "maxLeaseMs">, requested: number | undefined): number =>
  Math.min(requested !== undefined && requested > 0 ? requested : config.leaseMs, config.maxLeaseMs);

/** The length a renewal (a heartbeat, a lock's or permit's renew) asked for, cut to maxLeaseMs; undefined when it named none (0 or none): the lease renews by its own length. */
export const renewalLength = (config: Pick<Config, "maxLeaseMs">, requested: number | undefined): number | undefined =>
  requested !== undefined && requested > 0 ? Math.min(requested, config.maxLeaseMs) : undefined;

export interface ConfigSources {
  env?: NodeJS.ProcessEnv;
  /** Flag values already split from argv, keyed by setting. */
  flags?: Partial<Record<SettingName, string>>;
  /** Path of a YAML file; falls back to env COORDINATION_CONFIG. */
  configFile?: string;
  /**
   * A .env file (KEY=value lines) read beneath the environment: a variable set in the
   * environment wins over the same one in the file. The CLI passes ".env" in the working directory.
   */
  dotenvFile?: string;
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
  // Keys in camelCase, or snake_case as a Python user's file has them (db_path, log_level).
  const settings: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(parsed)) {
    const name = known.has(key) ? key : key.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
    if (!known.has(name)) problems.push(`config file ${path}: unknown setting "${key}"${suggestion(name, [...known])}`);
    else if (Object.hasOwn(settings, name)) problems.push(`config file ${path}: ${name} is given twice (as ${name} and in snake_case); keep one`);
    settings[name] = value;
  }
  return settings;
}

/** Environment variables of ours that are not settings (the operator commands read the last two: src/cli-operator.ts). */
const OTHER_VARIABLES = new Set(["COORDINATION_CONFIG", "COORDINATION_URL", "COORDINATION_TOKEN"]);

/** The COORDINATION_* variables of a .env file, or nothing when there is no such file. */
function readDotenv(path: string, problems: string[]): NodeJS.ProcessEnv {
  if (!existsSync(path)) return {};
  try {
    return Object.fromEntries(Object.entries(parseEnv(readFileSync(path, "utf8"))).filter(([key]) => key.startsWith("COORDINATION_")));
  } catch (error) {
    problems.push(`${path}: cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
    return {};
  }
}

/** A COORDINATION_* variable that names no setting is a typo until proven otherwise: say which, and what was meant. */
function checkUnknownVariables(env: NodeJS.ProcessEnv, where: (key: string) => string, problems: string[]): void {
  const known = (Object.keys(SETTINGS) as SettingName[]).map(envName);
  for (const key of Object.keys(env)) {
    if (!key.startsWith("COORDINATION_") || OTHER_VARIABLES.has(key) || known.includes(key)) continue;
    problems.push(`${where(key)}: unknown setting${suggestion(key, known)}`);
  }
}

/**
 * Settings given by name (the in-process API's settings, a test's): one not known is refused as
 * the YAML file refuses it. Left unread, a JavaScript caller's leaseMS ran with the default lease.
 */
function checkUnknownOverrides(overrides: ConfigSources["overrides"], problems: string[]): void {
  const known = Object.keys(SETTINGS);
  for (const key of Object.keys(overrides ?? {})) {
    if (!Object.hasOwn(SETTINGS, key)) problems.push(`${key}: unknown setting${suggestion(key, known)}`);
  }
}

/** " (did you mean X?)" for a near miss, else where the list is: a typo is the likely cause, and 50 names are not an answer. */
function suggestion(key: string, known: readonly string[]): string {
  const closest = known.map((name) => ({ name, distance: editDistance(key, name) })).sort((a, b) => a.distance - b.distance)[0];
  return closest !== undefined && closest.distance <= 3 ? ` (did you mean ${closest.name}?)` : "; --help lists them all";
}

/** Levenshtein distance, for "did you mean". */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    previous = current;
  }
  return previous[b.length]!;
}

/** Builds the frozen, validated configuration or throws ConfigError listing every problem. */
export function loadConfig(sources: ConfigSources = {}): Config {
  const problems: string[] = [];
  const dotenv = sources.dotenvFile ? readDotenv(sources.dotenvFile, problems) : {};
  const realEnv = sources.env ?? process.env;
  checkUnknownVariables(dotenv, (key) => `${key} (in ${sources.dotenvFile})`, problems);
  checkUnknownVariables(realEnv, (key) => key, problems);
  checkUnknownOverrides(sources.overrides, problems);
  const env: NodeJS.ProcessEnv = { ...dotenv, ...realEnv };
  const fromDotenv = new Set(Object.keys(dotenv).filter((key) => realEnv[key] === undefined));
  const configFile = sources.configFile ?? env.COORDINATION_CONFIG;
  const fileValues = configFile ? readConfigFile(configFile, problems) : {};

  const result: Record<string, unknown> = {};
  const origins: Partial<Record<SettingName, string>> = {};
  for (const name of Object.keys(SETTINGS) as SettingName[]) {
    const raw = pickRawValue(name, { env, fromDotenv, fileValues, configFile, sources });
    if (!raw) {
      result[name] = SETTINGS[name].default;
      continue;
    }
    origins[name] = raw.origin;
    // An empty value is invalid, not "unset": the schemas reject "" (and YAML null).
    const parsed = SETTINGS[name].schema.safeParse(raw.value);
    if (parsed.success) result[name] = parsed.data;
    else problems.push(`${raw.origin}: must be ${SETTINGS[name].allowed} (got ${"secret" in SETTINGS[name] ? describeSecret(raw.value) : describeValue(raw.value)})`);
  }
  if (problems.length === 0) checkRelations(result as Config, origins, problems);
  if (problems.length === 0) checkDatabaseDirectory(result as Config, origins, problems);
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(result) as Config;
}

function pickRawValue(
  name: SettingName,
  ctx: { env: NodeJS.ProcessEnv; fromDotenv: Set<string>; fileValues: Record<string, unknown>; configFile: string | undefined; sources: ConfigSources },
): RawValue | undefined {
  const { sources } = ctx;
  if (sources.overrides?.[name] !== undefined) return { value: sources.overrides[name], origin: name };
  const flag = Object.entries(FLAGS).find(([, setting]) => setting === name)?.[0];
  if (flag && sources.flags?.[name] !== undefined) return { value: sources.flags[name], origin: flag };
  const fromEnv = ctx.env[envName(name)];
  if (fromEnv !== undefined) return { value: fromEnv, origin: ctx.fromDotenv.has(envName(name)) ? `${envName(name)} (in ${ctx.sources.dotenvFile})` : envName(name) };
  if (Object.hasOwn(ctx.fileValues, name)) return { value: ctx.fileValues[name], origin: `${name} (in ${ctx.configFile})` };
  return undefined;
}

/** The database file may be created, its directory must exist: a typo there would otherwise surface as a stack trace. */
function checkDatabaseDirectory(config: Config, origins: Partial<Record<SettingName, string>>, problems: string[]): void {
  if (config.dbPath === ":memory:") return;
  const directory = dirname(resolve(config.dbPath));
  if (!existsSync(directory)) {
    problems.push(`${origins.dbPath ?? envName("dbPath")} = ${config.dbPath}: the directory ${directory} does not exist`);
  }
}

/** A value as a refusal shows it: as JSON, but a number JSON cannot spell (an in-process setting's NaN) as itself, not as "null". */
const describeValue = (value: unknown): string => (value === undefined || (typeof value === "number" && !Number.isFinite(value)) ? String(value) : JSON.stringify(value));
/** A secret setting's value as an error may show it: its length, never its text (logs and terminals keep what they print). */
const describeSecret = (value: unknown): string => {
  // Which kind of character is wrong, never which character: enough to find a stray space.
  if (typeof value === "string") {
    const kinds = unsendableKinds(value);
    return `${value.length} characters${kinds.length === 0 ? "" : `, with ${kinds.join(" and ")} characters among them`}, not shown`;
  }
  const kind = value === null ? "null" : Array.isArray(value) ? "a list" : typeof value === "object" ? "an object" : `a ${typeof value}`;
  return `${kind}, not shown`;
};

/** Rules between settings. Each message names both settings the way the user gave them (or their env name when defaulted). */
function checkRelations(config: Config, origins: Partial<Record<SettingName, string>>, problems: string[]): void {
  const label = (name: SettingName) => `${origins[name] ?? envName(name)} = ${String(config[name])}${origins[name] ? "" : " (default)"}`;
  if (config.agentOfflineMs <= config.agentStaleMs) {
    problems.push(`${label("agentOfflineMs")} must be greater than ${label("agentStaleMs")}`);
  }
  if (config.retryMaxMs < config.retryBaseMs) {
    problems.push(`${label("retryMaxMs")} must be at least ${label("retryBaseMs")}`);
  }
  if (config.leaseMs > config.maxLeaseMs) {
    problems.push(`${label("leaseMs")} must be at most ${label("maxLeaseMs")}`);
  }
  if ((config.tlsCert === "") !== (config.tlsKey === "")) {
    problems.push(`${label(config.tlsCert === "" ? "tlsKey" : "tlsCert")} needs ${envName(config.tlsCert === "" ? "tlsCert" : "tlsKey")} too: TLS takes a certificate and its key`);
  }
  const missing = (["tlsCert", "tlsKey"] as const).filter((name) => config[name] !== "" && !existsSync(config[name]));
  for (const name of missing) problems.push(`${label(name)}: no such file`);
  if (config.tlsCert !== "" && config.tlsKey !== "" && missing.length === 0) {
    // Checked now, so a file that is not PEM, or a key that is not the certificate's, is a
    // sentence naming both settings, not a server that fails halfway through starting. Files
    // this user cannot read are left to the server (createServer says so): the operator's other
    // commands (tokens, migrate, backup) read the same settings and need no key.
    let pair: { cert: Buffer; key: Buffer } | undefined;
    try {
      pair = { cert: readFileSync(config.tlsCert), key: readFileSync(config.tlsKey) };
    } catch {
      pair = undefined;
    }
    if (pair !== undefined) {
      try {
        createSecureContext(pair);
      } catch (error) {
        problems.push(`${label("tlsCert")} with ${label("tlsKey")}: not a PEM certificate and its private key (${error instanceof Error ? error.message : String(error)})`);
      }
    }
  }
}
