// A bearer token as it goes out: `Authorization: Bearer <token>` on HTTP, and the WebSocket's
// connectionParams. A header carries printable ASCII, and the server reads the secret up to the
// first space; no secret holds anything else (issued ones are base64url, the admin token setting
// refuses the rest). A token read from a file or a variable often ends with a newline: sent as
// it was, fetch refused every call ("invalid authorization header") as a connection that could
// not be made, and the client waited for the server (waitForServerMs, 30 s) on each call before
// it failed, saying the server did not answer. The whitespace around it is dropped; anything
// else that cannot be sent is refused at once, saying what it is (never the token itself).

/** Printable ASCII without spaces: what an Authorization: Bearer header carries as it is. */
export const SENDABLE = /^[\x21-\x7e]+$/;

/** Which kinds of character in `text` no bearer header carries (whitespace, non-ASCII, control): to say what is wrong without showing the secret. */
export function unsendableKinds(text: string): string[] {
  return [/\s/.test(text) ? "whitespace" : "", /[^\x00-\x7f]/.test(text) ? "non-ASCII" : "", /[\x00-\x08\x0e-\x1f\x7f]/.test(text) ? "control" : ""].filter((kind) => kind !== "");
}

/**
 * The token to send: without the whitespace around it; undefined for none (empty, as an unset
 * variable often is: sent, "Bearer " was no credential either). Throws a TypeError for one no
 * header can carry.
 */
export function bearerToken(token: string, what = "createCoordinationClient: token"): string | undefined {
  if (typeof token !== "string") throw new TypeError(`${what} must be a string (got ${token === null ? "null" : typeof token})`);
  const trimmed = token.trim();
  if (trimmed === "") return undefined;
  if (SENDABLE.test(trimmed)) return trimmed;
  throw new TypeError(`${what} has ${unsendableKinds(trimmed).join(" and ")} characters within it (${trimmed.length} characters, not shown): a bearer token is printable ASCII without spaces; is it the secret alone?`);
}
