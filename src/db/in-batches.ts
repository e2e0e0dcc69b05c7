// Work too large for one write (pruning, a health check over a whole fleet) done as a series of
// bounded writes, the event loop and the writer given back between them, so the hot paths never
// wait behind one long transaction.

/**
 * Runs `batch`, one write of at most `size` rows that says how many it did, until one does fewer
 * than `size`; yields to the event loop between writes. The rows done in all.
 */
export async function inBatches(size: number, batch: () => Promise<number>): Promise<number> {
  let total = 0;
  for (;;) {
    const done = await batch();
    total += done;
    if (done < size) return total;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}
