// All SQL of agent cordons (SQLite dialect). A cordoned agent is a row of agent_cordons whose
// `until` is null or ahead: no claim or steal hands it a task. A row whose `until` passed lifts
// by itself (read as no cordon), and the health monitor takes it away with its agent.uncordoned
// event (a table of lapsed quarantines of agents long gone would otherwise grow).
import type { Statements } from "../db/statements.js";

export interface CordonRow {
  agentId: string;
  reason: string;
  cordonedBy: string | null;
  cordonedAt: number;
  until: number | null;
  automatic: number;
}

/** SQL: an agent's cordon as a JSON object (null: none), for a SELECT of agents (the agent views). */
export const CORDON_OF_AGENT = `(SELECT json_object('reason', reason, 'cordonedBy', cordonedBy, 'cordonedAt', cordonedAt, 'until', until, 'automatic', automatic)
  FROM agent_cordons WHERE agent_cordons.agentId = agents.id)`;

/** SQL: an agent_cordons row holds at @now (cordonHolds' twin). */
export const CORDON_IN_FORCE = "(until IS NULL OR until > @now)";

/** Whether `row` holds at `now`: one whose `until` passed lifted. */
export const cordonHolds = (row: Pick<CordonRow, "until"> | undefined, now: number): boolean => row !== undefined && (row.until === null || Number(row.until) > now);

/**
 * The cordons as read in a transaction, by connection: every claim asks for its agent's, and
 * within one write transaction only a write of this connection changes them (the lock keeps other
 * processes out): those writes drop the entry. Few rows: the cordoned agents alone.
 */
const heldIn = new WeakMap<Statements, { transaction: number; until: Map<string, number | null> }>();

export class AgentCordonStore {
  constructor(private readonly st: Statements) {}

  get(agentId: string): CordonRow | undefined {
    return this.st.get<[string], CordonRow>(`SELECT agentId, reason, cordonedBy, cordonedAt, until, automatic FROM agent_cordons WHERE agentId = ?`).get(agentId);
  }

  /**
   * Whether `agentId` is cordoned at `now`, and until when (null: until uncordoned); undefined:
   * it is not. Read from the rows in force once a transaction (Statements.transactions; 0: read
   * each time): a batch's writes share one `now`, so those lifting later in it are not missed.
   */
  cordonedUntil(agentId: string, now: number): number | null | undefined {
    const transaction = this.st.transactions;
    let known = heldIn.get(this.st);
    if (transaction === 0 || known?.transaction !== transaction) {
      const rows = this.st.get<[{ now: number }], { agentId: string; until: number | null }>(`SELECT agentId, until FROM agent_cordons WHERE ${CORDON_IN_FORCE}`).all({ now });
      known = { transaction, until: new Map(rows.map((row) => [row.agentId, row.until === null ? null : Number(row.until)])) };
      if (transaction !== 0) heldIn.set(this.st, known);
    }
    if (!known.until.has(agentId)) return undefined;
    const until = known.until.get(agentId)!;
    return cordonHolds({ until }, now) ? until : undefined;
  }

  /** Cordons `agentId` (or gives its cordon another reason and end). */
  set(row: Omit<CordonRow, "automatic"> & { automatic: boolean }): CordonRow {
    this.st
      .get<[string, string, string | null, number, number | null, number]>(
        `INSERT INTO agent_cordons (agentId, reason, cordonedBy, cordonedAt, until, automatic) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT(agentId) DO UPDATE SET reason = excluded.reason, cordonedBy = excluded.cordonedBy, cordonedAt = excluded.cordonedAt,
           until = excluded.until, automatic = excluded.automatic`,
      )
      .run(row.agentId, row.reason, row.cordonedBy, row.cordonedAt, row.until, row.automatic ? 1 : 0);
    heldIn.delete(this.st);
    return { ...row, automatic: row.automatic ? 1 : 0 };
  }

  /** Up to `limit` cordons that lapsed by `now` (their `until` passed), the oldest end first. */
  lapsed(now: number, limit: number): CordonRow[] {
    return this.st
      .get<[number, number], CordonRow>(`SELECT agentId, reason, cordonedBy, cordonedAt, until, automatic FROM agent_cordons WHERE until <= ? ORDER BY until LIMIT CAST(? AS INTEGER)`)
      .all(now, limit);
  }

  /** Lifts `agentId`'s cordon (one that lapsed too). Whether there was a row. */
  remove(agentId: string): boolean {
    const removed = this.st.get<[string]>(`DELETE FROM agent_cordons WHERE agentId = ?`).run(agentId).changes > 0;
    heldIn.delete(this.st);
    return removed;
  }
}
