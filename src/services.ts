// Builds the whole coordination core over one database file: connections, stores, services and
// background jobs, with a lifecycle. The server (src/server/) only adds transports on top.
import { AgentService } from "./agents/agent-service.js";
import { AgentStore } from "./agents/agent-store.js";
import { healthCutoffs } from "./agents/health-cutoffs.js";
import type { Config } from "./config.js";
import { applyMigrations, unknownMigrations } from "./db/migrate.js";
import { openDatabase, type SqliteDatabase } from "./db/open-database.js";
import { createPrismaClient, type Prisma } from "./db/prisma.js";
import { Statements } from "./db/statements.js";
import { Writer } from "./db/writer.js";
import { Deliveries } from "./delivery/delivery.js";
import { EventBus } from "./events/event-bus.js";
import { EventService } from "./events/event-service.js";
import { EventStore } from "./events/event-store.js";
import type { Logger } from "./logger.js";
import { MemoryService } from "./memory/memory-service.js";
import { MemoryStore } from "./memory/memory-store.js";
import { PeriodicJob } from "./periodic.js";
import { LeaseRecovery } from "./tasks/lease-recovery.js";
import { TaskService } from "./tasks/task-service.js";
import { TaskStore } from "./tasks/task-store.js";
import { TaskTransitions } from "./tasks/task-transitions.js";
import { SignalFanout, Wakeup } from "./wakeup.js";

export interface Services {
  config: Config;
  log: Logger;
  db: SqliteDatabase;
  prisma: Prisma;
  writer: Writer;
  tasks: TaskService;
  events: EventService;
  eventStore: EventStore;
  bus: EventBus;
  agents: AgentService;
  memory: MemoryService;
  /** Delivery confirmation of consuming calls (claims, steals, auto-ack polls). */
  deliveries: Deliveries;
  jobs: { leaseSweeper: PeriodicJob; healthMonitor: PeriodicJob; eventPruner: PeriodicJob };
  /** Aborted when shutdown begins: long-polls and streams end. */
  shutdownSignal: AbortSignal;
  /** Long-polls waiting on shutdown (a leak check for tests: 0 once they all ended). */
  shutdownWaiters: SignalFanout;
  /** Migrations applied by this start-up. */
  migrationsApplied: string[];
}

export interface Coordination {
  services: Services;
  start(): void;
  /** Stops jobs, then closes the database. Idempotent. */
  close(): Promise<void>;
  /** Ends long-polls and live streams (the first step of shutdown). */
  beginShutdown(): void;
}

export function createCoordination(config: Config, log: Logger): Coordination {
  const db = openDatabase(config);
  let prisma: Prisma | undefined;
  try {
    const migrationsApplied = applyMigrations(db);
    const unknown = unknownMigrations(db);
    if (unknown.length > 0) {
      log.warn({ migrations: unknown }, "the database has migrations this version does not know: was it migrated by a newer version?");
    }
    prisma = createPrismaClient(config);
    const statements = new Statements(db);
    const writer = new Writer(db);
    const shutdown = new AbortController();
    const startedAt = Date.now();
    const cutoffs = (now: number) => healthCutoffs(now, config, startedAt);
    const eventStore = new EventStore(statements);
    const taskStore = new TaskStore(statements);
    const agentStore = new AgentStore(statements);
    const memory = new MemoryService(config, writer, new MemoryStore(statements), taskStore);
    const bus = new EventBus(eventStore, writer, config, log);
    const stopping = new SignalFanout(shutdown.signal);
    const events = new EventService({ config, writer, events: eventStore, bus, shutdown: stopping });
    const taskAvailable = new Wakeup();
    const transitions = new TaskTransitions({ config, tasks: taskStore, events: eventStore, agents: agentStore, memory, taskAvailable });
    const recovery = new LeaseRecovery(writer, taskStore, transitions);
    const tasks = new TaskService({
      config,
      writer,
      prisma,
      tasks: taskStore,
      events: eventStore,
      agents: agentStore,
      memory,
      transitions,
      recovery,
      taskAvailable,
      shutdown: stopping,
      healthCutoffs: cutoffs,
    });
    const agents = new AgentService({
      config,
      writer,
      prisma,
      agents: agentStore,
      events: eventStore,
      leases: recovery,
      forgetAgent: (agentId) => transitions.forgetAgent(agentId),
      healthCutoffs: cutoffs,
    });
    const deliveries = new Deliveries(log);
    const jobs = {
      leaseSweeper: new PeriodicJob("lease-sweeper", config.leaseSweepMs, () => tasks.expireLeases(), log),
      healthMonitor: new PeriodicJob("agent-health", config.agentHealthCheckMs, () => agents.checkHealth(), log),
      eventPruner: new PeriodicJob("event-pruner", config.eventPruneMs, () => events.prune(), log),
    };
    const services: Services = {
      config, log, db, prisma, writer, tasks, events, eventStore, bus, agents, memory, deliveries, jobs,
      shutdownSignal: shutdown.signal,
      shutdownWaiters: stopping,
      migrationsApplied,
    };
    let closed: Promise<void> | undefined;
    return {
      services,
      start() {
        bus.start();
        for (const job of Object.values(jobs)) job.start();
      },
      beginShutdown() {
        shutdown.abort();
      },
      close() {
        closed ??= (async () => {
          shutdown.abort();
          await Promise.all(Object.values(jobs).map((job) => job.stop()));
          // Answers that did not reach their clients are undone before the database closes.
          await deliveries.drain();
          bus.stop();
          writer.close();
          await prisma!.$disconnect();
          // Fold the WAL back into the main file so the database is self-contained after exit.
          db.pragma("wal_checkpoint(TRUNCATE)");
          db.close();
        })();
        return closed;
      },
    };
  } catch (error) {
    void prisma?.$disconnect();
    db.close();
    throw error;
  }
}
