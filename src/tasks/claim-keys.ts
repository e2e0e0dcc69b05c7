// The key a lease keeps of the call that took it (tasks.claimKey), so that the same call sent
// again (its answer lost to a timeout, a proxy, a failover) finds the leases it took instead of
// taking more: "KEY#TOKEN#ANSWERS". KEY is the call's: a complete-and-claim's "after:" and the task
// it completed, a claim's "claim:" and its idempotencyKey (a steal's "steal:"), with "%" and "#" escaped so a key is
// never a prefix of another's value. TOKEN is the leaseToken the key was written for: a lease
// that moved on without this version's claim (an older server on the file) never matches.
// ANSWERS counts the answers that handed this lease out: the first call's, and each repeat's.
// An answer that never reached its client gives the lease back only if it was the only one
// (1): with more, another may have arrived, and it only counts itself out. So whatever order
// the first call and its repeats commit and fail in, a lease one of them delivered is never
// released under its holder, and one none of them delivered is released by the last.
import type { TaskRow } from "./task-store.js";

const escape = (text: string): string => text.replaceAll("%", "%25").replaceAll("#", "%23");

/** The key of a call. */
export const claimKeyOf = {
  completeAndClaim: (completedTaskId: string): string => `after:${escape(completedTaskId)}`,
  claim: (idempotencyKey: string): string => `claim:${escape(idempotencyKey)}`,
  steal: (idempotencyKey: string): string => `steal:${escape(idempotencyKey)}`,
};

/** The column's value for a lease `key` took under `leaseToken`, handed out `answers` times; null without a key. */
export const leaseKey = (key: string | null, leaseToken: number, answers = 1): string | null => (key === null ? null : `${key}#${leaseToken}#${answers}`);

/** A row's key, when it is the current lease's: its call's key and how many answers handed the lease out. */
export function currentLeaseKey(row: Pick<TaskRow, "claimKey" | "leaseToken">): { key: string; answers: number } | undefined {
  if (row.claimKey === null) return undefined;
  const last = row.claimKey.lastIndexOf("#");
  const middle = row.claimKey.lastIndexOf("#", last - 1);
  if (middle < 0 || row.claimKey.slice(middle + 1, last) !== String(row.leaseToken)) return undefined;
  return { key: row.claimKey.slice(0, middle), answers: Number(row.claimKey.slice(last + 1)) };
}
