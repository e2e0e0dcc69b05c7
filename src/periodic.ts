// Background jobs (lease sweeper, agent health monitor, pruners, memory index compaction) with a lifecycle:
// started and stopped by the app, never a module-level timer. A run never overlaps the previous one.
// A job survives its failures (a full disk, a read-only file): it runs again next tick, and an
// episode of failures is logged once when it starts and once when it ends, never once per tick.
import type { Logger } from "./logger.js";

export class PeriodicJob {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = true;
  /** Runs failed in a row (0: the last run succeeded). */
  private failures = 0;
  /** Runs ended since start, failed or not (tests wait on it). */
  runs = 0;

  constructor(
    private readonly name: string,
    private readonly intervalMs: number,
    private readonly run: () => Promise<unknown>,
    private readonly log: Logger,
  ) {}

  /** An interval of 0 turns the job off: start does nothing (runNow still runs it). */
  start(): void {
    if (this.intervalMs <= 0) return;
    this.stopped = false;
    this.schedule();
  }

  /** Runs the job now (tests, and start-up catch-up); waits for a run already under way. */
  async runNow(): Promise<void> {
    if (this.running) return this.running;
    this.running = this.run()
      .then(() => {
        if (this.failures > 0) this.log.info({ job: this.name, failedRuns: this.failures }, "background job works again");
        this.failures = 0;
      })
      .catch((error: unknown) => {
        if (this.failures === 0) this.log.error({ err: error, job: this.name }, "background job failed; retrying every tick, logging again when it works");
        else this.log.debug({ err: error, job: this.name }, "background job failed again");
        this.failures++;
      })
      .finally(() => {
        this.running = undefined;
        this.runs++;
      });
    return this.running;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.runNow().then(() => this.schedule());
    }, this.intervalMs);
    this.timer.unref();
  }
}
