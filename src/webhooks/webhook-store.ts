// All SQL of webhooks (SQLite dialect). A row of `webhooks` is one webhook: where it sends, what,
// its signing secrets, how far it got (cursor) and how its last attempts went. Times are Unix ms.
import type { Statements } from "../db/statements.js";

export interface WebhookRow {
  id: string;
  url: string;
  /** JSON array of type patterns. */
  types: string;
  description: string | null;
  secret: string;
  /** JSON array of RetiredSecret: secrets of earlier rotations that sign too until their grace ends. */
  retiredSecrets: string;
  /**
   * The last rotation's old secret and its grace's end, null when it had none: the one column of
   * versions before retiredSecrets, which a server of such a version still on the file reads and
   * writes (its rotations leave retiredSecrets as it was).
   */
  previousSecret: string | null;
  previousSecretUntil: number | null;
  cursor: number;
  enabled: number;
  disabledReason: string | null;
  failures: number;
  failingSince: number | null;
  lastError: string | null;
  lastStatus: number | null;
  lastAttemptAt: number | null;
  lastDeliveredAt: number | null;
  delivered: number;
  gaps: number;
  nextAttemptAt: number;
  turnOwner: string | null;
  turnUntil: number | null;
  createdAt: number;
  createdBy: string | null;
  updatedAt: number;
}

/** A secret a rotation retired, signing requests too until `until` (Unix ms). */
export interface RetiredSecret {
  secret: string;
  until: number;
}

/** A webhook's turn: which process delivers it, until when. */
export interface Turn {
  owner: string;
  until: number;
}

/** How an attempt went, as recorded on the row. */
export interface Attempt {
  status: number | null;
  error: string | null;
  at: number;
}

export class WebhookStore {
  constructor(private readonly st: Statements) {}

  get(id: string): WebhookRow | undefined {
    return this.st.get<[string], WebhookRow>(`SELECT * FROM webhooks WHERE id = ?`).get(id);
  }

  /** Every webhook, oldest first (at most MAX_WEBHOOKS: create bounds them). */
  all(): WebhookRow[] {
    return this.st.get<[], WebhookRow>(`SELECT * FROM webhooks ORDER BY createdAt, id`).all();
  }

  count(): number {
    return this.st.get<[], number>(`SELECT count(*) FROM webhooks`).pluck().get()!;
  }

  insert(row: WebhookRow): void {
    this.st
      .get<[Record<string, unknown>]>(
        `INSERT INTO webhooks (id, url, types, description, secret, retiredSecrets, previousSecret, previousSecretUntil, cursor, enabled, disabledReason, failures, failingSince, lastError, lastStatus, lastAttemptAt, lastDeliveredAt, delivered, gaps, nextAttemptAt, turnOwner, turnUntil, createdAt, createdBy, updatedAt)
         VALUES (@id, @url, @types, @description, @secret, @retiredSecrets, @previousSecret, @previousSecretUntil, @cursor, @enabled, @disabledReason, @failures, @failingSince, @lastError, @lastStatus, @lastAttemptAt, @lastDeliveredAt, @delivered, @gaps, @nextAttemptAt, @turnOwner, @turnUntil, @createdAt, @createdBy, @updatedAt)`,
      )
      .run({ ...row });
  }

  /** An operator's change: url, types (and where new ones start), description (the caller merged them into `row`), enabled, and what enabling resets. */
  update(row: WebhookRow): void {
    this.st
      .get<[Record<string, unknown>]>(
        `UPDATE webhooks SET url = @url, types = @types, cursor = @cursor, description = @description, enabled = @enabled, disabledReason = @disabledReason, failures = @failures, failingSince = @failingSince, nextAttemptAt = @nextAttemptAt, updatedAt = @updatedAt WHERE id = @id`,
      )
      .run({ id: row.id, url: row.url, types: row.types, cursor: row.cursor, description: row.description, enabled: row.enabled, disabledReason: row.disabledReason, failures: row.failures, failingSince: row.failingSince, nextAttemptAt: row.nextAttemptAt, updatedAt: row.updatedAt });
  }

  /** `retired`'s last is this rotation's old secret (none: a rotation with no grace), kept in the older versions' columns too. */
  setSecret(id: string, secret: string, retired: readonly RetiredSecret[], now: number): void {
    const last = retired.at(-1);
    this.st
      .get<[string, string, string | null, number | null, number, string]>(
        `UPDATE webhooks SET secret = ?, retiredSecrets = ?, previousSecret = ?, previousSecretUntil = ?, updatedAt = ? WHERE id = ?`,
      )
      .run(secret, JSON.stringify(retired), last?.secret ?? null, last?.until ?? null, now, id);
  }

  remove(id: string): boolean {
    return this.st.get<[string]>(`DELETE FROM webhooks WHERE id = ?`).run(id).changes > 0;
  }

  /**
   * Up to `limit` enabled webhooks due at `now` (their backoff over) with events after their
   * cursor (`headSeq`: the log's newest) that no process is delivering, but those in `excluding`.
   */
  due(now: number, headSeq: number, excluding: readonly string[], limit: number): WebhookRow[] {
    return this.st
      .get<[number, number, number, string, number], WebhookRow>(
        `SELECT * FROM webhooks WHERE enabled = 1 AND nextAttemptAt <= ? AND cursor < ? AND (turnUntil IS NULL OR turnUntil <= ?)
           AND id NOT IN (SELECT value FROM json_each(?)) ORDER BY nextAttemptAt LIMIT CAST(? AS INTEGER)`,
      )
      .all(now, headSeq, now, JSON.stringify(excluding), limit);
  }

  /** Gives `id` to `turn` if it is free at `now` and enabled. Whether it was. */
  takeTurn(id: string, turn: Turn, now: number): boolean {
    return (
      this.st
        .get<[string, number, string, number]>(`UPDATE webhooks SET turnOwner = ?, turnUntil = ? WHERE id = ? AND enabled = 1 AND (turnUntil IS NULL OR turnUntil <= ?)`)
        .run(turn.owner, turn.until, id, now).changes > 0
    );
  }

  /** The row of `id` while `owner` holds its turn at `now` and it is enabled; undefined: not so (removed, disabled, its turn lapsed or taken). */
  heldBy(id: string, owner: string, now: number): WebhookRow | undefined {
    return this.st.get<[string, string, number], WebhookRow>(`SELECT * FROM webhooks WHERE id = ? AND turnOwner = ? AND turnUntil > ? AND enabled = 1`).get(id, owner, now);
  }

  /** Event `seq` was delivered: the cursor moves to it, failures are forgotten, the turn runs to `until`. */
  delivered(id: string, seq: number, attempt: Attempt, until: number): void {
    this.st
      .get<[number, number | null, number, number, number, string]>(
        `UPDATE webhooks SET cursor = ?, lastStatus = ?, lastAttemptAt = ?, lastDeliveredAt = ?, delivered = delivered + 1, failures = 0, failingSince = NULL, lastError = NULL, turnUntil = ? WHERE id = ?`,
      )
      .run(seq, attempt.status, attempt.at, attempt.at, until, id);
  }

  /** An attempt failed: tried again from `nextAttemptAt`; the turn ends. */
  failed(id: string, attempt: Attempt, nextAttemptAt: number, failingSince: number): void {
    this.st
      .get<[number | null, string | null, number, number, number, string]>(
        `UPDATE webhooks SET lastStatus = ?, lastError = ?, lastAttemptAt = ?, failures = failures + 1, failingSince = ?, nextAttemptAt = ?, turnOwner = NULL, turnUntil = NULL WHERE id = ?`,
      )
      .run(attempt.status, attempt.error, attempt.at, failingSince, nextAttemptAt, id);
  }

  disable(id: string, reason: string, now: number): void {
    this.st.get<[string, number, string]>(`UPDATE webhooks SET enabled = 0, disabledReason = ?, turnOwner = NULL, turnUntil = NULL, updatedAt = ? WHERE id = ?`).run(reason, now, id);
  }

  /**
   * `owner`'s turn ends, the cursor at least at `cursor` (no matching event up to it is left). A
   * turn an operator's change ended is given up, its cursor left (the page was read with what
   * the webhook was before).
   */
  endTurn(id: string, owner: string, cursor: number): void {
    this.st
      .get<[string, number, string, string]>(
        `UPDATE webhooks SET cursor = CASE WHEN turnOwner = ? THEN max(cursor, ?) ELSE cursor END, turnOwner = NULL, turnUntil = NULL WHERE id = ? AND (turnOwner = ? OR turnOwner IS NULL)`,
      )
      .run(owner, cursor, id, owner);
  }

  /** Events up to `seq` were pruned before delivery, some it might have delivered among them: the cursor moves past them, one gap more. */
  skip(id: string, seq: number): void {
    this.st.get<[number, string]>(`UPDATE webhooks SET cursor = max(cursor, ?), gaps = gaps + 1 WHERE id = ?`).run(seq, id);
  }

  /**
   * Whoever delivers `id` now stops at its next write (an operator changed it): the turn is no
   * longer its own, but stays taken (turnUntil) until that write gives it up (releaseEndedTurn),
   * so no other process sends while its request is still open.
   */
  endTurnForChange(id: string): void {
    this.st.get<[string]>(`UPDATE webhooks SET turnOwner = NULL WHERE id = ?`).run(id);
  }

  /** A turn an operator's change ended (its owner gone, its time still running) is free from now. */
  releaseEndedTurn(id: string): void {
    this.st.get<[string]>(`UPDATE webhooks SET turnUntil = NULL WHERE id = ? AND turnOwner IS NULL`).run(id);
  }

  /** Every turn `owner` holds ends (its process stops). */
  endTurnsOf(owner: string): void {
    this.st.get<[string]>(`UPDATE webhooks SET turnOwner = NULL, turnUntil = NULL WHERE turnOwner = ?`).run(owner);
  }

  /** The type patterns (JSON text) of every enabled webhook. */
  enabledTypes(): string[] {
    return this.st.get<[], string>(`SELECT types FROM webhooks WHERE enabled = 1`).pluck().all();
  }

  /** Webhooks by state (the metrics' gauge): enabled and delivering, enabled and failing, disabled. */
  countsByState(): { enabled: number; failing: number; disabled: number } {
    return this.st
      .get<[], { enabled: number; failing: number; disabled: number }>(
        `SELECT coalesce(sum(enabled = 1 AND failures = 0), 0) AS enabled, coalesce(sum(enabled = 1 AND failures > 0), 0) AS failing, coalesce(sum(enabled = 0), 0) AS disabled FROM webhooks`,
      )
      .get()!;
  }
}
