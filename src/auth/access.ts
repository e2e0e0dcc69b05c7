// Who may call what. Every procedure declares its access in its meta (src/trpc/meta.ts); the
// base procedure (src/trpc/init.ts) applies it to every call, on every transport, before the
// input is validated, so identity is filled in where the seed's routes do not send one.
//  - open: anyone (health);
//  - read: any credential (read-only dashboards, metrics, agents, admins);
//  - agent: an agent or an admin credential;
//  - admin: an admin credential only.
// An agent credential acts as its own agent only: the field naming the acting agent (`actingAs`)
// is filled in when absent and must name that agent when present (403 otherwise). A read
// credential acts as no agent: such a field is refused. Admins may act as any agent; their calls
// that change something are logged.
import { CoordinationError, invalidField } from "../errors.js";
import type { Logger } from "../logger.js";
import type { Caller, Role } from "../trpc/context.js";
import type { Access } from "../trpc/meta.js";

export type { Access };

/** Access of a call an agent makes as itself (claims, settles, polls, registration). */
export const AS_AGENT: Access = { role: "agent", actingAs: { field: "agentId", fill: true } };
/** Access of a write of one key of the shared state, as the agent: within the credential's kvPrefixes. */
export const WRITES_KEY: Access = { ...AS_AGENT, writesKey: "key" };
export const AGENT: Access = { role: "agent" };
export const READ: Access = { role: "read" };
export const ADMIN: Access = { role: "admin" };
export const OPEN: Access = { role: "open" };

const ALLOWED: Record<Access["role"], readonly Role[]> = {
  open: ["admin", "agent", "read"],
  read: ["admin", "agent", "read"],
  agent: ["admin", "agent"],
  admin: ["admin"],
};

/** The id of the credential that makes a call (a token's id), for "who did it" fields (pausedBy, setBy, …); null on an open server and in-process. */
export const credentialIdOf = (caller: Caller): string | null => (caller.kind === "token" ? caller.tokenId : null);

/** The 401: no detail about why (missing, unknown and revoked look the same). */
export const unauthorized = () => new CoordinationError("UNAUTHORIZED", "Unauthorized: send a valid bearer token (Authorization: Bearer <token>)");

const forbidden = (message: string) => new CoordinationError("FORBIDDEN", message);

/**
 * Checks `caller` may make this call; returns the raw input to validate, with the acting agent
 * filled in for an agent credential. Throws UNAUTHORIZED or FORBIDDEN.
 */
export function authorize(access: Access, caller: Caller, path: string, rawInput: unknown, log: Logger): unknown {
  if (caller.kind === "trusted" || caller.kind === "open" || access.role === "open") return rawInput;
  if (caller.kind === "anonymous") throw unauthorized();
  if (!ALLOWED[access.role].includes(caller.role)) {
    throw forbidden(`${caller.role === "admin" || caller.role === "agent" ? "an" : "a"} ${caller.role} credential may not call ${path} (it needs ${ALLOWED[access.role].join(" or ")})`);
  }
  if (caller.role === "admin") {
    if (access.role !== "read") log.info({ tokenId: caller.tokenId, path }, "admin call");
    return rawInput;
  }
  if (access.writesKey !== undefined && caller.kvPrefixes !== null) checkKeyScope(caller.kvPrefixes, access.writesKey, rawInput, path);
  if (access.actingAs === undefined) return rawInput;
  const { field, fill } = access.actingAs;
  const input = rawInput === undefined ? {} : rawInput;
  // Not an object: nothing to fill or check; the schema refuses it with a 400.
  if (typeof input !== "object" || input === null || Array.isArray(input)) return rawInput;
  const named = (input as Record<string, unknown>)[field];
  if (caller.role === "read") {
    if (named !== undefined) throw forbidden(`a read credential acts as no agent: ${field} is not allowed in ${path}`);
    return rawInput;
  }
  if (named === undefined) return fill ? { ...input, [field]: caller.agentId } : rawInput;
  // Not a name at all (null, a number): a malformed request (400), not another agent's.
  if (typeof named !== "string") throw invalidField(field, `must be a string (got ${named === null ? "null" : Array.isArray(named) ? "array" : typeof named})`);
  if (named !== caller.agentId) {
    throw forbidden(`this credential acts as agent ${JSON.stringify(caller.agentId)}; ${field} ${JSON.stringify(named)} names another agent`);
  }
  return rawInput;
}

/**
 * Throws FORBIDDEN unless the key `input[field]` starts with one of `prefixes`. A key that is no
 * string (or no input at all) is left to the schema's 400.
 */
function checkKeyScope(prefixes: readonly string[], field: string, input: unknown, path: string): void {
  if (typeof input !== "object" || input === null) return;
  const key = (input as Record<string, unknown>)[field];
  if (typeof key !== "string" || prefixes.some((prefix) => key.startsWith(prefix))) return;
  const shown = prefixes.slice(0, 3).map((prefix) => JSON.stringify(prefix));
  const more = prefixes.length > 3 ? ` (and ${prefixes.length - 3} more)` : "";
  throw forbidden(`this credential writes only keys starting with ${shown.join(" or ")}${more}; ${path} names ${field} ${JSON.stringify(key.length > 100 ? `${key.slice(0, 100)}…` : key)}`);
}

/** For answers that hold other agents' direct messages: whose a caller may see (undefined: everyone's). */
export function mailboxViewOf(caller: Caller): { recipient: string | null } | undefined {
  if (caller.kind !== "token" || caller.role === "admin") return undefined;
  return { recipient: caller.role === "agent" ? caller.agentId : null };
}

/** Event types the server itself publishes: an agent credential may not publish them. */
export const RESERVED_EVENT_TYPE = /^(task|agent|queue|schedule|lock|semaphore|webhook|kv)\./;

/** Refuses an event an agent could forge as the server's own (task.*, agent.*, queue.*, schedule.*, lock.*, semaphore.*, webhook.*, kv.*). */
export function assertMayPublish(caller: Caller, type: string): void {
  if (caller.kind === "token" && caller.role !== "admin" && RESERVED_EVENT_TYPE.test(type)) {
    throw forbidden(`type ${JSON.stringify(type)}: task.*, agent.*, queue.*, schedule.*, lock.*, semaphore.*, webhook.* and kv.* are the server's own events; an agent may not publish them`);
  }
}
