// tRPC's HTTP calls as the typed client sends them (a POST with a JSON body: one call, or a batch
// with `?batch=1`), answered by each procedure's own steps (src/rest/direct-call.ts: the access
// check, the input schema, delivery confirmation, the resolver, the output schema) instead of
// tRPC's fetch adapter and middleware chain. Under claim+complete load over tRPC, that adapter
// (a Fetch Request built from every IncomingMessage, a Response written back) and the chain's
// per-call object spreads were over a third of the event loop (bench/RESULTS.md, run of 07:30).
//
// The wire format is tRPC's own (https://trpc.io/docs/rpc), with superjson (answers written by
// wire-encoding.ts, the same output): inputs
// `{ json, meta? }`, answers `{ result: { data } }` or `{ error }` with the error shape of
// init.ts's errorFormatter, an array for a batch; the status is the call's, or for a batch the
// one all calls share, else 207. Everything else goes to tRPC's handler (`fallback`): GET,
// streaming (JSON Lines, asked for by trpc-accept or Accept), other content types, a body without
// a declared length or over maxBodyBytes, batches over maxBatchCalls or mixing queries and
// mutations, malformed JSON or envelopes, unknown procedures, subscriptions, any procedure with a
// middleware the direct call does not run, and a caller who cannot be authenticated (a failing
// database). A JSON body is read here first, for those too, and goes to tRPC's handler as
// `req.body`, which tRPC reads instead of the stream (one declared too large is left to it
// unread). Two differences, on purpose, whichever answers: a JSON body that is not UTF-8, or a
// query string whose escapes are not, is refused here (400, as a plain JSON answer even to a
// request that asked for JSON Lines), where tRPC would decode it with U+FFFD in place of the bad
// bytes and run the call on text its client never sent. And with credentials enforced, a caller
// without a valid one is answered 401 before its request is read, as on the REST routes, where
// tRPC's handler would first refuse a malformed input with a 400, or an unknown procedure with a
// 404.
import type { IncomingMessage, ServerResponse } from "node:http";
import { TRPCError } from "@trpc/server";
import { TRPC_ERROR_CODES_BY_KEY } from "@trpc/server/rpc";
import { unauthorized } from "../auth/access.js";
import { CoordinationError, ERROR_STATUS, errorHeaders, invalidField, type ErrorBody } from "../errors.js";
import { isJsonObject } from "../json-checks.js";
import { directCall, type DirectCall, type ProcedureDefinition } from "../rest/direct-call.js";
import { assertQueryEncoding, bodyTooLarge, mediaTypeOf, NOT_UTF8, readBody, unreadableBody } from "../server/http-io.js";
import { PROCEDURES } from "./app-router.js";
import type { Context } from "./context.js";
import { toErrorBody, trpcCodeOf, trpcErrorData } from "./error-shape.js";
import { directCallMiddlewares, takesForCaller } from "./init.js";
import { deserializeInput, serializeAnswer } from "./wire-encoding.js";

export interface FastPathOptions {
  maxBodyBytes: number;
  maxBatchCalls: number;
  createContext: (req: IncomingMessage, res: ServerResponse) => Promise<Context>;
  /** Called with each error answered, as tRPC's onError is (the server logs INTERNAL ones). */
  onError: (error: unknown, body: ErrorBody, path: string) => void;
  /** tRPC's own HTTP handler, for every request this does not answer. */
  fallback: (req: IncomingMessage & { body?: string }, res: ServerResponse) => void;
}

/** The procedures the fast path may answer: queries and mutations whose middlewares the direct call runs, every one. */
function directCalls(): Map<string, { call: DirectCall; type: ProcedureDefinition["type"] }> {
  const known = new Set<unknown>(directCallMiddlewares);
  const calls = new Map<string, { call: DirectCall; type: ProcedureDefinition["type"] }>();
  for (const [path, _def] of PROCEDURES) {
    if (_def.type === "subscription") continue;
    // tRPC appends the resolver as the last middleware (resolveMiddleware); the direct call runs `_def.resolver`.
    const middlewares = _def.middlewares as Array<{ _type?: string; name?: string }>;
    const steps = middlewares.at(-1)?.name === "resolveMiddleware" ? middlewares.slice(0, -1) : middlewares;
    const runsAll = steps.every((m) => known.has(m) || m._type === "input" || m._type === "output");
    if (runsAll && _def.inputs.length <= 1) calls.set(path, { call: directCall(path, _def), type: _def.type });
  }
  return calls;
}

/** Procedures that take something for their caller (a claim, a steal, an auto-ack poll: src/delivery/). */
const TAKING: ReadonlySet<string> = new Set([...PROCEDURES].flatMap(([path, def]) => (takesForCaller(def.middlewares) ? [path] : [])));

/** Procedures served over WebSocket only (tRPC's server-sent events are off: src/trpc/init.ts). */
const SUBSCRIPTIONS: ReadonlySet<string> = new Set([...PROCEDURES].flatMap(([path, { type }]) => (type === "subscription" ? [path] : [])));

/** Whether anyone may call the procedure at `path` (health); an unknown one is not. */
const isOpen = (path: string): boolean => PROCEDURES.get(path)?.meta?.access?.role === "open";

/** Media types tRPC's handler reads as an input that is not JSON (octet streams, form data). */
const NOT_JSON_INPUTS: ReadonlySet<string> = new Set(["application/octet-stream", "multipart/form-data"]);

const ANSWER_HEADERS = { "content-type": "application/json", vary: "trpc-accept, accept" };

/** What the fast path reads of a request, once: its URL's parts and the headers that decide who answers. */
interface RequestLine {
  /** The procedures it names, as tRPC reads them: the path decoded, then split at commas if a batch; undefined when the path's encoding is malformed. */
  paths: string[] | undefined;
  batch: boolean;
  /** The query string with its "?" ("" when none). */
  search: string;
  /** The content-type without its parameters, lower case ("" when none). */
  mediaType: string;
  /** A JSON body (content-type application/json), which tRPC would decode as text. */
  json: boolean;
  /** JSON Lines asked for, with either header: tRPC's handler streams the answer. */
  streaming: boolean;
  /** What tRPC answers as JSON Lines: its answers written one by one as they are ready. */
  jsonLines: boolean;
  /** The declared content-length; NaN when none. */
  declared: number;
}

function requestLine(req: IncomingMessage): RequestLine {
  const url = req.url ?? "";
  const q = url.indexOf("?");
  const search = q === -1 ? "" : url.slice(q);
  const batch = search !== "" && new URLSearchParams(search).get("batch") === "1";
  let paths: string[] | undefined;
  try {
    const path = decodeURIComponent(url.slice("/trpc/".length, q === -1 ? undefined : q));
    paths = batch ? path.split(",") : [path];
  } catch {
    paths = undefined;
  }
  const streaming = req.headers["trpc-accept"] !== undefined || (req.headers.accept ?? "").includes("application/jsonl");
  // What tRPC's handler answers as JSON Lines (its getAcceptHeader): trpc-accept says, else Accept listing it.
  const trpcAccept = req.headers["trpc-accept"] ?? ((req.headers.accept ?? "").split(",").some((type) => type.trim() === "application/jsonl") ? "application/jsonl" : undefined);
  const mediaType = mediaTypeOf(req);
  return { paths, batch, search, mediaType, json: mediaType === "application/json", streaming, jsonLines: trpcAccept === "application/jsonl", declared: Number(req.headers["content-length"]) };
}

export function createTrpcFastPath(options: FastPathOptions) {
  const calls = directCalls();

  /** The direct calls for the request, or undefined when tRPC's handler must take it. */
  const plan = (req: IncomingMessage, line: RequestLine): { paths: string[]; batch: boolean } | undefined => {
    if (req.method !== "POST" || !line.json || line.streaming) return undefined;
    if (!Number.isInteger(line.declared) || line.declared > options.maxBodyBytes) return undefined;
    if (line.search !== "" && line.search !== "?batch=1") return undefined;
    const { paths, batch } = line;
    if (paths === undefined || (!batch && paths.length !== 1) || paths.length > options.maxBatchCalls) return undefined;
    // tRPC refuses a batch that mixes queries and mutations; its handler says so.
    const types = new Set(paths.map((path) => calls.get(path)?.type));
    return types.size === 1 && !types.has(undefined) ? { paths, batch } : undefined;
  };

  /** The same refusal for every call the request names (one, named "", when its path cannot be read). */
  const refuseAll = (res: ServerResponse, line: RequestLine, error: unknown) =>
    answer(res, line, (line.paths ?? [""]).map((path) => refusal(error, path)));

  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const line = requestLine(req);
    // Who is calling, before anything of the request is read, as on the REST routes: a caller
    // without a valid credential learns nothing about what it sent (not even that its JSON was
    // malformed), nor which procedures there are, whichever of the two handlers would answer it;
    // only a request naming open procedures alone (health) goes on: one open name in a batch
    // let the others through, to be told apart as unknown (404) or of another type (400).
    let ctx: Context | undefined;
    try {
      ctx = await options.createContext(req, res);
    } catch {
      // Who is calling could not be told (the database failing, shutdown): tRPC's handler answers that as it does.
    }
    if (ctx?.caller.kind === "anonymous" && !(line.paths !== undefined && line.paths.length > 0 && line.paths.every(isOpen))) return refuseAll(res, line, unauthorized());
    // Escapes in the query (a GET's input) that are not UTF-8: refused, where tRPC would read U+FFFD in their place.
    try {
      assertQueryEncoding(line.search);
    } catch (error) {
      return refuseAll(res, line, error);
    }
    // tRPC's handler takes these bodies as a stream or as form data, which no procedure's input
    // is: the strict schema then listed a stream's methods as unknown fields.
    if (req.method === "POST" && NOT_JSON_INPUTS.has(line.mediaType)) {
      return refuseAll(res, line, new TRPCError({ code: "UNSUPPORTED_MEDIA_TYPE", message: `Unsupported content-type "${line.mediaType}": every procedure takes application/json` }));
    }
    // Over HTTP, tRPC answered these 200 with an error event in the body: a 405 says it in the status too.
    const subscription = (line.paths ?? []).find((path) => SUBSCRIPTIONS.has(path));
    if (subscription !== undefined) return refuseAll(res, line, new TRPCError({ code: "METHOD_NOT_SUPPORTED", message: `${subscription} is served over WebSocket only` }));
    // A streamed batch (JSON Lines) writes each answer as it is ready, but a response is known
    // delivered only once it finished: what a call took (a lease, a poll's cursor) would go back
    // if the client left after reading its answer, and a task would run twice. Such a call goes
    // alone, or in a batch answered as one body (the typed client's httpBatchLink).
    const streamedTake = line.jsonLines && line.batch && line.paths !== undefined && line.paths.length > 1 ? line.paths.find((path) => TAKING.has(path)) : undefined;
    if (streamedTake !== undefined) {
      return refuseAll(
        res,
        line,
        new TRPCError({ code: "BAD_REQUEST", message: `${streamedTake} cannot be in a streamed batch (JSON Lines): its answer is known delivered only with the whole response's; send it alone, or in a batch without streaming` }),
      );
    }
    // An auto-ack poll holds its agent's consuming lock until its answer is known delivered, which
    // is once the whole response finished: a second poll of the same agent in that response waited
    // for the lock, the response for it, and the request hung until its client gave up. One poll a
    // request (the typed client sends each alone).
    if (line.batch && (line.paths ?? []).filter((path) => path === "events.poll").length > 1) {
      return refuseAll(res, line, new TRPCError({ code: "BAD_REQUEST", message: "events.poll may be in a batch once: send each poll alone (an auto-ack poll holds its agent until its answer is delivered, with the whole batch)" }));
    }
    const unreadable = req.method === "POST" ? unreadableBody(req) : undefined;
    if (unreadable !== undefined) return refuseAll(res, line, new TRPCError({ code: "UNSUPPORTED_MEDIA_TYPE", message: unreadable }));
    const tooLarge = () => {
      // The body is never read: the connection cannot carry another request after it.
      res.setHeader("connection", "close");
      return refuseAll(res, line, new TRPCError({ code: "PAYLOAD_TOO_LARGE", message: bodyTooLarge(options.maxBodyBytes) }));
    };
    // Declared too large: refused before a byte is read, naming the limit (tRPC's own 413 says only its code).
    if (req.method === "POST" && Number.isFinite(line.declared) && line.declared > options.maxBodyBytes) return tooLarge();
    const planned = plan(req, line);
    // A JSON body tRPC's handler would read is read here first, so that bytes that are not UTF-8
    // are refused (below); anything else goes to it as it came.
    if (planned === undefined && (req.method !== "POST" || !line.json)) return options.fallback(req, res);
    const read = await readBody(req, options.maxBodyBytes);
    // The client left while sending: no one to answer.
    if (read.kind === "gone") return;
    // Not UTF-8: refused, where tRPC's handler would decode it with U+FFFD in place of the bad bytes.
    if (read.kind === "not-utf8") return refuseAll(res, line, invalidField("input", NOT_UTF8));
    // A body without a declared length, over the limit: what was read is gone, and the rest is never read.
    if (read.kind === "too-large") return tooLarge();
    if (planned === undefined) return options.fallback(Object.assign(req, { body: read.text }), res);
    const inputs = parseInputs(read.text, planned);
    if (inputs === undefined || ctx === undefined) return options.fallback(Object.assign(req, { body: read.text }), res);
    const context = ctx;
    const answers = await Promise.all(
      planned.paths.map(async (path, i): Promise<Answer> => {
        try {
          const input = inputs[i];
          // An input refused as it was read fails its own call only (tRPC's handler would fail the batch).
          if (input instanceof RefusedInput) throw input.error;
          return { status: 200, item: { result: { data: serializeAnswer(await calls.get(path)!.call(context, input)) } } };
        } catch (error) {
          return refusal(error, path);
        }
      }),
    );
    answer(res, planned, answers);
  };

  /** One error for a call, shaped as tRPC's errorFormatter shapes it. */
  function refusal(error: unknown, path: string): Answer {
    const body = toErrorBody(error);
    options.onError(error, body, path);
    return { status: ERROR_STATUS[body.code], code: body.code, item: { error: serializeAnswer(errorShape(body, path)) } };
  }
}

/** Writes the answers: one call's, or a batch's array; the status they share, else 207; the error headers tRPC's handler adds (responseMeta in create-server.ts). */
function answer(res: ServerResponse, planned: { batch: boolean }, answers: Answer[]): void {
  const statuses = new Set(answers.map((one) => one.status));
  const status = statuses.size === 1 ? answers[0]!.status : 207;
  const codes = answers.flatMap((one) => (one.code === undefined ? [] : [one.code]));
  const text = JSON.stringify(planned.batch ? answers.map((one) => one.item) : answers[0]!.item);
  res.writeHead(status, Object.assign({}, ANSWER_HEADERS, errorHeaders(codes), { "content-length": Buffer.byteLength(text) }));
  res.end(text);
}

interface Answer {
  status: number;
  code?: ErrorBody["code"];
  item: unknown;
}

/** An input deserializeInput refused (a key superjson refuses): its call answers the error. */
class RefusedInput {
  constructor(readonly error: CoordinationError) {}
}

/**
 * Each call's input, deserialized as tRPC does (a RefusedInput where deserializeInput refused
 * one); undefined when the body is not what the typed client sends.
 */
function parseInputs(text: string, { paths, batch }: { paths: string[]; batch: boolean }): unknown[] | undefined {
  try {
    // Only an empty body is no input: tRPC parses anything else, and whitespace is malformed JSON.
    const body: unknown = text === "" ? undefined : JSON.parse(text);
    if (batch && !isJsonObject(body)) return undefined;
    const raw = batch ? paths.map((_, i) => (body as Record<string, unknown>)[String(i)]) : [body];
    return raw.map((value) => {
      if (value === undefined) return undefined;
      try {
        return deserializeInput(value);
      } catch (error) {
        if (error instanceof CoordinationError) return new RefusedInput(error);
        throw error;
      }
    });
  } catch {
    return undefined;
  }
}

/** The error shape init.ts's errorFormatter gives tRPC, for the same error. */
function errorShape(body: ErrorBody, path: string) {
  return { message: body.message, code: TRPC_ERROR_CODES_BY_KEY[trpcCodeOf(body.code)], data: trpcErrorData(body, path) };
}
