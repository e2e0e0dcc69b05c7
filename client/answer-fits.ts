// An answer the server refused for its size: the agent lists (agents.list, findByCapability)
// answer bare arrays, where a page shorter than its limit reads as the last, so past the
// server's maxResponseBytes they are refused (400 INVALID_INPUT naming limit) with how many of
// the first items fit. No Node module is used here: the dashboard's bundle takes it too.
import { TRPCClientError } from "@trpc/client";

/**
 * How many items fit in one answer, when the server refused a list for passing its
 * maxResponseBytes (INVALID_INPUT naming limit, `details.fits`, at least 1); undefined for any
 * other error. Ask again with `limit` set to it (and page with `after`).
 */
export function fitsInAnswer(error: unknown): number | undefined {
  if (!(error instanceof TRPCClientError)) return undefined;
  const data = error.data as { code?: string; details?: { fits?: unknown } } | undefined;
  const fits = data?.code === "INVALID_INPUT" ? data.details?.fits : undefined;
  return typeof fits === "number" && fits >= 1 ? fits : undefined;
}
