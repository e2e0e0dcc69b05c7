// W3C Trace Context (https://www.w3.org/TR/trace-context/) carried by a task: the producer's
// `traceparent` and `tracestate` kept with the task from its enqueue and handed to every run of it,
// so a consumer's spans join the trace that asked for the work (OpenTelemetry's messaging
// conventions: the process span is a child of, or links to, the send). A queue is where traces
// break: the HTTP call that enqueues ends, and the run starts in another process minutes later.
//
// Two ways in, with the spec's two strictnesses: a field the caller wrote (the enqueue's
// `traceparent`) that is malformed is a 400 naming it; a header an instrumented HTTP client added
// on its own that is malformed is ignored, as the spec asks of a receiver ("restart the trace").
import { copyWith } from "../copy-with.js";

/** The most characters of tracestate kept: what the spec asks every vendor to propagate at least. */
export const MAX_TRACESTATE_CHARS = 512;
/** The most list members a tracestate holds (the spec's limit). */
const MAX_TRACESTATE_MEMBERS = 32;
/** A list member longer than this is the first to go when a tracestate is cut to size (the spec's advice). */
const LARGE_TRACESTATE_MEMBER = 128;
/** The trace-flags the spec defines: sampled (0x01) and random trace id (0x02); a vendor passes the others on as 0. */
const KNOWN_FLAGS = 0x03;

/** version "-" trace-id "-" parent-id "-" trace-flags, lowercase hex; a later version may add "-" and fields after. */
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
/** A list member's key: simple (lowercase first) or multi-tenant (tenant@system). */
const TRACESTATE_KEY = /^(?:[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})$/;
/** A list member's value: printable ASCII but "," and "=", at most 256, not ending in a space. */
const TRACESTATE_VALUE = /^[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$/;

/**
 * Where an enqueue may find its caller's trace context: an HTTP request's headers (Node's
 * IncomingHttpHeaders is one), or the two keys of an MCP request's _meta. Read only by an enqueue
 * that gives no traceparent of its own (traceContextOfHeaders), not for every call that carries one.
 */
export type TraceCarrier = Readonly<Record<string, string | string[] | undefined>>;

/** A trace context as a task keeps it: traceparent in its version-00 form; tracestate or null. */
export interface TraceContext {
  traceparent: string;
  tracestate: string | null;
}

/**
 * `text` as the traceparent a task keeps, in its version-00 form (a later version is read as the
 * spec's version-00 parser reads it: its first four fields, its extra ones dropped), or why it is
 * not one.
 */
export function parseTraceparent(text: string): { ok: true; value: string } | { ok: false; reason: string } {
  const match = TRACEPARENT.exec(text);
  const shape = "a W3C traceparent: version-traceid-parentid-flags in lowercase hex, such as 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  if (match === null) return { ok: false, reason: `must be ${shape} (got ${JSON.stringify(text.slice(0, 80))})` };
  const [, version, traceId, parentId, flags, rest] = match as unknown as [string, string, string, string, string, string | undefined];
  if (version === "ff") return { ok: false, reason: "has version ff, which the spec forbids" };
  if (version === "00" && rest !== undefined) return { ok: false, reason: "is version 00, which has exactly four fields (55 characters)" };
  if (/^0+$/.test(traceId)) return { ok: false, reason: "has a trace id of all zeros, which the spec forbids" };
  if (/^0+$/.test(parentId)) return { ok: false, reason: "has a parent id of all zeros, which the spec forbids" };
  // Kept as version 00, as the spec asks of a vendor passing on a later version it read (flags it
  // does not know set to 0): one form for every task, so a trace's tasks are one range of
  // tasks_trace_idx (tasks.list's traceId).
  const known = (Number.parseInt(flags, 16) & KNOWN_FLAGS).toString(16).padStart(2, "0");
  return { ok: true, value: `00-${traceId}-${parentId}-${known}` };
}

/** `text` without the spaces and tabs around it (a loop: a regex for trailing blanks is quadratic on a long run of them). */
function trimBlanks(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && (text[start] === " " || text[start] === "\t")) start++;
  while (end > start && (text[end - 1] === " " || text[end - 1] === "\t")) end--;
  return text.slice(start, end);
}

/**
 * The first `limit` list members of a tracestate (empty ones, which the spec allows between commas,
 * left out) and whether more follow, or why one of those is not a member. Linear, and it reads no
 * further than it keeps: a header or an MCP request's _meta is not held to 512 characters (a
 * 64 KiB header of 9,000 members read member by member against those before it held the event loop
 * 0.8 s, before any credential was checked).
 */
function tracestateMembers(text: string, limit: number): { ok: true; members: string[]; more: boolean } | { ok: false; reason: string } {
  const members: string[] = [];
  const keys = new Set<string>();
  for (let start = 0; start <= text.length; ) {
    const comma = text.indexOf(",", start);
    const end = comma < 0 ? text.length : comma;
    const member = trimBlanks(text.slice(start, end));
    start = end + 1;
    if (member === "") continue;
    if (members.length === limit) return { ok: true, members, more: true };
    const eq = member.indexOf("=");
    const key = eq < 0 ? member : member.slice(0, eq);
    if (eq < 0 || !TRACESTATE_KEY.test(key)) return { ok: false, reason: `has a list member whose key is not a W3C tracestate key (got ${JSON.stringify(member.slice(0, 80))}): key=value, keys in lowercase` };
    if (!TRACESTATE_VALUE.test(member.slice(eq + 1))) return { ok: false, reason: `has a list member whose value is not a W3C tracestate value (got ${JSON.stringify(member.slice(0, 80))}): 1 to 256 printable ASCII characters but "," and "="` };
    if (keys.has(key)) return { ok: false, reason: `names key ${JSON.stringify(key)} twice` };
    keys.add(key);
    members.push(member);
  }
  return { ok: true, members, more: false };
}

/** `text` as the tracestate a task keeps (members joined by ","; null when it holds none), or why it is not one. */
export function parseTracestate(text: string): { ok: true; value: string | null } | { ok: false; reason: string } {
  if (text.length > MAX_TRACESTATE_CHARS) return { ok: false, reason: `must be at most ${MAX_TRACESTATE_CHARS} characters (got ${text.length})` };
  const parsed = tracestateMembers(text, MAX_TRACESTATE_MEMBERS);
  if (!parsed.ok) return parsed;
  if (parsed.more) return { ok: false, reason: `has more than the spec's ${MAX_TRACESTATE_MEMBERS} list members` };
  return { ok: true, value: parsed.members.length === 0 ? null : parsed.members.join(",") };
}

/**
 * The trace context of an HTTP request's `traceparent` and `tracestate` headers, as a receiver
 * reads them: a missing, repeated (Node joins repeats with ", ") or malformed traceparent is no
 * context; a malformed tracestate is dropped and the traceparent kept; of one past 32 list members
 * the first 32 are read, and past 512 characters it loses whole members until it fits: those past
 * 128 characters first, then from its end (the spec's advice: the newest vendors come first).
 */
export function traceContextOfHeaders(headers: TraceCarrier): TraceContext | undefined {
  const parent = headers.traceparent;
  if (typeof parent !== "string") return undefined;
  const traceparent = parseTraceparent(parent.trim());
  if (!traceparent.ok) return undefined;
  const state = headers.tracestate;
  // Repeated tracestate headers are one list, joined in order (RFC 9110 field lines).
  const joined = Array.isArray(state) ? state.join(",") : state;
  if (joined === undefined) return { traceparent: traceparent.value, tracestate: null };
  // The first 32 members; any after them are not read.
  const parsed = tracestateMembers(joined, MAX_TRACESTATE_MEMBERS);
  if (!parsed.ok) return { traceparent: traceparent.value, tracestate: null };
  const kept = parsed.members;
  // The spec's order: members longer than 128 characters first (the last of them first), then
  // from the end (taking the end alone dropped several vendors' small members to keep one large).
  while (kept.join(",").length > MAX_TRACESTATE_CHARS) {
    const large = kept.findLastIndex((member) => member.length > LARGE_TRACESTATE_MEMBER);
    kept.splice(large < 0 ? kept.length - 1 : large, 1);
  }
  return { traceparent: traceparent.value, tracestate: kept.length === 0 ? null : kept.join(",") };
}

/**
 * The typed client's own trace headers (client/trace-context-link.ts: its `traceContext` answer),
 * read before `traceparent` and `tracestate`: OpenTelemetry's undici instrumentation appends its
 * own traceparent to every request the client sends, beside one already there, and a repeated
 * traceparent is none. Named apart, the caller's context and the instrumentation's never meet.
 */
export const CLIENT_TRACEPARENT = "coordination-traceparent";
export const CLIENT_TRACESTATE = "coordination-tracestate";

/**
 * The trace context a call's carrier gives an enqueue: the typed client's own headers when they
 * hold a valid one, else the standard headers (traceContextOfHeaders), each read leniently.
 */
export function callerTraceOf(carrier: TraceCarrier): TraceContext | undefined {
  const own = carrier[CLIENT_TRACEPARENT];
  const fromClient = own === undefined ? undefined : traceContextOfHeaders({ traceparent: own, tracestate: carrier[CLIENT_TRACESTATE] });
  return fromClient ?? traceContextOfHeaders(carrier);
}

/**
 * Where an MCP request's trace context is: its `params._meta` `traceparent`, `tracestate` and
 * `baggage` (the keys MCP reserves for W3C Trace Context and Baggage, SEP-414: what a host sends
 * over stdio and HTTP alike), else its HTTP request's headers; read as headers are. Each of the
 * two is taken where it is: the trace context (traceparent with its tracestate) from _meta when it
 * holds a traceparent, else from the headers; the baggage from _meta when it holds one, else from
 * the headers. A _meta holding baggage alone leaves the headers' trace context as it was.
 */
export function mcpTraceCarrier(meta: Readonly<Record<string, unknown>> | undefined, headers: TraceCarrier | undefined): TraceCarrier | undefined {
  const text = (value: unknown): string | undefined => (typeof value === "string" ? value : undefined);
  const traceparent = text(meta?.traceparent);
  const baggage = text(meta?.baggage);
  if (traceparent === undefined && baggage === undefined) return headers;
  // One literal of every key (the headers' own names undefined where _meta speaks).
  const fromMeta = traceparent !== undefined;
  return {
    traceparent: fromMeta ? traceparent : headers?.traceparent,
    tracestate: fromMeta ? text(meta?.tracestate) : headers?.tracestate,
    [CLIENT_TRACEPARENT]: fromMeta ? undefined : headers?.[CLIENT_TRACEPARENT],
    [CLIENT_TRACESTATE]: fromMeta ? undefined : headers?.[CLIENT_TRACESTATE],
    baggage: baggage ?? headers?.baggage,
    [CLIENT_BAGGAGE]: baggage !== undefined ? undefined : headers?.[CLIENT_BAGGAGE],
  };
}

/**
 * An enqueue's input with the HTTP request's trace context (`fromHeaders`) filled in when it gives
 * no traceparent of its own (its own is the caller's word, and a tracestate goes with its own
 * traceparent only); the input itself when nothing is added.
 */
export function withHeaderTrace<T extends { traceparent?: string | null | undefined; tracestate?: string | null | undefined }>(request: T, fromHeaders: TraceContext | undefined): T {
  // null is none given, as left out (a task's own null passed on to a child).
  if (fromHeaders === undefined || (request.traceparent !== undefined && request.traceparent !== null)) return request;
  return copyWith(request, fromHeaders.tracestate === null ? { traceparent: fromHeaders.traceparent } : { traceparent: fromHeaders.traceparent, tracestate: fromHeaders.tracestate });
}

/** What a task keeps of an enqueue's (validated) traceparent and tracestate: the forms parseTraceparent and parseTracestate give, or nulls. */
export function storedTrace(request: { traceparent?: string | null | undefined; tracestate?: string | null | undefined }): { traceparent: string | null; tracestate: string | null } {
  if (request.traceparent === undefined || request.traceparent === null) return { traceparent: null, tracestate: null };
  const parent = parseTraceparent(request.traceparent);
  const state = request.tracestate === undefined || request.tracestate === null ? undefined : parseTracestate(request.tracestate);
  return { traceparent: parent.ok ? parent.value : null, tracestate: state?.ok === true ? state.value : null };
}

/**
 * What a task's events carry of its trace context: its traceparent, when it has one, and its
 * tracestate with it (the spec's vendors' data travels with the traceparent it belongs to); and
 * its baggage, with or without a trace: webhooks send them as their traceparent, tracestate and
 * baggage headers.
 */
export function tracedBy(row: { traceparent: string | null; tracestate: string | null; baggage: string | null }): { traceparent?: string; tracestate?: string; baggage?: string } {
  // Most tasks carry none: no object is made for them.
  if (row.traceparent === null && row.baggage === null) return NOTHING_TRACED;
  const traced: { traceparent?: string; tracestate?: string; baggage?: string } = {};
  if (row.traceparent !== null) {
    traced.traceparent = row.traceparent;
    if (row.tracestate !== null) traced.tracestate = row.tracestate;
  }
  if (row.baggage !== null) traced.baggage = row.baggage;
  return traced;
}
const NOTHING_TRACED: Readonly<{ traceparent?: string; tracestate?: string; baggage?: string }> = Object.freeze({});

/**
 * W3C Baggage (https://www.w3.org/TR/baggage/): the caller's key-value pairs (a tenant, a user, an
 * experiment) that travel with its trace, kept with the task beside its trace context so a run
 * reads them as its producer set them (OpenTelemetry's W3CBaggagePropagator extracts them from
 * the task as from a request). Its limits: 180 list members (the most the spec's grammar allows,
 * and the most OpenTelemetry's propagator writes) and 8,192 bytes (what the spec asks every
 * platform to propagate at least, and the most OpenTelemetry's propagator writes). The spec's 64
 * members is a floor, not a ceiling: a carrier OpenTelemetry filled with 65 to 180 is W3C Baggage
 * and was refused with a 400.
 */
export const MAX_BAGGAGE_BYTES = 8192;
const MAX_BAGGAGE_MEMBERS = 180;
/** A key: an RFC 9110 token. */
const BAGGAGE_KEY = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** A value: baggage-octets (printable ASCII but space, '"', ",", ";" and "\"; percent-encode the rest). */
const BAGGAGE_VALUE = /^[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*$/;

/** `part` ("key = value", or with `bare`, "key" alone) without its optional whitespace, or undefined when it is not one. */
function baggagePair(part: string, bare: boolean): string | undefined {
  const eq = part.indexOf("=");
  if (eq < 0) {
    const key = trimBlanks(part);
    return bare && BAGGAGE_KEY.test(key) ? key : undefined;
  }
  const key = trimBlanks(part.slice(0, eq));
  const value = trimBlanks(part.slice(eq + 1));
  return BAGGAGE_KEY.test(key) && BAGGAGE_VALUE.test(value) ? `${key}=${value}` : undefined;
}

/** A list member (key=value, then ;property or ;key=value properties) without its optional whitespace, or undefined when malformed. */
function baggageMember(text: string): string | undefined {
  const parts = text.split(";");
  const pair = baggagePair(parts[0]!, false);
  if (pair === undefined) return undefined;
  const properties: string[] = [];
  for (const part of parts.slice(1)) {
    const property = baggagePair(part, true);
    if (property === undefined) return undefined;
    properties.push(property);
  }
  return properties.length === 0 ? pair : `${pair};${properties.join(";")}`;
}

/** `text` as the baggage a task keeps (members without their optional whitespace, joined by ","; null when it holds none), or why it is not W3C Baggage. */
export function parseBaggage(text: string): { ok: true; value: string | null } | { ok: false; reason: string } {
  if (text.length > MAX_BAGGAGE_BYTES) return { ok: false, reason: `must be at most ${MAX_BAGGAGE_BYTES} characters, what the W3C Baggage spec asks every platform to propagate (got ${text.length})` };
  // Blank is none, as an empty tracestate is (a carrier's empty baggage passed on as it comes).
  if (trimBlanks(text) === "") return { ok: true, value: null };
  const members: string[] = [];
  for (const raw of text.split(",")) {
    if (trimBlanks(raw) === "") return { ok: false, reason: "has an empty list member: key=value pairs separated by single commas" };
    const member = baggageMember(raw);
    if (member === undefined) {
      return { ok: false, reason: `has a list member that is not W3C Baggage (got ${JSON.stringify(raw.slice(0, 80))}): key=value with optional ;properties, the key a token, the value printable ASCII without spaces, '"', ",", ";" or "\\" (percent-encode them)` };
    }
    members.push(member);
  }
  if (members.length > MAX_BAGGAGE_MEMBERS) return { ok: false, reason: `has more than the ${MAX_BAGGAGE_MEMBERS} list members the W3C Baggage grammar allows (got ${members.length})` };
  return { ok: true, value: members.join(",") };
}

/**
 * The baggage of an HTTP request's `baggage` header(s), as a receiver reads them: repeats are one
 * list, a malformed member is dropped (the others kept), and members are kept in order while they
 * fit in 180 and 8,192 bytes (a member that does not fit is dropped whole, never cut). Undefined
 * when none is left. Linear: the header is read member by member, each once.
 */
export function baggageOfHeader(header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined;
  const text = Array.isArray(header) ? header.join(",") : header;
  const kept: string[] = [];
  let bytes = 0;
  for (let start = 0; start <= text.length && kept.length < MAX_BAGGAGE_MEMBERS; ) {
    const comma = text.indexOf(",", start);
    const end = comma < 0 ? text.length : comma;
    const member = end - start > MAX_BAGGAGE_BYTES ? undefined : baggageMember(text.slice(start, end));
    start = end + 1;
    if (member === undefined) continue;
    const size = member.length + (kept.length === 0 ? 0 : 1);
    if (bytes + size > MAX_BAGGAGE_BYTES) continue;
    kept.push(member);
    bytes += size;
  }
  return kept.length === 0 ? undefined : kept.join(",");
}

/** The typed client's own baggage header, read before `baggage` (as CLIENT_TRACEPARENT is before traceparent). */
export const CLIENT_BAGGAGE = "coordination-baggage";

/** The baggage a call's carrier gives an enqueue: the typed client's own header when it holds some, else the standard one, each read leniently. */
export function callerBaggageOf(carrier: TraceCarrier): string | undefined {
  return baggageOfHeader(carrier[CLIENT_BAGGAGE]) ?? baggageOfHeader(carrier.baggage);
}

/** An enqueue's input with the request's baggage (`fromHeaders`) filled in when it gives none of its own (null is none given); the input itself when nothing is added. */
export function withHeaderBaggage<T extends { baggage?: string | null | undefined }>(request: T, fromHeaders: string | undefined): T {
  if (fromHeaders === undefined || (request.baggage !== undefined && request.baggage !== null)) return request;
  return copyWith(request, { baggage: fromHeaders });
}

/** What a task keeps of an enqueue's (validated) baggage: the form parseBaggage gives, or null. */
export function storedBaggage(request: { baggage?: string | null | undefined }): string | null {
  if (request.baggage === undefined || request.baggage === null) return null;
  const parsed = parseBaggage(request.baggage);
  return parsed.ok ? parsed.value : null;
}

/** A W3C trace id: 32 lowercase hex digits, not all zeros. */
export const TRACE_ID = /^(?!0{32})[0-9a-f]{32}$/;

/** SQL bounds of the traceparents of trace `traceId` (version-00 form, as stored): BETWEEN ? AND ?. */
export const traceRange = (traceId: string): [string, string] => [`00-${traceId}-0000000000000000-00`, `00-${traceId}-ffffffffffffffff-ff`];
