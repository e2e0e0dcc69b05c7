// Runs' logs as the database threads run them. An append is one write that commits with its
// task.log event (the task and the lines' numbers, not their text), so a follower on any server
// process on the file wakes; only the agent holding the task's current lease appends, so a run
// that lost its lease never writes into the next run's lines.
import { jsonTextBytes, utf8Bytes, withinBudget } from "../db/answer-budget.js";
import type { WriteContext } from "../db/writer.js";
import { CoordinationError, invalidField, notFound } from "../errors.js";
import type { EventStore } from "../events/event-store.js";
import type { JsonValue } from "../json-types.js";
import { LOG_LEVELS, type AppendedLog, type LogEntry, type LogLevel, type LogLine, type LogPage } from "./task-log-schemas.js";
import { type LogHead, type LogLineRow, type TaskLogStore } from "./task-log-store.js";
import type { TaskStore } from "./task-store.js";
import type { SettleRequest, TaskTransitions } from "./task-transitions.js";

/** What a line weighs beside its message, data and agent (its numbers and times, as stored). */
const LINE_FIXED_BYTES = 64;
/** A line's answer less its message, data and agent: field names, numbers, a date, superjson's meta; with room to spare. */
const LINE_ANSWER_BYTES = 300;
/** The most lines a filtered read (attempt, level) looks at: a filter matching none of a long log's lines reads it a window at a time. */
export const SCANNED_LINES = 10_000;
/** A page's braces, field names and superjson's envelope, with room to spare. */
const PAGE_ENVELOPE_BYTES = 300;

/** What a line weighs against maxTaskLogBytes. */
const lineBytes = (entry: { message: string; data: string | null; agentId: string }): number =>
  utf8Bytes(entry.message) + (entry.data === null ? 0 : utf8Bytes(entry.data)) + utf8Bytes(entry.agentId) + LINE_FIXED_BYTES;

const toLine = (row: LogLineRow): LogLine => ({
  line: Number(row.line),
  at: new Date(Number(row.at)),
  attempt: Number(row.attempt),
  leaseToken: Number(row.leaseToken),
  agentId: row.agentId,
  level: row.level,
  message: row.message,
  data: row.data === null ? null : (JSON.parse(row.data) as JsonValue),
});

/** Whether a stored line is what an entry of an append sent again asks for. */
const sameLine = (row: LogLineRow, entry: StoredEntry): boolean => row.message === entry.message && row.level === entry.level && row.data === entry.data;

/** An entry as the writer gets it: its data as JSON text. */
export type StoredEntry = Omit<LogEntry, "data"> & { data: string | null };

export interface AppendArgs extends SettleRequest {
  agentId: string;
  entries: StoredEntry[];
  idempotencyKey: string | null;
  /** maxTaskLogBytes. */
  maxBytes: number;
}

/**
 * The lines of `rows` (an append key's) that the append `args` may be a resend of: its agent's,
 * written under the lease it names (its leaseToken; naming none, the lease it holds now, or once
 * it holds none, its last one that used the key). A key is its run's: the same key in a later run
 * (a handler's key made of its step, run again after a retry) is a new append, not the old
 * run's lines answered again with nothing written.
 */
function ofOneRun(args: AppendArgs, task: { status: string; leaseOwner: string | null; leaseToken: number }, rows: LogLineRow[]): LogLineRow[] {
  const own = rows.filter((row) => row.agentId === args.agentId);
  const holds = task.status === "claimed" && task.leaseOwner === args.agentId;
  const lease = args.leaseToken ?? (holds ? task.leaseToken : Math.max(...own.map((row) => Number(row.leaseToken))));
  return own.filter((row) => Number(row.leaseToken) === lease);
}

export function taskLogCommands(d: { tasks: TaskStore; logs: TaskLogStore; events: EventStore; transitions: TaskTransitions }) {
  const t = d.transitions;

  /** The answer of an append sent again whose lines the log still keeps; IDEMPOTENCY_MISMATCH when it asked for other lines. */
  const repeated = (args: AppendArgs, rows: LogLineRow[], head: LogHead): AppendedLog => {
    // The log may have dropped the append's first lines since: what is kept is its last ones. Fewer
    // kept than sent only so (its first kept line is the log's first), never lines before line 1:
    // an append sent again with entries added in front of its lines is another append, whose
    // added lines would be answered as written and never be.
    const asked = args.entries.slice(args.entries.length - rows.length);
    const lastLine = Number(rows[rows.length - 1]!.line);
    const accounted = rows.length === args.entries.length || (rows.length < args.entries.length && Number(rows[0]!.line) === head.firstKept && lastLine - args.entries.length + 1 >= 1);
    const same = accounted && rows.every((row, i) => sameLine(row, asked[i]!));
    if (!same) {
      throw new CoordinationError(
        "IDEMPOTENCY_MISMATCH",
        `task "${args.taskId}": idempotencyKey ${JSON.stringify(args.idempotencyKey)} wrote lines ${rows[0]!.line} to ${rows[rows.length - 1]!.line} with other entries: give each append a key of its own`,
        { taskId: args.taskId, firstLine: Number(rows[0]!.line), lastLine: Number(rows[rows.length - 1]!.line) },
      );
    }
    return { taskId: args.taskId, firstLine: lastLine - args.entries.length + 1, lastLine, dropped: head.firstKept - 1 };
  };

  return {
    /**
     * Adds `entries` to the task's log as its next lines, under the caller's lease (LEASE_CONFLICT
     * otherwise), with a task.log event; then deletes its oldest lines past `maxBytes`. An append
     * sent again with its `idempotencyKey` (its answer lost) is answered with the lines it wrote
     * while the log keeps them, checked before the lease: its run may have settled since.
     */
    "tasks.appendLog": (ctx: WriteContext, args: AppendArgs): AppendedLog => {
      const task = t.findTask(args.taskId);
      const head = d.logs.head(task.seq);
      if (args.idempotencyKey !== null) {
        const rows = ofOneRun(args, task, d.logs.byAppendKey(task.seq, args.idempotencyKey));
        if (rows.length > 0) return repeated(args, rows, head);
      }
      const row = t.assertHeld(task, args);
      t.noteAgent(ctx, args.agentId);
      const firstLine = head.lastLine + 1;
      let keptBytes = head.keptBytes;
      args.entries.forEach((entry, i) => {
        const bytes = lineBytes({ ...entry, agentId: args.agentId });
        keptBytes += bytes;
        d.logs.insert({
          taskSeq: row.seq,
          line: firstLine + i,
          at: ctx.now,
          attempt: row.attempts,
          leaseToken: row.leaseToken,
          agentId: args.agentId,
          level: entry.level,
          message: entry.message,
          data: entry.data,
          bytes,
          appendKey: args.idempotencyKey,
        });
      });
      const lastLine = firstLine + args.entries.length - 1;
      const written = d.logs.setHead(row.seq, { lastLine, firstKept: head.firstKept, keptBytes }, args.maxBytes);
      d.events.appendSystem(ctx, "task.log", {
        taskId: row.id,
        queue: row.queue,
        agentId: args.agentId,
        attempt: row.attempts,
        leaseToken: row.leaseToken,
        firstLine,
        lastLine,
      });
      return { taskId: row.id, firstLine, lastLine, dropped: written.firstKept - 1 };
    },
  };
}

/** The reader's side: a page of a task's log. */
export function taskLogQueries(d: { tasks: TaskStore; logs: TaskLogStore; maxResponseBytes: number }) {
  const budget = d.maxResponseBytes - PAGE_ENVELOPE_BYTES;
  return {
    /**
     * Lines of the task's log after `after`, oldest first, up to `limit` and the answer's byte
     * budget, of run `attempt` and at `level` or above when given. TASK_NOT_FOUND for no task
     * (or one retention deleted).
     */
    "tasks.log": (request: { taskId: string; after: number; tail?: number | undefined; limit: number; attempt?: number | undefined; level?: LogLevel | undefined }): LogPage => {
      const task = d.tasks.stateOf(request.taskId);
      if (task === undefined) throw notFound("TASK_NOT_FOUND", request.taskId);
      const head = d.logs.head(task.seq);
      const levels = request.level === undefined ? undefined : LOG_LEVELS.slice(LOG_LEVELS.indexOf(request.level));
      const weigh = (row: LogLineRow) => LINE_ANSWER_BYTES + jsonTextBytes(row.message) + (row.data === null ? 0 : utf8Bytes(row.data)) + jsonTextBytes(row.agentId);
      // A filter may match none of a long log's lines: one read looks at SCANNED_LINES of them at
      // most (its lines run without a gap from firstKept), and says where it stopped. Unfiltered,
      // every line looked at is on the page, which stops at limit (or tail).
      const filtered = request.attempt !== undefined || levels !== undefined;
      if (request.tail !== undefined) {
        // The newest first, as many as asked and fit (the budget leaves the oldest of them out), answered oldest first.
        const newest = d.logs.lines(task.seq, filtered ? Math.max(0, head.lastLine - SCANNED_LINES) : 0, head.lastLine, request.tail, { attempt: request.attempt, levels }, true);
        const lines = withinBudget(newest, weigh, budget).rows.reverse().map(toLine);
        return { taskId: request.taskId, status: task.status, lines, nextAfter: head.lastLine, more: false, dropped: head.firstKept - 1 };
      }
      // Lines are numbered on from the last, never again: a reader past it (an off-by-some mistake)
      // would wait for lines it then skips, and is told so rather than left waiting.
      if (request.after > head.lastLine) {
        throw invalidField("after", `is past the log's last line (${head.lastLine}): lines after ${request.after} are lines that do not exist yet, and the ones before them would be skipped; read from 0, or from a nextAfter`, { lastLine: head.lastLine });
      }
      const from = Math.max(request.after, head.firstKept - 1);
      const upTo = filtered ? Math.min(head.lastLine, from + SCANNED_LINES) : head.lastLine;
      // One more than the page: whether lines follow it.
      const rows = d.logs.lines(task.seq, request.after, upTo, request.limit + 1, { attempt: request.attempt, levels });
      const fit = withinBudget(rows, weigh, budget);
      const cut = fit.truncated || fit.rows.length > request.limit;
      const lines = fit.rows.slice(0, request.limit).map(toLine);
      // A page that read to upTo looked at every line up to it: the next read starts after it.
      const nextAfter = cut ? lines[lines.length - 1]!.line : Math.max(request.after, upTo);
      const more = cut || nextAfter < head.lastLine;
      return { taskId: request.taskId, status: task.status, lines, nextAfter, more, dropped: head.firstKept - 1 };
    },
  };
}
