// The task queue's public operations: enqueue, claim with leases, settle with fencing, retries
// with backoff, dead-letter, requeue, cancel and work stealing. Each write is one Writer call
// composed of the transitions in task-transitions.ts, so a state change and its system event
// commit together. Claims and steals take a ConsumingCall: what they lease goes back, uncharged,
// when the answer does not reach the claimer (src/delivery/delivery.ts).
import type { AgentStore } from "../agents/agent-store.js";
import type { HealthCutoffs } from "../agents/health-cutoffs.js";
import type { Config } from "../config.js";
import { fromJsonText, UNDELIVERABLE_VALUE } from "../db/columns.js";
import type { Prisma } from "../db/prisma.js";
import type { WriteContext, Writer } from "../db/writer.js";
import type { ConsumingCall } from "../delivery/delivery.js";
import { CoordinationError, notFound } from "../errors.js";
import type { EventStore } from "../events/event-store.js";
import { assertJsonDepth, sameJson } from "../json-value.js";
import type { MemoryService } from "../memory/memory-service.js";
import { linkSignals, type SignalFanout, type Wakeup } from "../wakeup.js";
import type { LeaseRecovery } from "./lease-recovery.js";
import { readTaskStats } from "./task-stats.js";
import type { ClaimedTask, ClaimRequest, EnqueueRequest, ListRequest, SettledTask, Task, TaskStats } from "./task-schemas.js";
import { taskAnswerBytes, toTask, type ClaimFilter, type TaskRow, type TaskStore } from "./task-store.js";
import type { SettleRequest, TaskTransitions } from "./task-transitions.js";

export interface TaskServiceDeps {
  config: Config;
  writer: Writer;
  prisma: Prisma;
  tasks: TaskStore;
  events: EventStore;
  agents: AgentStore;
  memory: MemoryService;
  transitions: TaskTransitions;
  recovery: LeaseRecovery;
  /** Notified whenever a task may have become claimable. */
  taskAvailable: Wakeup;
  /** Aborts at shutdown: long-polls return at once. */
  shutdown: SignalFanout;
  /** When an agent counts as offline (agents/health-cutoffs.ts): steal takes from those. */
  healthCutoffs: (now: number) => HealthCutoffs;
}

/** The settle answer: the task, and the lease the settle ended (whoever held it). */
const settled = (row: TaskRow, lease: TaskRow = row): SettledTask => ({
  ...toTask(row),
  // A claimed task always has its leaseOwner; completed and dead-lettered ones keep it.
  settledLease: { agentId: lease.leaseOwner!, leaseToken: lease.leaseToken },
});

export class TaskService {
  private readonly t: TaskTransitions;

  constructor(private readonly d: TaskServiceDeps) {
    this.t = d.transitions;
  }

  enqueue(request: EnqueueRequest): Promise<Task> {
    return this.d.writer.write((ctx) => toTask(this.t.insertTask(ctx, request)));
  }

  /** All or nothing: one invalid task rolls the whole batch back. */
  enqueueMany(requests: EnqueueRequest[]): Promise<Task[]> {
    return this.d.writer.write((ctx) => requests.map((request, i) => toTask(this.t.insertTask(ctx, request, `tasks[${i}].payload`))));
  }

  /**
   * Claims up to `limit` tasks (default 1), long-polling up to `waitMs` when none is available.
   * Registers an unknown claimer. Takes nothing once `call.signal` aborted (the claimer left), and
   * hands back what it took if the answer does not reach the claimer (`call.delivery`).
   */
  async claim(request: ClaimRequest, call: ConsumingCall = {}): Promise<ClaimedTask[]> {
    const limit = request.limit ?? 1;
    const leaseMs = this.t.leaseLength(request.leaseMs);
    const deadline = Date.now() + Math.min(request.waitMs ?? 0, this.d.config.maxWaitMs);
    const shutdown = this.d.shutdown.child();
    const stop = linkSignals([call.signal, shutdown.signal]);
    let first = true;
    try {
      for (;;) {
        const noteAgent = first;
        first = false;
        const attempt = await this.d.writer.write((ctx) => {
          const seen = this.d.taskAvailable.current();
          // The caller may have gone while this write waited for its batch: claim nothing for nobody.
          if (call.signal?.aborted) return { rows: [], seen, nextRunAt: null };
          const filter = this.t.claimFilter(request);
          const rows = this.claimDeliverable(ctx, filter, limit, leaseMs);
          if (noteAgent || rows.length > 0) this.t.noteAgent(ctx, request.agentId, filter.capabilities);
          return { rows, seen, nextRunAt: rows.length > 0 ? null : this.d.tasks.nextRunAt(filter, ctx.now) };
        });
        if (attempt.rows.length > 0) return this.handOut(attempt.rows, request.context, call);
        const now = Date.now();
        if (now >= deadline || stop.signal.aborted) return [];
        // Wake on a local enqueue, when a delayed task falls due, or to look for other processes' writes.
        const untilDue = attempt.nextRunAt === null ? Infinity : Math.max(attempt.nextRunAt - now, 1);
        await this.d.taskAvailable.wait(attempt.seen, Math.min(deadline - now, untilDue, this.d.config.crossProcessPollMs), stop.signal);
      }
    } finally {
      stop.dispose();
      shutdown.dispose();
    }
  }

  heartbeat(request: SettleRequest & { agentId: string; leaseMs?: number | undefined }): Promise<Task> {
    const leaseMs = this.t.leaseLength(request.leaseMs);
    return this.d.writer.write((ctx) => {
      const row = this.t.heldTask(request);
      this.t.noteAgent(ctx, request.agentId);
      return toTask(this.d.tasks.extendLease(row.seq, ctx.now + leaseMs, ctx.now));
    });
  }

  /**
   * Completes the task under the caller's lease. Sent again (its first answer lost), it gets the
   * same answer, as long as it carries the same result: a different result for a task already
   * completed is a conflict, so a stale or forged anonymous complete can never pass as the
   * rightful holder's.
   */
  complete(request: SettleRequest & { result?: unknown }): Promise<SettledTask> {
    assertJsonDepth("result", request.result, this.d.config.maxJsonDepth);
    return this.d.writer.write((ctx) => {
      // The usual case in one statement: the task is claimed under the caller's lease.
      const row = this.d.tasks.completeHeld(request.taskId, request.agentId ?? null, request.leaseToken ?? null, request.result, ctx.now);
      if (row === undefined) {
        const current = this.t.findTask(request.taskId);
        if (current.status === "completed" && this.t.isHolder(current, request)) {
          if (sameJson(fromJsonText(current.result), request.result ?? null)) return settled(current);
          throw new CoordinationError(
            "INVALID_STATE",
            `task "${request.taskId}" was already completed under lease ${current.leaseToken} of agent "${current.leaseOwner}" with a different result`,
            { status: current.status, leaseOwner: current.leaseOwner, leaseToken: current.leaseToken },
          );
        }
        throw this.t.leaseConflict(current, request);
      }
      if (request.agentId !== undefined) this.t.noteAgent(ctx, request.agentId);
      this.d.events.appendSystem(ctx, "task.completed", {
        taskId: row.id,
        queue: row.queue,
        agentId: row.leaseOwner,
        attempt: row.attempts,
        leaseToken: row.leaseToken,
        ...(request.agentId === undefined ? { anonymous: true } : {}),
      });
      this.d.memory.recordExecution(ctx, row, "completed");
      return settled(row);
    });
  }

  fail(request: SettleRequest & { error: string; retry: boolean }): Promise<SettledTask> {
    return this.d.writer.write((ctx) => {
      const held = this.t.heldTask(request);
      if (request.agentId !== undefined) this.t.noteAgent(ctx, request.agentId);
      const retryAt = request.retry && held.attempts < held.maxAttempts ? ctx.now + this.t.backoff(held.attempts) : null;
      this.d.events.appendSystem(ctx, "task.failed", {
        taskId: held.id,
        queue: held.queue,
        agentId: held.leaseOwner,
        attempt: held.attempts,
        leaseToken: held.leaseToken,
        error: request.error,
        willRetry: retryAt !== null,
        ...(request.agentId === undefined ? { anonymous: true } : {}),
      });
      return settled(this.t.recordFailedRun(ctx, held, request.error, held.leaseOwner, retryAt), held);
    });
  }

  release(request: SettleRequest & { agentId: string; delayMs?: number | undefined }): Promise<SettledTask> {
    return this.d.writer.write((ctx) => {
      const held = this.t.heldTask(request);
      this.t.noteAgent(ctx, request.agentId);
      return settled(this.t.releaseRow(ctx, held, ctx.now + (request.delayMs ?? 0)), held);
    });
  }

  cancel(taskId: string): Promise<Task> {
    return this.d.writer.write((ctx) => {
      const row = this.t.findTask(taskId);
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
      const row = this.t.findTask(taskId);
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
   * Stealing from an agent the registry has never heard of is AGENT_NOT_FOUND.
   */
  async steal(
    request: { agentId: string; fromAgentId?: string | undefined; limit: number; leaseMs?: number | undefined; capabilities?: string[] | undefined },
    call: ConsumingCall = {},
  ): Promise<ClaimedTask[]> {
    const leaseMs = this.t.leaseLength(request.leaseMs);
    const rows = await this.d.writer.write((ctx) => {
      if (request.fromAgentId !== undefined && !this.d.agents.get(request.fromAgentId)) throw notFound("AGENT_NOT_FOUND", request.fromAgentId);
      if (call.signal?.aborted) return [];
      const filter = this.t.claimFilter(request);
      this.t.noteAgent(ctx, request.agentId, filter.capabilities);
      const { offlineBefore } = this.d.healthCutoffs(ctx.now);
      const victims = this.d.tasks.stealable(ctx.now, offlineBefore, request.fromAgentId ?? null, request.limit);
      for (const victim of victims) this.t.expireClaim(ctx, victim, `stolen by ${request.agentId} from ${victim.leaseOwner}`);
      if (victims.length === 0) return [];
      const stolenFrom = (row: TaskRow) => victims.find((v) => v.seq === row.seq)?.leaseOwner ?? null;
      return this.t.claimRows(ctx, { ...filter, onlySeqs: victims.map((v) => v.seq) }, request.limit, leaseMs, stolenFrom).map((row) => ({ row, task: toTask(row) }));
    });
    return rows.length === 0 ? [] : this.handOut(rows, true, call);
  }

  async get(taskId: string): Promise<Task> {
    const row = await this.d.prisma.task.findUnique({ where: { id: taskId } });
    if (!row) throw notFound("TASK_NOT_FOUND", taskId);
    return toTask(row);
  }

  /** One page, in seq order; a page stops early (with a nextCursor) rather than pass maxResponseBytes. */
  list(request: ListRequest): { items: Task[]; nextCursor: string | null } {
    const page = this.d.tasks.listPage(
      {
        queue: request.queue,
        status: request.status,
        agentId: request.agentId,
        capability: request.capability,
        after: request.cursor === undefined ? undefined : Number(request.cursor),
        order: request.order,
      },
      request.limit + 1,
      this.d.config.maxResponseBytes,
    );
    const items = page.rows.slice(0, request.limit);
    const more = page.truncated || page.rows.length > request.limit;
    return { items: items.map(toTask), nextCursor: more && items.length > 0 ? String(items[items.length - 1]!.seq) : null };
  }

  stats(): Promise<TaskStats> {
    return readTaskStats(this.d.prisma, Date.now());
  }

  /** Returns expired claims to the queue (charging the attempt). Run by the lease sweeper. */
  expireLeases(batchSize?: number): Promise<number> {
    return this.d.recovery.expireLeases(batchSize);
  }

  /**
   * Claims like claimRows, and checks each answer before the commit: a task whose stored payload
   * no transport can carry (see UNDELIVERABLE_VALUE) is dead-lettered, saying why, instead of
   * being handed out and failing after the lease was taken; then the next one is claimed.
   */
  private claimDeliverable(ctx: WriteContext, filter: ClaimFilter, limit: number, leaseMs: number): Array<{ row: TaskRow; task: Task }> {
    const claimed: Array<{ row: TaskRow; task: Task }> = [];
    for (;;) {
      let poisoned = 0;
      for (const row of this.t.claimRows(ctx, filter, limit - claimed.length, leaseMs)) {
        const task = toTask(row);
        if (task.payload !== UNDELIVERABLE_VALUE) claimed.push({ row, task });
        else {
          poisoned++;
          this.t.recordFailedRun(ctx, row, "the stored payload cannot be delivered: it nests too deep for any transport", row.leaseOwner, null);
        }
      }
      // Only a round that dead-lettered something leaves room to claim again.
      if (poisoned === 0 || claimed.length === limit) return claimed;
    }
  }

  /**
   * The claimed tasks as answered: each with the memories recalled for it, in what is left of
   * the answer's byte budget. From here on the claimer owns them, unless the answer does not
   * reach it: then they go back, uncharged.
   */
  private handOut(claimed: Array<{ row: TaskRow; task: Task }>, wanted: boolean | undefined, call: ConsumingCall): ClaimedTask[] {
    call.delivery?.onUndelivered(() => this.d.recovery.releaseUndelivered(claimed.map((c) => c.row)));
    const limit = wanted === false ? 0 : this.d.config.memoryContextLimit;
    const budget = { bytes: this.d.config.maxResponseBytes - claimed.reduce((sum, { row }) => sum + taskAnswerBytes(row), 0) };
    return claimed.map(({ task }) => ({ ...task, context: limit > 0 && budget.bytes > 0 ? this.d.memory.recallForTask(task, limit, budget) : [] }));
  }
}
