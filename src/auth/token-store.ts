// All SQL of credentials: the api_tokens table. Runs in the database threads (writes in the
// writer's transactions, the credential cache's reads on the reader) and in the CLI's own
// connection (`coordination tokens …`, which works on the file with or without a server running).
import { toDate, toDateOrNull } from "../db/columns.js";
import type { Statements } from "../db/statements.js";
import { newId } from "../ids.js";
import { hashSecret, newSecret } from "./token-secret.js";
import type { CreateTokenRequest, IssuedToken, TokenView } from "./token-schemas.js";

export interface TokenRow {
  id: string;
  role: string;
  agentId: string | null;
  name: string;
  /** JSON array of key prefixes the credential may write; null: any key. */
  kvPrefixes: string | null;
  secretHash: string;
  createdAt: number | Date;
  lastUsedAt: number | Date | null;
  revokedAt: number | Date | null;
}

/** What the credential cache keeps of a token in force: enough to authenticate, never the secret; its kvPrefixes read once. */
export type TokenRecord = Pick<TokenRow, "id" | "role" | "agentId" | "secretHash"> & { kvPrefixes: string[] | null };

/** A token's kvPrefixes column as a list; null: any key. */
export const kvPrefixesOf = (column: string | null): string[] | null => (column === null ? null : (JSON.parse(column) as string[]));

/**
 * Set (system_state) once a credential was ever issued, or the file served with an admin token:
 * credentials stay enforced when retention has deleted every token (all revoked), as they were
 * while the revoked rows were kept, and when the admin token setting is lost.
 */
const ISSUED_KEY = "credentials.issued";

export const toTokenView = (row: TokenRow): TokenView => ({
  id: row.id,
  role: row.role as TokenView["role"],
  agentId: row.agentId,
  name: row.name,
  kvPrefixes: kvPrefixesOf(row.kvPrefixes),
  createdAt: toDate(row.createdAt),
  lastUsedAt: toDateOrNull(row.lastUsedAt),
  revokedAt: toDateOrNull(row.revokedAt),
});

export class TokenStore {
  constructor(private readonly st: Statements) {}

  /** Issues a credential; its secret is in the answer and nowhere else. */
  create(request: CreateTokenRequest, now: number): IssuedToken {
    this.markIssued();
    const secret = newSecret();
    const row = this.st
      .get<[string, string, string | null, string, string | null, string, number], TokenRow>(
        `INSERT INTO api_tokens (id, role, agentId, name, kvPrefixes, secretHash, createdAt) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING *`,
      )
      .get(newId(), request.role, request.agentId ?? null, request.name ?? "", request.kvPrefixes === undefined ? null : JSON.stringify(request.kvPrefixes), hashSecret(secret), now)!;
    return { token: toTokenView(row), secret };
  }

  get(id: string): TokenRow | undefined {
    return this.st.get<[string], TokenRow>(`SELECT * FROM api_tokens WHERE id = ?`).get(id);
  }

  /** Revokes a token (idempotent: a second revoke keeps the first time). undefined: no such token. */
  revoke(id: string, now: number): TokenRow | undefined {
    this.st.get<[number, string]>(`UPDATE api_tokens SET revokedAt = ? WHERE id = ? AND revokedAt IS NULL`).run(now, id);
    return this.get(id);
  }

  list(includeRevoked: boolean): TokenRow[] {
    return this.st.get<[], TokenRow>(`SELECT * FROM api_tokens ${includeRevoked ? "" : "WHERE revokedAt IS NULL"} ORDER BY createdAt, id`).all();
  }

  /**
   * The tokens in force (not revoked), and whether any credential was ever issued (then calls need
   * one, whatever was revoked or deleted since). Revoked rows are not read: the cache's re-read
   * costs what the tokens in force do, however many were revoked.
   */
  inForce(): { records: TokenRecord[]; issued: boolean } {
    const records = this.st
      .get<[], Pick<TokenRow, "id" | "role" | "agentId" | "kvPrefixes" | "secretHash">>(`SELECT id, role, agentId, kvPrefixes, secretHash FROM api_tokens WHERE revokedAt IS NULL`)
      .all()
      .map(({ id, role, agentId, kvPrefixes, secretHash }): TokenRecord => ({ id, role, agentId, kvPrefixes: kvPrefixesOf(kvPrefixes), secretHash }));
    if (records.length > 0) return { records, issued: true };
    const issued = this.st
      .get<[string], number>(`SELECT EXISTS(SELECT 1 FROM api_tokens) OR EXISTS(SELECT 1 FROM system_state WHERE key = ?)`)
      .pluck()
      .get(ISSUED_KEY)!;
    return { records, issued: issued === 1 };
  }

  /**
   * Retention: deletes up to `limit` tokens revoked before `before`; how many went. Credentials
   * stay enforced: a delete marks the database (ISSUED_KEY; its tokens may predate the marker).
   * Nothing deleted, nothing marked: a server that never issued a credential stays open.
   */
  pruneRevoked(before: number, limit: number): number {
    const deleted = this.st
      .get<[number, number]>(`DELETE FROM api_tokens WHERE id IN (SELECT id FROM api_tokens WHERE revokedAt IS NOT NULL AND revokedAt < ? LIMIT CAST(? AS INTEGER))`)
      .run(before, limit).changes;
    if (deleted > 0) this.markIssued();
    return deleted;
  }

  /**
   * Marks the database as served with credentials (ISSUED_KEY) when it is not yet: a server that
   * starts with an admin token configured does, so that losing the setting later (a secret that
   * failed to mount) does not serve the file open. Whether it wrote the mark.
   */
  markServedWithCredentials(): boolean {
    return this.markIssued();
  }

  /** Sets ISSUED_KEY unless it is set; whether it wrote it. */
  private markIssued(): boolean {
    return this.st.get<[string]>(`INSERT INTO system_state (key, value) VALUES (?, '1') ON CONFLICT(key) DO NOTHING`).run(ISSUED_KEY).changes > 0;
  }

  /** Records when tokens were last used (the cache batches these, at most one per token a minute). */
  touch(ids: readonly string[], now: number): void {
    const statement = this.st.get<[number, string]>(`UPDATE api_tokens SET lastUsedAt = ? WHERE id = ?`);
    for (const id of ids) statement.run(now, id);
  }
}
