// Waiting for the server's clock (this machine's) to pass a time the server answered: a sleep is
// a lower bound, so what a test sees after it holds whatever the machine's speed.
import { setTimeout as sleep } from "node:timers/promises";

/** Waits until this machine's clock has passed `at` (by a millisecond or more). */
export async function pastTime(at: Date): Promise<void> {
  while (Date.now() <= at.getTime() + 1) await sleep(Math.max(1, at.getTime() + 2 - Date.now()));
}
