// The one error vocabulary. Every error a client can see has one shape, { code, message,
// details? }: the body of a REST error, and tRPC's error `data` (with the message on the error
// itself). `code` comes from the closed list below; its HTTP status is fixed by it. Services throw
// CoordinationError with a domain code; src/trpc/error-shape.ts translates everything else
// (validation, parse and transport errors) into the same list, in one place.
import { copyWith } from "./copy-with.js";

/** Every code a client can see, with its HTTP status. */
export const ERROR_STATUS = {
  /** The input failed validation; `details.issues` lists each field and what is wrong. */
  INVALID_INPUT: 400,
  /** The request body is not valid JSON. */
  MALFORMED_JSON: 400,
  /** No credential, or one the server does not know (or revoked). Says nothing more, by design. */
  UNAUTHORIZED: 401,
  /** The credential is valid but may not do this (its role, or another agent's identity); also a Host or Origin the server does not serve. */
  FORBIDDEN: 403,
  TASK_NOT_FOUND: 404,
  AGENT_NOT_FOUND: 404,
  SUBSCRIPTION_NOT_FOUND: 404,
  TOKEN_NOT_FOUND: 404,
  MEMORY_NOT_FOUND: 404,
  SCHEDULE_NOT_FOUND: 404,
  WEBHOOK_NOT_FOUND: 404,
  /** No route or procedure at this path. */
  ROUTE_NOT_FOUND: 404,
  /** The path exists, not with this method (REST answers with `Allow`). */
  METHOD_NOT_ALLOWED: 405,
  /** The caller does not hold the task's current lease (expired and re-claimed, or never held). */
  LEASE_CONFLICT: 409,
  /** The task is in a state that does not allow the operation (e.g. requeue a pending task). */
  INVALID_STATE: 409,
  /** An idempotency key was reused with a different task definition. */
  IDEMPOTENCY_MISMATCH: 409,
  /** A compare-and-set (kv.set, kv.delete with ifVersion) met another version of the key; `details.entry` is the key as it is. */
  VERSION_CONFLICT: 409,
  /** An increment (kv.increment) would take the key's number past its min or max: nothing was written; `details.entry` is the key as it is. */
  OUT_OF_RANGE: 409,
  /** A cursor or lastEventId points before the retained part of the event log. */
  EVENTS_PRUNED: 412,
  PAYLOAD_TOO_LARGE: 413,
  /** The request's head or body did not arrive in time (Node's headersTimeout, requestTimeout); the connection closes. */
  REQUEST_TIMEOUT: 408,
  /** A request body that is not application/json. */
  UNSUPPORTED_MEDIA_TYPE: 415,
  /** A per-client limit was reached (subscriptions per socket, calls per batch, parked long-polls per agent, open connections). */
  LIMIT_EXCEEDED: 429,
  /** The URL and headers are longer than the server reads. */
  HEADERS_TOO_LARGE: 431,
  INTERNAL: 500,
  /** The server is shutting down; retry on another instance or after the restart. */
  SHUTTING_DOWN: 503,
  /** The disk holding the database is full: nothing was stored. Retry after Retry-After. */
  DISK_FULL: 503,
  /** The database file (or its directory) cannot be written: nothing was stored. */
  READ_ONLY: 503,
  /** The database could not be read or written (an I/O error, a damaged page): nothing was stored. */
  IO_ERROR: 503,
  /** Another process held the database's write lock past busyTimeoutMs: nothing was stored. Retry. */
  DATABASE_LOCKED: 503,
  /** The database file was deleted or replaced while the server ran: writes are refused until a restart. */
  DATABASE_REPLACED: 503,
} as const;

/** Seconds a client should wait before retrying, for the codes where retrying makes sense (the Retry-After header). */
export const RETRY_AFTER_SECONDS: Partial<Record<ErrorCode, number>> = {
  SHUTTING_DOWN: 1,
  DISK_FULL: 30,
  READ_ONLY: 30,
  IO_ERROR: 30,
  DATABASE_LOCKED: 1,
};

/** Every error code an answer can carry (`code` of the error body, `data.code` of a TRPCClientError), each with its HTTP status in ERROR_STATUS. */
export type ErrorCode = keyof typeof ERROR_STATUS;

/** The error body of every route, and tRPC's error data beside its message. */
export interface ErrorBody {
  code: ErrorCode;
  message: string;
  details?: Record<string, unknown>;
}

/** The codes services throw: the domain's own. */
export type DomainErrorCode = Extract<
  ErrorCode,
  | "INVALID_INPUT"
  | "UNAUTHORIZED"
  | "FORBIDDEN"
  | "LIMIT_EXCEEDED"
  | "TASK_NOT_FOUND"
  | "AGENT_NOT_FOUND"
  | "SUBSCRIPTION_NOT_FOUND"
  | "TOKEN_NOT_FOUND"
  | "MEMORY_NOT_FOUND"
  | "SCHEDULE_NOT_FOUND"
  | "WEBHOOK_NOT_FOUND"
  | "LEASE_CONFLICT"
  | "INVALID_STATE"
  | "IDEMPOTENCY_MISMATCH"
  | "VERSION_CONFLICT"
  | "OUT_OF_RANGE"
  | "EVENTS_PRUNED"
  | "SHUTTING_DOWN"
  | "DISK_FULL"
  | "READ_ONLY"
  | "IO_ERROR"
  | "DATABASE_LOCKED"
  | "DATABASE_REPLACED"
>;

/**
 * An error the API answers with: `code` (TASK_NOT_FOUND, LEASE_CONFLICT, …; the status is
 * ERROR_STATUS[code]), a message for people, and `details` where the code has some (the invalid
 * fields' issues, the pruned-through seq). What the in-process API rejects with.
 */
export class CoordinationError extends Error {
  override name = "CoordinationError";
  constructor(
    readonly code: DomainErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

/**
 * The headers an answer carrying these errors gets, on every transport: Retry-After, the longest
 * any of them asks for, where retrying makes sense (a full disk, a held lock, shutdown), and the
 * bearer challenge with a 401.
 */
export function errorHeaders(codes: readonly ErrorCode[]): Record<string, string> {
  const headers: Record<string, string> = {};
  const retryAfter = Math.max(-1, ...codes.map((code) => RETRY_AFTER_SECONDS[code] ?? -1));
  if (retryAfter >= 0) headers["retry-after"] = String(retryAfter);
  if (codes.includes("UNAUTHORIZED")) headers["www-authenticate"] = "Bearer";
  return headers;
}

/** One field of a 400's `details.issues`: "payload.items[2].name", or "input" for the whole input. */
export interface FieldIssue {
  path: string;
  message: string;
}

/**
 * INVALID_INPUT about one field, shaped as a validation error is: the message names the field
 * first, `details.issues` holds it with its path. `path` "input" is the whole input.
 */
export const invalidField = (path: string, problem: string, details?: Record<string, unknown>): CoordinationError =>
  new CoordinationError("INVALID_INPUT", path === "input" ? problem : `${path}: ${problem}`, copyWith(details ?? {}, { issues: [{ path, message: problem } satisfies FieldIssue] }));

/** The 503 of a server that is stopping: the call did nothing here; the client retries elsewhere or after the restart. */
export const shuttingDown = (): CoordinationError => new CoordinationError("SHUTTING_DOWN", "the server is shutting down; retry on another instance or after restart");

/**
 * A 404 naming what was looked for. An id with white space around it (pasted with its line's
 * end, a model's copy of it) is said so, with the id it may have meant: the server's ids (tasks,
 * memories, webhooks, tokens) never have any.
 */
export const notFound = (code: Extract<DomainErrorCode, `${string}_NOT_FOUND`>, id: string): CoordinationError => {
  const what = code.replace("_NOT_FOUND", "").toLowerCase();
  const trimmed = id.trim();
  return trimmed === id || trimmed === ""
    ? new CoordinationError(code, `${what} "${id}" not found`, { id })
    : new CoordinationError(code, `${what} ${JSON.stringify(id)} not found: it has white space around it (without: ${JSON.stringify(trimmed)})`, { id });
};
