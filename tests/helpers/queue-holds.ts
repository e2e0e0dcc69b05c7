// What the tests of paused, limited and rate-limited queues look at: where a queue's tasks are,
// and how many claim attempts (writes on the writer) the server makes.
import { withDatabase, type TestServer } from "./test-server.js";

/** How many of `queue`'s tasks are pending held, pending in the claim indexes, and leased. */
export function queueRows(server: TestServer, queue: string): { held: number; claimable: number; leased: number } {
  return withDatabase(server, (db) => {
    const count = (where: string) => db.prepare(`SELECT count(*) FROM tasks WHERE queue = ? AND ${where}`).pluck().get(queue) as number;
    return { held: count("status = 'pending' AND held = 1"), claimable: count("status = 'pending' AND held = 0"), leased: count("status = 'claimed'") };
  });
}

/**
 * Settings for a server whose claim attempts a test counts: a parked claim looks again by itself
 * only after 50 s (safetyRelookMs), so the count is of wake-ups alone. With the default 30 s, a
 * full run on a loaded machine once took that long, and the re-look added an attempt.
 */
export const NO_EARLY_RELOOK = { crossProcessPollMs: 10_000 } as const;

/** Counts the claim attempts the server makes from now on: each wake-up of a parked claim is one more. */
export function countClaimAttempts(server: TestServer): () => number {
  const db = server.server.services.db;
  const handOut = db.handOut.bind(db);
  let attempts = 0;
  db.handOut = ((op, args) => {
    if (op === "tasks.claim") attempts++;
    return handOut(op, args);
  }) as typeof db.handOut;
  return () => attempts;
}
