// Who a presented secret belongs to, answered on the event loop from a cache of the api_tokens
// table (the database threads hold the table; a request must not wait on them to be let in).
//  - Enforced once any credential exists: the admin token setting, or any credential ever issued
//    (revoked, or deleted by retention, too: revoking the last token must not open the server).
//    Never switches back.
//  - The cache holds the tokens in force only: a revoked secret is as unknown as a wrong one, and
//    the re-read costs what the tokens in force do, however many were ever revoked.
//  - The cache is re-read every tokenRefreshMs, so tokens issued or revoked by the CLI or another
//    server process take effect; a secret it does not know triggers an early re-read, at most one
//    per MISS_REFRESH_MS whatever the number of wrong secrets presented.
//  - Tokens issued or revoked through this server take effect at once; a revocation closes the
//    token's WebSockets (the server listens with onRevoked).
import { setNewest } from "../bounded-map.js";
import type { Config } from "../config.js";
import type { Database } from "../db/thread/database.js";
import type { Logger } from "../logger.js";
import type { Caller } from "../trpc/context.js";
import { SignalFanout } from "../wakeup.js";
import type { TokenView } from "./token-schemas.js";
import { hashSecret, sameHash } from "./token-secret.js";
import type { TokenRecord } from "./token-store.js";

/** The configured admin token's id in logs and on its caller (api_tokens ids are UUIDs). */
export const ADMIN_TOKEN_ID = "config:adminToken";
/** Why tokens.revoke (and `tokens revoke`) cannot revoke it: it is a setting, not a row. */
export const ADMIN_TOKEN_NOT_REVOCABLE = `${ADMIN_TOKEN_ID} is the configured admin token (COORDINATION_ADMIN_TOKEN), which no revoke ends: change or clear that setting and restart the server (admin tokens issued with tokens create are revoked by their id)`;
const MISS_REFRESH_MS = 250;
/** What onRevoked listeners hear when credentials become enforced: the open callers' rights end. */
export const OPEN_CALLERS = "open callers";
/** lastUsedAt is written at most this often per token. */
const TOUCH_EVERY_MS = 60_000;

export const TRUSTED: Caller = Object.freeze({ kind: "trusted" });
export const OPEN: Caller = Object.freeze({ kind: "open" });
export const ANONYMOUS: Caller = Object.freeze({ kind: "anonymous" });

/** Revoked tokens' secret hashes kept to name them in the failure log (a hash and an id each). */
const REVOKED_REMEMBERED = 1000;
/** Addresses, and revoked tokens, one failure line names at most. */
const LISTED_PER_LINE = 10;

export class Credentials {
  private readonly byHash = new Map<string, TokenRecord>();
  private readonly byId = new Map<string, TokenRecord>();
  private readonly adminHash: string | undefined;
  private anyToken = false;
  private refreshing: Promise<void> | undefined;
  private missRefresh: Promise<void> | undefined;
  private refreshedAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly touchedAt = new Map<string, number>();
  /** Failed authentications since the last line logged: how many, from which addresses, with which revoked tokens' secrets. */
  private failures = { count: 0, loggedAt: 0, from: new Set<string>(), revoked: new Set<string>() };
  /** The secret hashes of tokens revoked while this process ran, by hash: a failure with one names the token (the log). */
  private readonly revokedHashes = new Map<string, string>();
  private readonly revokedListeners = new Set<(tokenId: string) => void>();
  /** What watchRevocation hands out, by token id (or OPEN_CALLERS). */
  private readonly revocations = new Map<string, { controller: AbortController; fanout: SignalFanout }>();
  /**
   * Tokens issued (the record) or revoked (null) through this server, numbered: a re-read that
   * began before one (its number is higher than the read's) does not show it yet, and must not
   * undo it. Dropped once a re-read that began after it ends.
   */
  private readonly applies = new Map<string, { at: number; record: TokenRecord | null }>();
  private appliedCount = 0;

  constructor(private readonly d: { db: Database; config: Config; log: Logger }) {
    this.adminHash = d.config.adminToken === "" ? undefined : hashSecret(d.config.adminToken);
  }

  /** True once any credential exists: then every call but the open ones needs one. */
  get enforced(): boolean {
    return this.adminHash !== undefined || this.anyToken;
  }

  async start(): Promise<void> {
    await this.refresh();
    // Served with an admin token: the file is marked, so that a restart that lost the setting (a
    // secret that failed to mount) keeps it closed rather than open to anyone on the port.
    if (this.adminHash !== undefined && !this.anyToken) await this.d.db.write("tokens.markServedWithCredentials", undefined);
    if (this.adminHash === undefined && this.anyToken && this.byId.size === 0) {
      this.d.log.warn(
        "credentials are required (the database was served with credentials) but none is in force: every call but /health is refused; " +
          "set COORDINATION_ADMIN_TOKEN, or issue one on this machine with `coordination tokens create --role admin`",
      );
    }
    // A failing database must not end the refresh: logged once per episode, the cache kept meanwhile.
    let failing = false;
    this.timer = setInterval(
      () =>
        void this.refresh().then(
          () => {
            if (failing) this.d.log.info("credential refresh works again");
            failing = false;
          },
          (error: unknown) => {
            if (!failing) this.d.log.warn({ err: error }, "credential refresh failed; keeping the credentials read last");
            failing = true;
          },
        ),
      this.d.config.tokenRefreshMs,
    );
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /**
   * The caller presenting `secret` (undefined: none presented), from the client address `from`.
   * Open while nothing is enforced; anonymous for a missing, unknown or revoked secret (the 401
   * says no more; the operator's log says from where, and which revoked token it was).
   */
  async authenticate(secret: string | undefined, from?: string): Promise<Caller> {
    if (!this.enforced) return OPEN;
    if (!secret) return ANONYMOUS;
    const hash = hashSecret(secret);
    if (this.adminHash !== undefined && sameHash(hash, this.adminHash)) return { kind: "token", tokenId: ADMIN_TOKEN_ID, role: "admin", agentId: null, kvPrefixes: null };
    let record = this.byHash.get(hash);
    if (record === undefined) {
      await this.refreshAfterMiss();
      record = this.byHash.get(hash);
    }
    // The map found it by hash; the comparison that decides is constant-time all the same.
    if (record === undefined || !sameHash(record.secretHash, hash)) {
      this.noteFailure(hash, from);
      return ANONYMOUS;
    }
    this.noteUse(record.id);
    return { kind: "token", tokenId: record.id, role: record.role as "admin" | "agent" | "read", agentId: record.agentId, kvPrefixes: record.kvPrefixes };
  }

  /**
   * Whether a caller's credential is still good (a WebSocket authenticates once, then each call
   * asks this): a revoked token is not, nor an open caller once credentials are enforced.
   */
  isCurrent(caller: Caller): boolean {
    if (caller.kind === "open") return !this.enforced;
    if (caller.kind !== "token" || caller.tokenId === ADMIN_TOKEN_ID) return true;
    return this.byId.has(caller.tokenId);
  }

  /**
   * What onRevoked names when this caller loses its rights: its token's id, or OPEN_CALLERS;
   * undefined for callers that cannot lose them (trusted, the admin token).
   */
  revocationKey(caller: Caller): string | undefined {
    if (caller.kind === "token") return caller.tokenId === ADMIN_TOKEN_ID ? undefined : caller.tokenId;
    return caller.kind === "open" ? OPEN_CALLERS : undefined;
  }

  /**
   * A signal that aborts when the caller's credential is revoked (or, for an open caller, when
   * credentials become enforced): long-polls parked under it end at once, taking nothing.
   * dispose() when the call ends. Undefined for callers that cannot lose their rights (trusted,
   * the admin token). One listener per credential, fanned out: many parked calls share it.
   */
  watchRevocation(caller: Caller): { signal: AbortSignal; dispose: () => void } | undefined {
    const key = this.revocationKey(caller);
    if (key === undefined) return undefined;
    let revocation = this.revocations.get(key);
    if (revocation === undefined) {
      const controller = new AbortController();
      revocation = { controller, fanout: new SignalFanout(controller.signal) };
      this.revocations.set(key, revocation);
    }
    return revocation.fanout.child();
  }

  /**
   * Calls `listener` with the id of each token revoked from now on, and with OPEN_CALLERS when
   * credentials become enforced (open callers lose their rights then). Returns the unsubscribe.
   */
  onRevoked(listener: (tokenId: string) => void): () => void {
    this.revokedListeners.add(listener);
    return () => this.revokedListeners.delete(listener);
  }

  /**
   * A token issued (with its secret's hash) or revoked through this server: in effect before the
   * answer goes out. One token's change, whatever the number of tokens.
   */
  applied(token: TokenView, secretHash?: string): void {
    const record: TokenRecord | null = token.revokedAt === null && secretHash !== undefined ? { id: token.id, role: token.role, agentId: token.agentId, kvPrefixes: token.kvPrefixes, secretHash } : null;
    this.applies.set(token.id, { at: ++this.appliedCount, record });
    const known = this.byId.get(token.id);
    if (known !== undefined) this.byHash.delete(known.secretHash);
    this.byId.delete(token.id);
    if (record !== null) {
      this.byId.set(record.id, record);
      this.byHash.set(record.secretHash, record);
      this.issued();
    } else if (known !== undefined) {
      setNewest(this.revokedHashes, known.secretHash, token.id, REVOKED_REMEMBERED);
      this.revoke(token.id);
    }
  }

  /**
   * A secret the cache does not know may be a token issued a moment ago elsewhere: re-read, at
   * most once per MISS_REFRESH_MS however many unknown secrets arrive (they all wait for it).
   */
  private refreshAfterMiss(): Promise<void> {
    this.missRefresh ??= (async () => {
      try {
        const wait = this.refreshedAt + MISS_REFRESH_MS - Date.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        await this.refresh();
      } finally {
        this.missRefresh = undefined;
      }
    })();
    return this.missRefresh;
  }

  /** Re-reads the table; concurrent callers share one read. */
  refresh(): Promise<void> {
    this.refreshing ??= (async () => {
      try {
        const since = this.appliedCount;
        const read = await this.d.db.read("tokens.inForce", undefined);
        this.put(read.records, read.issued, since);
        this.refreshedAt = Date.now();
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }

  /**
   * The tokens in force as read (after the `since`-th change applied here); a token this cache held
   * that the read no longer has was revoked elsewhere (or by the CLI): what ran under it ends.
   */
  private put(fresh: TokenRecord[], issued: boolean, since: number): void {
    const next = new Map(fresh.map((record) => [record.id, record]));
    for (const [id, change] of this.applies) {
      if (change.at <= since) this.applies.delete(id);
      else if (change.record === null) next.delete(id);
      else next.set(id, change.record);
    }
    const revoked = [...this.byId.keys()].filter((id) => !next.has(id));
    for (const id of revoked) setNewest(this.revokedHashes, this.byId.get(id)!.secretHash, id, REVOKED_REMEMBERED);
    this.byHash.clear();
    this.byId.clear();
    for (const record of next.values()) {
      this.byHash.set(record.secretHash, record);
      this.byId.set(record.id, record);
    }
    if (issued || next.size > 0) this.issued();
    for (const id of revoked) this.revoke(id);
  }

  /** A credential exists: from now on every call but the open ones needs one. */
  private issued(): void {
    if (this.anyToken) return;
    const wasOpen = !this.enforced;
    this.anyToken = true;
    if (wasOpen) {
      this.d.log.info("credentials exist: every call but /health now needs a bearer token");
      this.revoke(OPEN_CALLERS);
    }
  }

  /** Ends what runs under a credential that lost its rights: parked calls, and (through the listeners) its WebSockets. */
  private revoke(key: string): void {
    this.touchedAt.delete(key);
    this.revocations.get(key)?.controller.abort();
    this.revocations.delete(key);
    for (const listener of this.revokedListeners) listener(key);
  }

  /**
   * Logs failed authentications for operators: the first at once, then at most one line a second
   * with how many more there were, so that a client hammering with wrong secrets cannot flood the
   * log; with the client addresses they came from and the revoked tokens whose secrets they
   * presented (after a compromise: is the revoked token still tried, and from where?), a few each.
   */
  private noteFailure(hash: string, from: string | undefined): void {
    const now = Date.now();
    const { failures } = this;
    failures.count++;
    if (from !== undefined && failures.from.size < LISTED_PER_LINE) failures.from.add(from);
    const revokedId = this.revokedHashes.get(hash);
    if (revokedId !== undefined && failures.revoked.size < LISTED_PER_LINE) failures.revoked.add(revokedId);
    if (now - failures.loggedAt < 1000) return;
    this.d.log.info(
      { failures: failures.count, from: [...failures.from], ...(failures.revoked.size > 0 ? { revokedTokenIds: [...failures.revoked] } : {}) },
      "authentication failed: a bearer secret that is unknown or revoked",
    );
    this.failures = { count: 0, loggedAt: now, from: new Set(), revoked: new Set() };
  }

  /**
   * Records a use of `tokenId` (lastUsedAt) at most once a minute per token; a write that fails is
   * only logged. Called by authenticate, and for every message on a WebSocket it authenticated
   * (calls, and keep-alive PONGs to the server's PINGs): a socket authenticates once, and a
   * subscriber that listens for days would otherwise show as unused since it connected.
   */
  noteUse(tokenId: string): void {
    const now = Date.now();
    if (now - (this.touchedAt.get(tokenId) ?? 0) < TOUCH_EVERY_MS) return;
    this.touchedAt.set(tokenId, now);
    this.d.db.write("tokens.touch", [tokenId]).catch((error: unknown) => this.d.log.debug({ err: error, tokenId }, "could not record token use"));
  }
}
