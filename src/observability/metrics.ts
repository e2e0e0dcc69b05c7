// Prometheus metrics (prom-client), served at /metrics. Counters and histograms follow this
// process's own commits (the events its writer appended: in a deployment of several processes
// on one file, each counts its own work and Prometheus sums them); gauges of state (tasks per
// queue and state, agents per health, the event log's window) are read from the database when
// scraped, on the reader thread. Node's default metrics (event-loop delay among them) come with.
import { performance } from "node:perf_hooks";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import { DEGRADING_FAULTS } from "../db/faults.js";
import type { Database } from "../db/thread/database.js";
import type { CoordinationEvent } from "../events/event-schemas.js";
import type { LiveStreamStats } from "../events/event-stream.js";
import { QueueLabels, type QueueLabel } from "./queue-labels.js";
import { payloadFields } from "../events/system-events.js";
import { SCHEDULE_STATES } from "../schedules/schedule-store.js";

export interface MetricsSources {
  db: Database;
  /** Task counts (shared with every other caller for a second: counting reads every task). */
  taskStats: () => Promise<{ queues: Array<{ queue: string; counts: Record<string, number>; scheduled: number; oldestPendingAgeMs: number | null; paused: boolean }> }>;
  /** Long-polls parked now. */
  parked: () => { claims: number; polls: number; waits: number; locks: number; semaphores: number; watches: number; follows: number };
  /** The open live streams. */
  liveStreams: () => Iterable<LiveStreamStats>;
  /** Webhook delivery attempts this process made since it started, by how they went. */
  webhookAttempts: () => { delivered: number; failed: number };
  /** The most queues given a label of their own; the rest share the overflow series (queue-labels.ts). */
  maxMetricsQueues: number;
}

/** Seconds, for waits and runs: from a millisecond to a day. */
const DURATION_BUCKETS = [0.001, 0.005, 0.025, 0.1, 0.5, 1, 5, 30, 120, 600, 3600, 86_400];

/** A per-queue series is labelled by its queue, or as the overflow of queues past the bound. */
const QUEUE_LABEL_NAMES = ["queue", "queue_overflow"] as const;
type QueueLabelName = (typeof QUEUE_LABEL_NAMES)[number];

/** Lock and semaphore events, counted in coordination_lock_transitions_total and coordination_semaphore_transitions_total, by their transition. */
const GRANT_COUNTED: Record<string, { of: "lock" | "semaphore"; transition: string }> = {
  "lock.acquired": { of: "lock", transition: "acquired" },
  "lock.released": { of: "lock", transition: "released" },
  "lock.expired": { of: "lock", transition: "expired" },
  "semaphore.acquired": { of: "semaphore", transition: "acquired" },
  "semaphore.released": { of: "semaphore", transition: "released" },
  "semaphore.expired": { of: "semaphore", transition: "expired" },
};

/** Shared state's events, counted in coordination_kv_writes_total by what they did to a key. */
const KV_COUNTED: Record<string, string> = { "kv.set": "set", "kv.deleted": "deleted", "kv.expired": "expired" };

const COUNTED: Record<string, string> = {
  "task.enqueued": "enqueued",
  "task.ready": "ready",
  "task.deduplicated": "deduplicated",
  "task.claimed": "claimed",
  "task.checkpointed": "checkpointed",
  "task.completed": "completed",
  "task.failed": "failed",
  "task.dead_lettered": "dead_lettered",
  "task.lease_expired": "lease_expired",
};
/** A task.cancelled is counted when it is an expiry (its `expired`), as "expired"; an operator's cancels are not. */
const EXPIRED = "expired";
/** A task.lease_expired of a run that reached its time limit (its `timedOut`) is counted as "timed_out", not "lease_expired". */
const TIMED_OUT = "timed_out";

export class Metrics {
  readonly registry = new Registry();
  private readonly queueLabels: QueueLabels;
  private readonly transitions: Counter<QueueLabelName | "transition">;
  private readonly grantTransitions: Record<"lock" | "semaphore", Counter<"transition">>;
  private readonly kvWrites: Counter<"kind">;
  private readonly logLines: Counter;
  private readonly waited: Histogram<QueueLabelName>;
  private readonly ran: Histogram<QueueLabelName | "outcome">;
  private readonly batchWrites: Histogram;
  private readonly commitSeconds: Histogram;
  /** HTTP responses by status ("none": closed before one went out), counted as they close (a plain map: prom-client's labelled inc costs more per request). */
  private readonly responses = new Map<number | "none", number>();

  constructor(sources: MetricsSources) {
    const registers = [this.registry];
    const queueLabels = (this.queueLabels = new QueueLabels(sources.maxMetricsQueues));
    collectDefaultMetrics({ register: this.registry });
    this.transitions = new Counter({
      name: "coordination_task_transitions_total",
      help: "Task transitions committed by this process, per queue: enqueued, deduplicated (an enqueue answered with the task holding its dedupe key), ready (a waiting task's dependencies completed), claimed, completed, failed, dead_lettered, lease_expired, timed_out (a run that reached its task's maxRunMs), expired (cancelled unrun at its expiry)",
      labelNames: [...QUEUE_LABEL_NAMES, "transition"],
      registers,
    });
    this.grantTransitions = {
      lock: new Counter({
        name: "coordination_lock_transitions_total",
        help: "Named lock transitions committed by this process: acquired, released (by its holder, or with its agent's deregistration), force_released (by an operator), expired (its lease not renewed: its holder died, hung or lost its way)",
        labelNames: ["transition"],
        registers,
      }),
      semaphore: new Counter({
        name: "coordination_semaphore_transitions_total",
        help: "Semaphore permit transitions committed by this process: acquired, released (by its holder, or with its agent's deregistration), force_released (by an operator), expired (its lease not renewed)",
        labelNames: ["transition"],
        registers,
      }),
    };
    this.kvWrites = new Counter({
      name: "coordination_kv_writes_total",
      help: "Writes of shared state committed by this process, by what they did to a key: set, incremented (kv.increment), deleted, expired (its ttlMs ran out)",
      labelNames: ["kind"],
      registers,
    });
    this.logLines = new Counter({
      name: "coordination_task_log_lines_total",
      help: "Lines added to runs' logs (tasks.appendLog) by this process's commits: how much agents log, for sizing maxTaskLogBytes and the disk",
      registers,
    });
    this.waited = new Histogram({
      name: "coordination_task_wait_seconds",
      help: "Time from a task becoming claimable (its enqueue, or its retry or delay coming due) to its claim",
      labelNames: QUEUE_LABEL_NAMES,
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.ran = new Histogram({
      name: "coordination_task_run_seconds",
      help: "Time from claim to settle (completed or failed)",
      labelNames: [...QUEUE_LABEL_NAMES, "outcome"],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.batchWrites = new Histogram({
      name: "coordination_commit_batch_writes",
      help: "Writes per group commit",
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers,
    });
    this.commitSeconds = new Histogram({
      name: "coordination_commit_seconds",
      help: "Time of one group commit, BEGIN to COMMIT with its fsync",
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5],
      registers,
    });
    const { db } = sources;
    new Counter({
      name: "coordination_thread_busy_seconds_total",
      help: "Wall-clock time each of the server's threads was not idle waiting for work: the event loop (HTTP, WebSocket, tRPC), the database writer (group commits) and the reader (reads, pre-execution recall). Waits inside that work count: the disk's fsync, another process's write lock, a CPU to run on. A rate near 1 means work queues behind the thread; process_cpu_seconds_total tells the CPU apart",
      labelNames: ["thread"],
      registers,
      collect() {
        // Read whole from Node's event-loop utilization at each scrape, never counted by hand.
        const threads = db.busyMs;
        this.reset();
        this.inc({ thread: "event_loop" }, performance.eventLoopUtilization().active / 1000);
        this.inc({ thread: "writer" }, threads.writer / 1000);
        this.inc({ thread: "reader" }, threads.reader / 1000);
      },
    });
    new Counter({
      name: "coordination_webhook_deliveries_total",
      help: 'Webhook delivery attempts by this server process, by outcome: delivered (a 2xx), failed (another status, a redirect, no answer within webhookTimeoutMs: tried again with backoff)',
      labelNames: ["outcome"],
      registers,
      collect() {
        const attempts = sources.webhookAttempts();
        this.reset();
        this.inc({ outcome: "delivered" }, attempts.delivered);
        this.inc({ outcome: "failed" }, attempts.failed);
      },
    });
    /**
     * The gauges read from the database at each scrape, by name: the read under way. A read that
     * fails (the file deleted under the server, say) leaves its gauge without series for that
     * scrape, and coordination_metrics_read_failing says which, rather than failing the whole
     * scrape: coordination_database_writes_failing, which says what went wrong, is in it.
     */
    const reads = new Map<string, Promise<boolean>>();
    const readGauge = <L extends string>(name: string, help: string, labelNames: readonly L[], read: (gauge: Gauge<L>) => Promise<void>) =>
      new Gauge<L>({
        name,
        help,
        labelNames,
        registers,
        collect() {
          this.reset();
          const done = read(this).then(
            () => true,
            () => {
              this.reset();
              return false;
            },
          );
          reads.set(name, done);
          return done.then(() => undefined);
        },
      });
    readGauge("coordination_tasks", "Tasks per queue and state, now", [...QUEUE_LABEL_NAMES, "state"], async (gauge) => {
      // Queues past the bound add up in the overflow series, state by state.
      for (const queue of (await sources.taskStats()).queues) {
        const label = queueLabels.of(queue.queue);
        for (const [state, count] of Object.entries(queue.counts)) gauge.inc({ ...label, state }, count);
      }
    });
    readGauge("coordination_tasks_scheduled", "Pending tasks not due yet per queue (delays, retry backoffs, releases with a delay); counted in coordination_tasks{state=\"pending\"} too", QUEUE_LABEL_NAMES, async (gauge) => {
      for (const queue of (await sources.taskStats()).queues) gauge.inc(queueLabels.of(queue.queue), queue.scheduled);
    });
    readGauge("coordination_oldest_pending_age_seconds", "Age of the oldest claimable pending task per queue (absent when none waits)", QUEUE_LABEL_NAMES, async (gauge) => {
      // The overflow series gives the oldest of the queues it holds.
      const oldest = new Map<string, { label: QueueLabel; ageMs: number }>();
      for (const queue of (await sources.taskStats()).queues) {
        // A paused queue's tasks are not claimable: its age would fire every backlog alert (coordination_queue_paused says it).
        if (queue.oldestPendingAgeMs === null || queue.paused) continue;
        const label = queueLabels.of(queue.queue);
        const key = "queue" in label ? label.queue : "";
        const seen = oldest.get(key);
        if (!seen || seen.ageMs < queue.oldestPendingAgeMs) oldest.set(key, { label, ageMs: queue.oldestPendingAgeMs });
      }
      for (const { label, ageMs } of oldest.values()) gauge.set(label, ageMs / 1000);
    });
    readGauge("coordination_queue_paused", "1 for each paused queue (queues.pause): no claim takes its tasks until it is resumed; absent when none is", QUEUE_LABEL_NAMES, async (gauge) => {
      // Queues past the label bound add up in the overflow series: how many of them are paused.
      for (const pause of await db.read("queues.paused", undefined)) if (pause.paused) gauge.inc(queueLabels.of(pause.queue), 1);
    });
    // The three from one read a scrape (each counts every limited queue's leases): a queue at its
    // limit (leased >= limit) hands out nothing until a lease ends.
    let limitsRead: { at: number; value: ReturnType<typeof readLimits> } | undefined;
    const readLimits = () => db.read("queues.limits", undefined);
    const limits = () => {
      const now = Date.now();
      if (limitsRead === undefined || now - limitsRead.at > 1000) limitsRead = { at: now, value: readLimits() };
      return limitsRead.value;
    };
    readGauge("coordination_queues_at_limit", "Limited queues whose leases are at their limit now (the queue_overflow series of the two below sums queues, which hides this)", [], async (gauge) => {
      gauge.set((await limits()).filter((limit) => limit.maxLeased !== null && limit.leased !== null && limit.leased >= limit.maxLeased).length);
    });
    readGauge("coordination_queue_limit", "The most leases of each limited queue's tasks at once (queues.setLimit); absent when none is limited", QUEUE_LABEL_NAMES, async (gauge) => {
      for (const limit of await limits()) if (limit.maxLeased !== null) gauge.inc(queueLabels.of(limit.queue), limit.maxLeased);
    });
    readGauge("coordination_queue_leased", "Leases of each limited queue's tasks now: at coordination_queue_limit, claims wait for one to end", QUEUE_LABEL_NAMES, async (gauge) => {
      for (const limit of await limits()) if (limit.leased !== null) gauge.inc(queueLabels.of(limit.queue), limit.leased);
    });
    // The same for rates: one read a scrape (each sums a rate-limited queue's window).
    let ratesRead: { at: number; value: ReturnType<typeof readRates> } | undefined;
    const readRates = () => db.read("queues.rates", undefined);
    const rates = () => {
      const now = Date.now();
      if (ratesRead === undefined || now - ratesRead.at > 1000) ratesRead = { at: now, value: readRates() };
      return ratesRead.value;
    };
    readGauge("coordination_queues_at_rate", "Rate-limited queues whose window holds their most claims now: no claim takes their tasks until the window has room", [], async (gauge) => {
      gauge.set((await rates()).filter((rate) => rate.nextClaimAt !== null).length);
    });
    readGauge("coordination_queue_rate_max_claims", "The most claims of each rate-limited queue's tasks in a window (queues.setRate); absent when none is rate-limited", QUEUE_LABEL_NAMES, async (gauge) => {
      for (const rate of await rates()) if (rate.maxClaims !== null) gauge.inc(queueLabels.of(rate.queue), rate.maxClaims);
    });
    readGauge("coordination_queue_rate_claims", "Claims of each rate-limited queue's tasks in its window now: at coordination_queue_rate_max_claims, claims wait for the window to have room", QUEUE_LABEL_NAMES, async (gauge) => {
      for (const rate of await rates()) if (rate.used !== null) gauge.inc(queueLabels.of(rate.queue), rate.used);
    });
    readGauge(
      "coordination_schedules",
      'Schedules per state, now: running (its next run waits in its queue), waiting (overlap "skip": for its last run to settle), paused, ended (no run ahead: past its endAt, its maxRuns claimed, or a pattern that names no time ahead)',
      ["state"],
      async (gauge) => {
        // Every state has a series, 0 when none is in it: an alert on ended or paused schedules needs no absent() beside it.
        for (const state of SCHEDULE_STATES) gauge.set({ state }, 0);
        for (const { state, count } of await db.read("schedules.stateCounts", undefined)) gauge.set({ state }, count);
      },
    );
    readGauge("coordination_agents", "Registered agents per health, now", ["health"], async (gauge) => {
      for (const [health, count] of Object.entries(await db.read("agents.healthCounts", undefined))) gauge.set({ health }, count);
    });
    readGauge("coordination_agents_cordoned", 'Agents no claim hands a task now: cordoned by an operator (by="operator") or quarantined after failing run after run (by="quarantine")', ["by"], async (gauge) => {
      const counts = await db.read("agents.cordonCounts", undefined);
      gauge.set({ by: "operator" }, counts.operator);
      gauge.set({ by: "quarantine" }, counts.automatic);
    });
    readGauge("coordination_locks_held", "Named locks held now (locks.acquire; those whose lease ran out not counted)", [], async (gauge) => {
      gauge.set(await db.read("locks.countHeld", Date.now()));
    });
    readGauge("coordination_webhooks", "Webhooks per state, now: delivering (enabled, its last attempt succeeded or none was made), failing (enabled, tried again with backoff), disabled (by an operator, or failing for webhookDisableAfterMs)", ["state"], async (gauge) => {
      const counts = await db.read("webhooks.counts", undefined);
      gauge.set({ state: "delivering" }, counts.enabled);
      gauge.set({ state: "failing" }, counts.failing);
      gauge.set({ state: "disabled" }, counts.disabled);
    });
    readGauge("coordination_semaphore_permits_held", "Semaphore permits held now, of every semaphore (semaphores.acquire; those whose lease ran out not counted)", [], async (gauge) => {
      gauge.set(await db.read("semaphores.countHeld", Date.now()));
    });
    readGauge(
      "coordination_event_log_seq",
      "The event log: head (highest seq) and pruned_through (every seq up to it was pruned); the retained window lies between",
      ["position"],
      async (gauge) => {
        const window = await db.read("events.window", undefined);
        gauge.set({ position: "head" }, window.head);
        gauge.set({ position: "pruned_through" }, window.prunedThrough);
      },
    );
    // Registered after the gauges it reports on: prom-client starts every collect in registration order, then awaits them all.
    new Gauge({
      name: "coordination_metrics_read_failing",
      help: "1 for a gauge read from the database whose read failed at this scrape (it has no series then; /health and coordination_database_writes_failing say why); 0 otherwise",
      labelNames: ["metric"],
      registers,
      async collect() {
        for (const [metric, done] of reads) this.set({ metric }, (await done) ? 0 : 1);
      },
    });
    const responses = this.responses;
    const reported = new Map<number | "none", number>();
    new Counter({
      name: "coordination_http_responses_total",
      help: "HTTP requests this process closed, by the status code it answered (none: closed before an answer was begun, the client gone); a tRPC batch is one response, WebSocket messages are not counted",
      labelNames: ["status"],
      registers,
      collect() {
        for (const [status, count] of responses) {
          const delta = count - (reported.get(status) ?? 0);
          if (delta > 0) this.inc({ status: String(status) }, delta);
          reported.set(status, count);
        }
      },
    });
    new Gauge({
      name: "coordination_write_wait_seconds",
      help: "How long the oldest write under way has waited for its answer (0 with none): past busyTimeoutMs, another process holds the write lock or the disk stalls",
      registers,
      collect() {
        this.set(sources.db.writeWaitMs / 1000);
      },
    });
    new Gauge({
      name: "coordination_database_writes_failing",
      help: "1 while this process's writes fail, labelled by why (DISK_FULL, READ_ONLY, IO_ERROR, DATABASE_REPLACED; /health is 503 then); 0 otherwise",
      labelNames: ["code"],
      registers,
      collect() {
        const failing = sources.db.faults.current?.code;
        for (const code of DEGRADING_FAULTS) this.set({ code }, code === failing ? 1 : 0);
      },
    });
    new Gauge({
      name: "coordination_long_polls_parked",
      help: "Long-polls waiting now: claims, polls, task waits (tasks.wait, tasks.waitMany), lock acquires, semaphore acquires, key watches (kv.get with afterVersion) and log follows (tasks.log with waitMs)",
      labelNames: ["kind"],
      registers,
      collect() {
        const parked = sources.parked();
        this.set({ kind: "claim" }, parked.claims);
        this.set({ kind: "poll" }, parked.polls);
        this.set({ kind: "wait" }, parked.waits);
        this.set({ kind: "lock" }, parked.locks);
        this.set({ kind: "semaphore" }, parked.semaphores);
        this.set({ kind: "watch" }, parked.watches);
        this.set({ kind: "follow" }, parked.follows);
      },
    });
    new Gauge({
      name: "coordination_live_subscribers",
      help: "Live event streams open (WebSocket subscriptions)",
      registers,
      collect() {
        this.set([...sources.liveStreams()].length);
      },
    });
    new Gauge({
      name: "coordination_live_subscriber_lag_events",
      help: "Events live subscribers should get that wait in their buffers: the largest (max) and all together (total)",
      labelNames: ["aggregate"],
      registers,
      collect() {
        const lags = [...sources.liveStreams()].map((stream) => stream.buffered);
        this.set({ aggregate: "max" }, Math.max(0, ...lags));
        this.set({ aggregate: "total" }, lags.reduce((sum, lag) => sum + lag, 0));
      },
    });
  }

  /** Events this process committed: counts transitions and times waits and runs. */
  observe(events: readonly CoordinationEvent[]): void {
    for (const event of events) {
      const payload = payloadFields(event);
      const grant = GRANT_COUNTED[event.type];
      if (grant !== undefined) {
        this.grantTransitions[grant.of].inc({ transition: grant.transition === "released" && payload.forced === true ? "force_released" : grant.transition });
        continue;
      }
      if (event.type === "task.log") {
        const lines = Number(payload.lastLine) - Number(payload.firstLine) + 1;
        if (Number.isSafeInteger(lines) && lines > 0) this.logLines.inc(lines);
        continue;
      }
      const kv = KV_COUNTED[event.type];
      if (kv !== undefined) {
        this.kvWrites.inc({ kind: kv === "set" && typeof payload.incrementedBy === "number" ? "incremented" : kv });
        continue;
      }
      const transition =
        event.type === "task.cancelled" ? (payload.expired === true ? EXPIRED : undefined) : event.type === "task.lease_expired" && payload.timedOut === true ? TIMED_OUT : COUNTED[event.type];
      if (transition === undefined) continue;
      const queue = this.queueLabels.of(typeof payload.queue === "string" ? payload.queue : "");
      this.transitions.inc({ ...queue, transition });
      if (event.type === "task.claimed" && typeof payload.waitedMs === "number") this.waited.observe(queue, payload.waitedMs / 1000);
      if ((event.type === "task.completed" || event.type === "task.failed") && typeof payload.ranMs === "number") {
        this.ran.observe({ ...queue, outcome: transition }, payload.ranMs / 1000);
      }
    }
  }

  /** A request closed: its answer's status, or null when none was begun (the client gone first). */
  observeResponse(status: number | null): void {
    const key = status ?? "none";
    this.responses.set(key, (this.responses.get(key) ?? 0) + 1);
  }

  /** Group commits of this process's writer. */
  observeBatches(batches: ReadonlyArray<{ writes: number; ms: number }>): void {
    for (const batch of batches) {
      this.batchWrites.observe(batch.writes);
      this.commitSeconds.observe(batch.ms / 1000);
    }
  }

  /** The exposition text. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
