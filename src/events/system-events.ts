// The events the server itself appends (source "coordination"), one for every task and agent
// transition, with their payloads. EventStore.appendSystem is typed by this map, so the shapes a
// client narrows an event to (client/system-events.ts) are the shapes the writer writes. Times
// are ISO 8601 strings (payloads are JSON); durations are in ms.
import type { AgentHealth } from "../agents/agent-schemas.js";
import type { TaskStatus } from "../tasks/task-status.js";
import { isJsonObject } from "../json-checks.js";
import type { JsonValue } from "../json-types.js";

/** A settle sent without agentId (the seed's REST routes): whoever held the lease. */
type Anonymous = { anonymous?: true };
/** How long the run held its task, claim to settle, in ms (absent when the claim time is unknown). */
type RanFor = { ranMs?: number };
/** The W3C trace context the task was enqueued with (absent: none): a task's first event and the one that settles it carry it. */
type Traced = { traceparent?: string; tracestate?: string; baggage?: string };

// Object types, not interfaces: they must be assignable to JSON objects.
export type SystemEventPayloads = {
  /** waitingFor: while it waits (absent: pending), how many of the tasks it depends on have not completed (0: it waits only for its turn behind a task of its orderingKey). scheduleId: the schedule whose run it is. expiresAt: no run of it starts after this time (absent: it never expires). dedupeKey, orderingKey: as enqueued (absent: none); keyConcurrency: its share of its orderingKey when above 1 (absent: one at a time, or no key). traceparent, tracestate: the W3C trace context it was enqueued with (absent: none), and baggage, its W3C Baggage (absent: none), each carried again by the event that settles it (task.completed, task.dead_lettered, task.cancelled); a webhook delivering one of these sends them as its traceparent, tracestate and baggage headers. */
  "task.enqueued": { taskId: string; queue: string; priority: number; capability: string | null; targetAgentId: string | null; runAt: string; waitingFor?: number; scheduleId?: string; expiresAt?: string; maxRunMs?: number; dedupeKey?: string; orderingKey?: string; keyConcurrency?: number } & Traced;
  /** A task not due yet was made due now: a pending one (tasks.promote, schedules.trigger), or a schedule's run still waiting its turn behind a task of its orderingKey (schedules.trigger: it runs once that turn comes); previousRunAt: when it was due; promotedBy: the credential (a token id; null on an open server or in-process). */
  "task.promoted": { taskId: string; queue: string; priority: number; capability: string | null; targetAgentId: string | null; runAt: string; previousRunAt: string; promotedBy: string | null };
  /** A task that waits to run (pending or waiting) was given another priority, time to fall due, expiry or payload (tasks.update): the new ones and the previous (expiresAt and previousExpiresAt only when the expiry changed, null for none; payloadReplaced when the payload changed, which the event does not carry; checkpointCleared when the checkpoint it kept was cleared, asked for or with its payload); waitingFor, as task.enqueued's, while it waits; updatedBy: the credential (a token id; null on an open server or in-process). */
  "task.updated": { taskId: string; queue: string; priority: number; previousPriority: number; capability: string | null; targetAgentId: string | null; runAt: string; previousRunAt: string; waitingFor?: number; expiresAt?: string | null; previousExpiresAt?: string | null; payloadReplaced?: true; checkpointCleared?: true; updatedBy: string | null };
  /** An enqueue naming the task's dedupe key was answered with it instead of adding a task (tasks.enqueue's dedupe): duplicates, how many have been so far; status, the task's then (claimed: asked with until "settled"); replaced, whether it took that enqueue's payload (dedupe.replace; checkpointCleared: the checkpoint it kept went with the old one), runAt and expiresAt its due time and expiry then (previousRunAt, previousExpiresAt: before; the expiry pair only when it changed, null for none); waitingFor, as task.enqueued's, while it waits. */
  "task.deduplicated": {
    taskId: string;
    queue: string;
    dedupeKey: string;
    duplicates: number;
    status: TaskStatus;
    replaced: boolean;
    checkpointCleared?: true;
    priority: number;
    capability: string | null;
    targetAgentId: string | null;
    runAt: string;
    previousRunAt: string;
    waitingFor?: number;
    expiresAt?: string | null;
    previousExpiresAt?: string | null;
  };
  /** A waiting task may run, pending now, due at runAt: its last dependency completed (`after`, in the same write), or its turn came (orderingKey given: `after` is the task of that key that settled in the same write, or, with a keyConcurrency above 1, the one before it in its line that started in the same write, its last dependency completed). */
  "task.ready": { taskId: string; queue: string; priority: number; capability: string | null; targetAgentId: string | null; runAt: string; after: string; orderingKey?: string };
  "task.claimed": {
    taskId: string;
    queue: string;
    agentId: string;
    attempt: number;
    leaseToken: number;
    leaseExpiresAt: string;
    /** When this run must end (claimedAt + the task's maxRunMs): its lease is renewed no further. Absent without a limit. */
    runDeadlineAt?: string;
    /** How long it was claimable before this claim (since enqueue, or since its retry or delay came due), in ms. */
    waitedMs: number;
    /** The agent it was taken from, on a steal. */
    stolenFrom?: string | null;
    /** The task whose complete-and-claim took it, in the same write. */
    after?: string;
  };
  /** Its holder reported where the run is (a heartbeat's progress; the task's progress until its next claim). */
  "task.progress": { taskId: string; queue: string; agentId: string; attempt: number; leaseToken: number; progress: JsonValue };
  /** Its holder saved what the run has done, to resume from (a heartbeat's checkpoint, kept for every later run): its size as JSON text in bytes, not the value (tasks.get has it); cleared: the heartbeat's checkpoint was null, bytes 0. */
  "task.checkpointed": { taskId: string; queue: string; agentId: string; attempt: number; leaseToken: number; bytes: number; cleared: boolean };
  /** Its holder added lines firstLine to lastLine to the task's log (tasks.appendLog): read them with tasks.log. */
  "task.log": { taskId: string; queue: string; agentId: string; attempt: number; leaseToken: number; firstLine: number; lastLine: number };
  "task.completed": { taskId: string; queue: string; agentId: string | null; attempt: number; leaseToken: number } & Traced & RanFor & Anonymous;
  "task.failed": { taskId: string; queue: string; agentId: string | null; attempt: number; leaseToken: number; error: string; willRetry: boolean } & RanFor & Anonymous;
  /**
   * After a failure or an expired lease with attempts left: claimable again at runAt, `delayMs`
   * after the failure (the task's backoff, or the fail's `retryAfterMs` when it gave one; 0 after
   * an expired lease, a run's time limit included).
   */
  "task.retried": { taskId: string; queue: string; attempt: number; runAt: string; delayMs: number; retryAfterMs?: number; capability: string | null; targetAgentId: string | null };
  /** `expired`: attempts were left, but its retry would have started at or after its expiresAt, which no run may. */
  "task.dead_lettered": { taskId: string; queue: string; attempts: number; error: string; expired?: true } & Traced;
  /**
   * Its holder lost the lease: it ran out, was stolen, or its agent went offline or was
   * deregistered (`reason`). `timedOut`: the run reached its time limit (the task's `maxRunMs`),
   * past which no heartbeat renews a lease.
   */
  "task.lease_expired": { taskId: string; queue: string; agentId: string | null; attempt: number; reason: string; timedOut?: true; maxRunMs?: number };
  /** Given back without charging an attempt (by its holder, by stop(), or because the claim's answer never arrived: `reason`). */
  "task.released": { taskId: string; queue: string; agentId: string | null; capability: string | null; targetAgentId: string | null; runAt: string; reason?: string };
  /** A waiting, pending or claimed task stopped, or a dead letter discarded; agentId and leaseToken: the holder and the lease it ended (a claimed task's; a runWorker stops that run at once); reason: why (the cancel's own, or the dependency whose end cancelled it); `expired`: its expiry came before a run of it started (tasks.enqueue's expiresAt or ttlMs); cancelledBy: the agent whose credential cancelled it, a task it enqueued (absent: an admin, an open server, in-process, or a cascade or expiry). */
  "task.cancelled": { taskId: string; queue: string; previousStatus: TaskStatus; agentId: string | null; leaseToken?: number; reason?: string; expired?: true; cancelledBy?: string } & Traced;
  /** waitingFor: as task.enqueued's (back to waiting for dependencies that have not completed, or for its turn behind a task of its orderingKey: 0). orderingKey: as enqueued (absent: none). checkpointCleared: its checkpoint was cleared with it (tasks.requeue's checkpoint null). */
  "task.requeued": { taskId: string; queue: string; previousStatus: TaskStatus; capability: string | null; targetAgentId: string | null; waitingFor?: number; orderingKey?: string; checkpointCleared?: true };
  /** `implicit`: registered by its first claim or heartbeat, with no capabilities. */
  "agent.registered": { agentId: string; capabilities: string[]; health: "healthy"; implicit?: true };
  /** Registered again (capabilities), back to healthy (previousHealth), or a new status from a heartbeat. */
  "agent.updated": { agentId: string; health: AgentHealth; previousHealth?: AgentHealth; capabilities?: string[]; status?: string; lastHeartbeatAt?: string };
  "agent.stale": { agentId: string; health: AgentHealth; previousHealth: AgentHealth; lastHeartbeatAt: string };
  /** Its claims went back to the queue: releasedTasks of them with this event (500 at most), any more in the writes after it, each with its task.lease_expired. deletedKeys: the keys tied to its life, deleted with it (each with its kv.deleted). */
  "agent.offline": { agentId: string; health: AgentHealth; previousHealth: AgentHealth; lastHeartbeatAt: string; releasedTasks?: number; deletedKeys?: number };
  /** No claim or steal hands it a task from now (agents.cordon; `automatic`: quarantined after `failures` failed runs in a row); reason: null when none was given; `until`: when it lifts by itself (null: when uncordoned); cordonedBy: the credential (null on an open server, in-process, or automatic). */
  "agent.cordoned": { agentId: string; reason: string | null; cordonedBy: string | null; until: string | null; automatic: boolean; failures?: number };
  /** Its cordon was lifted: by agents.uncordon (uncordonedBy: the credential, null on an open server or in-process), or by itself at its `until` (`lapsed`; `automatic`: it was a quarantine); its claims take tasks again; cordonedAt: when it was cordoned. */
  "agent.uncordoned": { agentId: string; uncordonedBy: string | null; cordonedAt: string; lapsed?: true; automatic?: true };
  /** reason "retention": removed after agentRetentionMs offline (it held no task, no named lock and no semaphore permit). releasedLocks, releasedPermits: the named locks and semaphore permits it held, released with it (each with its lock.released or semaphore.released); deletedKeys: the keys tied to its life, deleted with it (each with its kv.deleted). */
  "agent.deregistered": { agentId: string; releasedTasks: number; releasedLocks?: number; releasedPermits?: number; deletedKeys?: number; reason?: "retention" };
  /** No claim or steal takes the queue's tasks until it is resumed; pausedBy: the credential's id (null when open or in-process). */
  "queue.paused": { queue: string; reason: string | null; pausedBy: string | null };
  /** Claims take the queue's tasks again; pausedAt: when the pause it ends began; resumedBy as pausedBy. */
  "queue.resumed": { queue: string; pausedAt: string; resumedBy: string | null };
  /** At most maxLeased of the queue's tasks are leased at once from now on; previous: the limit it replaced (null: none); setBy as pausedBy. */
  "queue.limit_set": { queue: string; maxLeased: number; previous: number | null; setBy: string | null };
  /** Claims take the queue's tasks without a bound again; previous: the limit removed. */
  "queue.limit_removed": { queue: string; previous: number; removedBy: string | null };
  /** At most maxClaims of the queue's tasks are claimed in any window of perMs ms from now on; previous: the rate it replaced (null: none); setBy as pausedBy. */
  "queue.rate_set": { queue: string; maxClaims: number; perMs: number; previous: { maxClaims: number; perMs: number } | null; setBy: string | null };
  /** Claims take the queue's tasks without a rate again; previous: the rate removed. */
  "queue.rate_removed": { queue: string; previous: { maxClaims: number; perMs: number }; removedBy: string | null };
  /** A schedule was created (`created`) or given another definition; nextRunAt: its first run's due time (null: paused, or none ahead); setBy as pausedBy. */
  "schedule.set": { scheduleId: string; queue: string; created: boolean; nextRunAt: string | null; setBy: string | null };
  /** A schedule was deleted, its pending run cancelled; runs: how many it had. */
  "schedule.removed": { scheduleId: string; queue: string; runs: number; removedBy: string | null };
  /** No run is enqueued until it is resumed; its pending run was cancelled. */
  "schedule.paused": { scheduleId: string; queue: string; pausedBy: string | null };
  /** Runs again from nextRunAt (those missed while paused are skipped). */
  "schedule.resumed": { scheduleId: string; queue: string; nextRunAt: string | null; resumedBy: string | null };
  /** An admin ran a schedule now (schedules.trigger): its pending run (taskId) was made due at once; the run after it stays as planned. */
  "schedule.triggered": { scheduleId: string; queue: string; taskId: string; triggeredBy: string | null };
  /** Lock `name` was granted to agent `agentId` (locks.acquire) under `fencingToken`, its lease ending at expiresAt unless renewed. */
  "lock.acquired": { name: string; agentId: string; fencingToken: number; expiresAt: string };
  /**
   * Lock `name` is free: its holder released it, or (`forced`) an operator did (locks.forceRelease;
   * releasedBy: the credential, null on an open server or in-process), or its agent was
   * deregistered (`reason` "deregistered"), or the server gave it back because the acquire's answer
   * did not reach its caller (`reason` "answer not delivered"); heldMs: how long this grant held it.
   */
  "lock.released": { name: string; agentId: string; fencingToken: number; heldMs: number; forced?: true; releasedBy?: string | null; reason?: string };
  /** Lock `name` is free: its holder did not renew it by expiredAt (the holder died, hung, or lost its way to the server). */
  "lock.expired": { name: string; agentId: string; fencingToken: number; expiredAt: string; heldMs: number };
  /** Agent `agentId` was granted a permit of semaphore `name` (semaphores.acquire) under `fencingToken`, asking for `limit`; held: the permits held with it; its lease ends at expiresAt unless renewed. */
  "semaphore.acquired": { name: string; agentId: string; fencingToken: number; limit: number; held: number; expiresAt: string };
  /**
   * A permit of semaphore `name` is free: its holder released it, or (`forced`) an operator did
   * (semaphores.forceRelease; releasedBy as lock.released's), or its agent was deregistered
   * (`reason` "deregistered"), or the server gave it back because the acquire's answer did not
   * reach its caller (`reason` "answer not delivered"); heldMs: how long the permit was held.
   */
  "semaphore.released": { name: string; agentId: string; fencingToken: number; heldMs: number; forced?: true; releasedBy?: string | null; reason?: string };
  /** A permit of semaphore `name` is free: its holder did not renew it by expiredAt. */
  "semaphore.expired": { name: string; agentId: string; fencingToken: number; expiredAt: string; heldMs: number };
  /** An operator created webhook `webhookId` (webhooks.create): it delivers the untargeted events of `types` after seq `cursor`. createdBy: the credential (a token id; null on an open server or in-process). Its URL is left out: URLs often carry a receiver's secret. */
  "webhook.created": { webhookId: string; types: string[]; cursor: number; createdBy: string | null };
  /**
   * An operator changed webhook `webhookId`'s `changed` fields (url, types, description, cursor;
   * webhooks.update); types: its patterns now. by: the credential. With cursor changed, `cursor`:
   * where its deliveries go on from (after that seq), `from`: where it was (events between, moved
   * forward, are never sent; moved back, sent again).
   */
  "webhook.updated": { webhookId: string; changed: string[]; types: string[]; by: string | null; cursor?: number; from?: number };
  /** Webhook `webhookId` delivers again, from the event after seq `cursor` (webhooks.update with enabled true); by: the credential. */
  "webhook.enabled": { webhookId: string; cursor: number; by: string | null };
  /**
   * Webhook `webhookId` stopped delivering, at seq `cursor`: an operator disabled it (by: the
   * credential, null on an open server or in-process) or (`failed`) the server did, after it had
   * failed for webhookDisableAfterMs; reason: the operator's words, or the failures'.
   */
  "webhook.disabled": { webhookId: string; reason: string; by: string | null; cursor: number; failed?: true };
  /** Webhook `webhookId` delivered event `seq` after `failedAttempts` failed attempts in a row, failing since failingSince. */
  "webhook.recovered": { webhookId: string; seq: number; failedAttempts: number; failingSince: string };
  /**
   * Webhook `webhookId` signs with a new secret (webhooks.rotateSecret); previousSecretUntil: when
   * the last of its old secrets stops signing too (ISO; null: none signs, a rotation with no
   * grace); by: the credential. The secrets are never in an event.
   */
  "webhook.secret_rotated": { webhookId: string; previousSecretUntil: string | null; by: string | null };
  /** An operator removed webhook `webhookId` (webhooks.remove), at seq `cursor`, `delivered` events delivered; by: the credential. */
  "webhook.removed": { webhookId: string; cursor: number; delivered: number; by: string | null };
  /**
   * Key `key` of shared state holds a new value (kv.set), at `version`; previousVersion: the
   * version it replaced (0: the write created the key); updatedBy: the agent that wrote it (null:
   * none named); expiresAt: when it reads as absent (absent: never). The value is left out (up to
   * 64 KiB a write, read with kv.get): the event says which key moved. ephemeralOwner: the agent
   * whose life the key is tied to (absent: none). incrementedBy: written by kv.increment, what it
   * added (absent: a kv.set).
   */
  "kv.set": { key: string; version: number; previousVersion: number; updatedBy: string | null; expiresAt?: string; ephemeralOwner?: string; incrementedBy?: number };
  /**
   * Key `key` was deleted (kv.delete) at `version`; deletedBy: the agent that deleted it (null: none
   * named). A key tied to an agent's life that went with it: `ephemeralOwner` that agent, `reason`
   * "owner offline" (seen offline) or "owner deregistered", deletedBy null.
   */
  "kv.deleted": { key: string; version: number; deletedBy: string | null; ephemeralOwner?: string; reason?: "owner offline" | "owner deregistered" };
  /** Key `key` expired at expiredAt: it read as absent from then (its version `version`). */
  "kv.expired": { key: string; version: number; expiredAt: string };
  /** A schedule has no run ahead: its last run was claimed (reason "maxRuns": runs reached maxRuns), or the next time it names is past its endAt ("endAt"). It stays, with nextRunAt null, until set again or removed. */
  "schedule.ended": { scheduleId: string; queue: string; runs: number; reason: "endAt" | "maxRuns" | "timing" };
};

export type SystemEventType = keyof SystemEventPayloads;

/**
 * The fields of an event's payload as the server's own listeners read them (metrics, the
 * operator log, parked claims, MCP sessions): an event of a system type may also be one an admin
 * published (or anyone, on a server without credentials), whose payload the server did not write.
 * A payload that is no object has no fields; each field read must still check its type.
 */
export function payloadFields(event: { payload: unknown }): Readonly<Record<string, unknown>> {
  return isJsonObject(event.payload) ? event.payload : {};
}
