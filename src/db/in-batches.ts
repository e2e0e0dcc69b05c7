// Work too large for one write (pruning, a health check over a whole fleet) done as a series of
// bounded writes, the event loop and the writer given back between them, so the hot paths never
// wait behind one long transaction.

/**
 * Runs `batch`, one write of at most `size` rows that says how many it did, until one does fewer
 * than `size`; yields to the event loop between writes. The rows done in all.
 */
export function inBatches(size: number, batch: () => Promise<number>): Promise<number> {
  return whileMore(async () => {
    const done = await batch();
    return { done, more: done >= size };
  });
}

/**
 * Runs `batch`, one bounded write that says how many rows it did and whether work is left, until
 * none is; yields to the event loop between writes. For work whose batches may do fewer rows than
 * their bound and still not be done (a range of seqs with gaps). The rows done in all.
 */
export async function whileMore(batch: () => Promise<{ done: number; more: boolean }>): Promise<number> {
  let total = 0;
  for (;;) {
    const { done, more } = await batch();
    total += done;
    if (!more) return total;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}
