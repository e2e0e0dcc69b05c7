// A count per key (an agent, a socket) with a ceiling: what keeps one client from holding more
// than its share of a resource the server keeps for it (parked long-polls, subscriptions).
import { CoordinationError } from "./errors.js";

export class PerKeyLimit {
  private readonly held = new Map<string, number>();

  /** `what(limit)` names the resource in the 429's message: "long-polls waiting for agent a-1". */
  constructor(
    private readonly limit: number,
    private readonly what: (key: string, limit: number) => string,
    private readonly setting: string,
  ) {}

  /** Takes one for `key`; returns its release (idempotent). Throws LIMIT_EXCEEDED at the ceiling. */
  acquire(key: string): () => void {
    const count = this.held.get(key) ?? 0;
    if (count >= this.limit) {
      throw new CoordinationError("LIMIT_EXCEEDED", `${this.what(key, this.limit)}: the limit is ${this.limit} (setting ${this.setting})`, { limit: this.limit });
    }
    this.held.set(key, count + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.held.get(key) ?? 1) - 1;
      if (left === 0) this.held.delete(key);
      else this.held.set(key, left);
    };
  }

  count(key: string): number {
    return this.held.get(key) ?? 0;
  }
}
