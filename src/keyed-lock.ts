// One holder per key at a time, served in arrival order; other keys never wait. Used where two
// concurrent calls for one agent must not interleave (auto-ack polls, see event-service.ts).

export class KeyedLock {
  private readonly tails = new Map<string, Promise<void>>();

  /** Resolves when `key` is free, with the function that frees it again (idempotent). */
  async acquire(key: string): Promise<() => void> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let unlock!: () => void;
    const held = new Promise<void>((resolve) => (unlock = resolve));
    const tail = previous.then(() => held);
    this.tails.set(key, tail);
    await previous;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      unlock();
      // The last holder in line removes the key, so the map holds only keys in use.
      if (this.tails.get(key) === tail) this.tails.delete(key);
    };
  }

  /** Keys held or waited for (observability and leak checks in tests). */
  get size(): number {
    return this.tails.size;
  }
}
