// How many of a worker's idle loops park a claim (a long-poll) at once. Each parked claim is one of
// the agent's long-polls, which the server bounds (maxParkedPerAgent, 64 by default): a worker of
// concurrency 100 on an empty queue had 36 loops refused 429 twice a second, each refusal told
// to onError. A claim answers at once while tasks wait, so a few parked claims pick up a burst
// as fast as one a loop: the loop that gets a task hands its turn to the next idle one, which
// claims at once too. Only idle loops wait here, and never with a task: a task in hand runs.

/** The most claims one worker parks at once (fewer with a smaller concurrency). */
export const PARKED_CLAIMS = 8;

export class ParkingGate {
  private parked = 0;
  /** The loops waiting for a turn, first come first woken. */
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly room: number) {}

  /**
   * Waits for a turn to park a claim. Gives the function that ends the turn (call it once the
   * claim is answered or fails; again does nothing), or undefined when `signal` aborted first (the
   * worker stops): no turn was taken.
   */
  async enter(signal: AbortSignal): Promise<(() => void) | undefined> {
    while (this.parked >= this.room) {
      if (signal.aborted) return undefined;
      await new Promise<void>((resolve) => {
        const wake = () => {
          signal.removeEventListener("abort", stop);
          resolve();
        };
        // Out of the line too: a turn handed to a loop that left would wake no one.
        const stop = () => {
          const at = this.waiting.indexOf(wake);
          if (at >= 0) this.waiting.splice(at, 1);
          resolve();
        };
        this.waiting.push(wake);
        signal.addEventListener("abort", stop, { once: true });
      });
    }
    if (signal.aborted) return undefined;
    this.parked++;
    let left = false;
    return () => {
      if (left) return;
      left = true;
      this.parked--;
      this.waiting.shift()?.();
    };
  }
}
