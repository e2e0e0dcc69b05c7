// A deterministic pseudo-random source for tests that draw many cases (mulberry32): the same seed
// gives the same cases on every machine, so a failure can be run again.

/** Numbers in [0, 1), the same sequence for the same `seed`. */
export function seededRandom(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
