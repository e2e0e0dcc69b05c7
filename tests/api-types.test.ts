// End-to-end types: every procedure's input and output is its exact type in AppRouter, as the
// typed client sees it. These are compile-time checks (npm test runs tsc over tests/ first); a
// field that leaks as `unknown` or a wrong call that compiles fails the typecheck. The runtime
// test makes sure no procedure is left out: a new one must be added here.
import { describe, expect, expectTypeOf, it } from "vitest";
import type { TRPCClientError } from "@trpc/client";
// ErrorCode from the client's own entry point: a client-only project names the codes from there.
import type { AppRouter, CoordinationApi, ErrorCode, JsonObject, JsonValue, RouterInputs, RouterOutputs } from "../client/index.js";
import type { ERROR_STATUS } from "../src/errors.js";
import { isSystemEvent, isTRPCClientError, runWorker, type WorkerOptions } from "../client/index.js";
import { appRouter } from "../src/trpc/app-router.js";

type In = RouterInputs;
type Out = RouterOutputs;

type TaskStatus = "waiting" | "pending" | "claimed" | "completed" | "dead_letter" | "cancelled";
interface Task {
  id: string;
  queue: string;
  payload: JsonValue;
  priority: number;
  capability: string | null;
  targetAgentId: string | null;
  status: TaskStatus;
  attempts: number;
  maxAttempts: number;
  runAt: Date;
  leaseOwner: string | null;
  leaseExpiresAt: Date | null;
  leaseToken: number;
  result: JsonValue;
  lastError: string | null;
  errorHistory: Array<{ attempt: number; agentId: string | null; error: string; at: Date }>;
  idempotencyKey: string | null;
  createdAt: Date;
  updatedAt: Date;
  claimedAt: Date | null;
  finishedAt: Date | null;
  dependsOn: string[];
  onDependencyFailure: "wait" | "cancel";
  progress: JsonValue;
  progressAt: Date | null;
  backoff: { type: "exponential" | "fixed"; delayMs: number; maxDelayMs: number; jitter: number } | null;
  scheduleId: string | null;
  expiresAt: Date | null;
  maxRunMs: number | null;
  runDeadlineAt: Date | null;
  dedupeKey: string | null;
  duplicates: number;
  replacedAt: Date | null;
  orderingKey: string | null;
  keyConcurrency: number | null;
  checkpoint: JsonValue;
  checkpointAt: Date | null;
  traceparent: string | null;
  tracestate: string | null;
  baggage: string | null;
  enqueuedBy: string | null;
}
interface Memory {
  id: string;
  kind: "execution" | "note" | "lesson";
  content: string;
  agentId: string | null;
  queue: string | null;
  capability: string | null;
  taskId: string | null;
  outcome: string | null;
  durationMs: number | null;
  tags: string[];
  data: JsonValue;
  createdAt: Date;
}
type MemoryMatch = { memory: Memory; score: number };
/** One object type from an intersection: toEqualTypeOf compares the shapes it is given literally. */
type Flat<T> = { [K in keyof T]: T[K] };
/** Held by its claimer under a lease with an end: no null to check in a worker's hands. */
type ClaimedTask = Flat<Omit<Task, "status" | "leaseOwner" | "leaseExpiresAt" | "claimedAt"> & { status: "claimed"; leaseOwner: string; leaseExpiresAt: Date; claimedAt: Date; context: MemoryMatch[] }>;
type SettledTask = Flat<Task & { settledLease: { agentId: string; leaseToken: number } }>;
/** An enqueue's answer: whether another enqueue's task (its dedupe key's) answered it. */
type EnqueuedTask = Flat<Task & { deduplicated: boolean; replayed: boolean }>;
interface CoordinationEvent {
  seq: number;
  type: string;
  source: string;
  payload: JsonValue;
  target: string | null;
  createdAt: Date;
}
interface Subscription {
  agentId: string;
  types: string[];
  cursor: number;
  mailboxCursor: number;
  createdAt: Date;
  updatedAt: Date;
}
interface Agent {
  agentId: string;
  capabilities: string[];
  metadata: JsonObject;
  status: string;
  health: "healthy" | "stale" | "offline";
  load: number;
  registeredAt: Date;
  lastHeartbeatAt: Date;
  updatedAt: Date;
  cordon: { reason: string | null; cordonedBy: string | null; cordonedAt: Date; until: Date | null; automatic: boolean } | null;
}
type Counts = Record<TaskStatus, number>;
type ClaimOptions = { agentId: string; queues?: string[]; capabilities?: string[]; leaseMs?: number; waitMs?: number; context?: boolean; idempotencyKey?: string };
type Settle = { taskId: string; agentId?: string; leaseToken?: number };

/** Every procedure this file checks, by dotted path. */
const CHECKED = [
  "health",
  "tasks.enqueue", "tasks.enqueueMany", "tasks.claim", "tasks.claimNext", "tasks.claimMany", "tasks.heartbeat", "tasks.complete", "tasks.completeAndClaim",
  "tasks.fail", "tasks.release", "tasks.cancel", "tasks.requeue", "tasks.promote", "tasks.update", "tasks.requeueMany", "tasks.cancelMany", "tasks.steal", "tasks.get", "tasks.wait", "tasks.waitMany", "tasks.list", "tasks.stats", "tasks.events",
  "tasks.claimOutlook", "tasks.appendLog", "tasks.log",
  "queues.pause", "queues.resume", "queues.status", "queues.paused",
  "queues.setLimit", "queues.removeLimit", "queues.limit", "queues.limits",
  "queues.setRate", "queues.removeRate", "queues.rate", "queues.rates",
  "schedules.set", "schedules.get", "schedules.list", "schedules.remove", "schedules.pause", "schedules.resume", "schedules.trigger",
  "events.publish", "events.subscribe", "events.unsubscribe", "events.subscription", "events.poll", "events.ack", "events.list", "events.head", "events.onEvent",
  "agents.register", "agents.heartbeat", "agents.deregister", "agents.cordon", "agents.uncordon", "agents.get", "agents.list", "agents.findByCapability", "agents.card",
  "memory.remember", "memory.recall", "memory.forget",
  "locks.acquire", "locks.renew", "locks.release", "locks.forceRelease", "locks.get", "locks.list",
  "semaphores.acquire", "semaphores.renew", "semaphores.release", "semaphores.forceRelease", "semaphores.get", "semaphores.list",
  "tokens.create", "tokens.list", "tokens.revoke", "tokens.whoami",
  "webhooks.create", "webhooks.update", "webhooks.rotateSecret", "webhooks.remove", "webhooks.get", "webhooks.list",
  "kv.set", "kv.get", "kv.increment", "kv.delete", "kv.list",
];

type IsAny<T> = 0 extends 1 & T ? true : false;
/**
 * The paths in `T` whose type is any or unknown, down to 8 levels (JsonValue is a closed union,
 * a Date a leaf): where a typed client's caller would have to cast. An answer's loose object
 * (an A2A card's fields beyond those the server reads) would show here too.
 */
type Leaks<T, P extends string, D extends unknown[] = []> = D["length"] extends 8
  ? never
  : IsAny<T> extends true
    ? P
    : unknown extends T
      ? P
      : T extends Date | string | number | boolean | null | undefined
        ? never
        : T extends readonly (infer E)[]
          ? Leaks<E, `${P}[]`, [...D, 0]>
          : T extends object
            ? { [K in keyof T & string]-?: Leaks<T[K], `${P}.${K}`, [...D, 0]> }[keyof T & string]
            : never;
/** Every procedure's answer's leaks, as "namespace.procedure.field" paths. */
type AnswerLeaks = {
  [NS in keyof Out & string]: { [M in keyof Out[NS] & string]: Leaks<Out[NS][M], `${NS}.${M}`> }[keyof Out[NS] & string];
}[keyof Out & string];

describe("AppRouter types", () => {
  it("checks every procedure of the router", () => {
    expect(Object.keys(appRouter._def.procedures).sort()).toEqual([...CHECKED].sort());
  });

  it("task procedures", () => {
    expectTypeOf<In["tasks"]["enqueue"]>().toEqualTypeOf<{
      queue?: string;
      payload?: JsonValue;
      priority?: number;
      capability?: string;
      targetAgentId?: string;
      agentId?: string;
      runAt?: Date | string | number;
      delayMs?: number;
      expiresAt?: Date | string | number;
      ttlMs?: number;
      maxAttempts?: number;
      maxRunMs?: number;
      backoff?: { type?: "exponential" | "fixed"; delayMs: number; maxDelayMs?: number; jitter?: number };
      dependsOn?: string[];
      onDependencyFailure?: "wait" | "cancel";
      idempotencyKey?: string;
      dedupe?: { key: string; until?: "claimed" | "settled"; replace?: boolean };
      orderingKey?: string;
      keyConcurrency?: number;
      traceparent?: string | null;
      tracestate?: string | null;
      baggage?: string | null;
    }>();
    expectTypeOf<Out["tasks"]["enqueue"]>().toEqualTypeOf<EnqueuedTask>();
    expectTypeOf<In["tasks"]["enqueueMany"]["tasks"][number]>().toEqualTypeOf<In["tasks"]["enqueue"]>();
    expectTypeOf<Out["tasks"]["enqueueMany"]>().toEqualTypeOf<EnqueuedTask[]>();
    expectTypeOf<In["tasks"]["claim"]>().toEqualTypeOf<ClaimOptions>();
    expectTypeOf<Out["tasks"]["claim"]>().toEqualTypeOf<ClaimedTask | null>();
    expectTypeOf<In["tasks"]["claimNext"]>().toEqualTypeOf<ClaimOptions>();
    expectTypeOf<Out["tasks"]["claimNext"]>().toEqualTypeOf<ClaimedTask | null>();
    expectTypeOf<In["tasks"]["claimMany"]>().toEqualTypeOf<Flat<ClaimOptions & { limit?: number }>>();
    expectTypeOf<Out["tasks"]["claimMany"]>().toEqualTypeOf<ClaimedTask[]>();
    expectTypeOf<In["tasks"]["heartbeat"]>().toEqualTypeOf<Flat<Omit<Settle, "agentId"> & { agentId: string; leaseMs?: number; progress?: JsonValue; checkpoint?: JsonValue }>>();
    expectTypeOf<Out["tasks"]["heartbeat"]>().toEqualTypeOf<Task>();
    expectTypeOf<In["tasks"]["complete"]>().toEqualTypeOf<Flat<Settle & { result?: JsonValue }>>();
    expectTypeOf<Out["tasks"]["complete"]>().toEqualTypeOf<SettledTask>();
    expectTypeOf<In["tasks"]["completeAndClaim"]>().toEqualTypeOf<
      Flat<Omit<Settle, "agentId"> & { agentId: string; result?: JsonValue; next?: { queues?: string[]; capabilities?: string[]; leaseMs?: number; context?: boolean } }>
    >();
    expectTypeOf<Out["tasks"]["completeAndClaim"]>().toEqualTypeOf<{ completed: SettledTask; next: ClaimedTask | null }>();
    expectTypeOf<In["tasks"]["fail"]>().toEqualTypeOf<Flat<Settle & { error: string; retry?: boolean; retryAfterMs?: number; checkpoint?: JsonValue }>>();
    expectTypeOf<Out["tasks"]["fail"]>().toEqualTypeOf<SettledTask>();
    expectTypeOf<In["tasks"]["release"]>().toEqualTypeOf<Flat<Omit<Settle, "agentId"> & { agentId: string; delayMs?: number; checkpoint?: JsonValue }>>();
    expectTypeOf<Out["tasks"]["release"]>().toEqualTypeOf<SettledTask>();
    expectTypeOf<In["tasks"]["cancel"]>().toEqualTypeOf<{ taskId: string; reason?: string }>();
    expectTypeOf<Out["tasks"]["cancel"]>().toEqualTypeOf<Task>();
    expectTypeOf<In["tasks"]["requeue"]>().toEqualTypeOf<{ taskId: string; checkpoint?: null }>();
    expectTypeOf<Out["tasks"]["requeue"]>().toEqualTypeOf<Task>();
    expectTypeOf<In["tasks"]["promote"]>().toEqualTypeOf<{ taskId: string }>();
    expectTypeOf<Out["tasks"]["promote"]>().toEqualTypeOf<Task>();
    expectTypeOf<In["tasks"]["update"]>().toEqualTypeOf<{ taskId: string; priority?: number; runAt?: Date | string | number; delayMs?: number; expiresAt?: Date | string | number | null; payload?: JsonValue; checkpoint?: null }>();
    expectTypeOf<Out["tasks"]["update"]>().toEqualTypeOf<Task>();
    expectTypeOf<In["tasks"]["cancelMany"]>().toEqualTypeOf<{
      queue: string;
      statuses?: Array<"pending" | "waiting" | "claimed" | "dead_letter">;
      enqueuedBy?: string;
      createdAfter?: Date | string | number;
      createdBefore?: Date | string | number;
      reason?: string;
      limit?: number;
      cursor?: string;
    }>();
    expectTypeOf<Out["tasks"]["cancelMany"]>().toEqualTypeOf<{ cancelled: string[]; nextCursor: string | null }>();
    expectTypeOf<In["tasks"]["requeueMany"]>().toEqualTypeOf<{
      queue?: string;
      finishedAfter?: Date | string | number;
      finishedBefore?: Date | string | number;
      limit?: number;
      cursor?: string;
      checkpoint?: null;
    }>();
    expectTypeOf<Out["tasks"]["requeueMany"]>().toEqualTypeOf<{ requeued: string[]; nextCursor: string | null }>();
    expectTypeOf<In["tasks"]["steal"]>().toEqualTypeOf<{ agentId: string; fromAgentId?: string; limit?: number; leaseMs?: number; capabilities?: string[]; idempotencyKey?: string }>();
    expectTypeOf<Out["tasks"]["steal"]>().toEqualTypeOf<ClaimedTask[]>();
    expectTypeOf<In["tasks"]["get"]>().toEqualTypeOf<{ taskId: string }>();
    expectTypeOf<Out["tasks"]["get"]>().toEqualTypeOf<Task>();
    expectTypeOf<In["tasks"]["wait"]>().toEqualTypeOf<{ taskId: string; waitMs?: number }>();
    expectTypeOf<Out["tasks"]["wait"]>().toEqualTypeOf<Task>();
    expectTypeOf<In["tasks"]["waitMany"]>().toEqualTypeOf<{ taskIds: string[]; until?: "all" | "any"; settledOnly?: boolean; waitMs?: number }>();
    expectTypeOf<Out["tasks"]["waitMany"]>().toEqualTypeOf<{ done: boolean; tasks: Task[]; omitted: string[] }>();
    expectTypeOf<In["tasks"]["list"]>().toEqualTypeOf<{
      queue?: string;
      status?: TaskStatus;
      agentId?: string;
      capability?: string;
      dedupeKey?: string;
      orderingKey?: string;
      traceId?: string;
      enqueuedBy?: string;
      limit?: number;
      cursor?: string;
      order?: "asc" | "desc";
    }>();
    expectTypeOf<Out["tasks"]["list"]>().toEqualTypeOf<{ items: Task[]; nextCursor: string | null }>();
    expectTypeOf<In["tasks"]["claimOutlook"]>().toEqualTypeOf<{ agentId: string; queues?: string[]; capabilities?: string[] }>();
    expectTypeOf<Out["tasks"]["claimOutlook"]>().toEqualTypeOf<{
      claimable: boolean;
      paused: string[];
      fullQueues: string[];
      rateLimited: Array<{ queue: string; maxClaims: number; perMs: number; freesAt: Date }>;
      looked: number;
      needCapabilities: Array<{ capability: string; tasks: number }>;
      forOtherAgents: number;
      offered: string[];
      nextRunAt: Date | null;
    }>();
    expectTypeOf<In["tasks"]["stats"]>().toEqualTypeOf<void | { queue?: string; limit?: number } | undefined>();
    type Policy = { maxAgeMs: number | null; maxCount: number | null };
    expectTypeOf<Out["tasks"]["stats"]>().toEqualTypeOf<{
      queues: Array<{ queue: string; counts: Counts; scheduled: number; nextDueAt: Date | null; oldestPendingAgeMs: number | null; paused: boolean; maxLeased: number | null; rate: { maxClaims: number; perMs: number } | null }>;
      queuesOmitted: number;
      scheduled: number;
      nextDueAt: Date | null;
      totals: Counts;
      retention: { settledTasks: { maxAgeMs: number | null; maxCount: number | null; oldestSettledAt: Date | null }; executions: Policy; notes: Policy };
    }>();
  });

  it("queue pause procedures", () => {
    type Pause = { queue: string; paused: boolean; reason: string | null; pausedBy: string | null; pausedAt: Date | null; resumedAt: Date | null };
    expectTypeOf<In["queues"]["pause"]>().toEqualTypeOf<{ queue: string; reason?: string }>();
    expectTypeOf<Out["queues"]["pause"]>().toEqualTypeOf<Pause>();
    expectTypeOf<In["queues"]["resume"]>().toEqualTypeOf<{ queue: string }>();
    expectTypeOf<Out["queues"]["resume"]>().toEqualTypeOf<Pause>();
    expectTypeOf<In["queues"]["status"]>().toEqualTypeOf<{ queue: string }>();
    expectTypeOf<Out["queues"]["status"]>().toEqualTypeOf<Pause>();
    expectTypeOf<Out["queues"]["paused"]>().toEqualTypeOf<Pause[]>();
  });

  it("lock procedures", () => {
    type Lock = { name: string; held: boolean; holder: string | null; fencingToken: number | null; acquiredAt: Date | null; expiresAt: Date | null; leaseMs: number | null };
    expectTypeOf<In["locks"]["acquire"]>().toEqualTypeOf<{ name: string; agentId: string; leaseMs?: number; waitMs?: number; idempotencyKey?: string }>();
    expectTypeOf<Out["locks"]["acquire"]>().toEqualTypeOf<{ acquired: boolean; lock: Lock }>();
    expectTypeOf<In["locks"]["renew"]>().toEqualTypeOf<{ name: string; agentId: string; fencingToken?: number; leaseMs?: number }>();
    expectTypeOf<Out["locks"]["renew"]>().toEqualTypeOf<Lock>();
    expectTypeOf<In["locks"]["release"]>().toEqualTypeOf<{ name: string; agentId: string; fencingToken?: number }>();
    expectTypeOf<Out["locks"]["release"]>().toEqualTypeOf<{ released: boolean; lock: Lock }>();
    expectTypeOf<In["locks"]["forceRelease"]>().toEqualTypeOf<{ name: string; reason?: string }>();
    expectTypeOf<Out["locks"]["forceRelease"]>().toEqualTypeOf<{ released: boolean; holder: string | null; fencingToken: number | null; lock: Lock }>();
    expectTypeOf<In["locks"]["get"]>().toEqualTypeOf<{ name: string }>();
    expectTypeOf<Out["locks"]["get"]>().toEqualTypeOf<Lock>();
    expectTypeOf<In["locks"]["list"]>().toEqualTypeOf<{ holder?: string; prefix?: string; after?: string; limit?: number }>();
    expectTypeOf<Out["locks"]["list"]>().toEqualTypeOf<{ items: Lock[]; nextCursor: string | null }>();
  });

  it("semaphore procedures", () => {
    type Permit = { name: string; holder: string; fencingToken: number; limit: number; acquiredAt: Date; expiresAt: Date; leaseMs: number };
    type State = { name: string; held: number; limit: number | null; nextExpiresAt: Date | null };
    expectTypeOf<In["semaphores"]["acquire"]>().toEqualTypeOf<{ name: string; agentId: string; limit: number; leaseMs?: number; waitMs?: number; idempotencyKey?: string }>();
    expectTypeOf<Out["semaphores"]["acquire"]>().toEqualTypeOf<{ acquired: boolean; permit: Permit | null; semaphore: State }>();
    expectTypeOf<In["semaphores"]["renew"]>().toEqualTypeOf<{ name: string; agentId: string; fencingToken: number; leaseMs?: number }>();
    expectTypeOf<Out["semaphores"]["renew"]>().toEqualTypeOf<Permit>();
    expectTypeOf<In["semaphores"]["release"]>().toEqualTypeOf<{ name: string; agentId: string; fencingToken: number }>();
    expectTypeOf<Out["semaphores"]["release"]>().toEqualTypeOf<{ released: boolean; semaphore: State }>();
    expectTypeOf<In["semaphores"]["forceRelease"]>().toEqualTypeOf<{ name: string; fencingToken?: number; reason?: string }>();
    expectTypeOf<Out["semaphores"]["forceRelease"]>().toEqualTypeOf<{ released: number; semaphore: State }>();
    expectTypeOf<In["semaphores"]["get"]>().toEqualTypeOf<{ name: string }>();
    expectTypeOf<Out["semaphores"]["get"]>().toEqualTypeOf<{ name: string; held: number; limit: number | null; nextExpiresAt: Date | null; permits: Permit[]; permitsOmitted: number }>();
    expectTypeOf<In["semaphores"]["list"]>().toEqualTypeOf<{ holder?: string; prefix?: string; cursor?: string; limit?: number }>();
    expectTypeOf<Out["semaphores"]["list"]>().toEqualTypeOf<{ items: Permit[]; nextCursor: string | null }>();
  });

  it("run log procedures", () => {
    type Level = "debug" | "info" | "warn" | "error";
    type Line = { line: number; at: Date; attempt: number; leaseToken: number; agentId: string; level: Level; message: string; data: JsonValue | null };
    expectTypeOf<In["tasks"]["appendLog"]>().toEqualTypeOf<{
      taskId: string;
      agentId: string;
      leaseToken?: number;
      entries: Array<{ message: string; level?: Level; data?: JsonValue }>;
      idempotencyKey?: string;
    }>();
    expectTypeOf<Out["tasks"]["appendLog"]>().toEqualTypeOf<{ taskId: string; firstLine: number; lastLine: number; dropped: number }>();
    expectTypeOf<In["tasks"]["log"]>().toEqualTypeOf<{ taskId: string; after?: number; tail?: number; limit?: number; attempt?: number; level?: Level; waitMs?: number }>();
    expectTypeOf<Out["tasks"]["log"]>().toEqualTypeOf<{ taskId: string; status: TaskStatus; lines: Line[]; nextAfter: number; more: boolean; dropped: number }>();
  });

  it("shared state procedures", () => {
    type Entry = { key: string; value: JsonValue; version: number; createdAt: Date; updatedAt: Date; updatedBy: string | null; expiresAt: Date | null; ephemeralOwner: string | null };
    expectTypeOf<In["kv"]["set"]>().toEqualTypeOf<{ key: string; value: JsonValue; ifVersion?: number; ttlMs?: number; ephemeral?: boolean; agentId?: string; idempotencyKey?: string }>();
    expectTypeOf<Out["kv"]["set"]>().toEqualTypeOf<Entry>();
    expectTypeOf<In["kv"]["increment"]>().toEqualTypeOf<{ key: string; by?: number; min?: number; max?: number; ttlMs?: number; agentId?: string; idempotencyKey?: string }>();
    // The number it holds now: budget code compares it without a cast.
    expectTypeOf<Out["kv"]["increment"]>().toEqualTypeOf<Flat<Omit<Entry, "value"> & { value: number }>>();
    expectTypeOf<In["kv"]["get"]>().toEqualTypeOf<{ key: string; afterVersion?: number; waitMs?: number }>();
    expectTypeOf<Out["kv"]["get"]>().toEqualTypeOf<{ key: string; entry: Entry | null }>();
    expectTypeOf<In["kv"]["delete"]>().toEqualTypeOf<{ key: string; ifVersion?: number; agentId?: string }>();
    expectTypeOf<Out["kv"]["delete"]>().toEqualTypeOf<{ deleted: boolean; entry: Entry | null }>();
    expectTypeOf<In["kv"]["list"]>().toEqualTypeOf<{ prefix?: string; ephemeralOwner?: string; after?: string; limit?: number }>();
    expectTypeOf<Out["kv"]["list"]>().toEqualTypeOf<{ items: Entry[]; nextCursor: string | null }>();
  });

  it("webhook procedures", () => {
    type Webhook = {
      id: string;
      url: string;
      types: string[];
      description: string | null;
      enabled: boolean;
      disabledReason: string | null;
      cursor: number;
      failures: number;
      failingSince: Date | null;
      lastError: string | null;
      lastStatus: number | null;
      lastAttemptAt: Date | null;
      lastDeliveredAt: Date | null;
      delivered: number;
      gaps: number;
      nextAttemptAt: Date;
      previousSecretUntil: Date | null;
      createdAt: Date;
      createdBy: string | null;
      updatedAt: Date;
    };
    expectTypeOf<In["webhooks"]["create"]>().toEqualTypeOf<{ url: string; types: string[]; description?: string; fromSeq?: number }>();
    expectTypeOf<Out["webhooks"]["create"]>().toEqualTypeOf<{ webhook: Webhook; secret: string }>();
    expectTypeOf<In["webhooks"]["update"]>().toEqualTypeOf<{ id: string; url?: string; types?: string[]; description?: string | null; enabled?: boolean; reason?: string; cursor?: number; ifCursor?: number }>();
    expectTypeOf<Out["webhooks"]["update"]>().toEqualTypeOf<Webhook>();
    expectTypeOf<In["webhooks"]["rotateSecret"]>().toEqualTypeOf<{ id: string; graceMs?: number }>();
    expectTypeOf<Out["webhooks"]["rotateSecret"]>().toEqualTypeOf<{ webhook: Webhook; secret: string }>();
    expectTypeOf<In["webhooks"]["remove"]>().toEqualTypeOf<{ id: string }>();
    expectTypeOf<Out["webhooks"]["remove"]>().toEqualTypeOf<{ removed: boolean }>();
    expectTypeOf<In["webhooks"]["get"]>().toEqualTypeOf<{ id: string }>();
    expectTypeOf<Out["webhooks"]["get"]>().toEqualTypeOf<Webhook>();
    expectTypeOf<Out["webhooks"]["list"]>().toEqualTypeOf<{ webhooks: Webhook[] }>();
  });

  it("queue limit procedures", () => {
    type Limit = { queue: string; maxLeased: number | null; leased: number | null; setBy: string | null; setAt: Date | null; removedAt: Date | null };
    expectTypeOf<In["queues"]["setLimit"]>().toEqualTypeOf<{ queue: string; maxLeased: number }>();
    expectTypeOf<Out["queues"]["setLimit"]>().toEqualTypeOf<Limit>();
    expectTypeOf<In["queues"]["removeLimit"]>().toEqualTypeOf<{ queue: string }>();
    expectTypeOf<Out["queues"]["removeLimit"]>().toEqualTypeOf<Limit>();
    expectTypeOf<In["queues"]["limit"]>().toEqualTypeOf<{ queue: string }>();
    expectTypeOf<Out["queues"]["limit"]>().toEqualTypeOf<Limit>();
    expectTypeOf<Out["queues"]["limits"]>().toEqualTypeOf<Limit[]>();
  });

  it("queue rate procedures", () => {
    type Rate = { queue: string; maxClaims: number | null; perMs: number | null; used: number | null; nextClaimAt: Date | null; setBy: string | null; setAt: Date | null; removedAt: Date | null };
    expectTypeOf<In["queues"]["setRate"]>().toEqualTypeOf<{ queue: string; maxClaims: number; perMs: number }>();
    expectTypeOf<Out["queues"]["setRate"]>().toEqualTypeOf<Rate>();
    expectTypeOf<In["queues"]["removeRate"]>().toEqualTypeOf<{ queue: string }>();
    expectTypeOf<Out["queues"]["removeRate"]>().toEqualTypeOf<Rate>();
    expectTypeOf<In["queues"]["rate"]>().toEqualTypeOf<{ queue: string }>();
    expectTypeOf<Out["queues"]["rate"]>().toEqualTypeOf<Rate>();
    expectTypeOf<Out["queues"]["rates"]>().toEqualTypeOf<Rate[]>();
  });

  it("schedule procedures", () => {
    type Backoff = { type: "exponential" | "fixed"; delayMs: number; maxDelayMs: number; jitter: number };
    type Schedule = {
      id: string;
      cron: string | null;
      timezone: string | null;
      everyMs: number | null;
      startAt: Date | null;
      endAt: Date | null;
      maxRuns: number | null;
      overlap: "allow" | "skip";
      task: { queue: string; payload: JsonValue; priority: number; capability: string | null; targetAgentId: string | null; maxAttempts: number | null; maxRunMs: number | null; backoff: Backoff | null; ttlMs: number | null; orderingKey: string | null; keyConcurrency: number | null };
      paused: boolean;
      state: "running" | "waiting" | "paused" | "ended";
      nextRunAt: Date | null;
      nextTaskId: string | null;
      runs: number;
      lastRunAt: Date | null;
      lastTaskId: string | null;
      setBy: string | null;
      createdAt: Date;
      updatedAt: Date;
    };
    // Each optional field also takes null: a schedule as answered may be sent back.
    expectTypeOf<In["schedules"]["set"]>().toEqualTypeOf<{
      scheduleId: string;
      cron?: string | null;
      timezone?: string | null;
      everyMs?: number | null;
      startAt?: Date | string | number | null;
      endAt?: Date | string | number | null;
      maxRuns?: number | null;
      overlap?: "allow" | "skip";
      task?: {
        queue?: string;
        payload?: JsonValue;
        priority?: number;
        capability?: string | null;
        targetAgentId?: string | null;
        maxAttempts?: number | null;
        backoff?: { type?: "exponential" | "fixed"; delayMs: number; maxDelayMs?: number; jitter?: number } | null;
        ttlMs?: number | null;
        maxRunMs?: number | null;
        orderingKey?: string | null;
        keyConcurrency?: number | null;
      };
    }>();
    expectTypeOf<Out["schedules"]["set"]>().toEqualTypeOf<{ schedule: Schedule; created: boolean; changed: boolean }>();
    expectTypeOf<In["schedules"]["get"]>().toEqualTypeOf<{ scheduleId: string }>();
    expectTypeOf<Out["schedules"]["get"]>().toEqualTypeOf<Schedule>();
    expectTypeOf<In["schedules"]["list"]>().toEqualTypeOf<void | { queue?: string; cursor?: string; limit?: number } | undefined>();
    expectTypeOf<Out["schedules"]["list"]>().toEqualTypeOf<{ items: Schedule[]; nextCursor: string | null }>();
    expectTypeOf<In["schedules"]["remove"]>().toEqualTypeOf<{ scheduleId: string }>();
    expectTypeOf<Out["schedules"]["remove"]>().toEqualTypeOf<Schedule>();
    expectTypeOf<Out["schedules"]["pause"]>().toEqualTypeOf<Schedule>();
    expectTypeOf<Out["schedules"]["resume"]>().toEqualTypeOf<Schedule>();
    expectTypeOf<In["schedules"]["trigger"]>().toEqualTypeOf<{ scheduleId: string }>();
    expectTypeOf<Out["schedules"]["trigger"]>().toEqualTypeOf<{ schedule: Schedule; task: Task }>();
  });

  it("event procedures", () => {
    expectTypeOf<In["events"]["publish"]>().toEqualTypeOf<{ type: string; source: string; payload?: JsonValue; target?: string; idempotencyKey?: string }>();
    expectTypeOf<Out["events"]["publish"]>().toEqualTypeOf<CoordinationEvent>();
    expectTypeOf<In["events"]["subscribe"]>().toEqualTypeOf<{ agentId: string; types: string[]; fromSeq?: number }>();
    expectTypeOf<Out["events"]["subscribe"]>().toEqualTypeOf<Subscription>();
    expectTypeOf<In["events"]["unsubscribe"]>().toEqualTypeOf<{ agentId: string; types?: string[] }>();
    expectTypeOf<Out["events"]["unsubscribe"]>().toEqualTypeOf<Subscription>();
    expectTypeOf<In["events"]["subscription"]>().toEqualTypeOf<{ agentId: string }>();
    expectTypeOf<Out["events"]["subscription"]>().toEqualTypeOf<Subscription>();
    expectTypeOf<In["events"]["poll"]>().toEqualTypeOf<{ agentId: string; limit?: number; waitMs?: number; ack?: "auto" | "manual" }>();
    expectTypeOf<Out["events"]["poll"]>().toEqualTypeOf<CoordinationEvent[]>();
    expectTypeOf<In["events"]["ack"]>().toEqualTypeOf<{ agentId: string; seq: number }>();
    expectTypeOf<Out["events"]["ack"]>().toEqualTypeOf<Subscription>();
    expectTypeOf<In["events"]["list"]>().toEqualTypeOf<{ afterSeq?: number; types?: string[]; limit?: number }>();
    expectTypeOf<Out["events"]["list"]>().toEqualTypeOf<CoordinationEvent[]>();
    expectTypeOf<In["events"]["onEvent"]>().toEqualTypeOf<{ agentId?: string; types?: string[]; lastEventId?: string | null }>();
  });

  it("agent, memory and health procedures", () => {
    expectTypeOf<Omit<In["agents"]["register"], "card">>().toEqualTypeOf<{ agentId: string; capabilities?: string[]; metadata?: JsonObject }>();
    expectTypeOf<NonNullable<In["agents"]["register"]["card"]>["skills"][number]["id"]>().toEqualTypeOf<string>();
    expectTypeOf<Out["agents"]["card"]>().toEqualTypeOf<JsonObject>();
    expectTypeOf<Out["agents"]["register"]>().toEqualTypeOf<Agent>();
    expectTypeOf<In["agents"]["heartbeat"]>().toEqualTypeOf<{ agentId: string; status?: string; load?: number }>();
    expectTypeOf<Out["agents"]["heartbeat"]>().toEqualTypeOf<Agent>();
    expectTypeOf<In["agents"]["deregister"]>().toEqualTypeOf<{ agentId: string }>();
    expectTypeOf<Out["agents"]["deregister"]>().toEqualTypeOf<Agent>();
    expectTypeOf<In["agents"]["cordon"]>().toEqualTypeOf<{ agentId: string; reason?: string; forMs?: number }>();
    expectTypeOf<Out["agents"]["cordon"]>().toEqualTypeOf<Agent>();
    expectTypeOf<In["agents"]["uncordon"]>().toEqualTypeOf<{ agentId: string }>();
    expectTypeOf<Out["agents"]["uncordon"]>().toEqualTypeOf<Agent>();
    expectTypeOf<In["agents"]["get"]>().toEqualTypeOf<{ agentId: string }>();
    expectTypeOf<Out["agents"]["get"]>().toEqualTypeOf<Agent>();
    expectTypeOf<In["agents"]["list"]>().toEqualTypeOf<{ capability?: string; health?: "healthy" | "stale" | "offline"; status?: string; cordoned?: boolean; limit?: number; after?: string }>();
    expectTypeOf<Out["agents"]["list"]>().toEqualTypeOf<Agent[]>();
    expectTypeOf<In["agents"]["findByCapability"]>().toEqualTypeOf<{ capability: string; limit?: number }>();
    expectTypeOf<Out["agents"]["findByCapability"]>().toEqualTypeOf<Agent[]>();
    expectTypeOf<In["memory"]["remember"]>().toEqualTypeOf<{
      content: string;
      kind?: "note" | "lesson";
      agentId?: string;
      queue?: string;
      capability?: string;
      taskId?: string;
      tags?: string[];
      data?: JsonValue;
      idempotencyKey?: string;
    }>();
    expectTypeOf<Out["memory"]["remember"]>().toEqualTypeOf<Memory>();
    expectTypeOf<In["memory"]["recall"]>().toEqualTypeOf<{ query?: string; taskId?: string; queue?: string; capability?: string; limit?: number }>();
    expectTypeOf<Out["memory"]["recall"]>().toEqualTypeOf<MemoryMatch[]>();
    expectTypeOf<In["memory"]["forget"]>().toEqualTypeOf<{ memoryId: string }>();
    expectTypeOf<Out["memory"]["forget"]>().toEqualTypeOf<Memory>();
    expectTypeOf<Out["health"]>().toEqualTypeOf<{ status: "ok"; version: string; schema: string; uptimeMs: number; db: "ok"; writeWaitMs: number }>();
  });

  it("history procedures", () => {
    expectTypeOf<In["tasks"]["events"]>().toEqualTypeOf<{ taskId: string; limit?: number }>();
    expectTypeOf<Out["tasks"]["events"]>().toEqualTypeOf<Out["events"]["list"]>();
    expectTypeOf<Out["events"]["head"]>().toEqualTypeOf<{ head: number; prunedThrough: number }>();
  });

  it("credential procedures", () => {
    type Token = { id: string; role: "admin" | "agent" | "read"; agentId: string | null; name: string; kvPrefixes: string[] | null; createdAt: Date; lastUsedAt: Date | null; revokedAt: Date | null };
    expectTypeOf<In["tokens"]["create"]>().toEqualTypeOf<{ role: "admin" | "agent" | "read"; agentId?: string; name?: string; kvPrefixes?: string[] }>();
    expectTypeOf<Out["tokens"]["create"]>().toEqualTypeOf<{ token: Token; secret: string }>();
    expectTypeOf<In["tokens"]["list"]>().toEqualTypeOf<void | { includeRevoked?: boolean } | undefined>();
    expectTypeOf<Out["tokens"]["list"]>().toEqualTypeOf<Token[]>();
    expectTypeOf<In["tokens"]["revoke"]>().toEqualTypeOf<{ tokenId: string }>();
    expectTypeOf<Out["tokens"]["revoke"]>().toEqualTypeOf<Token>();
    expectTypeOf<In["tokens"]["whoami"]>().toEqualTypeOf<void | Record<string, never> | undefined>();
    expectTypeOf<Out["tokens"]["whoami"]>().toEqualTypeOf<{ credentialsRequired: boolean; role: "admin" | "agent" | "read"; agentId: string | null; tokenId: string | null; name: string | null; kvPrefixes: string[] | null }>();
  });

  // The README: every procedure's output is typed. A field typed unknown or any (a zod custom
  // or passthrough schema in an output) would compile every use of it unchecked.
  it("no answer holds a field typed any or unknown", () => {
    expectTypeOf<AnswerLeaks>().toEqualTypeOf<never>();
    // The check finds what it looks for: an A2A card given to register keeps fields it does not know.
    expectTypeOf<Leaks<In["agents"]["register"], "card"> extends `card.card.${string}` ? true : false>().toEqualTypeOf<true>();
    expectTypeOf<Leaks<{ a: { b: unknown[] }; c: any; d: Date }, "x">>().toEqualTypeOf<"x.a.b[]" | "x.c">();
  });

  it("errors carry the one shape in data", () => {
    type ErrorData = NonNullable<TRPCClientError<AppRouter>["data"]>;
    expectTypeOf<ErrorData["code"]>().toEqualTypeOf<ErrorCode>();
    expectTypeOf<ErrorData["httpStatus"]>().toEqualTypeOf<(typeof ERROR_STATUS)[ErrorCode]>();
    expectTypeOf<ErrorData["details"]>().toEqualTypeOf<Record<string, unknown> | undefined>();
  });

  // The README's `isTRPCClientError(error) && error.data?.code === "VERSION_CONFLICT"`: tRPC's own
  // guard narrows to TRPCClientError<any>, whose data is any, so a misspelt code compiled.
  it("the client's isTRPCClientError narrows to this router's errors: data.code is an ErrorCode, not any", () => {
    const codeOf = (error: unknown) => (isTRPCClientError(error) ? error.data?.code : undefined);
    expectTypeOf<ReturnType<typeof codeOf>>().toEqualTypeOf<ErrorCode | undefined>();
    expectTypeOf<ReturnType<typeof codeOf>>().not.toBeAny();
  });
});

/** Never called: options built apart (a variable, a spread of defaults) are taken as they are. */
export function workerOptionsCompile(api: CoordinationApi, defaults: Partial<WorkerOptions>, parse?: (payload: JsonValue) => JsonValue): void {
  const options: WorkerOptions = { api, agentId: "a", handler: async (task) => task.payload };
  void runWorker(options);
  void runWorker({ api, agentId: "a", ...defaults, handler: async () => undefined });
  void runWorker({ api, agentId: "a", parsePayload: parse, handler: async (task) => task.payload });
}

/** Never called: each line is a call the types must refuse. */
export function wrongCallsDoNotCompile(api: CoordinationApi): void {
  // @ts-expect-error priority is a number
  void api.tasks.enqueue.mutate({ payload: {}, priority: "high" });
  // @ts-expect-error maxAttempts is a number
  void api.tasks.enqueue.mutate({ maxAttempts: "lots" });
  // @ts-expect-error a payload is JSON: no Map, no BigInt, no functions
  void api.tasks.enqueue.mutate({ payload: new Map() });
  // @ts-expect-error an unknown field
  void api.tasks.enqueue.mutate({ delay: 5 });
  // @ts-expect-error leaseToken is a number
  void api.tasks.complete.mutate({ taskId: "t", agentId: "a", leaseToken: "1" });
  // @ts-expect-error leaseMs is a number
  void api.tasks.claim.mutate({ agentId: "a", leaseMs: "30s" });
  // @ts-expect-error waitMs is a number
  void api.tasks.claim.mutate({ agentId: "a", waitMs: true });
  // @ts-expect-error queues is a list
  void api.tasks.claim.mutate({ agentId: "a", queues: "q" });
  // @ts-expect-error capabilities is a list of names
  void api.agents.register.mutate({ agentId: "a", capabilities: "gpu" });
  // @ts-expect-error the next claim's queues are a list
  void api.tasks.completeAndClaim.mutate({ taskId: "t", agentId: "a", next: { queues: "q" } });
  // @ts-expect-error retry is a boolean
  void api.tasks.fail.mutate({ taskId: "t", error: "e", retry: "false" });
  // @ts-expect-error metadata is a JSON object
  void api.agents.register.mutate({ agentId: "a", metadata: [1, 2] });
  // @ts-expect-error ack is auto or manual
  void api.events.poll.mutate({ agentId: "a", ack: "later" });
  // @ts-expect-error agentId is required
  void api.tasks.claim.mutate({});
  // @ts-expect-error without parsePayload a worker's payload is JSON: no narrower type unchecked
  void runWorker({ api, agentId: "a", handler: async (task: { payload: { n: number } }) => task.payload.n });
  // @ts-expect-error naming a type to narrow to takes that type as an argument too
  void isSystemEvent<"task.claimed">({ type: "task.enqueued", source: "coordination" });
  // @ts-expect-error the handler's payload is what parsePayload returns
  void runWorker({ api, agentId: "a", parsePayload: (payload) => String(payload), handler: async (task: { payload: number }) => task.payload });
}
