// `coordination tokens …`: issue, list and revoke credentials on the database file directly, with
// or without a server running on it (WAL lets both work at once; a running server sees the change
// within tokenRefreshMs). The secret of a new token goes alone to stdout, so
// `TOKEN=$(coordination tokens create --agent worker-1)` captures it; everything else to stderr.
import { existsSync } from "node:fs";
import type { Config } from "./config.js";
import { toErrorBody } from "./trpc/error-shape.js";
import { keyPrefixesText, printable, when } from "./cli-text.js";

export const TOKENS_USAGE = [
  "Usage: coordination tokens create --agent AGENT_ID [--name TEXT]   an agent credential",
  "         [--kv-prefix TEXT]...                                     it writes only the keys starting with one of these",
  "       coordination tokens create --role read|admin [--name TEXT]  a read-only or admin credential",
  "       coordination tokens list [--all] [--json]                   credentials (--all: revoked ones too)",
  "       coordination tokens revoke TOKEN_ID                         refuse it from now on",
  "Each also takes --db PATH and --config FILE.yaml, as the server does.",
].join("\n");

export class TokensUsageError extends Error {}

export interface TokensCommand {
  action: "create" | "list" | "revoke";
  options: Record<string, string | true>;
  positional: string[];
  /** --kv-prefix, each time it was given, in order. */
  kvPrefixes: string[];
}

/** Splits `tokens` arguments; --db and --config are returned for the configuration. */
export function parseTokensArgs(argv: string[]): { command: TokensCommand; db?: string; configFile?: string } {
  const [action, ...rest] = argv;
  if (action !== "create" && action !== "list" && action !== "revoke") throw new TokensUsageError(action === undefined ? "tokens needs an action" : `unknown tokens action "${action}"`);
  const allowed: Record<string, "value" | "values" | "switch"> =
    action === "create" ? { "--agent": "value", "--role": "value", "--name": "value", "--kv-prefix": "values" } : action === "list" ? { "--all": "switch", "--json": "switch" } : {};
  const options: Record<string, string | true> = {};
  const kvPrefixes: string[] = [];
  const positional: string[] = [];
  let db: string | undefined;
  let configFile: string | undefined;
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!;
    if (!arg.startsWith("--")) {
      positional.push(arg);
      continue;
    }
    const [flag, inline] = arg.includes("=") ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)] : [arg, undefined];
    const kind = flag === "--db" || flag === "--config" ? "value" : allowed[flag];
    if (kind === undefined) throw new TokensUsageError(`tokens ${action}: unknown option "${flag}"`);
    if (kind === "switch") {
      options[flag] = true;
      continue;
    }
    const value = inline ?? rest[++i];
    if (value === undefined || (inline === undefined && value.startsWith("--"))) throw new TokensUsageError(`${flag} needs a value`);
    if (flag === "--db") db = value;
    else if (flag === "--config") configFile = value;
    else if (kind === "values") kvPrefixes.push(value);
    else options[flag] = value;
  }
  if (action === "revoke" ? positional.length !== 1 : positional.length !== 0) {
    throw new TokensUsageError(action === "revoke" ? "tokens revoke takes one TOKEN_ID" : `tokens ${action}: unexpected "${positional[0]}"`);
  }
  return { command: { action, options, positional, kvPrefixes }, ...(db === undefined ? {} : { db }), ...(configFile === undefined ? {} : { configFile }) };
}

/** Runs a tokens command on the configured database; returns the exit code (0 done, 2 refused input). */
export async function runTokensCommand(command: TokensCommand, config: Config, out: { stdout: (text: string) => void; stderr: (text: string) => void }): Promise<number> {
  // Loaded here: the other commands need none of it.
  const [{ openDatabase }, { pendingMigrations }, { checkBeforeMigrating, checkSchema, DatabaseRefused, unlessLocked }, { Statements }, { TokenStore, toTokenView }, { createTokenInput }, { ADMIN_TOKEN_ID, ADMIN_TOKEN_NOT_REVOCABLE }] = await Promise.all([
    import("./db/open-database.js"),
    import("./db/migrate.js"),
    import("./db/startup-checks.js"),
    import("./db/statements.js"),
    import("./auth/token-store.js"),
    import("./auth/token-schemas.js"),
    import("./auth/credentials.js"),
  ]);
  // A typo in --db must not create an empty database whose tokens no server will read.
  if (config.dbPath !== ":memory:" && !existsSync(config.dbPath)) {
    out.stderr(`coordination tokens: no database at ${config.dbPath} (start the server once to create it, or give --db)\n`);
    return 2;
  }
  // The server's checks of the file (one sentence and exit 3 for what it refuses: not a database,
  // damaged, migrated by a newer version). A tokens command never migrates: a server of the
  // version that wrote the file may be running on it, and would be refused at its next start.
  checkBeforeMigrating(config);
  const db = unlessLocked(config.dbPath, () => openDatabase(config));
  try {
    // A server writing its own work waits its turn; one held past busyTimeoutMs (an open sqlite3
    // shell in a transaction) is said in one line, not thrown on with a stack.
    return unlessLocked(config.dbPath, () => {
      const pending = pendingMigrations(db);
      if (pending.length > 0) {
        throw new DatabaseRefused(
          `the database file ${config.dbPath} lacks migrations this version brings (${pending.join(", ")}): run \`coordination migrate\`, or start this version's server on it, first`,
        );
      }
      checkSchema(db, config.dbPath);
      const tokens = new TokenStore(new Statements(db));
      const now = Date.now();
      if (command.action === "create") {
        const agentId = command.options["--agent"];
        if (agentId === undefined && command.options["--role"] === undefined) {
          out.stderr("coordination tokens create: give --agent AGENT_ID, or --role read|admin\n");
          return 2;
        }
        const parsed = createTokenInput.safeParse({
          role: command.options["--role"] ?? (agentId === undefined ? undefined : "agent"),
          ...(agentId === undefined ? {} : { agentId }),
          ...(command.options["--name"] === undefined ? {} : { name: command.options["--name"] }),
          ...(command.kvPrefixes.length === 0 ? {} : { kvPrefixes: command.kvPrefixes }),
        });
        if (!parsed.success) {
          out.stderr(`coordination tokens create: ${toErrorBody(parsed.error).message}\n`);
          return 2;
        }
        const issued = tokens.create(parsed.data, now);
        const { token } = issued;
        const scope = token.kvPrefixes === null ? "" : `, writes only keys starting with ${keyPrefixesText(token.kvPrefixes)}`;
        out.stderr(`issued token ${token.id} (role ${token.role}${token.agentId ? `, agent ${token.agentId}` : ""}${scope}); its secret follows, shown this once\n`);
        out.stdout(`${issued.secret}\n`);
        return 0;
      }
      if (command.action === "revoke") {
        const id = command.positional[0]!;
        if (id === ADMIN_TOKEN_ID) {
          out.stderr(`coordination tokens revoke: ${ADMIN_TOKEN_NOT_REVOCABLE}\n`);
          return 2;
        }
        const row = tokens.revoke(id, now);
        if (!row) {
          out.stderr(`coordination tokens revoke: no token "${id}"\n`);
          return 2;
        }
        out.stderr(`revoked token ${id}${row.revokedAt !== null && Number(row.revokedAt) !== now ? " (it already was)" : ""}\n`);
        return 0;
      }
      const views = tokens.list(command.options["--all"] === true).map(toTokenView);
      if (command.options["--json"] === true) {
        out.stdout(`${JSON.stringify(views, null, 2)}\n`);
        return 0;
      }
      // Times as the operator's other tables show them; names escaped as they do agents' text (a
      // control character in a name is not a terminal command).
      const rows = views.map((t) => [
        t.id,
        t.role,
        printable(t.agentId ?? "-"),
        printable(t.name || "-"),
        t.kvPrefixes === null ? "-" : keyPrefixesText(t.kvPrefixes),
        when(t.createdAt),
        t.lastUsedAt === null ? "never" : when(t.lastUsedAt),
        when(t.revokedAt),
      ]);
      const header = ["ID", "ROLE", "AGENT", "NAME", "WRITES KEYS", "CREATED", "LAST USED", "REVOKED"];
      const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
      for (const row of [header, ...rows]) out.stdout(`${row.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd()}\n`);
      return 0;
    });
  } finally {
    db.close();
  }
}
