// What the task-wait tests (tasks-wait.test.ts, tasks-wait-many.test.ts) share: settings under
// which only a wake-up answers a parked wait in time, and the checks built on them.
import { expect, vi } from "vitest";
import { parkedLongPolls } from "./mcp-http.js";

/**
 * A parked wait looks again by itself after safetyRelookMs (at least 30 s; 50 s with these
 * settings), and answers what it reads when waitMs runs out: either would answer a settled task
 * without the wake-up a test is about. So waits ask for LONG_WAIT_MS, and each answer is checked
 * to come well before either could (within ANSWERED_MS of the settle: a wake-up takes milliseconds).
 */
export const WAKE_ONLY = { crossProcessPollMs: 10_000, maxWaitMs: 300_000 };
export const LONG_WAIT_MS = 90_000;
const ANSWERED_MS = 10_000;

/** `answer` settled within ANSWERED_MS of now (the settle that should wake it just committed). */
export async function promptly<T>(answer: Promise<T>): Promise<T> {
  const from = Date.now();
  const value = await answer;
  expect(Date.now() - from).toBeLessThan(ANSWERED_MS);
  return value;
}

/** Resolves once the server at `url` has `count` task waits parked. */
export const parked = (url: string, count: number, token?: string) =>
  vi.waitFor(async () => expect(await parkedLongPolls(url, "wait", token)).toBe(count), { timeout: 15_000, interval: 20 });
