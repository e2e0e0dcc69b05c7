// The domain's one error type. Services throw it with a closed `reason`; src/trpc/init.ts
// translates it to a tRPC code (and so to an HTTP status on REST) in one place.

export const ERROR_REASONS = {
  TASK_NOT_FOUND: "NOT_FOUND",
  AGENT_NOT_FOUND: "NOT_FOUND",
  SUBSCRIPTION_NOT_FOUND: "NOT_FOUND",
  /** The caller does not hold the task's current lease (expired and re-claimed, or never held). */
  LEASE_CONFLICT: "CONFLICT",
  /** The task is in a state that does not allow the operation (e.g. requeue a pending task). */
  INVALID_STATE: "CONFLICT",
  /** An idempotency key was reused with a different task definition. */
  IDEMPOTENCY_MISMATCH: "CONFLICT",
  /** A cursor or lastEventId points before the retained part of the event log. */
  EVENTS_PRUNED: "PRECONDITION_FAILED",
  INVALID_INPUT: "BAD_REQUEST",
  SHUTTING_DOWN: "SERVICE_UNAVAILABLE",
} as const;

export type ErrorReason = keyof typeof ERROR_REASONS;

export class CoordinationError extends Error {
  override name = "CoordinationError";
  constructor(
    readonly reason: ErrorReason,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

export const notFound = (reason: Extract<ErrorReason, `${string}_NOT_FOUND`>, id: string): CoordinationError =>
  new CoordinationError(reason, `${reason.replace("_NOT_FOUND", "").toLowerCase()} "${id}" not found`, { id });
