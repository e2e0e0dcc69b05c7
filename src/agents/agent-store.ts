// All SQL of the agent registry, run inside the Writer's transactions.
import { columnBytes, jsonTextBytes, utf8Bytes, withinBudget } from "../db/answer-budget.js";
import type { Statements } from "../db/statements.js";
import { CORDON_IN_FORCE, CORDON_OF_AGENT } from "./agent-cordon-store.js";
import type { AgentHealth, AgentListFilter } from "./agent-schemas.js";
import type { HealthCutoffs } from "./health-cutoffs.js";

export interface AgentRow {
  id: string;
  metadata: string;
  status: string;
  /** The health last published (the column holds only these). */
  health: AgentHealth;
  load: number;
  registeredAt: number | Date;
  lastHeartbeatAt: number | Date;
  updatedAt: number | Date;
  /** Its agent_cordons row as JSON text (CORDON_OF_AGENT), in the reads that show an agent; null: none. */
  cordon?: string | null;
}

/**
 * SQL for the health an agent has now, given the @stale, @offline and @kept cut-offs (healthAt in
 * health-cutoffs.ts): with no heartbeat since @kept, no better than the health published.
 */
const CURRENT_HEALTH = `CASE WHEN health = 'offline' AND lastHeartbeatAt <= @kept THEN 'offline'
  WHEN health = 'stale' AND lastHeartbeatAt <= @kept AND lastHeartbeatAt > @stale THEN 'stale'
  WHEN lastHeartbeatAt > @stale THEN 'healthy' WHEN lastHeartbeatAt > @offline THEN 'stale' ELSE 'offline' END`;

/**
 * An agent's share of an answer, in bytes: its JSON text fields and a fixed part for the rest
 * (keys, three ISO times, health, load, `"cordon":null`, and over tRPC superjson's meta, which
 * names each time's path again: "123.lastHeartbeatAt"). Measured: ~230 bytes over REST and ~310
 * over tRPC for an agent of short names.
 */
const AGENT_FIXED_BYTES = 340;
/** A cordon's share beyond its stored JSON (CORDON_OF_AGENT): its two times as ISO text, and superjson's paths for them. */
const CORDON_FIXED_BYTES = 120;
const agentAnswerBytes = (row: AgentRow & { caps: string | null }): number =>
  jsonTextBytes(row.id) +
  utf8Bytes(row.metadata) +
  jsonTextBytes(row.status) +
  columnBytes(row.caps) +
  (row.cordon ? utf8Bytes(row.cordon) + CORDON_FIXED_BYTES : 0) +
  AGENT_FIXED_BYTES;

const cutoffParams = (cutoffs: HealthCutoffs) => ({ stale: cutoffs.staleBefore, offline: cutoffs.offlineBefore, kept: cutoffs.publishedKeptUpTo });

export class AgentStore {
  constructor(private readonly st: Statements) {}

  /** Whether another process (or the CLI) wrote to the file since the last look (Statements.changedElsewhere). */
  changedElsewhere(): boolean {
    return this.st.changedElsewhere();
  }

  /** The agent's row, with its cordon (`cordon`). */
  get(agentId: string): AgentRow | undefined {
    return this.st.get<[string], AgentRow>(`SELECT agents.*, ${CORDON_OF_AGENT} AS cordon FROM agents WHERE id = ?`).get(agentId);
  }


  capabilitiesOf(agentId: string): string[] {
    return this.st
      .get<[string], { capability: string }>(`SELECT capability FROM agent_capabilities WHERE agentId = ? ORDER BY capability`)
      .all(agentId)
      .map((r) => r.capability);
  }

  /** Creates or replaces an agent's registration; a re-registered agent is healthy again. */
  upsert(agentId: string, capabilities: readonly string[], metadata: string, now: number): AgentRow {
    const row = this.st
      .get<[string, string, number, number, number], AgentRow>(
        `INSERT INTO agents (id, metadata, health, registeredAt, lastHeartbeatAt, updatedAt) VALUES (?, ?, 'healthy', ?, ?, ?)
         ON CONFLICT(id) DO UPDATE SET metadata = excluded.metadata, health = 'healthy',
           lastHeartbeatAt = excluded.lastHeartbeatAt, updatedAt = excluded.updatedAt
         RETURNING *`,
      )
      .get(agentId, metadata, now, now, now)!;
    this.st.get<[string]>(`DELETE FROM agent_capabilities WHERE agentId = ?`).run(agentId);
    const insert = this.st.get<[string, string]>(`INSERT OR IGNORE INTO agent_capabilities (agentId, capability) VALUES (?, ?)`);
    for (const capability of capabilities) insert.run(agentId, capability);
    return row;
  }

  /**
   * Registers an agent the server first hears of through its work (a claim, a lease heartbeat, a
   * settle). Returns false, changing nothing, when it is registered already.
   */
  registerIfAbsent(agentId: string, capabilities: readonly string[], now: number): boolean {
    const inserted = this.st
      .get<[string, number, number, number]>(
        `INSERT OR IGNORE INTO agents (id, metadata, health, registeredAt, lastHeartbeatAt, updatedAt) VALUES (?, '{}', 'healthy', ?, ?, ?)`,
      )
      .run(agentId, now, now, now).changes > 0;
    if (!inserted) return false;
    const insert = this.st.get<[string, string]>(`INSERT OR IGNORE INTO agent_capabilities (agentId, capability) VALUES (?, ?)`);
    for (const capability of capabilities) insert.run(agentId, capability);
    return true;
  }

  heartbeat(agentId: string, status: string | null, load: number | null, now: number): AgentRow | undefined {
    return this.st
      .get<[number, string | null, number | null, number, string], AgentRow>(
        `UPDATE agents SET lastHeartbeatAt = ?, status = COALESCE(?, status), load = COALESCE(?, load), updatedAt = ?
         WHERE id = ? RETURNING *`,
      )
      .get(now, status, load, now, agentId);
  }

  /**
   * Agents with their capabilities, ordered by id (byte order): those that match every filter
   * given, `health` judged now by `cutoffs` (CURRENT_HEALTH, the twin of healthAt), after the id
   * `after`, at most `limit`. Every filter is in the SQL, so a page reads only the rows it shows.
   * `best`: healthy first, then stale, then offline, least loaded first within each, then by id.
   * Rows are read lazily and stop at `budgetBytes` (answer-budget.ts): `truncated` says rows that
   * match were left out for it.
   */
  list(filter: AgentListFilter, cutoffs: HealthCutoffs, budgetBytes: number, order: "id" | "best" = "id"): { rows: Array<AgentRow & { capabilities: string[] }>; truncated: boolean } {
    const clauses: string[] = [];
    const params: Record<string, unknown> = {};
    if (filter.capability !== undefined) {
      clauses.push("id IN (SELECT agentId FROM agent_capabilities WHERE capability = @capability)");
      params["capability"] = filter.capability;
    }
    if (filter.status !== undefined) {
      clauses.push("status = @status");
      params["status"] = filter.status;
    }
    if (filter.cordoned !== undefined) {
      clauses.push(`${filter.cordoned ? "" : "NOT "}EXISTS (SELECT 1 FROM agent_cordons WHERE agent_cordons.agentId = agents.id AND ${CORDON_IN_FORCE})`);
      params["now"] = Date.now();
    }
    if (filter.health !== undefined || order === "best") Object.assign(params, cutoffParams(cutoffs));
    if (filter.health !== undefined) {
      clauses.push(`(${CURRENT_HEALTH}) = @health`);
      params["health"] = filter.health;
    }
    if (filter.after !== undefined) {
      clauses.push("id > @after");
      params["after"] = filter.after;
    }
    if (filter.limit !== undefined) params["limit"] = filter.limit;
    const orderBy = order === "id" ? "id" : `CASE (${CURRENT_HEALTH}) WHEN 'healthy' THEN 0 WHEN 'stale' THEN 1 ELSE 2 END, load, id`;
    const rows = this.st
      .get<[Record<string, unknown>], AgentRow & { caps: string | null }>(
        `SELECT agents.*, (SELECT json_group_array(capability) FROM (SELECT capability FROM agent_capabilities WHERE agentId = agents.id ORDER BY capability)) AS caps,
           ${CORDON_OF_AGENT} AS cordon
         FROM agents ${clauses.length > 0 ? `WHERE ${clauses.join(" AND ")}` : ""} ORDER BY ${orderBy}${filter.limit !== undefined ? " LIMIT CAST(@limit AS INTEGER)" : ""}`,
      )
      .iterate(params);
    const picked = withinBudget(rows, agentAnswerBytes, budgetBytes);
    return { rows: picked.rows.map(({ caps, ...row }) => ({ ...row, capabilities: caps ? (JSON.parse(caps) as string[]) : [] })), truncated: picked.truncated };
  }

  /** Any sign of life (a claim, a lease heartbeat, a settle) from a registered agent counts as a heartbeat. */
  touch(agentId: string, now: number): void {
    this.st.get<[number, string]>(`UPDATE agents SET lastHeartbeatAt = ? WHERE id = ?`).run(now, agentId);
  }

  delete(agentId: string): boolean {
    return this.st.get<[string]>(`DELETE FROM agents WHERE id = ?`).run(agentId).changes > 0;
  }

  /**
   * Up to `limit` agents whose current health differs from the health last published for them.
   * Written as ranges of (health, lastHeartbeatAt), the index's order, so a check that finds no
   * change reads no row, however many agents are registered (each CASE branch of CURRENT_HEALTH
   * that differs from the published health is one range).
   */
  healthChanges(cutoffs: HealthCutoffs, limit: number, updatedBefore: number): Array<AgentRow & { current: AgentHealth }> {
    // updatedBefore: a check changes an agent once. A row written since the check was asked for
    // (by this check's earlier batch, a heartbeat, or another server that judges it otherwise)
    // is left to the next check: two servers that disagree must not flip it back and forth.
    return this.st
      .get<[Record<string, number>], AgentRow & { current: AgentHealth }>(
        `SELECT *, ${CURRENT_HEALTH} AS current FROM agents
         WHERE ((health = 'healthy' AND lastHeartbeatAt <= @stale)
            OR (health = 'stale' AND ((lastHeartbeatAt > @stale AND lastHeartbeatAt > @kept) OR lastHeartbeatAt <= @offline))
            OR (health = 'offline' AND lastHeartbeatAt > @offline AND lastHeartbeatAt > @kept))
           AND updatedAt < @updatedBefore
         LIMIT CAST(@limit AS INTEGER)`,
      )
      .all({ ...cutoffParams(cutoffs), limit, updatedBefore });
  }

  /**
   * Deletes up to `limit` agents offline whose last heartbeat is older than `before` (Unix ms)
   * and that hold no claim, no named lock and no semaphore permit at `now` (retention: a registry that keeps every
   * agent ever seen grows forever); their subscriptions and mailboxes stay, as after a
   * deregistration. Their ids.
   */
  pruneGone(before: number, limit: number, now: number): string[] {
    return this.st
      .get<[number, number, number, number], string>(
        `DELETE FROM agents WHERE id IN (
           SELECT id FROM agents WHERE health = 'offline' AND lastHeartbeatAt < ?
             AND id NOT IN (SELECT leaseOwner FROM tasks WHERE status = 'claimed' AND leaseOwner IS NOT NULL)
             AND id NOT IN (SELECT holder FROM locks WHERE expiresAt > ?)
             AND id NOT IN (SELECT holder FROM semaphore_permits WHERE expiresAt > ?)
           LIMIT CAST(? AS INTEGER))
         RETURNING id`,
      )
      .pluck()
      .all(before, now, now, limit);
  }

  /** How many agents have each health now (metrics). */
  healthCounts(cutoffs: HealthCutoffs): Record<AgentHealth, number> {
    const counts: Record<AgentHealth, number> = { healthy: 0, stale: 0, offline: 0 };
    const rows = this.st
      .get<[Record<string, number>], { current: AgentHealth; n: number }>(`SELECT ${CURRENT_HEALTH} AS current, count(*) AS n FROM agents GROUP BY current`)
      .all(cutoffParams(cutoffs));
    for (const row of rows) counts[row.current] = row.n;
    return counts;
  }

  /** How many agents are cordoned now, by an operator and automatically (metrics). */
  cordonCounts(now: number): { operator: number; automatic: number } {
    const rows = this.st
      .get<[{ now: number }], { automatic: number; n: number }>(`SELECT automatic, count(*) AS n FROM agent_cordons WHERE ${CORDON_IN_FORCE} GROUP BY automatic`)
      .all({ now });
    return { operator: rows.find((row) => !row.automatic)?.n ?? 0, automatic: rows.find((row) => row.automatic)?.n ?? 0 };
  }

  /** Marks the claims `agentId` took at or before `at` forfeit: they go back a bounded number a write (TaskStore.forfeitedClaims). */
  forfeitLeases(agentId: string, at: number): void {
    this.st.get<[number, string]>(`UPDATE agents SET leasesForfeitedAt = ? WHERE id = ?`).run(at, agentId);
  }

  /** No forfeit claim is left: every mark goes. */
  clearForfeits(): void {
    this.st.get<[]>(`UPDATE agents SET leasesForfeitedAt = NULL WHERE leasesForfeitedAt IS NOT NULL`).run();
  }

  /** Whether some agent has forfeit claims marked (a look before any write). */
  anyForfeit(): boolean {
    return this.st.get<[], number>(`SELECT 1 FROM agents INDEXED BY agents_forfeit_idx WHERE leasesForfeitedAt IS NOT NULL LIMIT 1`).pluck().get() !== undefined;
  }

  setHealth(agentId: string, health: AgentHealth, now: number): void {
    this.st.get<[string, number, string]>(`UPDATE agents SET health = ?, updatedAt = ? WHERE id = ?`).run(health, now, agentId);
  }
}
