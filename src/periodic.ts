// Background jobs (lease sweeper, agent health monitor, event pruner) with a lifecycle:
// started and stopped by the app, never a module-level timer. A run never overlaps the previous one.
import type { Logger } from "./logger.js";

export class PeriodicJob {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = true;

  constructor(
    private readonly name: string,
    private readonly intervalMs: number,
    private readonly run: () => Promise<unknown>,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.stopped = false;
    this.schedule();
  }

  /** Runs the job now (tests, and start-up catch-up); waits for a run already under way. */
  async runNow(): Promise<void> {
    if (this.running) return this.running;
    this.running = this.run()
      .then(() => undefined)
      .catch((error: unknown) => this.log.error({ err: error, job: this.name }, "background job failed"))
      .finally(() => {
        this.running = undefined;
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
