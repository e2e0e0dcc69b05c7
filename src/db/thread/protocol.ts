// Messages between the event loop and the database threads (src/db/thread/database-thread.ts).
// Everything crosses as structured clones: plain objects, arrays, Dates. Errors cross as data and
// are rebuilt on the other side: a CoordinationError keeps its code, message and details; any
// other error keeps its name, message and SQLite code (SQLITE_FULL, SQLITE_BUSY, …).
import { CoordinationError, type DomainErrorCode } from "../../errors.js";
import type { RecallAnswer } from "./recall-relay.js";

export type ThreadRole = "writer" | "reader";

export interface Call {
  id: number;
  op: string;
  args: unknown;
}

export type SerializedError =
  | { domain: true; code: DomainErrorCode; message: string; details?: Record<string, unknown> }
  | { domain: false; name: string; message: string; code?: string; stack?: string };

export type Outcome = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: SerializedError };

/** To a thread. */
export type ToThread = { kind: "calls"; calls: Call[] } | { kind: "close" };

/** From a thread. `events`: what a writer's batch appended to the log, in seq order, after its commit. */
export type FromThread =
  | { kind: "ready" }
  | { kind: "failed"; error: SerializedError }
  | { kind: "results"; outcomes: Outcome[]; events: unknown[]; batches?: Array<{ writes: number; ms: number }> }
  /** Reader only: the context of claims, asked for by the writer (recall-relay.ts). */
  | { kind: "recalled"; answers: RecallAnswer[] }
  | { kind: "log"; level: "debug" | "info" | "warn" | "error"; fields: Record<string, unknown>; message: string }
  /** `error`: closing did not finish cleanly (the WAL checkpoint failed on a full or failing disk); the connection was closed all the same. */
  | { kind: "closed"; error?: SerializedError };

export function serializeError(error: unknown): SerializedError {
  if (error instanceof CoordinationError) {
    return { domain: true, code: error.code, message: error.message, ...(error.details ? { details: error.details } : {}) };
  }
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return { domain: false, name: error.name, message: error.message, ...(typeof code === "string" ? { code } : {}), ...(error.stack ? { stack: error.stack } : {}) };
  }
  return { domain: false, name: "Error", message: asText(error) };
}

/** A thrown value that is not an Error, as text; some cannot be (an object without a prototype). */
function asText(value: unknown): string {
  try {
    return String(value);
  } catch {
    return `a thrown ${typeof value} that cannot be shown as text`;
  }
}

/** An error from a database thread that is not a domain error: its SQLite code, when it has one. */
export class DatabaseThreadError extends Error {
  constructor(
    override readonly name: string,
    message: string,
    readonly code: string | undefined,
    stack: string | undefined,
  ) {
    super(message);
    if (stack) this.stack = stack;
  }
}

export function deserializeError(error: SerializedError): Error {
  if (error.domain) return new CoordinationError(error.code, error.message, error.details);
  return new DatabaseThreadError(error.name, error.message, error.code, error.stack);
}
