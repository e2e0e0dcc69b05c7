// The seed's in-process API (its Python TaskQueue, EventStream and AgentRegistry), for
// TypeScript programs that embed the coordination core without HTTP. Same names in camelCase
// (tasks.enqueue, tasks.claim("agent-1"), events.subscribe("agent-1", [...]), events.poll,
// agents.register("agent-1", { capabilities }), agents.findByCapability). Every call goes through
// the procedures' own server-side caller, so it shares their schemas, rules and errors with tRPC
// and REST; errors are CoordinationError with the codes of src/errors.ts.
import type { inferRouterInputs, inferRouterOutputs } from "@trpc/server";
import { TRUSTED } from "./auth/credentials.js";
import { loadConfig, type SettingName } from "./config.js";
import { inProcessTransport } from "./delivery/transports.js";
import { CoordinationError, type DomainErrorCode } from "./errors.js";
import { createLogger, type Logger } from "./logger.js";
import { createCoordination } from "./services.js";
import { appRouter, type AppRouter } from "./trpc/app-router.js";
import { toErrorBody } from "./trpc/error-shape.js";
import { createCallerFactory } from "./trpc/init.js";

type In = inferRouterInputs<AppRouter>;
type Out = inferRouterOutputs<AppRouter>;
/** An input without the fields a method takes as arguments. */
type Rest<T, K extends keyof T> = Omit<T, K>;

export interface InProcessCoordination {
  tasks: {
    enqueue(task: In["tasks"]["enqueue"]): Promise<Out["tasks"]["enqueue"]>;
    enqueueMany(tasks: In["tasks"]["enqueueMany"]["tasks"]): Promise<Out["tasks"]["enqueueMany"]>;
    /** The best available task for the agent, or null; `waitMs` long-polls. */
    claim(agentId: string, options?: Rest<In["tasks"]["claim"], "agentId">): Promise<Out["tasks"]["claim"]>;
    claimMany(agentId: string, options?: Rest<In["tasks"]["claimMany"], "agentId">): Promise<Out["tasks"]["claimMany"]>;
    heartbeat(taskId: string, agentId: string, options?: Rest<In["tasks"]["heartbeat"], "taskId" | "agentId">): Promise<Out["tasks"]["heartbeat"]>;
    complete(taskId: string, settle?: Rest<In["tasks"]["complete"], "taskId">): Promise<Out["tasks"]["complete"]>;
    /** Completes the agent's task and claims its next one in the same write; `next` is null when none is available. */
    completeAndClaim(taskId: string, agentId: string, settle?: Rest<In["tasks"]["completeAndClaim"], "taskId" | "agentId">): Promise<Out["tasks"]["completeAndClaim"]>;
    fail(taskId: string, settle: Rest<In["tasks"]["fail"], "taskId">): Promise<Out["tasks"]["fail"]>;
    release(taskId: string, agentId: string, options?: Rest<In["tasks"]["release"], "taskId" | "agentId">): Promise<Out["tasks"]["release"]>;
    cancel(taskId: string): Promise<Out["tasks"]["cancel"]>;
    requeue(taskId: string): Promise<Out["tasks"]["requeue"]>;
    steal(agentId: string, options?: Rest<In["tasks"]["steal"], "agentId">): Promise<Out["tasks"]["steal"]>;
    get(taskId: string): Promise<Out["tasks"]["get"]>;
    list(filter?: In["tasks"]["list"]): Promise<Out["tasks"]["list"]>;
    stats(): Promise<Out["tasks"]["stats"]>;
  };
  events: {
    /** Stored once, delivered to every matching subscriber (or, with `target`, to one mailbox). */
    publish(event: In["events"]["publish"]): Promise<Out["events"]["publish"]>;
    subscribe(agentId: string, types: string[], options?: { fromSeq?: number }): Promise<Out["events"]["subscribe"]>;
    unsubscribe(agentId: string, types?: string[]): Promise<Out["events"]["unsubscribe"]>;
    /** The agent's next events: its subscribed types and its mailbox. */
    poll(agentId: string, options?: Rest<In["events"]["poll"], "agentId">): Promise<Out["events"]["poll"]>;
    ack(agentId: string, seq: number): Promise<Out["events"]["ack"]>;
    list(options?: In["events"]["list"]): Promise<Out["events"]["list"]>;
    subscription(agentId: string): Promise<Out["events"]["subscription"]>;
  };
  agents: {
    register(agentId: string, registration?: Rest<In["agents"]["register"], "agentId">): Promise<Out["agents"]["register"]>;
    heartbeat(agentId: string, report?: Rest<In["agents"]["heartbeat"], "agentId">): Promise<Out["agents"]["heartbeat"]>;
    deregister(agentId: string): Promise<Out["agents"]["deregister"]>;
    get(agentId: string): Promise<Out["agents"]["get"]>;
    list(filter?: In["agents"]["list"]): Promise<Out["agents"]["list"]>;
    /** Healthy agents first, then stale, then offline; least loaded first within each. */
    findByCapability(capability: string): Promise<Out["agents"]["findByCapability"]>;
  };
  memory: {
    remember(note: In["memory"]["remember"]): Promise<Out["memory"]["remember"]>;
    recall(query: In["memory"]["recall"]): Promise<Out["memory"]["recall"]>;
    /** Deletes a memory by its id; the memory as it was. MEMORY_NOT_FOUND when there is none. */
    forget(memoryId: string): Promise<Out["memory"]["forget"]>;
  };
  /** Stops the background jobs (lease sweeper, health monitor, pruners, memory index compaction) and closes the database. */
  close(): Promise<void>;
}

export interface InProcessOptions {
  /** Settings by their camelCase names (`dbPath`, `leaseMs`, …), as in the YAML file; the rest take their defaults. */
  settings?: Partial<Record<SettingName, unknown>>;
  /** Where logs go (default: pino on stdout at the logLevel setting). */
  logger?: Logger;
}

const createCaller = createCallerFactory(appRouter);

/** Rethrows what a procedure throws as CoordinationError, with the same code and message as over HTTP. */
async function domainErrors<T>(call: Promise<T>): Promise<T> {
  try {
    return await call;
  } catch (error) {
    const body = toErrorBody(error);
    if (body.code === "INTERNAL") throw error;
    throw new CoordinationError(body.code as DomainErrorCode, body.message, body.details);
  }
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
      enqueue: (task) => run(api.tasks.enqueue(task)),
      enqueueMany: (tasks) => run(api.tasks.enqueueMany({ tasks })),
      claim: (agentId, claimOptions) => run(api.tasks.claim({ ...claimOptions, agentId })),
      claimMany: (agentId, claimOptions) => run(api.tasks.claimMany({ ...claimOptions, agentId })),
      heartbeat: (taskId, agentId, heartbeatOptions) => run(api.tasks.heartbeat({ ...heartbeatOptions, taskId, agentId })),
      complete: (taskId, settle) => run(api.tasks.complete({ ...settle, taskId })),
      completeAndClaim: (taskId, agentId, settle) => run(api.tasks.completeAndClaim({ ...settle, taskId, agentId })),
      fail: (taskId, settle) => run(api.tasks.fail({ ...settle, taskId })),
      release: (taskId, agentId, releaseOptions) => run(api.tasks.release({ ...releaseOptions, taskId, agentId })),
      cancel: (taskId) => run(api.tasks.cancel({ taskId })),
      requeue: (taskId) => run(api.tasks.requeue({ taskId })),
      steal: (agentId, stealOptions) => run(api.tasks.steal({ ...stealOptions, agentId })),
      get: (taskId) => run(api.tasks.get({ taskId })),
      list: (filter) => run(api.tasks.list(filter ?? {})),
      stats: () => run(api.tasks.stats()),
    },
    events: {
      publish: (event) => run(api.events.publish(event)),
      subscribe: (agentId, types, subscribeOptions) => run(api.events.subscribe({ ...subscribeOptions, agentId, types })),
      unsubscribe: (agentId, types) => run(api.events.unsubscribe(types === undefined ? { agentId } : { agentId, types })),
      poll: (agentId, pollOptions) => run(api.events.poll({ ...pollOptions, agentId })),
      ack: (agentId, seq) => run(api.events.ack({ agentId, seq })),
      list: (listOptions) => run(api.events.list(listOptions ?? {})),
      subscription: (agentId) => run(api.events.subscription({ agentId })),
    },
    agents: {
      register: (agentId, registration) => run(api.agents.register({ ...registration, agentId })),
      heartbeat: (agentId, report) => run(api.agents.heartbeat({ ...report, agentId })),
      deregister: (agentId) => run(api.agents.deregister({ agentId })),
      get: (agentId) => run(api.agents.get({ agentId })),
      list: (filter) => run(api.agents.list(filter ?? {})),
      findByCapability: (capability) => run(api.agents.findByCapability({ capability })),
    },
    memory: {
      remember: (note) => run(api.memory.remember(note)),
      recall: (query) => run(api.memory.recall(query)),
      forget: (memoryId) => run(api.memory.forget({ memoryId })),
    },
    close: () => coordination.close(),
  };
}
