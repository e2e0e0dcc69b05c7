// What recall may have cached is told by a count the two database threads share. The reader's
// recall cache keeps common terms' newest matches, the notes that hold them, and what is made of
// them, for up to a second (recall-cache.ts): without a word from the writer, a memory an agent
// deleted kept being handed out for that second after its delete was acknowledged, and a note it
// had just stored was missing from its own next recall. The writer counts, after the commit,
// every write that deleted memories or added a note or lesson; the reader drops what it cached
// when the count moved. Execution records, written with every finished run, do not count: a
// common word finds them after a second at most (their rare words at once), and the cache stays
// worth having under load.
// Another server process on the same file has its own count: its deletes and notes reach this
// server's cache within the second.

export class MemoryChanges {
  private readonly count: Int32Array;
  /** The count just before the reader's last read transaction began. */
  private atSnapshot: number | undefined;

  /** `shared`: the buffer both threads were given; a new one when there is a single thread (tests). */
  constructor(readonly shared: SharedArrayBuffer = new SharedArrayBuffer(4)) {
    this.count = new Int32Array(shared);
  }

  /** Writer: memories were deleted, or a note or lesson added, by a write that has committed. */
  changed(): void {
    Atomics.add(this.count, 0, 1);
  }

  /**
   * Reader: called just before each read transaction begins. Every change counted by now was
   * committed before it, so the snapshot about to be taken holds it: what recall caches while
   * reading that snapshot is at least as new as this count.
   */
  snapshotBegins(): void {
    this.atSnapshot = Atomics.load(this.count, 0);
  }

  /**
   * The count the reads see at least: as it was when the current (or, outside one, the last) read
   * transaction began; the live count when none ever began (a recall run without one, in tests:
   * each of its statements then reads the newest state).
   */
  get seen(): number {
    return this.atSnapshot ?? Atomics.load(this.count, 0);
  }
}
