// Where an agent reads the log from, and the rules every reader position obeys: an agent reads
// untargeted events matching its patterns (after `cursor`) and its mailbox, the events targeted
// at it (after `mailboxCursor`); a position behind the retained log is EVENTS_PRUNED, saying how to
// recover, and never a silent skip. Used by the writer's and the reader's commands alike.
import { CoordinationError, invalidField } from "../errors.js";
import type { CoordinationEvent } from "./event-schemas.js";
import { ALL_NAMES, type EventStore, type InboxPosition } from "./event-store.js";
import { matchesType } from "./type-patterns.js";

/** The positions a reader can hold, each with its own way out of EVENTS_PRUNED. */
export type Position = "cursor" | "mailboxCursor" | "fromSeq" | "lastEventId" | "afterSeq";
const resubscribe = (prunedThrough: number) =>
  `Resubscribe with fromSeq 0 (or fromSeq >= ${prunedThrough}) to read what is retained, or without fromSeq to skip to the newest event.`;
const RECOVERY: Record<Position, (prunedThrough: number) => string> = {
  cursor: resubscribe,
  mailboxCursor: (p) => `Acknowledge up to seq ${p} (events.ack) or resubscribe to read the direct messages still retained.`,
  fromSeq: resubscribe,
  lastEventId: (p) => `Reconnect with lastEventId >= ${p}, or without lastEventId to follow new events only.`,
  afterSeq: (p) => `List with afterSeq 0 (the oldest retained event) or afterSeq >= ${p}.`,
};

/** What an agent reads from: its patterns and both cursors, recorded or (never seen) implied. */
export interface Inbox extends InboxPosition {
  types: string[];
  /** False for an agent with no row yet: its cursors are implied, nothing was consumed. */
  recorded: boolean;
}

/** Throws EVENTS_PRUNED when events after `seq` are no longer all retained. */
export function assertRetained(events: EventStore, seq: number, what: Position): void {
  const prunedThrough = events.prunedThroughSeq();
  if (seq < prunedThrough) {
    throw new CoordinationError(
      "EVENTS_PRUNED",
      `${what} ${seq} is behind the retained event log: events up to ${prunedThrough} were pruned. ${RECOVERY[what](prunedThrough)}`,
      { prunedThroughSeq: prunedThrough },
    );
  }
}

/** What a reader reads: untargeted events of `patterns`, and the events targeted at `recipient` (none when null). */
export interface Reads {
  patterns: readonly string[];
  recipient: string | null;
}

/**
 * Where a reader of `reads` at `seq` reads from: `seq` when the log after it is retained; behind
 * it, where the retained log begins, if nothing it reads was pruned after `seq` (it missed
 * nothing: its position moves only with the events it receives, so a stream of a rare type, or
 * the mailbox of an agent few write to, falls behind the log without missing any); else
 * EVENTS_PRUNED.
 */
export function retainedStart(events: EventStore, seq: number, reads: Reads, what: Position): number {
  const start = retainedFrom(events, seq, reads);
  if (start === null) assertRetained(events, seq, what);
  return start ?? seq;
}

/**
 * retainedStart without the error: where a reader of `reads` at `seq` reads from, or null when
 * events it reads may have been pruned after `seq` (a reader that records a gap, as a webhook
 * does, rather than refusing).
 */
export function retainedFrom(events: EventStore, seq: number, reads: Reads): number | null {
  const prunedThrough = events.prunedThroughSeq();
  if (seq >= prunedThrough) return seq;
  // Pruned by a server of an earlier version, which keeps no marks: anything may be gone.
  if (events.markedThroughSeq() < prunedThrough || readsAny(events.prunedAfter(seq), reads)) return null;
  return prunedThrough;
}

/** Whether any of the pruned types or targets is one `reads` reads. */
function readsAny(pruned: { types: readonly string[]; targets: readonly string[] }, reads: Reads): boolean {
  return (
    (reads.patterns.length > 0 && pruned.types.some((type) => type === ALL_NAMES || matchesType(type, reads.patterns))) ||
    (reads.recipient !== null && pruned.targets.some((target) => target === ALL_NAMES || target === reads.recipient))
  );
}

/** Whether `error` is an EVENTS_PRUNED: a reader that has a way out of it takes that instead. */
export const isPruned = (error: unknown): boolean => error instanceof CoordinationError && error.code === "EVENTS_PRUNED";

/**
 * A position to read after: not behind the retained log (EVENTS_PRUNED), and not beyond its
 * head (INVALID_INPUT: a cursor there would silently skip the next events published).
 */
export function assertReadable(events: EventStore, seq: number, what: Position): void {
  assertRetained(events, seq, what);
  const head = events.headSeq();
  if (seq > head) throw invalidField(what, `${seq} is beyond the newest event (${head})`);
}

/** The agent's patterns and cursors; an agent with no row reads every retained direct message. */
export function inboxOf(events: EventStore, agentId: string): Inbox {
  const row = events.getSubscription(agentId);
  if (!row) return { types: [], cursor: events.headSeq(), mailboxCursor: events.prunedThroughSeq(), recorded: false };
  // Behind the retained log, each part reads on where nothing it reads was pruned since.
  const cursor = row.types.length > 0 ? retainedStart(events, row.cursor, { patterns: row.types, recipient: null }, "cursor") : row.cursor;
  const mailboxCursor = retainedStart(events, row.mailboxCursor, { patterns: [], recipient: agentId }, "mailboxCursor");
  return { types: row.types, cursor, mailboxCursor, recorded: true };
}

export function readInbox(events: EventStore, agentId: string, inbox: Inbox, limit: number, budgetBytes: number): CoordinationEvent[] {
  return events.readInbox(agentId, inbox.types, inbox, limit, budgetBytes);
}

export const notSubscribed = (agentId: string) =>
  new CoordinationError("SUBSCRIPTION_NOT_FOUND", `agent "${agentId}" has no subscription; call events.subscribe first`, { agentId });

/** An agent whose row holds cursors (it polled or acked, or dropped its patterns) but no patterns: nothing to unsubscribe. */
export const noPatterns = (agentId: string) =>
  new CoordinationError(
    "SUBSCRIPTION_NOT_FOUND",
    `agent "${agentId}" is subscribed to no event types, so there are none to drop (its cursors are kept: GET /events/subscriptions/${encodeURIComponent(agentId)}); call events.subscribe to add some`,
    { agentId },
  );
