// Whether a call that failed may have done what it asked. A program whose write failed must choose
// between sending it again (and maybe doing it twice) and looking first; the error alone did not
// say which of "it never reached a server" and "its answer was lost" happened: both are a
// TRPCClientError without `data`. The client knows, at the link where each was decided; this is
// where it says so.
import { TRPCClientError, type TRPCLink } from "@trpc/client";
import { observable } from "@trpc/server/observable";
import { neverSent } from "./failover.js";
import { isUnsendable } from "./serialize-input.js";
import type { AppRouter, ErrorCode } from "./types.js";

/**
 * What the link that decided a call's failure knows of it: false, it did nothing (a read, a call
 * given up before it was sent); true, it may have been served (cut in flight). Each error marked
 * is the call's own object (abortable-call.ts's callAbortedError): an error shared by several
 * calls (a signal's reason, which tRPC's TRPCClientError.from hands on as it is) would carry one
 * call's verdict to the others, and to the call it first came from.
 */
const VERDICT = new WeakMap<object, boolean>();

/** Records that the call failing with `error` (its own object) was given up before it reached a server; returns it. */
export function givenUpUnsent<E extends object>(error: E): E {
  VERDICT.set(error, false);
  return error;
}

/**
 * Records that the call failing with `error` (its own object) was given up while it may have been
 * on its way (its signal, close() or its call timeout cut it in flight): whatever its cause says
 * (an abort's reason may be another call's refusal or answer), it may have been served; returns it.
 */
export function cutInFlight<E extends object>(error: E): E {
  VERDICT.set(error, true);
  return error;
}

/** Records that `error` (a helper's own, KeyWriteUnknown) says its write may have been stored; returns it. */
export function outcomeUnknown<E extends object>(error: E): E {
  VERDICT.set(error, true);
  return error;
}

/**
 * A TLS handshake that refused the server's certificate (OpenSSL's verify codes, Node's name check):
 * the request goes only after the handshake, so it was never sent. Not failover.ts's NEVER_SENT:
 * a certificate not trusted is not waited for (waitForServerMs), it is the caller's to mend.
 */
const CERTIFICATE_REFUSED = new Set([
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_REVOKED",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "CERT_SIGNATURE_FAILURE",
  "HOSTNAME_MISMATCH",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/** The one answered code that does not say "nothing was stored": a server bug may strike after a commit. */
const MAY_HAVE_STORED: ErrorCode = "INTERNAL";

/**
 * Whether the call that failed with `error` (a typed client's: a TRPCClientError) may have done
 * what it asked on the server, so that sending it again could do it twice.
 *
 * `false`: it certainly did nothing. A query (reads change nothing); a call whose connection could
 * not be made (refused, a name not resolved, a certificate not trusted); one the server answered with an error (every code but
 * `INTERNAL` says nothing was stored: README, "Errors, and whether to retry"); one given up before
 * it was sent (its signal aborted already, an input the client cannot send, a client closed
 * already, or `close()` or its signal while it waited for its server to come back).
 *
 * `true`: a mutation whose answer never came (its connection broke mid-call, `callTimeoutMs` ran
 * out, its signal or `close()` cut it in flight: a long-poll claim given up so may have leased a
 * task, which the server gives back once it sees the answer undelivered, or when the lease runs
 * out), one answered `INTERNAL`, and any error this client did not make. Send it again with the
 * same `idempotencyKey` (or settle it by its lease), or look before sending.
 */
export function mayHaveBeenServed(error: unknown): boolean {
  if (error === null || typeof error !== "object") return true;
  const verdict = VERDICT.get(error);
  if (verdict !== undefined) return verdict;
  if (error instanceof TRPCClientError) {
    const code = (error.data as { code?: unknown } | undefined)?.code;
    if (typeof code === "string") return code === MAY_HAVE_STORED;
  }
  return !neverReached(error);
}

/**
 * Whether the call that failed with `error` never reached a server: its connection could not be
 * made (refused, a name not resolved, a certificate not trusted), or it was not sent (an input the
 * client cannot send, a client closed). False for one whose connection was made and then broke,
 * or went unanswered: a server was reached, whatever the call did there (mayHaveBeenServed).
 */
export function neverReached(error: unknown): boolean {
  if (isUnsendable(error) || neverSent(error)) return true;
  for (let cause: unknown = error, depth = 0; cause instanceof Error && depth < 5; cause = cause.cause, depth++) {
    const code = String((cause as { code?: unknown }).code);
    // The connection pool was closed (close()) before the call could be sent: closing (UND_ERR_CLOSED)
    // or closed (UND_ERR_DESTROYED: undici destroys a pool once its close() is done, and the client
    // never destroys one with calls in flight, so the call was refused before it was sent); or the
    // server's certificate was refused.
    if (code === "UND_ERR_CLOSED" || code === "UND_ERR_DESTROYED" || CERTIFICATE_REFUSED.has(code)) return true;
  }
  return false;
}

/** The outermost link: a query's error is marked as doing nothing (mutations pass untouched: no cost on the write path). */
export function servedLink(): TRPCLink<AppRouter> {
  return () =>
    ({ op, next }) => {
      if (op.type !== "query") return next(op);
      return observable((observer) =>
        next(op).subscribe({
          next: (value) => observer.next(value),
          error: (error) => {
            VERDICT.set(error, false);
            observer.error(error);
          },
          complete: () => observer.complete(),
        }),
      );
    };
}
