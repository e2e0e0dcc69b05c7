// Delivers webhooks: for each enabled webhook with events after its cursor, one loop POSTs the
// matching events one at a time, in seq order, each signed (webhook-signature.ts), and records each
// delivery before sending the next. At least once: a delivery whose record was lost (a crash
// between the receiver's 2xx and the write) is sent again, with the same webhook-id. A failed
// attempt (no 2xx in webhookTimeoutMs: an error status, a redirect, a refused connection) stops
// the webhook's loop until its backoff ends; the same event goes first then, so no event of a
// webhook overtakes another. Several server processes may share the file: a process delivers a
// webhook only while it holds the webhook's turn (a lease on its row), so one delivers it at a time.
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { Config } from "../config.js";
import type { Database } from "../db/thread/database.js";
import type { CoordinationEvent } from "../events/event-schemas.js";
import { isJsonObject } from "../json-checks.js";
import { storedBaggage, storedTrace, tracedBy } from "../tasks/trace-context.js";
import { typeMatcher } from "../events/type-patterns.js";
import type { Logger } from "../logger.js";
import { VERSION } from "../version.js";
import { signingSecrets, type WebhookTurn } from "./webhook-commands.js";
import { MAX_WEBHOOKS } from "./webhook-schemas.js";
import { signatureHeader } from "./webhook-signature.js";
import { wholeCharacters } from "../whole-characters.js";

/** Events read per page of a webhook's loop. */
const PAGE = 100;
/** Past the receiver's answer time, how long a turn outlasts a delivery without a write (a process that died holding it frees it after this). */
const TURN_SLACK_MS = 30_000;
/** How much of an answer's body is read (an error's first characters go to lastError); the rest is dropped. */
const BODY_READ_BYTES = 64 * 1024;
/** How much of an error answer's body lastError keeps. */
const ERROR_BODY_CHARS = 200;

/** How one attempt went. */
interface Outcome {
  ok: boolean;
  /** Aborted by an operator's change (interrupt), not failed. */
  interrupted?: true;
  status: number | null;
  error: string | null;
  /** How long the receiver asked to be left alone (its Retry-After on a 429 or 503), in ms. */
  retryAfterMs?: number;
}

export interface WebhookDelivererDeps {
  config: Config;
  db: Database;
  log: Logger;
  /** Aborted at shutdown: requests under way are abandoned (their events go again later). */
  shutdown: AbortSignal;
}

/** The message id of `event`: stable across attempts (receivers deduplicate by it), and not reused by a log restored from a backup (its seqs may come again, with other times). */
export const messageId = (event: CoordinationEvent): string => `evt_${event.seq}_${event.createdAt.getTime()}`;

/**
 * The W3C Trace Context and Baggage headers a delivery of `event` carries: its payload's
 * `traceparent` (a task's events carry their task's; a published event may carry one of its own)
 * and `tracestate`, and its `baggage`, each when it is a valid W3C value, so the receiver's work
 * joins the trace with the producer's baggage; none otherwise.
 */
export function traceHeadersOf(event: CoordinationEvent): { traceparent?: string; tracestate?: string; baggage?: string } {
  const payload = event.payload;
  if (!isJsonObject(payload) || (typeof payload.traceparent !== "string" && typeof payload.baggage !== "string")) return {};
  // Read as an enqueue's fields are, and carried as a task's events carry them.
  const trace = storedTrace({
    traceparent: typeof payload.traceparent === "string" ? payload.traceparent : undefined,
    tracestate: typeof payload.tracestate === "string" ? payload.tracestate : undefined,
  });
  return tracedBy({ ...trace, baggage: storedBaggage({ baggage: typeof payload.baggage === "string" ? payload.baggage : undefined }) });
}

/** The request body of `event`: the event as the REST routes answer it (dates in ISO 8601). */
export const requestBody = (event: CoordinationEvent): string => JSON.stringify(event);

/** The host a log line names for `url` (never its path or query: they often carry the receiver's secret). */
export const hostOf = (url: string): string => new URL(url).host;

export class WebhookDeliverer {
  /** This process, as the turns it holds name it. */
  private readonly owner = `${hostname()}:${process.pid}:${randomUUID()}`;
  /** Webhooks this process is delivering, by id. */
  private readonly running = new Map<string, Promise<void>>();
  /** Webhooks that got new events while they were being delivered: looked at again when their loop ends. */
  private readonly again = new Set<string>();
  private looking: Promise<void> | undefined;
  private lookAgain = false;
  private stopped = false;
  /**
   * The type patterns of the enabled webhooks, as the last look found them, as a matcher (up to
   * 100 webhooks of 100 patterns each, against every committed event); null: none, so no event is
   * looked at. Events of no such type start no look (the job's next one, within leaseSweepMs,
   * moves their cursors past them, and finds webhooks created or changed by another server on the
   * file). Before the first look, every type.
   */
  private matches: ((type: string) => boolean) | null = () => true;
  /** The request under way of each webhook this process delivers: an operator's change here aborts it. */
  private readonly inFlight = new Map<string, AbortController>();
  /** Webhooks an operator changed through this process while their loop ran: the loop ends before its next request. */
  private readonly changed = new Set<string>();
  /** Whether this process took any webhook's turn since it started: only then does stop write (a stop must not wait on another process's write lock for nothing). */
  private tookTurns = false;
  /** Attempts since start, by how they went (the metrics). */
  readonly attempts = { delivered: 0, failed: 0 };

  constructor(private readonly d: WebhookDelivererDeps) {}

  /** Looks for webhooks with events to deliver and starts their loops (the job, every leaseSweepMs; an operator's change). */
  look(): Promise<void> {
    if (this.stopped || this.d.shutdown.aborted) return Promise.resolve();
    if (this.looking !== undefined) {
      this.lookAgain = true;
      return this.looking;
    }
    this.looking = this.findDue()
      .finally(() => {
        this.looking = undefined;
      })
      .then(() => {
        if (this.lookAgain) {
          this.lookAgain = false;
          return this.look();
        }
      });
    return this.looking;
  }

  /** Committed events (the bus): untargeted ones may be some webhook's. */
  observe(events: readonly CoordinationEvent[]): void {
    const matches = this.matches;
    if (this.stopped || this.d.shutdown.aborted || matches === null || !events.some((event) => event.target === null && matches(event.type))) return;
    for (const id of this.running.keys()) this.again.add(id);
    void this.look().catch(() => undefined);
  }

  /**
   * An operator changed, disabled or removed webhook `id` through this process: its request under
   * way (if this process sends one) is abandoned now, not left to run to webhookTimeoutMs; its
   * loop ends and the next look sends with what changed. (Another server's request runs on to
   * its end: that server's next write finds its turn ended.)
   */
  interrupt(id: string): void {
    if (this.running.has(id)) this.changed.add(id);
    this.inFlight.get(id)?.abort(new Error("changed by an operator"));
  }

  /** Ends this process's deliveries: requests under way are abandoned, its turns given up so another process may take them at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.looking?.catch(() => undefined);
    await Promise.all(this.running.values());
    if (!this.tookTurns) return;
    await this.d.db.write("webhooks.endTurnsOf", this.owner).catch((error: unknown) => this.d.log.warn({ err: error }, "could not give up this server's webhook turns; other servers take them when they lapse"));
  }

  private async findDue(): Promise<void> {
    const { due, patterns } = await this.d.db.read("webhooks.due", { now: Date.now(), excluding: [...this.running.keys()], limit: MAX_WEBHOOKS });
    this.matches = patterns.length === 0 ? null : typeMatcher(patterns);
    for (const id of due) {
      if (this.stopped || this.running.has(id)) continue;
      const loop = this.deliver(id)
        .catch((error: unknown) => {
          // A database error (a full disk, the file locked): the turn lapses, the job looks again.
          if (!this.stopped) this.d.log.warn({ err: error, webhookId: id }, "webhook delivery stopped by an error; tried again on the next look");
        })
        .finally(() => {
          this.running.delete(id);
          // A change that came as the loop ended concerns it alone: the next loop reads the webhook anew.
          this.changed.delete(id);
          if (this.again.delete(id)) void this.look().catch(() => undefined);
        });
      this.running.set(id, loop);
    }
  }

  private turnUntil(): number {
    return Date.now() + this.d.config.webhookTimeoutMs + TURN_SLACK_MS;
  }

  /** One webhook's loop: its events after its cursor, one request each, while they succeed and its turn is this process's. */
  private async deliver(id: string): Promise<void> {
    const { db, config, log } = this.d;
    const turn = await db.write("webhooks.takeTurn", { id, turn: { owner: this.owner, until: this.turnUntil() } });
    if (turn === null) return;
    this.tookTurns = true;
    let cursor = turn.cursor;
    let failures = turn.failures;
    while (!this.stopped) {
      const page = await db.read("webhooks.next", { types: turn.types, afterSeq: cursor, limit: PAGE });
      if (page.prunedThrough !== null) {
        log.warn({ webhookId: id, host: hostOf(turn.url), afterSeq: cursor, prunedThrough: page.prunedThrough }, "webhook gap: it fell behind the retained event log, and events it may have delivered were pruned first");
        if (!(await db.write("webhooks.skip", { id, owner: this.owner, through: page.prunedThrough }))) return;
        cursor = page.prunedThrough;
        continue;
      }
      for (const event of page.events) {
        // Shutdown began, or an operator changed the webhook, since the last request: none goes out with what was.
        if (this.d.shutdown.aborted || this.changed.delete(id)) {
          await db.write("webhooks.endTurn", { id, owner: this.owner, cursor });
          return;
        }
        const attemptAt = Date.now();
        const outcome = await this.post(turn, event);
        // Shutdown aborted the request (not the receiver's failure), or an operator's change did (the
        // change ended the turn): the turn is given up, even one a change took the owner of, and the
        // event goes again, after the restart or with what changed.
        if ((this.d.shutdown.aborted && !outcome.ok) || outcome.interrupted) {
          await db.write("webhooks.endTurn", { id, owner: this.owner, cursor });
          return;
        }
        const attempt = { status: outcome.status, error: outcome.error, at: attemptAt };
        if (outcome.ok) {
          this.attempts.delivered++;
          if (!(await db.write("webhooks.delivered", { id, owner: this.owner, seq: event.seq, attempt, until: this.turnUntil() }))) return;
          if (failures > 0) log.info({ webhookId: id, host: hostOf(turn.url), seq: event.seq, failedAttempts: failures }, "webhook delivering again");
          failures = 0;
          cursor = event.seq;
          continue;
        }
        this.attempts.failed++;
        const recorded = await db.write("webhooks.failed", {
          id,
          owner: this.owner,
          seq: event.seq,
          attempt,
          maxBackoffMs: config.webhookMaxBackoffMs,
          disableAfterMs: config.webhookDisableAfterMs,
          ...(outcome.retryAfterMs === undefined ? {} : { retryAfterMs: outcome.retryAfterMs }),
        });
        if (recorded === null) return;
        const line = { webhookId: id, host: hostOf(turn.url), seq: event.seq, status: outcome.status, error: outcome.error, failures: recorded.failures };
        if (recorded.disabled) log.error(line, "webhook disabled: its deliveries failed for webhookDisableAfterMs; webhooks.update with enabled true starts it again");
        else if (recorded.first) log.warn({ ...line, retryAt: new Date(recorded.nextAttemptAt).toISOString() }, "webhook delivery failing; tried again with backoff, logged again when it works");
        else log.debug({ ...line, retryAt: new Date(recorded.nextAttemptAt).toISOString() }, "webhook delivery failed again");
        return;
      }
      if (!page.more) {
        await db.write("webhooks.endTurn", { id, owner: this.owner, cursor: Math.max(cursor, page.head) });
        return;
      }
    }
  }

  /** POSTs `event` to the webhook: ok on a 2xx within webhookTimeoutMs. */
  private async post(turn: WebhookTurn, event: CoordinationEvent): Promise<Outcome> {
    const body = requestBody(event);
    const id = messageId(event);
    const timestamp = Math.floor(Date.now() / 1000);
    const timeoutMs = this.d.config.webhookTimeoutMs;
    // One controller a request, aborted by its timer or by shutdown; the listener on the
    // process-long shutdown signal is removed after (AbortSignal.any kept each request's signal
    // alive as long as the shutdown signal: a leak of every delivery on Node 20).
    const controller = new AbortController();
    const signal = controller.signal;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort(new Error(`no answer within webhookTimeoutMs (${timeoutMs} ms)`));
    }, timeoutMs);
    const onShutdown = () => controller.abort(this.d.shutdown.reason);
    this.d.shutdown.addEventListener("abort", onShutdown, { once: true });
    if (this.d.shutdown.aborted) onShutdown();
    this.inFlight.set(turn.id, controller);
    try {
      const response = await fetch(turn.url, {
        method: "POST",
        body,
        // A redirect is a failure: following it would send the signed event somewhere no operator named.
        redirect: "manual",
        signal,
        headers: {
          "content-type": "application/json",
          "user-agent": `coordination/${VERSION} (webhooks)`,
          "webhook-id": id,
          "webhook-timestamp": String(timestamp),
          "webhook-signature": signatureHeader(signingSecrets(turn, Date.now()), id, timestamp, body),
          "coordination-webhook-id": turn.id,
          "coordination-event-seq": String(event.seq),
          "coordination-event-type": event.type,
          ...traceHeadersOf(event),
        },
      });
      // Read (a little of) the answer within the same time bound: a receiver that answers
      // 200 and never ends its body holds the connection, not the delivery.
      const text = await readSome(response, signal);
      if (response.status >= 200 && response.status < 300) return { ok: true, status: response.status, error: null };
      if (response.status >= 300 && response.status < 400) {
        return { ok: false, status: response.status, error: `HTTP ${response.status}: redirected to ${redirectTarget(turn.url, response.headers.get("location"))}, not followed (give the webhook its final URL)` };
      }
      const error = `HTTP ${response.status}${text === "" ? "" : `: ${wholeCharacters(text, ERROR_BODY_CHARS)}`}`;
      // A receiver that is overloaded or down for maintenance says when to come back: asked sooner, it answers the same.
      const retryAfterMs = response.status === 429 || response.status === 503 ? retryAfterOf(response.headers.get("retry-after"), Date.now()) : undefined;
      return retryAfterMs === undefined ? { ok: false, status: response.status, error } : { ok: false, status: response.status, error, retryAfterMs };
    } catch (error) {
      if (!timedOut && !this.d.shutdown.aborted && signal.aborted) return { ok: false, interrupted: true, status: null, error: null };
      if (timedOut) return { ok: false, status: null, error: `no answer within webhookTimeoutMs (${timeoutMs} ms)` };
      return { ok: false, status: null, error: `no answer: ${describeFetchError(error)}` };
    } finally {
      this.inFlight.delete(turn.id);
      clearTimeout(timer);
      this.d.shutdown.removeEventListener("abort", onShutdown);
    }
  }
}

/**
 * A Retry-After header's wait in ms from `now` (RFC 9110: delay-seconds, or an HTTP-date); undefined
 * when there is none or it cannot be read. A date passed, or 0, is no wait.
 */
export function retryAfterOf(header: string | null, now: number): number | undefined {
  if (header === null) return undefined;
  const text = header.trim();
  if (/^\d{1,10}$/.test(text)) return Number(text) * 1000;
  // An HTTP-date names its day ("Wed, 21 Oct 2015 07:28:00 GMT"): a bare number of another form is not one.
  if (!/[a-z]/i.test(text)) return undefined;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** Where a redirect pointed, by its origin alone: its path and query may carry the receiver's secret, as the webhook's own URL's may. */
function redirectTarget(base: string, location: string | null): string {
  if (location === null) return "(no location)";
  try {
    const target = new URL(location, base);
    return target.pathname === "/" && target.search === "" ? target.origin : `${target.origin}/… (path not shown)`;
  } catch {
    return "(an invalid location)";
  }
}

/** Up to BODY_READ_BYTES of the answer's body as text; the rest is dropped (the stream cancelled). */
async function readSome(response: Response, signal: AbortSignal): Promise<string> {
  if (response.body === null) return "";
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  const onAbort = () => void reader.cancel().catch(() => undefined);
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    while (bytes < BODY_READ_BYTES) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      bytes += value.byteLength;
    }
    if (signal.aborted) throw signal.reason;
  } finally {
    signal.removeEventListener("abort", onAbort);
    if (bytes >= BODY_READ_BYTES) await reader.cancel().catch(() => undefined);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** fetch's "fetch failed" with its cause (ECONNREFUSED, a TLS error, a DNS failure). */
function describeFetchError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = (error as Error & { cause?: unknown }).cause;
  if (cause instanceof Error) {
    const code = (cause as Error & { code?: unknown }).code;
    return typeof code === "string" && !cause.message.includes(code) ? `${code}: ${cause.message}` : cause.message;
  }
  return error.message;
}
