// Builds the whole coordination core over one database file, with a lifecycle: the database
// threads (src/db/thread/: a writer and a reader, so no SQLite work ever runs on the event loop),
// the services, the event bus, the long-poll waiters and the background jobs. The server
// (src/server/) and the in-process API only add transports on top.
import { AgentService } from "./agents/agent-service.js";
import { Credentials } from "./auth/credentials.js";
import type { Config } from "./config.js";
import { applyMigrations } from "./db/migrate.js";
import { checkBeforeMigrating, checkSchema, openToMigrate, unlessLocked } from "./db/startup-checks.js";
import { Database } from "./db/thread/database.js";
import { Deliveries } from "./delivery/delivery.js";
import { EventBus } from "./events/event-bus.js";
import type { CoordinationEvent } from "./events/event-schemas.js";
import { EventService } from "./events/event-service.js";
import { PollWaiters } from "./events/poll-waiters.js";
import type { Logger } from "./logger.js";
import { MemoryService } from "./memory/memory-service.js";
import { Metrics } from "./observability/metrics.js";
import { logOperatorEvents } from "./observability/operator-log.js";
import { PeriodicJob } from "./periodic.js";
import { Retention } from "./retention/retention.js";
import { PerKeyLimit } from "./per-key-limit.js";
import { ClaimWaiters } from "./tasks/claim-waiters.js";
import { kvWaiters, lockWaiters, logWaiters, semaphoreWaiters, settleWaiters, type KeyedWaiters } from "./keyed-waiters.js";
import { TaskLogService } from "./tasks/task-log-service.js";
import { KvService } from "./kv/kv-service.js";
import { TaskService } from "./tasks/task-service.js";
import { LockService } from "./locks/lock-service.js";
import { SemaphoreService } from "./locks/semaphore-service.js";
import { SignalFanout } from "./wakeup.js";
import { WebhookDeliverer } from "./webhooks/webhook-deliverer.js";
import { WebhookService } from "./webhooks/webhook-service.js";

export interface Services {
  config: Config;
  log: Logger;
  /** The database threads: every statement runs there. */
  db: Database;
  tasks: TaskService;
  events: EventService;
  bus: EventBus;
  agents: AgentService;
  memory: MemoryService;
  /** Named locks (src/locks/). */
  locks: LockService;
  /** Semaphores: names up to a limit of agents hold at once (src/locks/). */
  semaphores: SemaphoreService;
  /** Webhooks: the server's events POSTed to operators' URLs (src/webhooks/). */
  webhooks: WebhookService;
  /** Shared state: versioned keys agents read, compare-and-set and watch (src/kv/). */
  kv: KvService;
  /** Runs' logs: lines the agent holding a task appends, read and followed by anyone (src/tasks/task-log-*.ts). */
  taskLogs: TaskLogService;
  /** Who presents which bearer secret, and whether credentials are enforced at all (src/auth/). */
  credentials: Credentials;
  /** Prometheus metrics (/metrics). */
  metrics: Metrics;
  /** Delivery confirmation of consuming calls (claims, steals, auto-ack polls). */
  deliveries: Deliveries;
  /** Long-polling claims and polls parked, woken by committed events. */
  waiters: { claims: ClaimWaiters; polls: PollWaiters; settles: KeyedWaiters; locks: KeyedWaiters; semaphores: KeyedWaiters; kv: KeyedWaiters; logs: KeyedWaiters };
  jobs: { leaseSweeper: PeriodicJob; lockExpiry: PeriodicJob; semaphoreExpiry: PeriodicJob; kvExpiry: PeriodicJob; webhookDelivery: PeriodicJob; queueHolds: PeriodicJob; dependents: PeriodicJob; taskExpiry: PeriodicJob; scheduleRepair: PeriodicJob; pollHolds: PeriodicJob; healthMonitor: PeriodicJob; eventPruner: PeriodicJob; retention: PeriodicJob; memoryIndex: PeriodicJob };
  /** Settled tasks and memories pruned to their retention (src/retention/). */
  retention: Retention;
  /** Aborted when shutdown begins: long-polls and streams end. */
  shutdownSignal: AbortSignal;
  /** Long-polls waiting on shutdown (a leak check for tests: 0 once they all ended). */
  shutdownWaiters: SignalFanout;
  /** Migrations applied by this start-up. */
  migrationsApplied: string[];
}

export interface Coordination {
  services: Services;
  /** Waits for the database threads, then starts the bus and the background jobs. */
  start(): Promise<void>;
  /** Stops jobs, undoes undelivered answers, then closes the database. Idempotent. */
  close(): Promise<void>;
  /** Ends long-polls and live streams (the first step of shutdown). */
  beginShutdown(): void;
}

/**
 * Checks the file (src/db/startup-checks.ts), then applies pending migrations on a short-lived
 * connection, before the threads open theirs. A file the server cannot use well is refused
 * (DatabaseRefused) before anything is written to it.
 */
function migrate(config: Config): string[] {
  checkBeforeMigrating(config);
  const db = openToMigrate(config);
  try {
    return unlessLocked(config.dbPath, () => {
      const applied = applyMigrations(db);
      checkSchema(db, config.dbPath);
      return applied;
    });
  } finally {
    db.close();
  }
}

export function createCoordination(config: Config, log: Logger): Coordination {
  const migrationsApplied = migrate(config);
  const startedAt = Date.now();
  const shutdown = new AbortController();
  const stopping = new SignalFanout(shutdown.signal);
  const waiters = { claims: new ClaimWaiters(), polls: new PollWaiters(), settles: settleWaiters(), locks: lockWaiters(), semaphores: semaphoreWaiters(), kv: kvWaiters(), logs: logWaiters() };
  // The bus hears of local commits from the writer thread, and reads other processes' through the reader.
  let bus: EventBus | undefined;
  let metrics: Metrics | undefined;
  // This process's own commits: counted, logged for operators where they act on them, then to the bus.
  const db = new Database(config, startedAt, log, (events) => {
    metrics!.observe(events as CoordinationEvent[]);
    logOperatorEvents(log, events as CoordinationEvent[]);
    return bus!.committed(events as CoordinationEvent[]);
  });
  bus = new EventBus((afterSeq, limit) => db.read("events.tail", { afterSeq, limit }), config, log);
  bus.listen((events) => {
    waiters.claims.observe(events);
    waiters.polls.observe(events);
    waiters.settles.observe(events);
    waiters.locks.observe(events);
    waiters.semaphores.observe(events);
    waiters.kv.observe(events);
    waiters.logs.observe(events);
    webhooks.deliverer.observe(events);
  });
  const memory = new MemoryService(config, db, log);
  // Claims and polls together: one agent's parked long-polls, whatever they wait for.
  const parked = new PerKeyLimit(config.maxParkedPerAgent, (agentId) => `too many long-polls waiting for agent ${JSON.stringify(agentId)}`, "maxParkedPerAgent");
  // A credential's parked waits (tasks.wait, tasks.waitMany, kv watches, log follows), bounded apart from its agent's claims and
  // polls: an orchestrator waiting on its subtasks leaves its own worker's long-polls their room.
  const parkedWaits = new PerKeyLimit(config.maxParkedPerAgent, (id) => `too many task waits, key watches and log follows parked for credential ${JSON.stringify(id)}`, "maxParkedPerAgent");
  const tasks = new TaskService({
    config,
    db,
    waiters: waiters.claims,
    shutdown: stopping,
    parked,
    settles: waiters.settles,
    parkedWaits,
    changeMark: () => `${bus!.lastSeq}:${retention.pruned.settledTasks}`,
    holdsChanged: () => void jobs.queueHolds.runNow(),
  });
  const events = new EventService({ config, db, log, waiters: waiters.polls, shutdown: stopping, parked });
  const locks = new LockService({ config, db, waiters: waiters.locks, shutdown: stopping, parked });
  const semaphores = new SemaphoreService({ config, db, waiters: waiters.semaphores, shutdown: stopping, parked });
  const kv = new KvService({ config, db, waiters: waiters.kv, shutdown: stopping, parked: parkedWaits });
  const taskLogs = new TaskLogService({ config, db, waiters: waiters.logs, shutdown: stopping, parked: parkedWaits });
  const webhooks = new WebhookService(db, log, new WebhookDeliverer({ config, db, log, shutdown: shutdown.signal }));
  const credentials = new Credentials({ db, config, log });
  metrics = new Metrics({
    db,
    taskStats: () => tasks.stats({ maxStaleMs: 1000 }),
    parked: () => ({ claims: waiters.claims.size, polls: waiters.polls.size, waits: waiters.settles.size, locks: waiters.locks.size, semaphores: waiters.semaphores.size, watches: waiters.kv.size, follows: waiters.logs.size }),
    liveStreams: () => events.liveStreams,
    webhookAttempts: () => webhooks.deliverer.attempts,
    maxMetricsQueues: config.maxMetricsQueues,
  });
  db.onBatches = (batches) => metrics!.observeBatches(batches);
  const agents = new AgentService(config, db);
  const retention = new Retention(config, db, log);
  const jobs = {
    leaseSweeper: new PeriodicJob("lease-sweeper", config.leaseSweepMs, () => tasks.expireLeases(), log),
    // Named locks and semaphore permits whose lease ran out: free already; their lock.expired and
    // semaphore.expired tell subscribers and the log (a job each: one failing holds the other up not).
    lockExpiry: new PeriodicJob("lock-expiry", config.leaseSweepMs, () => locks.expire(), log),
    semaphoreExpiry: new PeriodicJob("semaphore-expiry", config.leaseSweepMs, () => semaphores.expire(), log),
    // Keys of shared state whose expiry passed: absent already; their kv.expired tells watchers and subscribers.
    kvExpiry: new PeriodicJob("kv-expiry", config.leaseSweepMs, () => kv.expire(), log),
    // Webhooks with events to deliver (new events start a look at once; this finds those whose
    // backoff ended, and those another server process on the file created or stopped delivering).
    webhookDelivery: new PeriodicJob("webhook-delivery", config.leaseSweepMs, () => webhooks.deliverer.look(), log),
    // Paused queues' tasks held out of the claim indexes, resumed ones' let go; also those a
    // server that stopped midway (or another process on the file) left.
    queueHolds: new PeriodicJob("queue-holds", config.leaseSweepMs, () => tasks.settleHolds(), log),
    // Dependents of a completed or cancelled task past what one write settles (thousands waiting on one task).
    dependents: new PeriodicJob("task-dependents", config.leaseSweepMs, () => tasks.settleDependents(), log),
    // Tasks whose expiry came before a run of them started, cancelled as expired.
    taskExpiry: new PeriodicJob("task-expiry", config.leaseSweepMs, () => tasks.expireTasks(), log),
    // Schedules whose pending run something else took (an older server on the file): their next runs.
    scheduleRepair: new PeriodicJob("schedule-repair", config.leaseSweepMs, () => repairSchedules(db), log),
    // Auto-ack batches whose answers are still on their way keep their holds (event-service.ts).
    pollHolds: new PeriodicJob("poll-holds", config.leaseSweepMs, () => events.renewHolds(), log),
    healthMonitor: new PeriodicJob("agent-health", config.agentHealthCheckMs, () => agents.checkHealth(), log),
    eventPruner: new PeriodicJob("event-pruner", config.eventPruneMs, () => events.prune(), log),
    retention: new PeriodicJob("retention", config.retentionPruneMs, () => retention.prune(), log),
    memoryIndex: new PeriodicJob(
      "memory-index",
      config.memoryIndexCompactMs,
      async () => {
        await memory.indexMissedNotes(shutdown.signal);
        await memory.compactIndex(undefined, shutdown.signal);
      },
      log,
    ),
  };
  const services: Services = {
    config,
    log,
    db,
    tasks,
    events,
    bus,
    agents,
    memory,
    locks,
    semaphores,
    webhooks,
    kv,
    taskLogs,
    credentials,
    metrics,
    retention,
    deliveries: new Deliveries(log),
    waiters,
    jobs,
    shutdownSignal: shutdown.signal,
    shutdownWaiters: stopping,
    migrationsApplied,
  };
  let closed: Promise<void> | undefined;
  return {
    services,
    async start() {
      await db.ready();
      // Other servers on the file learn of this one from this commit (tasks/lock-wait-grace.ts).
      // A file that takes no write yet (a full disk) must not keep the server from starting:
      // /health says why writes fail.
      await db.write("server.announce", undefined).catch((error: unknown) => log.warn({ err: error }, "could not announce this server on the database file"));
      bus!.start(await db.read("events.head", undefined));
      await credentials.start();
      for (const job of Object.values(jobs)) job.start();
    },
    beginShutdown() {
      shutdown.abort();
    },
    close() {
      closed ??= (async () => {
        shutdown.abort();
        credentials.stop();
        await Promise.all(Object.values(jobs).map((job) => job.stop()));
        // Requests under way were abandoned (shutdown aborted them): their events go again, here after a restart or from another server.
        await webhooks.deliverer.stop();
        // Claims in flight get their answer (and register their undo) first; then answers that
        // did not reach their clients are undone, before the database closes.
        await db.handOutsSettled();
        // From an answer's arrival to its call's delivery decision (and compensation) is a chain
        // of microtasks: let it run out before looking for compensations under way.
        await new Promise((resolve) => setImmediate(resolve));
        await services.deliveries.drain();
        await bus!.stop();
        await db.close();
      })();
      return closed;
    },
  };
}

/** Schedules planned per write by the schedule-repair job. */
const REPAIRS_PER_WRITE = 100;

/**
 * Plans the next runs of schedules whose pending run was taken without this version's claim
 * (ScheduleRuns.repair): looked for on the reader first, so a server with none writes nothing.
 * Returns how many it planned.
 */
async function repairSchedules(db: Services["db"]): Promise<number> {
  let planned = 0;
  while (await db.read("schedules.stranded", undefined)) {
    const done = await db.write("schedules.repair", REPAIRS_PER_WRITE);
    planned += done;
    if (done < REPAIRS_PER_WRITE) break;
  }
  return planned;
}
