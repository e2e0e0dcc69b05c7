import { withoutTrailingSlashes } from "./without-trailing-slashes.js";

// The servers' addresses a client is given, checked when it is made: text that is no http(s)
// address ("127.0.0.1:8000" without its scheme, a ws:// one) failed every call with "Invalid URL",
// which the worker and the helpers rode out as an outage and the commands called a server that
// gave no answer; asking again can never mend it.

/** The password of a URL-like text: "scheme://user:" kept, then up to the last "@" before a path, query or fragment. */
const UNPARSED_PASSWORD = /^([a-z][a-z0-9+.-]*:\/\/[^/?#@:]*:)[^/?#]*@/i;

/**
 * A server's address as the command line says it: a password in it (`https://ops:…@proxy/`, for
 * a proxy that asks for one) shown as `***`, as Go's URL.Redacted shows it. What a command says
 * goes to terminals and CI logs, and through the MCP relay into a model's context.
 */
export function shownUrl(url: string): string {
  // One no parser reads (a port past 65535, a space in the host) holds its password all the same:
  // what lies between the user's colon and the last "@" before the path is hidden as the parser would.
  if (!URL.canParse(url)) return url.replace(UNPARSED_PASSWORD, "$1***@");
  const parsed = new URL(url);
  if (parsed.password === "") return url;
  parsed.password = "***";
  return parsed.href;
}

/** `url` as the client will use it (no trailing slash), or a TypeError naming it (`place`: "url", "url[1]") and why. */
export function serverAddress(url: string, place: string): string {
  const parsed = typeof url === "string" && URL.canParse(url) ? new URL(url) : undefined;
  if (parsed === undefined || (parsed.protocol !== "http:" && parsed.protocol !== "https:")) {
    throw new TypeError(`createCoordinationClient: ${place} ${JSON.stringify(shownUrl(String(url)))} is not an http:// or https:// address: give the server's, e.g. http://127.0.0.1:8000`);
  }
  return withoutTrailingSlashes(url);
}
