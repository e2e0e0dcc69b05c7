// Delivery confirmation: nothing is consumed for a client that never receives it.
// A claim, a steal and an auto-ack poll change the database for their caller (a lease taken, a
// cursor moved) and commit before the answer is sent. If the answer then never reaches the
// client (its socket closed first, the response failed, a tRPC link was torn down), the change
// must be undone, or the task waits out a lease and is charged an attempt, or the agent waits
// for its batch to be counted lost (poll_takes, event-service.ts). So each such call gets a
// Delivery: the service registers how to undo its change (`onUndelivered`) and what to do once
// it is known to have arrived (`onDelivered`), and the transport that carries the answer decides
// the outcome once it knows (src/delivery/transports.ts). Until then both are held; after the
// outcome, the other is dropped.
import { unauthorized } from "../auth/access.js";
import type { Logger } from "../logger.js";

/** What a consuming service call receives from its transport. */
export interface ConsumingCall {
  /**
   * Whether the client is gone (it left, or its credential was revoked): take nothing more for
   * it. A look, not a signal: most calls only look once, and every AbortController made per
   * request was garbage that V8's young collections promoted (bench/RESULTS.md, 2026-11-30).
   */
  gone?: (() => boolean) | undefined;
  /**
   * Signals that abort when the client is gone, for a call that waits (a long-poll links them
   * with wakeup.ts linkSignals); made when first asked for.
   */
  signals?: (() => ReadonlyArray<AbortSignal | undefined>) | undefined;
  /** Where to register how to undo what the call committed, should its answer not arrive. */
  delivery?: Delivery | undefined;
  /** Called when the call parks to wait (a long-poll): the time it waits is by design, not slowness. */
  waiting?: (() => void) | undefined;
  /** Whether the caller's credential was revoked since the call was admitted (or credentials became required of an open caller). */
  revoked?: (() => boolean) | undefined;
}

/** Whether the call's client is gone. */
export const clientGone = (call: ConsumingCall): boolean => call.gone?.() ?? false;

/**
 * Throws UNAUTHORIZED when the call's credential was revoked while it ran: a call that stops
 * taking for its client answers so, not with an empty answer that reads as "nothing there"
 * (the worker would take it for an empty queue and ask again, as for a shutdown's 503).
 */
export function refuseIfRevoked(call: ConsumingCall): void {
  if (call.revoked?.()) throw unauthorized();
}

export type DeliveryOutcome = "pending" | "delivered" | "undelivered";

/** Undoes what a call committed for its client: releases a claim, rewinds a cursor. */
export type Compensation = () => Promise<unknown>;

export class Delivery {
  private outcome: DeliveryOutcome = "pending";
  private compensations: Compensation[] = [];
  private confirmations: Compensation[] = [];
  /** Compensations run one after another on this chain. */
  private tail: Promise<void> = Promise.resolve();
  private decide!: () => void;
  private readonly decided = new Promise<void>((resolve) => (this.decide = resolve));

  constructor(
    private readonly registry: Deliveries,
    /** What the call was (procedure path), for the log line when a compensation runs. */
    readonly label: string,
  ) {}

  get state(): DeliveryOutcome {
    return this.outcome;
  }

  /**
   * Registers how to undo the call's change. It runs when the answer is known not to have
   * reached the client, at once if that is known already, and never after a confirmed delivery.
   */
  onUndelivered(compensate: Compensation): void {
    if (this.outcome === "delivered") return;
    if (this.outcome === "undelivered") this.run([compensate]);
    else this.compensations.push(compensate);
  }

  /**
   * Registers what to do once the answer is known to have reached the client (confirm a held
   * batch). Runs then, at once if that is known already, and never after a failed delivery.
   * Tracked as compensations are: shutdown waits for it.
   */
  onDelivered(effect: Compensation): void {
    if (this.outcome === "undelivered") return;
    if (this.outcome === "delivered") this.runEffects([effect]);
    else this.confirmations.push(effect);
  }

  /** Resolves once the outcome is known, before what it runs (compensations, confirmations) finished. */
  whenDecided(): Promise<void> {
    return this.decided;
  }

  /** Resolves once the outcome is known and every compensation registered so far has finished. */
  whenSettled(): Promise<void> {
    return this.decided.then(() => this.tail);
  }

  /** The transport handed the whole answer to the client's connection. */
  delivered(): void {
    if (this.outcome !== "pending") return;
    this.outcome = "delivered";
    this.compensations = [];
    this.runEffects(this.confirmations);
    this.confirmations = [];
    this.decide();
  }

  /** The answer did not reach the client: undo what the call committed. */
  undelivered(): void {
    if (this.outcome !== "pending") return;
    this.outcome = "undelivered";
    this.run(this.compensations);
    this.compensations = [];
    this.confirmations = [];
    this.decide();
  }

  /** Runs what follows a confirmed delivery on the chain, tracked for shutdown. */
  private runEffects(work: Compensation[]): void {
    this.onChain(work, "confirming a delivered answer failed");
  }

  private run(work: Compensation[]): void {
    this.onChain(work, "undoing an undelivered answer failed", () =>
      this.registry.log.info({ call: this.label, compensations: work.length }, "answer not delivered: undoing what the call committed"),
    );
  }

  /** Runs `work` one after another on the chain (after `first`), each failure logged as `failed`; tracked for shutdown. */
  private onChain(work: Compensation[], failed: string, first?: () => void): void {
    if (work.length === 0) return;
    const { log } = this.registry;
    this.tail = this.tail.then(async () => {
      first?.();
      for (const step of work) await step().catch((error: unknown) => log.error({ err: error, call: this.label }, failed));
    });
    this.registry.track(this.tail);
  }
}

/** Creates Deliveries and lets shutdown wait for the compensations still running. */
export class Deliveries {
  private readonly running = new Set<Promise<void>>();

  constructor(readonly log: Logger) {}

  create(label: string): Delivery {
    return new Delivery(this, label);
  }

  track(work: Promise<void>): void {
    this.running.add(work);
    void work.finally(() => this.running.delete(work));
  }

  /** Waits for every compensation under way: shutdown runs this before closing the database. */
  async drain(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
  }
}
