// The command tables of the two database threads, built over each thread's own connection. The
// event loop imports only their types (database.ts), so the stores and their SQL load in the
// threads alone.
import { agentCommands } from "../../agents/agent-commands.js";
import { agentQueries } from "../../agents/agent-queries.js";
import { AgentStore } from "../../agents/agent-store.js";
import { AgentCordonStore } from "../../agents/agent-cordon-store.js";
import { cordonCommands, FailureStreaks } from "../../agents/agent-cordons.js";
import { healthCutoffs } from "../../agents/health-cutoffs.js";
import { tokenCommands, tokenQueries } from "../../auth/token-commands.js";
import { TokenStore } from "../../auth/token-store.js";
import type { Config } from "../../config.js";
import { retentionCommands, retentionQueries } from "../../retention/retention-commands.js";
import type { WriteContext } from "../writer.js";
import { eventCommands } from "../../events/event-commands.js";
import { eventQueries } from "../../events/event-queries.js";
import { EventStore } from "../../events/event-store.js";
import { memoryCommands } from "../../memory/memory-commands.js";
import { MemoryRecall, recallQueries } from "../../memory/memory-recall.js";
import { MemoryStore } from "../../memory/memory-store.js";
import type { MemoryChanges } from "../../memory/memory-changes.js";
import { taskCommands, type TaskCommandDeps } from "../../tasks/task-commands.js";
import { taskQueries } from "../../tasks/task-queries.js";
import { queuePauseCommands, queuePauseQueries } from "../../tasks/queue-pause-commands.js";
import { QueuePauseStore } from "../../tasks/queue-pause-store.js";
import { QueueLimitStore } from "../../tasks/queue-limit-store.js";
import { queueLimitCommands, queueLimitQueries } from "../../tasks/queue-limit-commands.js";
import { QueueRateStore } from "../../tasks/queue-rate-store.js";
import { queueRateCommands, queueRateQueries } from "../../tasks/queue-rate-commands.js";
import { TaskStore, toTask } from "../../tasks/task-store.js";
import { scheduleQueries } from "../../schedules/schedule-runs.js";
import { ScheduleStore } from "../../schedules/schedule-store.js";
import { TaskTransitions } from "../../tasks/task-transitions.js";
import { lockWaitGrace } from "../../tasks/lock-wait-grace.js";
import { lockCommands, lockQueries } from "../../locks/lock-commands.js";
import { LockStore } from "../../locks/lock-store.js";
import { semaphoreCommands, semaphoreQueries } from "../../locks/semaphore-commands.js";
import { SemaphoreStore } from "../../locks/semaphore-store.js";
import { webhookCommands, webhookQueries } from "../../webhooks/webhook-commands.js";
import { WebhookStore } from "../../webhooks/webhook-store.js";
import { kvCommands, kvQueries, MAX_EPHEMERAL_KEYS_PER_AGENT } from "../../kv/kv-commands.js";
import { KvStore } from "../../kv/kv-store.js";
import { taskLogCommands, taskLogQueries } from "../../tasks/task-log-commands.js";
import { TaskLogStore } from "../../tasks/task-log-store.js";
import type { SqliteDatabase } from "../open-database.js";
import type { Prisma } from "../prisma.js";
import { statementsFor } from "../statements.js";

/** The connection's effective settings (observability, and the tests of open-database.ts). */
function connectionSettings(db: SqliteDatabase) {
  return () => ({
    journalMode: db.pragma("journal_mode", { simple: true }) as string,
    synchronous: db.pragma("synchronous", { simple: true }) as number,
    busyTimeoutMs: db.pragma("busy_timeout", { simple: true }) as number,
    foreignKeys: db.pragma("foreign_keys", { simple: true }) as number,
    journalSizeLimitBytes: db.pragma("journal_size_limit", { simple: true }) as number,
  });
}

/** What both threads share: the settings, when the server started (health's start-up grace), the count of memory changes (memory-changes.ts). */
export interface ThreadSetup {
  config: Config;
  startedAt: number;
  memoryChanges: SharedArrayBuffer;
}

/** The stores over one connection's statement cache, and the health cutoffs both threads judge by. */
function storesOf(db: SqliteDatabase, { config, startedAt }: ThreadSetup) {
  const st = statementsFor(db);
  return {
    tasks: new TaskStore(st),
    pauses: new QueuePauseStore(st),
    limits: new QueueLimitStore(st),
    rates: new QueueRateStore(st),
    events: new EventStore(st),
    agents: new AgentStore(st),
    cordons: new AgentCordonStore(st),
    memories: new MemoryStore(st),
    tokens: new TokenStore(st),
    schedules: new ScheduleStore(st),
    locks: new LockStore(st),
    permits: new SemaphoreStore(st),
    webhooks: new WebhookStore(st),
    kv: new KvStore(st),
    logs: new TaskLogStore(st),
    cutoffs: (now: number) => healthCutoffs(now, config, startedAt),
    st,
  };
}

/** `recall`: starts a claim's recall on the reader thread (recall-relay.ts). `memoryChanges`: counts deletes and notes for the reader's recall cache. */
export function createWriteCommands(db: SqliteDatabase, setup: ThreadSetup, recall: TaskCommandDeps["recall"], memoryChanges: MemoryChanges) {
  const { config } = setup;
  const { tasks, pauses, limits, rates, events, agents, cordons, memories, tokens, schedules, locks, permits, webhooks, kv, logs, cutoffs, st } = storesOf(db, setup);
  // The writer's connection alone tells whether another process commits to the file: the
  // reader's sees this process's own writer commit too.
  const grace = lockWaitGrace(st, config.busyTimeoutMs);
  const transitions = new TaskTransitions({ config, tasks, events, agents, memories, schedules });
  const probe = db.prepare<[string]>(`INSERT INTO system_state (key, value) VALUES ('health.probe', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`);
  // Locks and semaphore permits: one bound of what an agent holds (maxLocksPerAgent), one sign of life.
  const grants = {
    events,
    maxLocksPerAgent: config.maxLocksPerAgent,
    grantsHeldBy: (agentId: string, now: number) => locks.heldBy(agentId, now) + permits.heldBy(agentId, now),
    noteAgent: (ctx: WriteContext, agentId: string) => transitions.noteAgent(ctx, agentId),
  };
  const lockWrites = lockCommands({ locks, ...grants });
  const semaphoreWrites = semaphoreCommands({ permits, ...grants });
  /**
   * An ephemeral set's sign of its agent's life: registered or refreshed (noteAgent), and healthy
   * again in the same write when it was not, with its agent.updated, as a heartbeat makes it. Left
   * to the next health check, an agent seen offline stayed so across a restart in between (one
   * offline before a start stays so until a sign of life after it), and its key outlived it.
   */
  const keepAlive = (ctx: WriteContext, agentId: string): void => {
    transitions.noteAgent(ctx, agentId);
    const agent = agents.get(agentId);
    if (agent === undefined || agent.health === "healthy") return;
    agents.setHealth(agentId, "healthy", ctx.now);
    events.appendSystem(ctx, "agent.updated", { agentId, health: "healthy", previousHealth: agent.health });
  };
  const kvWrites = kvCommands({ kv, events, maxEphemeralKeysPerAgent: config.maxEphemeralKeysPerAgent, keepAlive });
  const agentWrites = agentCommands({
    agents,
    cordons,
    tasks,
    events,
    transitions,
    healthCutoffs: cutoffs,
    lockWaitGrace: grace,
    releaseLocks: lockWrites["locks.releaseAllOf"],
    releasePermits: semaphoreWrites["semaphores.releaseAllOf"],
    dropEphemeralKeys: kvWrites["kv.dropEphemeralOf"],
    ephemeralKeysOf: (agentId, now) => kv.countEphemeralOf(agentId, now, MAX_EPHEMERAL_KEYS_PER_AGENT),
  });
  const streaks = new FailureStreaks({ cordons, events, after: config.quarantineAfterFailures, quarantineMs: config.quarantineMs, transaction: () => st.transactions });
  const announce = db.prepare<[string]>(`INSERT INTO system_state (key, value) VALUES ('server.started', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`);
  return {
    ...taskCommands({ tasks, events, agents, cordons, streaks, transitions, healthCutoffs: cutoffs, lockWaitGrace: grace, recall, maxResponseBytes: config.maxResponseBytes, maxJsonDepth: config.maxJsonDepth }),
    ...queuePauseCommands({ pauses, limits, rates, events }),
    ...queueLimitCommands({ pauses, limits, rates, events }),
    ...queueRateCommands({ pauses, limits, rates, events }),
    "schedules.set": (ctx: WriteContext, request: Parameters<typeof transitions.schedules.set>[1]) => transitions.schedules.set(ctx, request),
    "schedules.remove": (ctx: WriteContext, request: Parameters<typeof transitions.schedules.remove>[1]) => transitions.schedules.remove(ctx, request),
    "schedules.pause": (ctx: WriteContext, request: Parameters<typeof transitions.schedules.pause>[1]) => transitions.schedules.pause(ctx, request),
    "schedules.resume": (ctx: WriteContext, request: Parameters<typeof transitions.schedules.resume>[1]) => transitions.schedules.resume(ctx, request),
    "schedules.trigger": (ctx: WriteContext, request: Parameters<typeof transitions.schedules.trigger>[1]) => {
      const { schedule, task } = transitions.schedules.trigger(ctx, request);
      return { schedule, task: toTask(task) };
    },
    "schedules.repair": (ctx: WriteContext, limit: number) => transitions.schedules.repair(ctx, limit),
    ...eventCommands({ events, isAgent: (agentId) => agents.get(agentId) !== undefined, maxResponseBytes: config.maxResponseBytes, eventRetentionMs: config.eventRetentionMs, eventRetentionCount: config.eventRetentionCount }),
    ...agentWrites,
    ...cordonCommands({ agents, cordons, events, healthCutoffs: cutoffs }),
    ...lockWrites,
    ...semaphoreWrites,
    ...webhookCommands({ webhooks, events }),
    ...kvWrites,
    ...taskLogCommands({ tasks, logs, events, transitions }),
    ...memoryCommands(memories, memoryChanges),
    ...tokenCommands(tokens),
    ...retentionCommands({ tasks, logs, memories, memoryChanges, tokens, pruneAgents: agentWrites["agents.pruneGone"], settleDependents: (ctx, dependency, outcome) => transitions.settleDependents(ctx, dependency, outcome) }),
    "db.settings": (_ctx: unknown, _: undefined) => connectionSettings(db)(),
    /** /health's probe while writes are failing: a real write, so its success means they work again. */
    "health.probe": (ctx: WriteContext, _: undefined): null => {
      probe.run(String(ctx.now));
      return null;
    },
    /**
     * A server's first write: a commit every other server on the file sees (PRAGMA data_version),
     * so their lease checks know at once that this one may hold leases (lock-wait-grace.ts).
     */
    "server.announce": (ctx: WriteContext, _: undefined): null => {
      announce.run(String(ctx.now));
      return null;
    },
  };
}

/** `prisma`: the reader's Prisma client, created on first use. `sameFile`: throws if the database file was deleted or replaced. */
export function createReadCommands(db: SqliteDatabase, prisma: () => Promise<Prisma>, setup: ThreadSetup, memoryChanges: MemoryChanges, sameFile: () => void = () => undefined) {
  const { config } = setup;
  const { tasks, pauses, limits, rates, events, agents, cordons, memories, tokens, schedules, locks, permits, webhooks, kv, logs, cutoffs } = storesOf(db, setup);
  const ping = db.prepare("SELECT 1").pluck();
  return {
    ...taskQueries({ prisma, tasks, maxResponseBytes: config.maxResponseBytes }),
    ...queuePauseQueries({ pauses, limits, rates }),
    ...queueLimitQueries({ limits }),
    ...queueRateQueries({ rates }),
    ...scheduleQueries(schedules, config.maxResponseBytes),
    ...eventQueries({ events, maxResponseBytes: config.maxResponseBytes }),
    ...agentQueries({ agents, cordons, healthCutoffs: cutoffs, maxResponseBytes: config.maxResponseBytes }),
    ...recallQueries(new MemoryRecall(memories, tasks, config.maxResponseBytes, memoryChanges)),
    ...tokenQueries(tokens),
    ...lockQueries({ locks, maxResponseBytes: config.maxResponseBytes }),
    ...semaphoreQueries({ permits, maxResponseBytes: config.maxResponseBytes }),
    ...webhookQueries({ webhooks, events, maxResponseBytes: config.maxResponseBytes }),
    ...kvQueries({ kv, maxResponseBytes: config.maxResponseBytes }),
    ...taskLogQueries({ tasks, logs, maxResponseBytes: config.maxResponseBytes }),
    ...retentionQueries({ tasks, memories }),
    /** Notes another version's server stored without their notes_fts entry: which, up to a window and a byte budget (memory-store.ts). */
    "memory.missedNotes": (args: { afterSeq: number; window: number; budgetBytes: number }) => memories.missedNotes(args.afterSeq, args.window, args.budgetBytes),
    /** A round trip to the database file, for /health. */
    "health.check": (_: undefined): boolean => {
      sameFile();
      return ping.get() === 1;
    },
    "db.settings": (_: undefined) => connectionSettings(db)(),
  };
}

export type WriteCommands = ReturnType<typeof createWriteCommands>;
export type ReadCommands = ReturnType<typeof createReadCommands>;
