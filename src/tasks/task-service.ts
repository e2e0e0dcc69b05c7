// The task queue's rules: enqueue, claim with leases, settle with fencing, retries with backoff,
// dead-letter, lease expiry and work stealing. Every state change and its system event are
// written in one transaction (one Writer call), so no subscriber ever sees one without the other.
import { randomUUID } from "node:crypto";
import type { AgentStore } from "../agents/agent-store.js";
import type { HealthCutoffs } from "../agents/health-cutoffs.js";
import type { Config } from "../config.js";
import { toJsonText } from "../db/columns.js";
import type { Prisma } from "../db/prisma.js";
import type { WriteContext, Writer } from "../db/writer.js";
import { CoordinationError, notFound } from "../errors.js";
import type { EventStore } from "../events/event-store.js";
import type { MemoryService } from "../memory/memory-service.js";
import { linkSignals, type Wakeup } from "../wakeup.js";
import { readTaskStats } from "./task-stats.js";
import type { ClaimedTask, ClaimRequest, EnqueueRequest, ListRequest, Task, TaskStats } from "./task-schemas.js";
import { toTask, type ClaimFilter, type TaskRow, type TaskStore } from "./task-store.js";

export interface TaskServiceDeps {
  config: Config;
  writer: Writer;
  prisma: Prisma;
  tasks: TaskStore;
  events: EventStore;
  agents: AgentStore;
  memory: MemoryService;
  /** Notified whenever a task may have become claimable. */
  taskAvailable: Wakeup;
  /** Aborted at shutdown: long-polls return at once. */
  shutdownSignal: AbortSignal;
  /** When an agent counts as offline (agents/health-cutoffs.ts): steal takes from those. */
  healthCutoffs: (now: number) => HealthCutoffs;
}

interface SettleRequest {
  taskId: string;
  /** The settling agent. Omitted only by seed-compatible REST calls: any current holder is accepted. */
  agentId?: string | undefined;
  leaseToken?: number | undefined;
}

export class TaskService {
  constructor(private readonly d: TaskServiceDeps) {}

  enqueue(request: EnqueueRequest): Promise<Task> {
    return this.d.writer.write((ctx) => toTask(this.insertTask(ctx, request)));
  }

  /** All or nothing: one invalid task rolls the whole batch back. */
  enqueueMany(requests: EnqueueRequest[]): Promise<Task[]> {
    return this.d.writer.write((ctx) => requests.map((request) => toTask(this.insertTask(ctx, request))));
  }

  /** Claims up to `limit` tasks (default 1), long-polling up to `waitMs` when none is available. */
  async claim(request: ClaimRequest, signal?: AbortSignal): Promise<ClaimedTask[]> {
    const { config } = this.d;
    const limit = request.limit ?? 1;
    const leaseMs = this.leaseLength(request.leaseMs);
    const deadline = Date.now() + Math.min(request.waitMs ?? 0, config.maxWaitMs);
    const stop = linkSignals([signal, this.d.shutdownSignal]);
    try {
      for (;;) {
        const attempt = await this.d.writer.write((ctx) => {
          const seen = this.d.taskAvailable.current();
          // The caller may have gone while this write waited for its batch: claim nothing for nobody.
          if (signal?.aborted) return { rows: [], seen, nextRunAt: null };
          const filter = this.claimFilter(request);
          const rows = this.claimRows(ctx, filter, limit, leaseMs);
          return { rows, seen, nextRunAt: rows.length > 0 ? null : this.d.tasks.nextRunAt(filter, ctx.now) };
        });
        if (attempt.rows.length > 0) {
          if (!signal?.aborted) return this.withContext(attempt.rows.map(toTask), request.context);
          // Gone between the commit and now: hand the tasks back rather than let them wait out the lease.
          await this.releaseAbandoned(attempt.rows);
          return [];
        }
        const now = Date.now();
        if (now >= deadline || stop.signal.aborted) return [];
        // Wake on a local enqueue, when a delayed task falls due, or to look for other processes' writes.
        const untilDue = attempt.nextRunAt === null ? Infinity : Math.max(attempt.nextRunAt - now, 1);
        await this.d.taskAvailable.wait(attempt.seen, Math.min(deadline - now, untilDue, config.crossProcessPollMs), stop.signal);
      }
    } finally {
      stop.dispose();
    }
  }

  heartbeat(request: SettleRequest & { agentId: string; leaseMs?: number | undefined }): Promise<Task> {
    const leaseMs = this.leaseLength(request.leaseMs);
    return this.d.writer.write((ctx) => {
      const row = this.heldTask(request);
      this.d.agents.touch(request.agentId, ctx.now);
      return toTask(this.d.tasks.extendLease(row.seq, ctx.now + leaseMs, ctx.now));
    });
  }

  complete(request: SettleRequest & { result?: unknown }): Promise<Task> {
    return this.d.writer.write((ctx) => {
      const current = this.findTask(request.taskId);
      // A retried complete (its first response lost) gets the same answer, not a conflict.
      if (current.status === "completed" && this.isHolder(current, request)) return toTask(current);
      const row = this.d.tasks.complete(this.assertHeld(current, request).seq, request.result, ctx.now);
      this.d.events.appendSystem(ctx, "task.completed", { taskId: row.id, queue: row.queue, agentId: row.leaseOwner, attempt: row.attempts });
      this.d.memory.recordExecution(ctx, row, "completed");
      return toTask(row);
    });
  }

  fail(request: SettleRequest & { error: string; retry: boolean }): Promise<Task> {
    return this.d.writer.write((ctx) => {
      const held = this.heldTask(request);
      const retryAt = request.retry && held.attempts < held.maxAttempts ? ctx.now + this.backoff(held.attempts) : null;
      this.d.events.appendSystem(ctx, "task.failed", {
        taskId: held.id,
        queue: held.queue,
        agentId: held.leaseOwner,
        attempt: held.attempts,
        error: request.error,
        willRetry: retryAt !== null,
      });
      return toTask(this.recordFailedRun(ctx, held, request.error, held.leaseOwner, retryAt));
    });
  }

  release(request: SettleRequest & { agentId: string; delayMs?: number | undefined }): Promise<Task> {
    return this.d.writer.write((ctx) => toTask(this.releaseRow(ctx, this.heldTask(request), ctx.now + (request.delayMs ?? 0))));
  }

  cancel(taskId: string): Promise<Task> {
    return this.d.writer.write((ctx) => {
      const row = this.findTask(taskId);
      if (row.status === "cancelled") return toTask(row);
      if (row.status !== "pending" && row.status !== "claimed") {
        throw new CoordinationError("INVALID_STATE", `task "${taskId}" is ${row.status} and cannot be cancelled`);
      }
      const cancelled = this.d.tasks.cancel(row.seq, ctx.now);
      this.d.events.appendSystem(ctx, "task.cancelled", { taskId, queue: row.queue, previousStatus: row.status, agentId: row.leaseOwner });
      return toTask(cancelled);
    });
  }

  requeue(taskId: string): Promise<Task> {
    return this.d.writer.write((ctx) => {
      const row = this.findTask(taskId);
      if (row.status !== "dead_letter" && row.status !== "cancelled") {
        throw new CoordinationError("INVALID_STATE", `task "${taskId}" is ${row.status}; only dead_letter or cancelled tasks can be requeued`);
      }
      const requeued = this.d.tasks.requeue(row.seq, ctx.now);
      this.d.events.appendSystem(ctx, "task.requeued", { taskId, queue: row.queue, previousStatus: row.status });
      ctx.afterCommit(() => this.d.taskAvailable.notify());
      return toTask(requeued);
    });
  }

  /**
   * Work stealing: takes over claims whose lease expired or whose holder is offline, without
   * waiting for the sweeper. The abandoned run is charged like an expiry (a task that keeps
   * killing its agents still reaches the dead-letter queue); the thief gets a fresh lease.
   */
  async steal(request: { agentId: string; fromAgentId?: string | undefined; limit: number; leaseMs?: number | undefined; capabilities?: string[] | undefined }): Promise<ClaimedTask[]> {
    const leaseMs = this.leaseLength(request.leaseMs);
    const rows = await this.d.writer.write((ctx) => {
      const { offlineBefore } = this.d.healthCutoffs(ctx.now);
      const victims = this.d.tasks.stealable(ctx.now, offlineBefore, request.fromAgentId ?? null, request.limit);
      for (const victim of victims) this.expireClaim(ctx, victim, `stolen by ${request.agentId} from ${victim.leaseOwner}`);
      if (victims.length === 0) return [];
      const filter = { ...this.claimFilter(request), onlySeqs: victims.map((v) => v.seq) };
      return this.claimRows(ctx, filter, request.limit, leaseMs, (row) => victims.find((v) => v.seq === row.seq)?.leaseOwner ?? null);
    });
    return this.withContext(rows.map(toTask), true);
  }

  async get(taskId: string): Promise<Task> {
    const row = await this.d.prisma.task.findUnique({ where: { id: taskId } });
    if (!row) throw notFound("TASK_NOT_FOUND", taskId);
    return toTask(row);
  }

  async list(request: ListRequest): Promise<{ items: Task[]; nextCursor: string | null }> {
    const after = request.cursor === undefined ? undefined : Number(request.cursor);
    const rows = await this.d.prisma.task.findMany({
      where: {
        queue: request.queue,
        status: request.status,
        leaseOwner: request.agentId,
        capability: request.capability,
        seq: after === undefined ? undefined : request.order === "asc" ? { gt: after } : { lt: after },
      },
      orderBy: { seq: request.order },
      take: request.limit + 1,
    });
    const page = rows.slice(0, request.limit);
    const nextCursor = rows.length > request.limit ? String(page[page.length - 1]!.seq) : null;
    return { items: page.map(toTask), nextCursor };
  }

  stats(): Promise<TaskStats> {
    return readTaskStats(this.d.prisma, Date.now());
  }

  /** Returns expired claims to the queue (charging the attempt). Run by the lease sweeper. */
  expireLeases(batchSize = 500): Promise<number> {
    return this.d.writer.write((ctx) => {
      const expired = this.d.tasks.expiredClaims(ctx.now, batchSize);
      for (const row of expired) this.expireClaim(ctx, row, `lease expired (held by ${row.leaseOwner})`);
      return expired.length;
    });
  }

  /** Releases claims whose claimer disconnected before receiving them (no attempt charged). */
  private releaseAbandoned(rows: TaskRow[]): Promise<void> {
    return this.d.writer.write((ctx) => {
      for (const claimed of rows) {
        const current = this.d.tasks.findById(claimed.id);
        if (current?.status !== "claimed" || current.leaseToken !== claimed.leaseToken) continue;
        this.releaseRow(ctx, current, ctx.now, "claimer disconnected");
      }
    });
  }

  /** Inside a write: frees every claim an agent holds (it went offline or deregistered). */
  releaseClaimsOf(ctx: WriteContext, agentId: string, reason: string): number {
    const held = this.d.tasks.claimsHeldBy(agentId);
    for (const row of held) this.expireClaim(ctx, row, reason);
    return held.length;
  }

  // ---- inside a write ----

  private insertTask(ctx: WriteContext, request: EnqueueRequest): TaskRow {
    const definition = {
      queue: request.queue,
      payload: toJsonText(request.payload),
      priority: request.priority,
      capability: request.capability ?? null,
      targetAgentId: request.agentId ?? null,
      maxAttempts: request.maxAttempts ?? this.d.config.maxAttempts,
    };
    if (request.idempotencyKey !== undefined) {
      const existing = this.d.tasks.findByIdempotencyKey(request.idempotencyKey);
      if (existing) {
        const differs = (Object.keys(definition) as Array<keyof typeof definition>).filter((k) => existing[k] !== definition[k]);
        if (differs.length > 0) {
          throw new CoordinationError(
            "IDEMPOTENCY_MISMATCH",
            `idempotencyKey "${request.idempotencyKey}" was used for task "${existing.id}" with a different ${differs.join(", ")}`,
          );
        }
        return existing;
      }
    }
    const row = this.d.tasks.insert(
      { id: randomUUID(), ...definition, runAt: request.runAt?.getTime() ?? ctx.now, idempotencyKey: request.idempotencyKey ?? null },
      ctx.now,
    );
    this.d.events.appendSystem(ctx, "task.enqueued", {
      taskId: row.id,
      queue: row.queue,
      priority: row.priority,
      capability: row.capability,
      targetAgentId: row.targetAgentId,
      runAt: new Date(Number(row.runAt)).toISOString(),
    });
    ctx.afterCommit(() => this.d.taskAvailable.notify());
    return row;
  }

  /** Back to pending at `runAt` without charging the attempt, with its event. */
  private releaseRow(ctx: WriteContext, row: TaskRow, runAt: number, reason?: string): TaskRow {
    const released = this.d.tasks.release(row.seq, runAt, ctx.now);
    this.d.events.appendSystem(ctx, "task.released", { taskId: row.id, queue: row.queue, agentId: row.leaseOwner, ...(reason ? { reason } : {}) });
    ctx.afterCommit(() => this.d.taskAvailable.notify());
    return released;
  }

  private claimRows(
    ctx: WriteContext,
    filter: ClaimFilter,
    limit: number,
    leaseMs: number,
    stolenFrom?: (row: TaskRow) => string | null,
  ): TaskRow[] {
    const rows = this.d.tasks.claim(filter, limit, ctx.now + leaseMs, ctx.now);
    if (rows.length === 0) return rows;
    this.d.agents.touch(filter.agentId, ctx.now);
    for (const row of rows) {
      this.d.events.appendSystem(ctx, "task.claimed", {
        taskId: row.id,
        queue: row.queue,
        agentId: filter.agentId,
        attempt: row.attempts,
        leaseToken: row.leaseToken,
        leaseExpiresAt: new Date(ctx.now + leaseMs).toISOString(),
        ...(stolenFrom ? { stolenFrom: stolenFrom(row) } : {}),
      });
    }
    return rows;
  }

  /** A run that ended without a verdict (lease expired, agent gone): retry now, or dead-letter at the limit. */
  private expireClaim(ctx: WriteContext, row: TaskRow, reason: string): TaskRow {
    this.d.events.appendSystem(ctx, "task.lease_expired", { taskId: row.id, queue: row.queue, agentId: row.leaseOwner, attempt: row.attempts, reason });
    const retryAt = row.attempts < row.maxAttempts ? ctx.now : null;
    return this.recordFailedRun(ctx, row, reason, row.leaseOwner, retryAt);
  }

  private recordFailedRun(ctx: WriteContext, row: TaskRow, error: string, agentId: string | null, retryAt: number | null): TaskRow {
    const updated = this.d.tasks.recordFailure(row, error, agentId, retryAt, ctx.now);
    if (retryAt === null) {
      this.d.events.appendSystem(ctx, "task.dead_lettered", { taskId: row.id, queue: row.queue, attempts: row.attempts, error });
      this.d.memory.recordExecution(ctx, updated, "dead_letter", row);
    } else {
      this.d.events.appendSystem(ctx, "task.retried", { taskId: row.id, queue: row.queue, attempt: row.attempts, runAt: new Date(retryAt).toISOString() });
      this.d.memory.recordExecution(ctx, updated, "failed", row);
      ctx.afterCommit(() => this.d.taskAvailable.notify());
    }
    return updated;
  }

  private heldTask(request: SettleRequest): TaskRow {
    return this.assertHeld(this.findTask(request.taskId), request);
  }

  /** The row, if the caller holds its current lease; LEASE_CONFLICT otherwise. */
  private assertHeld(row: TaskRow, request: SettleRequest): TaskRow {
    if (row.status === "claimed" && this.isHolder(row, request)) return row;
    const holder = row.status === "claimed" ? `claimed by "${row.leaseOwner}" (lease ${row.leaseToken})` : row.status;
    throw new CoordinationError(
      "LEASE_CONFLICT",
      `${request.agentId === undefined ? "the caller" : `agent "${request.agentId}"`} does not hold the lease on task "${request.taskId}": it is ${holder}`,
      { status: row.status, leaseOwner: row.leaseOwner, leaseToken: row.leaseToken },
    );
  }

  /** Fencing: the same agent (when named) and the same lease (when a token is given). */
  private isHolder(row: TaskRow, request: SettleRequest): boolean {
    return (
      (request.agentId === undefined || row.leaseOwner === request.agentId) &&
      (request.leaseToken === undefined || request.leaseToken === row.leaseToken)
    );
  }

  private findTask(taskId: string): TaskRow {
    const row = this.d.tasks.findById(taskId);
    if (!row) throw notFound("TASK_NOT_FOUND", taskId);
    return row;
  }

  private claimFilter(request: { agentId: string; queues?: string[] | undefined; capabilities?: string[] | undefined }): ClaimFilter {
    return {
      agentId: request.agentId,
      queues: request.queues && request.queues.length > 0 ? request.queues : null,
      capabilities: request.capabilities ?? this.d.agents.capabilitiesOf(request.agentId),
    };
  }


  private leaseLength(requested: number | undefined): number {
    return Math.min(requested && requested > 0 ? requested : this.d.config.leaseMs, this.d.config.maxLeaseMs);
  }

  /** Exponential: base, 2×base, 4×base … capped. */
  private backoff(attempt: number): number {
    const { retryBaseMs, retryMaxMs } = this.d.config;
    return Math.min(retryMaxMs, retryBaseMs * 2 ** Math.max(0, attempt - 1));
  }

  private withContext(tasks: Task[], wanted: boolean | undefined): ClaimedTask[] {
    const limit = wanted === false ? 0 : this.d.config.memoryContextLimit;
    return tasks.map((task) => ({ ...task, context: limit > 0 ? this.d.memory.recallForTask(task, limit) : [] }));
  }
}
