// The seed's in-process API (its Python TaskQueue, EventStream and AgentRegistry), for
// TypeScript programs that embed the coordination core without HTTP. Same names in camelCase
// (tasks.enqueue, tasks.claim("agent-1"), events.subscribe("agent-1", [...]), events.poll,
// agents.register("agent-1", { capabilities }), agents.findByCapability). Every call goes through
// the procedures' own server-side caller, so it shares their schemas, rules and errors with tRPC
// and REST; errors are CoordinationError with the codes of src/errors.ts.
import type { inferRouterInputs, inferRouterOutputs } from "@trpc/server";
import { TRUSTED } from "./auth/credentials.js";
import { loadConfig, type Config, type SettingName } from "./config.js";
import { inProcessTransport } from "./delivery/transports.js";
import { CoordinationError, invalidField, type DomainErrorCode } from "./errors.js";
import type { JsonObject, JsonValue } from "./json-types.js";
import { createLogger, type Logger } from "./logger.js";
import { createCoordination } from "./services.js";
import { appRouter, type AppRouter } from "./trpc/app-router.js";
import { toErrorBody } from "./trpc/error-shape.js";
import { createCallerFactory } from "./trpc/init.js";

type In = inferRouterInputs<AppRouter>;
type Out = inferRouterOutputs<AppRouter>;
/** An input without the fields a method takes as arguments. */
type Rest<T, K extends keyof T> = Omit<T, K>;

/**
 * The coordination core in this process, without HTTP (openCoordination): the task queue, the
 * event stream, the registry and memory, with the procedures' own schemas, rules and errors.
 * Every method rejects with CoordinationError (`code`: TASK_NOT_FOUND, LEASE_CONFLICT,
 * INVALID_INPUT, …); a durable write resolves once committed.
 */
export interface InProcessCoordination {
  tasks: {
    /** Adds a task (pending, or due at `runAt`); with an idempotencyKey already used, that task. IDEMPOTENCY_MISMATCH when the key came with other fields. */
    enqueue(task: In["tasks"]["enqueue"]): Promise<Out["tasks"]["enqueue"]>;
    /** Adds up to 1,000 tasks in one write, all or none; the tasks in the order given. */
    enqueueMany(tasks: In["tasks"]["enqueueMany"]["tasks"]): Promise<Out["tasks"]["enqueueMany"]>;
    /** The best available task for the agent, or null; `waitMs` long-polls. */
    claim(agentId: string, options?: Rest<In["tasks"]["claim"], "agentId">): Promise<Out["tasks"]["claim"]>;
    /** Up to `limit` tasks at once (best first, within the answer's byte budget); [] when none, after `waitMs` at most. */
    claimMany(agentId: string, options?: Rest<In["tasks"]["claimMany"], "agentId">): Promise<Out["tasks"]["claimMany"]>;
    /** Renews the agent's lease on the task (by `leaseMs`, or the length it was claimed with). LEASE_CONFLICT when the agent no longer holds it. */
    heartbeat(taskId: string, agentId: string, options?: Rest<In["tasks"]["heartbeat"], "taskId" | "agentId">): Promise<Out["tasks"]["heartbeat"]>;
    /** Completes the task with `result` under the caller's lease (`agentId`, `leaseToken`); sent again with the same result, the same answer. LEASE_CONFLICT when the lease moved on. */
    complete(taskId: string, settle?: Rest<In["tasks"]["complete"], "taskId">): Promise<Out["tasks"]["complete"]>;
    /** The same, as the seed calls it: `complete(taskId, agentId, result)` (`leaseToken` in `options`). */
    complete(taskId: string, agentId: string, result?: JsonValue, options?: { leaseToken?: number }): Promise<Out["tasks"]["complete"]>;
    /** Completes the agent's task and claims its next one in the same write; `next` is null when none is available. */
    completeAndClaim(taskId: string, agentId: string, settle?: Rest<In["tasks"]["completeAndClaim"], "taskId" | "agentId">): Promise<Out["tasks"]["completeAndClaim"]>;
    /** Records the run's `error`: pending again after the task's backoff (or `retryAfterMs`) while attempts remain (`retry: false`: dead-lettered at once). LEASE_CONFLICT when the lease moved on. */
    fail(taskId: string, settle: Rest<In["tasks"]["fail"], "taskId">): Promise<Out["tasks"]["fail"]>;
    /** The same, as the seed calls it: `fail(taskId, agentId, error, { retry?, retryAfterMs?, leaseToken? })`. */
    fail(taskId: string, agentId: string, error: string, options?: { retry?: boolean; retryAfterMs?: number; leaseToken?: number }): Promise<Out["tasks"]["fail"]>;
    /** Gives the task back uncharged, claimable again at once or after `delayMs`. LEASE_CONFLICT when the agent no longer holds it. */
    release(taskId: string, agentId: string, options?: Rest<In["tasks"]["release"], "taskId" | "agentId">): Promise<Out["tasks"]["release"]>;
    /** Stops a pending or claimed task, or discards a dead letter. INVALID_STATE for a completed task. */
    /** `reason`: why, kept as the task's lastError and in its task.cancelled event. */
    cancel(taskId: string, reason?: string): Promise<Out["tasks"]["cancel"]>;
    /** A dead-lettered or cancelled task back to pending, its attempts reset (`checkpoint: null`: its checkpoint cleared too). INVALID_STATE otherwise. */
    requeue(taskId: string, options?: Rest<In["tasks"]["requeue"], "taskId">): Promise<Out["tasks"]["requeue"]>;
    /** A pending task not due yet (a delay, a retry's backoff, a schedule's next run) due now; one due already as it is. INVALID_STATE for any other state. */
    promote(taskId: string): Promise<Out["tasks"]["promote"]>;
    /** A task that waits to run (pending or waiting) with another `priority` and/or time to fall due (`runAt` or `delayMs`); unchanged, as it is. INVALID_STATE for any other state, and for a schedule's planned next run given another time. */
    update(taskId: string, change: Omit<In["tasks"]["update"], "taskId">): Promise<Out["tasks"]["update"]>;
    /** Up to `limit` (100) dead letters back to pending, oldest first, of `queue` and dead-lettered in [`finishedAfter`, `finishedBefore`) if given; call again with `cursor: nextCursor` until it is null. */
    requeueMany(options?: In["tasks"]["requeueMany"]): Promise<Out["tasks"]["requeueMany"]>;
    /** Up to `limit` (100) of `queue`'s tasks in `statuses` (pending and waiting) cancelled, oldest first, of those enqueued in [`createdAfter`, `createdBefore`) if given; call again with `cursor: nextCursor` until it is null. */
    cancelMany(options: In["tasks"]["cancelMany"]): Promise<Out["tasks"]["cancelMany"]>;
    /** Takes over tasks the agent could claim whose lease ran out or whose holder is offline (from `fromAgentId` only, if given), charging the abandoned run. */
    steal(agentId: string, options?: Rest<In["tasks"]["steal"], "agentId">): Promise<Out["tasks"]["steal"]>;
    /** The task. TASK_NOT_FOUND when there is none (or retention deleted it). */
    get(taskId: string): Promise<Out["tasks"]["get"]>;
    /**
     * The task once it settles (completed, dead_letter or cancelled), waiting up to `waitMs` (left
     * out: maxWaitMs, which also cuts a longer one; 0: not at all); when that runs out first, the
     * task as it is then: look at its `status`. TASK_NOT_FOUND when there is none.
     */
    wait(taskId: string, options?: Rest<In["tasks"]["wait"], "taskId">): Promise<Out["tasks"]["wait"]>;
    /**
     * Several tasks (up to 100) once every one settles (`until: "all"`, the default) or at least
     * one has (`"any"`), waiting up to `waitMs` as wait does; `done` says whether that happened.
     * `tasks` in the order asked, packed within maxResponseBytes (`omitted`: the ids left out);
     * `settledOnly: true` sends the settled ones alone. `waitMs: 0` reads them at once.
     * TASK_NOT_FOUND names every id of no task (`details.missing`).
     */
    waitMany(taskIds: string[], options?: Rest<In["tasks"]["waitMany"], "taskIds">): Promise<Out["tasks"]["waitMany"]>;
    /** A page of tasks, filtered; `nextCursor` fetches the next. */
    list(filter?: In["tasks"]["list"]): Promise<Out["tasks"]["list"]>;
    /**
     * Counts by status, per queue and in all, and how long each queue's oldest due task has
     * waited: the 1,000 busiest queues (or `limit`, or `queue` alone), `queuesOmitted` the rest;
     * the totals count every queue.
     */
    stats(options?: In["tasks"]["stats"]): Promise<Out["tasks"]["stats"]>;
    /**
     * Adds `entries` (1 to 100: `{ message, level?, data? }`) to the task's log as its next lines,
     * under the agent's lease. LEASE_CONFLICT when the agent no longer holds it; with an
     * `idempotencyKey` sent again, the lines it wrote (IDEMPOTENCY_MISMATCH with other entries).
     */
    appendLog(taskId: string, agentId: string, entries: In["tasks"]["appendLog"]["entries"], options?: Rest<In["tasks"]["appendLog"], "taskId" | "agentId" | "entries">): Promise<Out["tasks"]["appendLog"]>;
    /** A page of the task's log after `after` (by `attempt`, `level`); with `waitMs`, waits for its next lines or its settle. TASK_NOT_FOUND when there is none. */
    log(taskId: string, options?: Rest<In["tasks"]["log"], "taskId">): Promise<Out["tasks"]["log"]>;
    /** The task's own events, oldest first (up to `limit`): its transitions. TASK_NOT_FOUND when there is none. */
    events(taskId: string, options?: Rest<In["tasks"]["events"], "taskId">): Promise<Out["tasks"]["events"]>;
    /**
     * Why the agent's claim (with these `queues` and `capabilities`) would answer no task now:
     * paused, full or rate-limited queues, the capabilities and targets of the due tasks it may
     * not run, its next delayed task, and `claimable` (whether a claim would be handed one).
     */
    claimOutlook(agentId: string, options?: Rest<In["tasks"]["claimOutlook"], "agentId">): Promise<Out["tasks"]["claimOutlook"]>;
  };
  queues: {
    /** Pauses `queue`: no claim or steal takes its tasks until it is resumed; enqueues are taken. A queue already paused keeps its pause. */
    pause(queue: string, options?: Rest<In["queues"]["pause"], "queue">): Promise<Out["queues"]["pause"]>;
    /** Resumes `queue`: claims take its tasks again, best first. A queue not paused is answered as it is. */
    resume(queue: string): Promise<Out["queues"]["resume"]>;
    /** Whether `queue` is paused, since when and why. */
    status(queue: string): Promise<Out["queues"]["status"]>;
    /** The paused queues, and resumed ones whose tasks are still being brought back. */
    paused(): Promise<Out["queues"]["paused"]>;
    /** Limits `queue`: at most `maxLeased` of its tasks leased at once, whichever agents hold them. The same limit again changes nothing. */
    setLimit(queue: string, maxLeased: number): Promise<Out["queues"]["setLimit"]>;
    /** Removes the limit of `queue`: claims take its tasks without a bound again. A queue with none is answered as it is. */
    removeLimit(queue: string): Promise<Out["queues"]["removeLimit"]>;
    /** The limit of `queue` and how many of its tasks are leased now (null: no limit). */
    limit(queue: string): Promise<Out["queues"]["limit"]>;
    /** The limited queues, and removed limits whose tasks are still being brought back. */
    limits(): Promise<Out["queues"]["limits"]>;
    /** Rate-limits `queue`: at most `maxClaims` of its tasks claimed in any window of `perMs` ms, whichever agents claim them. The same rate again changes nothing. */
    setRate(queue: string, maxClaims: number, perMs: number): Promise<Out["queues"]["setRate"]>;
    /** Removes the rate of `queue`: claims take its tasks without it again. A queue with none is answered as it is. */
    removeRate(queue: string): Promise<Out["queues"]["removeRate"]>;
    /** The rate of `queue`, the claims its window holds now, and when it has room if full (null fields: no rate). */
    rate(queue: string): Promise<Out["queues"]["rate"]>;
    /** The rate-limited queues, and removed rates whose tasks are still being brought back. */
    rates(): Promise<Out["queues"]["rates"]>;
  };
  schedules: {
    /** Creates the schedule (`cron` with `timezone`, or `everyMs`) or gives it another definition; the same definition again changes nothing. */
    set(schedule: In["schedules"]["set"]): Promise<Out["schedules"]["set"]>;
    /** The schedule named `scheduleId`. SCHEDULE_NOT_FOUND when there is none. */
    get(scheduleId: string): Promise<Out["schedules"]["get"]>;
    /** The schedules by id, a page at a time (`nextCursor`). */
    list(options?: In["schedules"]["list"]): Promise<Out["schedules"]["list"]>;
    /** Deletes the schedule and cancels its pending run; the schedule as it was. SCHEDULE_NOT_FOUND when there is none. */
    remove(scheduleId: string): Promise<Out["schedules"]["remove"]>;
    /** Pauses the schedule: its pending run is cancelled, none is enqueued until it is resumed. */
    pause(scheduleId: string): Promise<Out["schedules"]["pause"]>;
    /** Resumes it: its next run is the first time it names from now. */
    resume(scheduleId: string): Promise<Out["schedules"]["resume"]>;
    /** Runs it now: its pending run is made due at once, an extra run; the one after it stays as planned. INVALID_STATE while it is paused, ended or waiting for its last run (overlap "skip"). */
    trigger(scheduleId: string): Promise<Out["schedules"]["trigger"]>;
  };
  events: {
    /** Stored once, delivered to every matching subscriber (or, with `target`, to one mailbox). */
    publish(event: In["events"]["publish"]): Promise<Out["events"]["publish"]>;
    /** Adds type patterns (`task.*`) to the agent's subscription; reading from the head, or after `fromSeq` (0: all retained). */
    subscribe(agentId: string, types: string[], options?: { fromSeq?: number }): Promise<Out["events"]["subscribe"]>;
    /** Drops the given patterns, or all; the mailbox keeps its position. SUBSCRIPTION_NOT_FOUND when the agent has none. */
    unsubscribe(agentId: string, types?: string[]): Promise<Out["events"]["unsubscribe"]>;
    /** The agent's next events: its subscribed types and its mailbox. */
    poll(agentId: string, options?: Rest<In["events"]["poll"], "agentId">): Promise<Out["events"]["poll"]>;
    /** Acknowledges everything up to and including `seq` (manual-ack polls), patterns and mailbox alike; never moves back. */
    ack(agentId: string, seq: number): Promise<Out["events"]["ack"]>;
    /** The stored log after `afterSeq`, optionally by type patterns; EVENTS_PRUNED behind the retained log. */
    list(options?: In["events"]["list"]): Promise<Out["events"]["list"]>;
    /** The agent's patterns and cursors. SUBSCRIPTION_NOT_FOUND when it has none. */
    subscription(agentId: string): Promise<Out["events"]["subscription"]>;
    /** Where the log stands: `head`, the newest event's seq, and `prunedThrough`, the newest retention removed. */
    head(): Promise<Out["events"]["head"]>;
  };
  agents: {
    /** Registers the agent, or updates it: capabilities (an A2A card's skills join them), metadata. */
    register(agentId: string, registration?: Rest<In["agents"]["register"], "agentId">): Promise<Out["agents"]["register"]>;
    /** The same, as the seed calls it: `register(agentId, capabilities, metadata?)`. */
    register(agentId: string, capabilities: string[], metadata?: JsonObject): Promise<Out["agents"]["register"]>;
    /** A sign of life, with what the agent reports (`status`, `load`); registers an unknown agent. */
    heartbeat(agentId: string, report?: Rest<In["agents"]["heartbeat"], "agentId">): Promise<Out["agents"]["heartbeat"]>;
    /** Removes the agent; tasks it still holds return to the queue, each run charged like a lease expiry. AGENT_NOT_FOUND when unknown. */
    deregister(agentId: string): Promise<Out["agents"]["deregister"]>;
    /** Cordons the agent: no claim or steal hands it a task until uncordoned (or `options.forMs` passed); the tasks it holds run on. AGENT_NOT_FOUND when unknown. */
    cordon(agentId: string, options?: Rest<In["agents"]["cordon"], "agentId">): Promise<Out["agents"]["cordon"]>;
    /** Lifts the agent's cordon (an automatic quarantine too): its claims take tasks again. AGENT_NOT_FOUND when unknown. */
    uncordon(agentId: string): Promise<Out["agents"]["uncordon"]>;
    /** The agent with its health. AGENT_NOT_FOUND when unknown. */
    get(agentId: string): Promise<Out["agents"]["get"]>;
    /** Agents in agentId order, filtered by capability, health, status or cordon; paged with `limit` and `after`. */
    list(filter?: In["agents"]["list"]): Promise<Out["agents"]["list"]>;
    /** The agent's A2A Agent Card: the one it registered with, or one made from its capabilities (each a skill). AGENT_NOT_FOUND when unknown. */
    card(agentId: string): Promise<Out["agents"]["card"]>;
    /** Healthy agents first, then stale, then offline; least loaded first within each; at most `options.limit`. */
    findByCapability(capability: string, options?: { limit?: number }): Promise<Out["agents"]["findByCapability"]>;
  };
  locks: {
    /** Acquires lock `name` for the agent, with a lease and a fencing token: `acquired` false while another acquire holds it (after `options.waitMs`). One the agent holds under the same `idempotencyKey` (or none, as it was taken with none): renewed, the same token. LIMIT_EXCEEDED past maxLocksPerAgent. */
    acquire(name: string, agentId: string, options?: Rest<In["locks"]["acquire"], "name" | "agentId">): Promise<Out["locks"]["acquire"]>;
    /** Renews the agent's lease on the lock from now (by `leaseMs`, or the length it was acquired with). LEASE_CONFLICT when it holds none (under `fencingToken`, which a grant taken with an idempotencyKey needs). */
    renew(name: string, agentId: string, options?: Rest<In["locks"]["renew"], "name" | "agentId">): Promise<Out["locks"]["renew"]>;
    /** Releases the agent's lock (that of `fencingToken`): `released` false when it held none, nothing changed. */
    release(name: string, agentId: string, options?: Rest<In["locks"]["release"], "name" | "agentId">): Promise<Out["locks"]["release"]>;
    /** Ends whichever grant holds the lock (an operator's call): its holder's next renewal is refused. */
    forceRelease(name: string, reason?: string): Promise<Out["locks"]["forceRelease"]>;
    /** The lock as it is now (`held` false: free). */
    get(name: string): Promise<Out["locks"]["get"]>;
    /** The locks held now, by name: `holder`, `prefix`, paged with `limit` and `after`. */
    list(filter?: In["locks"]["list"]): Promise<Out["locks"]["list"]>;
  };
  semaphores: {
    /** Acquires a permit of semaphore `name` for the agent while fewer than `limit` are held (the smallest limit among the permits held binds too), with a lease and a fencing token: `acquired` false while it is full (after `options.waitMs`). One the agent holds under the same `idempotencyKey`: renewed, the same token. LIMIT_EXCEEDED past maxLocksPerAgent. */
    acquire(name: string, agentId: string, limit: number, options?: Rest<In["semaphores"]["acquire"], "name" | "agentId" | "limit">): Promise<Out["semaphores"]["acquire"]>;
    /** Renews the agent's permit `fencingToken` from now (by `leaseMs`, or the length it was acquired with). LEASE_CONFLICT when it holds none under that token. */
    renew(name: string, agentId: string, fencingToken: number, leaseMs?: number): Promise<Out["semaphores"]["renew"]>;
    /** Releases the agent's permit `fencingToken`: `released` false when it held none, nothing changed. */
    release(name: string, agentId: string, fencingToken: number): Promise<Out["semaphores"]["release"]>;
    /** Ends permit `options.fencingToken` of the semaphore, or all held (an operator's call): their holders' next renewals are refused. */
    forceRelease(name: string, options?: Rest<In["semaphores"]["forceRelease"], "name">): Promise<Out["semaphores"]["forceRelease"]>;
    /** The semaphore as it is now: its permits held, their smallest limit. */
    get(name: string): Promise<Out["semaphores"]["get"]>;
    /** The permits held now, by semaphore name and token: `holder`, `prefix`, paged with `limit` and `cursor`. */
    list(filter?: In["semaphores"]["list"]): Promise<Out["semaphores"]["list"]>;
  };
  webhooks: {
    /** Creates a webhook: each untargeted event matching `types` POSTed to `url`, in seq order, signed; answers its secret, once. INVALID_STATE past 100 webhooks. */
    create(url: string, types: string[], options?: Rest<In["webhooks"]["create"], "url" | "types">): Promise<Out["webhooks"]["create"]>;
    /** Changes its url, types or description, or disables (`enabled` false, `reason`) or enables it. WEBHOOK_NOT_FOUND. */
    update(id: string, changes: Rest<In["webhooks"]["update"], "id">): Promise<Out["webhooks"]["update"]>;
    /** A new signing secret (answered once); the old one signs too for `graceMs` (24 hours by default), beside those of earlier rotations still in their grace (0: every old one stops). WEBHOOK_NOT_FOUND; INVALID_STATE when 8 old secrets sign already. */
    rotateSecret(id: string, graceMs?: number): Promise<Out["webhooks"]["rotateSecret"]>;
    /** Removes it; `removed` false when there was none. */
    remove(id: string): Promise<Out["webhooks"]["remove"]>;
    /** WEBHOOK_NOT_FOUND. */
    get(id: string): Promise<Out["webhooks"]["get"]>;
    /** Every webhook, oldest first. */
    list(): Promise<Out["webhooks"]["list"]>;
  };
  kv: {
    /** Writes `value` (any JSON, up to 64 KiB) to `key`: with `options.ifVersion`, only if that is its version now (0: absent), else VERSION_CONFLICT (`details.entry`: the key as it is); `ttlMs`: it expires then. */
    set(key: string, value: In["kv"]["set"]["value"], options?: Rest<In["kv"]["set"], "key" | "value">): Promise<Out["kv"]["set"]>;
    /** The key as it is (`entry` null: absent); with `options.afterVersion`, once its version differs from that one (absent: 0), waiting up to `waitMs`. */
    get(key: string, options?: Rest<In["kv"]["get"], "key">): Promise<Out["kv"]["get"]>;
    /** Adds `options.by` (1 by default) to the number the key holds (absent: 0), kept within `min` and `max` (OUT_OF_RANGE otherwise, nothing written); INVALID_STATE for a key holding anything else. */
    increment(key: string, options?: Rest<In["kv"]["increment"], "key">): Promise<Out["kv"]["increment"]>;
    /** Deletes the key (`deleted` false when it was absent); with `options.ifVersion`, only at that version, else VERSION_CONFLICT. */
    delete(key: string, options?: Rest<In["kv"]["delete"], "key">): Promise<Out["kv"]["delete"]>;
    /** The keys present, by key, with their values: `prefix`, paged with `limit` and `after`. */
    list(filter?: In["kv"]["list"]): Promise<Out["kv"]["list"]>;
  };

  memory: {
    /** Stores a memory (content, data, tags, queue) that recall and pre-execution context can find. */
    remember(note: In["memory"]["remember"]): Promise<Out["memory"]["remember"]>;
    /** Memories ranked for a query, a task or a queue, best first, each with its score in [0, 1]. */
    recall(query: In["memory"]["recall"]): Promise<Out["memory"]["recall"]>;
    /** Deletes a memory by its id; the memory as it was. MEMORY_NOT_FOUND when there is none. */
    forget(memoryId: string): Promise<Out["memory"]["forget"]>;
  };
  /** Stops the background jobs (lease sweeper, health monitor, pruners, memory index compaction) and closes the database. */
  close(): Promise<void>;
}

/** Settings by their camelCase names, each of its type (`leaseMs: 30_000`, `durability: "full"`). */
export type InProcessSettings = { -readonly [K in SettingName]?: Config[K] };

/** What openCoordination is opened with; everything may be left out. */
export interface InProcessOptions {
  /**
   * Settings by their camelCase names (`dbPath`, `leaseMs`, …), as in the YAML file, typed; the
   * rest take their defaults (COORDINATION_* variables are not read). Values out of range throw
   * ConfigError.
   */
  settings?: InProcessSettings;
  /** Where logs go (default: pino on stdout at the logLevel setting). */
  logger?: Logger;
}

const createCaller = createCallerFactory(appRouter);

/**
 * Makes the call, rethrowing what it throws as CoordinationError, with the same code and message
 * as over HTTP. A thunk, so what the input's building throws (a refused argument) rejects too.
 */
async function domainErrors<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    const body = toErrorBody(error);
    if (body.code === "INTERNAL") throw error;
    throw new CoordinationError(body.code as DomainErrorCode, body.message, body.details);
  }
}

/**
 * An options argument, to spread into the call's input. Spread as given, a string made fields
 * "0", "1", … (refused as unknown, naming no argument) and a number or boolean none at all:
 * claim("agent-1", 5000) claimed without waiting, without a word. A JavaScript caller's
 * positional habit: refused, naming the argument, as a field of the wrong type is.
 */
function fields<T>(options: T, argument: string): T {
  // Left out, or null, spreads into nothing: no options.
  if (options === undefined || options === null || (typeof options === "object" && !Array.isArray(options))) return options;
  throw invalidField(argument, `must be an object (got ${Array.isArray(options) ? "array" : typeof options})`);
}

/**
 * agents.register's input from the options object, or from the seed's register(agentId,
 * capabilities, metadata?): anything but an object where the capabilities go is taken as them, so
 * one capability given as a string is refused as over HTTP ("capabilities: must be an array").
 */
function registrationOf(agentId: string, registration: unknown, metadata: JsonObject | undefined): In["agents"]["register"] {
  if (registration === undefined || registration === null || (typeof registration === "object" && !Array.isArray(registration))) {
    return { ...(registration as Rest<In["agents"]["register"], "agentId"> | null | undefined), agentId };
  }
  return { agentId, capabilities: registration as string[], ...(metadata === undefined ? {} : { metadata }) };
}

/**
 * Opens (creating and migrating if needed) the database named by `settings.dbPath` and starts the
 * background jobs. Invalid settings throw ConfigError listing every problem.
 */
export async function openCoordination(options: InProcessOptions = {}): Promise<InProcessCoordination> {
  const config = loadConfig({ env: {}, overrides: options.settings ?? {} });
  const coordination = createCoordination(config, options.logger ?? createLogger(config.logLevel));
  try {
    await coordination.start();
  } catch (error) {
    await coordination.close().catch(() => undefined);
    throw error;
  }
  // In-process callers are the program itself: trusted, as a server with no credentials trusts everyone.
  const api = createCaller({ core: coordination.services, transport: inProcessTransport, caller: TRUSTED });
  const run = domainErrors;
  return {
    tasks: {
      enqueue: (task) => run(() => api.tasks.enqueue(task)),
      enqueueMany: (tasks) => run(() => api.tasks.enqueueMany({ tasks })),
      claim: (agentId, claimOptions) => run(() => api.tasks.claim({ ...fields(claimOptions, "options"), agentId })),
      claimMany: (agentId, claimOptions) => run(() => api.tasks.claimMany({ ...fields(claimOptions, "options"), agentId })),
      heartbeat: (taskId, agentId, heartbeatOptions) => run(() => api.tasks.heartbeat({ ...fields(heartbeatOptions, "options"), taskId, agentId })),
      complete: (taskId: string, settle?: string | Rest<In["tasks"]["complete"], "taskId">, result?: JsonValue, options?: { leaseToken?: number }) =>
        run(() => api.tasks.complete(typeof settle === "string" ? { ...fields(options, "options"), taskId, agentId: settle, result } : { ...fields(settle, "settle"), taskId })),
      completeAndClaim: (taskId, agentId, settle) => run(() => api.tasks.completeAndClaim({ ...fields(settle, "settle"), taskId, agentId })),
      fail: (taskId: string, settle: string | Rest<In["tasks"]["fail"], "taskId">, error?: string, options?: { retry?: boolean; retryAfterMs?: number; leaseToken?: number }) =>
        run(() => api.tasks.fail(typeof settle === "string" ? { ...fields(options, "options"), taskId, agentId: settle, error: error! } : { ...fields(settle, "settle"), taskId })),
      release: (taskId, agentId, releaseOptions) => run(() => api.tasks.release({ ...fields(releaseOptions, "options"), taskId, agentId })),
      cancel: (taskId, reason) => run(() => api.tasks.cancel(reason === undefined ? { taskId } : { taskId, reason })),
      requeue: (taskId, requeueOptions) => run(() => api.tasks.requeue({ ...fields(requeueOptions, "options"), taskId })),
      promote: (taskId) => run(() => api.tasks.promote({ taskId })),
      update: (taskId, change) => run(() => api.tasks.update({ ...fields(change, "change"), taskId })),
      requeueMany: (options) => run(() => api.tasks.requeueMany(options ?? {})),
      cancelMany: (options) => run(() => api.tasks.cancelMany(options)),
      steal: (agentId, stealOptions) => run(() => api.tasks.steal({ ...fields(stealOptions, "options"), agentId })),
      get: (taskId) => run(() => api.tasks.get({ taskId })),
      wait: (taskId, waitOptions) => run(() => api.tasks.wait({ ...fields(waitOptions, "options"), taskId })),
      waitMany: (taskIds, waitOptions) => run(() => api.tasks.waitMany({ ...fields(waitOptions, "options"), taskIds })),
      list: (filter) => run(() => api.tasks.list(filter ?? {})),
      stats: (options) => run(() => api.tasks.stats(options)),
      appendLog: (taskId, agentId, entries, options) => run(() => api.tasks.appendLog({ ...fields(options, "options"), taskId, agentId, entries })),
      log: (taskId, options) => run(() => api.tasks.log({ ...fields(options, "options"), taskId })),
      events: (taskId, options) => run(() => api.tasks.events({ ...fields(options, "options"), taskId })),
      claimOutlook: (agentId, options) => run(() => api.tasks.claimOutlook({ ...fields(options, "options"), agentId })),
    },
    queues: {
      pause: (queue, options) => run(() => api.queues.pause({ ...fields(options, "options"), queue })),
      resume: (queue) => run(() => api.queues.resume({ queue })),
      status: (queue) => run(() => api.queues.status({ queue })),
      paused: () => run(() => api.queues.paused()),
      setLimit: (queue, maxLeased) => run(() => api.queues.setLimit({ queue, maxLeased })),
      removeLimit: (queue) => run(() => api.queues.removeLimit({ queue })),
      limit: (queue) => run(() => api.queues.limit({ queue })),
      limits: () => run(() => api.queues.limits()),
      setRate: (queue, maxClaims, perMs) => run(() => api.queues.setRate({ queue, maxClaims, perMs })),
      removeRate: (queue) => run(() => api.queues.removeRate({ queue })),
      rate: (queue) => run(() => api.queues.rate({ queue })),
      rates: () => run(() => api.queues.rates()),
    },
    schedules: {
      set: (schedule) => run(() => api.schedules.set(schedule)),
      get: (scheduleId) => run(() => api.schedules.get({ scheduleId })),
      list: (options) => run(() => api.schedules.list(options)),
      remove: (scheduleId) => run(() => api.schedules.remove({ scheduleId })),
      pause: (scheduleId) => run(() => api.schedules.pause({ scheduleId })),
      resume: (scheduleId) => run(() => api.schedules.resume({ scheduleId })),
      trigger: (scheduleId) => run(() => api.schedules.trigger({ scheduleId })),
    },
    events: {
      publish: (event) => run(() => api.events.publish(event)),
      subscribe: (agentId, types, subscribeOptions) => run(() => api.events.subscribe({ ...fields(subscribeOptions, "options"), agentId, types })),
      unsubscribe: (agentId, types) => run(() => api.events.unsubscribe(types === undefined ? { agentId } : { agentId, types })),
      poll: (agentId, pollOptions) => run(() => api.events.poll({ ...fields(pollOptions, "options"), agentId })),
      ack: (agentId, seq) => run(() => api.events.ack({ agentId, seq })),
      list: (listOptions) => run(() => api.events.list(listOptions ?? {})),
      subscription: (agentId) => run(() => api.events.subscription({ agentId })),
      head: () => run(() => api.events.head()),
    },
    agents: {
      register: (agentId: string, registration?: string[] | Rest<In["agents"]["register"], "agentId">, metadata?: JsonObject) =>
        run(() => api.agents.register(registrationOf(agentId, registration, metadata))),
      heartbeat: (agentId, report) => run(() => api.agents.heartbeat({ ...fields(report, "report"), agentId })),
      deregister: (agentId) => run(() => api.agents.deregister({ agentId })),
      cordon: (agentId, options) => run(() => api.agents.cordon({ ...fields(options, "options"), agentId })),
      uncordon: (agentId) => run(() => api.agents.uncordon({ agentId })),
      get: (agentId) => run(() => api.agents.get({ agentId })),
      list: (filter) => run(() => api.agents.list(filter ?? {})),
      card: (agentId) => run(() => api.agents.card({ agentId })),
      findByCapability: (capability, options) => run(() => api.agents.findByCapability({ ...fields(options, "options"), capability })),
    },
    locks: {
      acquire: (name, agentId, options) => run(() => api.locks.acquire({ ...fields(options, "options"), name, agentId })),
      renew: (name, agentId, options) => run(() => api.locks.renew({ ...fields(options, "options"), name, agentId })),
      release: (name, agentId, options) => run(() => api.locks.release({ ...fields(options, "options"), name, agentId })),
      forceRelease: (name, reason) => run(() => api.locks.forceRelease(reason === undefined ? { name } : { name, reason })),
      get: (name) => run(() => api.locks.get({ name })),
      list: (filter) => run(() => api.locks.list(filter ?? {})),
    },
    semaphores: {
      acquire: (name, agentId, limit, options) => run(() => api.semaphores.acquire({ ...fields(options, "options"), name, agentId, limit })),
      renew: (name, agentId, fencingToken, leaseMs) => run(() => api.semaphores.renew(leaseMs === undefined ? { name, agentId, fencingToken } : { name, agentId, fencingToken, leaseMs })),
      release: (name, agentId, fencingToken) => run(() => api.semaphores.release({ name, agentId, fencingToken })),
      forceRelease: (name, options) => run(() => api.semaphores.forceRelease({ ...fields(options, "options"), name })),
      get: (name) => run(() => api.semaphores.get({ name })),
      list: (filter) => run(() => api.semaphores.list(filter ?? {})),
    },
    webhooks: {
      create: (url, types, options) => run(() => api.webhooks.create({ ...fields(options, "options"), url, types })),
      update: (id, changes) => run(() => api.webhooks.update({ ...fields(changes, "changes"), id })),
      rotateSecret: (id, graceMs) => run(() => api.webhooks.rotateSecret(graceMs === undefined ? { id } : { id, graceMs })),
      remove: (id) => run(() => api.webhooks.remove({ id })),
      get: (id) => run(() => api.webhooks.get({ id })),
      list: () => run(() => api.webhooks.list()),
    },
    kv: {
      set: (key, value, options) => run(() => api.kv.set({ ...fields(options, "options"), key, value })),
      get: (key, options) => run(() => api.kv.get({ ...fields(options, "options"), key })),
      increment: (key, options) => run(() => api.kv.increment({ ...fields(options, "options"), key })),
      delete: (key, options) => run(() => api.kv.delete({ ...fields(options, "options"), key })),
      list: (filter) => run(() => api.kv.list(filter ?? {})),
    },
    memory: {
      remember: (note) => run(() => api.memory.remember(note)),
      recall: (query) => run(() => api.memory.recall(query)),
      forget: (memoryId) => run(() => api.memory.forget({ memoryId })),
    },
    close: () => coordination.close(),
  };
}
