// Turns any error a procedure or transport raises into the one public shape, { code, message,
// details? } (src/errors.ts): domain errors keep their code, zod's validation errors become
// INVALID_INPUT with one sentence per field, tRPC's own errors get their code from the list,
// and anything unexpected is INTERNAL with no detail (the server logs it).
import { TRPCError } from "@trpc/server";
import type { TRPC_ERROR_CODE_KEY } from "@trpc/server/rpc";
import { ZodError, type core } from "zod";
import { CoordinationError, ERROR_STATUS, type ErrorBody, type ErrorCode, type FieldIssue } from "../errors.js";

/** The tRPC code carrying each HTTP status (tRPC derives the response status from it). */
const TRPC_CODE_BY_STATUS: Record<number, TRPC_ERROR_CODE_KEY> = {
  400: "BAD_REQUEST",
  401: "UNAUTHORIZED",
  403: "FORBIDDEN",
  404: "NOT_FOUND",
  405: "METHOD_NOT_SUPPORTED",
  409: "CONFLICT",
  412: "PRECONDITION_FAILED",
  413: "PAYLOAD_TOO_LARGE",
  415: "UNSUPPORTED_MEDIA_TYPE",
  429: "TOO_MANY_REQUESTS",
  500: "INTERNAL_SERVER_ERROR",
  503: "SERVICE_UNAVAILABLE",
};

export const trpcCodeOf = (code: ErrorCode): TRPC_ERROR_CODE_KEY => TRPC_CODE_BY_STATUS[ERROR_STATUS[code]] ?? "INTERNAL_SERVER_ERROR";

/** tRPC's own error codes, for errors raised before or outside our procedures. */
const CODE_BY_TRPC: Partial<Record<TRPC_ERROR_CODE_KEY, ErrorCode>> = {
  PARSE_ERROR: "MALFORMED_JSON",
  BAD_REQUEST: "INVALID_INPUT",
  NOT_FOUND: "ROUTE_NOT_FOUND",
  METHOD_NOT_SUPPORTED: "METHOD_NOT_ALLOWED",
  PAYLOAD_TOO_LARGE: "PAYLOAD_TOO_LARGE",
  UNSUPPORTED_MEDIA_TYPE: "UNSUPPORTED_MEDIA_TYPE",
  UNAUTHORIZED: "UNAUTHORIZED",
  FORBIDDEN: "FORBIDDEN",
  TOO_MANY_REQUESTS: "LIMIT_EXCEEDED",
  SERVICE_UNAVAILABLE: "SHUTTING_DOWN",
};

/** A tRPC error's `data`: the one error shape's code and details, its HTTP status, the procedure's path (init.ts's errorFormatter, http-fast-path.ts). */
export function trpcErrorData(body: ErrorBody, path: string | undefined) {
  return {
    code: body.code,
    httpStatus: ERROR_STATUS[body.code],
    ...(path === undefined ? {} : { path }),
    ...(body.details === undefined ? {} : { details: body.details }),
  };
}

/** What to log of an INTERNAL error: what tRPC wrapped, or the error itself. */
export const failureOf = (error: unknown): unknown => (error instanceof TRPCError ? (error.cause ?? error) : error);

export function toErrorBody(error: unknown): ErrorBody {
  const cause = error instanceof TRPCError ? error.cause : error;
  if (cause instanceof CoordinationError) return withIssues({ code: cause.code, message: cause.message, ...(cause.details ? { details: cause.details } : {}) });
  // The server's own failure, whatever it wraps: a schema its answer did not pass (output
  // validation), a parse inside a resolver. Not the client's input.
  if (error instanceof TRPCError && error.code === "INTERNAL_SERVER_ERROR") return { code: "INTERNAL", message: "Internal server error" };
  if (cause instanceof ZodError) return invalidInput(cause.issues);
  // tRPC's JSON.parse of a request body failed: a BAD_REQUEST caused by a SyntaxError.
  if (error instanceof TRPCError && cause instanceof SyntaxError) return { code: "MALFORMED_JSON", message: `Malformed JSON body: ${cause.message}` };
  // tRPC's own batch bound (maxBatchSize, the maxBatchCalls setting): a limit, not bad input.
  if (error instanceof TRPCError && error.message === "Batch call exceeds maximum size") {
    return { code: "LIMIT_EXCEEDED", message: "Batch call exceeds maximum size (the server's maxBatchCalls); send fewer calls per batch" };
  }
  if (error instanceof TRPCError && error.code !== "INTERNAL_SERVER_ERROR") {
    return withIssues({ code: CODE_BY_TRPC[error.code] ?? "INTERNAL", message: error.message });
  }
  return { code: "INTERNAL", message: "Internal server error" };
}

/**
 * INVALID_INPUT naming each field: "priority: must be at least 0; queue: is required". In
 * `details.issues` every issue has the path of the field it is about; an unknown field's is the
 * field itself (zod reports it on the object that holds it), one issue per field.
 */
export function invalidInput(issues: readonly core.$ZodIssue[]): ErrorBody {
  const sentences: string[] = [];
  const described: FieldIssue[] = [];
  for (const issue of essential(issues)) {
    const path = pathOf(issue.path);
    const message = describeIssue(issue);
    // An issue of the whole input (an unknown top-level field) needs no field name in front.
    sentences.push(path === "input" ? message : `${path}: ${message}`);
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) described.push({ path: pathOf([...issue.path, key]), message: "unknown field" });
    } else {
      described.push({ path, message });
    }
  }
  return { code: "INVALID_INPUT", message: sentences.join("; "), details: { issues: described } };
}

/**
 * The issues worth saying, one per thing to fix: zod goes on checking a value of the wrong type
 * (an array given for a name also fails the name's minimum length) and reports a safe-integer
 * bound next to the field's own; a wrong type is all there is to say about its field, and of
 * two bounds on one field the tighter one.
 */
function essential(issues: readonly core.$ZodIssue[]): core.$ZodIssue[] {
  const key = (issue: core.$ZodIssue) => issue.path.map(String).join("\u0000");
  const wrongType = new Set(issues.filter((issue) => issue.code === "invalid_type").map(key));
  const kept: core.$ZodIssue[] = [];
  const bounds = new Map<string, number>();
  for (const issue of issues) {
    if (issue.code !== "invalid_type" && wrongType.has(key(issue))) continue;
    if (issue.code === "too_big" || issue.code === "too_small") {
      const slot = `${issue.code} ${key(issue)}`;
      const at = bounds.get(slot);
      if (at !== undefined) {
        const held = kept[at] as typeof issue;
        const tighter = issue.code === "too_big" ? Number(issue.maximum) < Number((held as core.$ZodIssueTooBig).maximum) : Number(issue.minimum) > Number((held as core.$ZodIssueTooSmall).minimum);
        if (tighter) kept[at] = issue;
        continue;
      }
      bounds.set(slot, kept.length);
    }
    kept.push(issue);
  }
  return kept;
}

/** "a string", "an integer", "an array": the type zod expected, in words. */
function aType(expected: string): string {
  if (expected === "int") return "an integer";
  if (expected === "null") return "null";
  return `${/^[aeiou]/.test(expected) ? "an" : "a"} ${expected}`;
}

/** Every INVALID_INPUT carries `details.issues`; one raised without (a sentence about the whole input) gets it here. */
function withIssues(body: ErrorBody): ErrorBody {
  if (body.code !== "INVALID_INPUT" || Array.isArray(body.details?.["issues"])) return body;
  return { ...body, details: { ...body.details, issues: [{ path: "input", message: body.message } satisfies FieldIssue] } };
}

const PLAIN_KEY = /^[A-Za-z_$][\w$]*$/;

/** "payload.items[2].name", or "input" for the whole input. */
export function pathOf(path: readonly PropertyKey[]): string {
  let text = "";
  // A key that is not a plain name (empty, or with a dot, a space, a bracket: a JSON object may
  // have any) is written quoted, ["a.b"], so a path never reads as another.
  for (const key of path) {
    if (typeof key === "number") text += `[${key}]`;
    else if (typeof key === "string" && !PLAIN_KEY.test(key)) text += `[${JSON.stringify(key)}]`;
    else text += text === "" ? String(key) : `.${String(key)}`;
  }
  return text || "input";
}

const plural = (n: number | bigint, word: string) => `${n} ${word}${Number(n) === 1 ? "" : "s"}`;

/** What zod received, which it says only in its message ("… received undefined"). */
const receivedIn = (issue: core.$ZodIssue): string | undefined => /received (\w+)/.exec(issue.message)?.[1];

/**
 * Whether zod refused a Date because its time is NaN (new Date("tomorrow")): only an in-process
 * caller can give one (superjson cannot write it), and "must be a date (got Date)" said nothing.
 */
const invalidDate = (issue: core.$ZodIssue | undefined): boolean => issue?.code === "invalid_type" && issue.expected === "date" && "received" in issue && issue.received === "Invalid Date";
const INVALID_DATE = "must be a valid Date (got an Invalid Date, whose time is NaN)";

/** One issue as a short sentence about the field, in words a client can act on. */
function describeIssue(issue: core.$ZodIssue): string {
  switch (issue.code) {
    case "invalid_type": {
      if (invalidDate(issue)) return INVALID_DATE;
      const received = receivedIn(issue);
      if (received === "undefined") return "is required";
      // A number that is not an integer is still a number: "(got number)" would say nothing.
      const got = received && !(issue.expected === "int" && received === "number") ? ` (got ${received})` : "";
      return `must be ${aType(issue.expected)}${got}`;
    }
    case "invalid_union": {
      // Each accepted form refused the value by its type: name the forms ("a date, a string or a number").
      const forms = issue.errors.map((branch) => (branch.length === 1 && branch[0]!.code === "invalid_type" && branch[0]!.path.length === 0 ? branch[0] : undefined));
      if (forms.length === 0 || forms.some((form) => form === undefined)) return "matches none of the forms this field accepts";
      if (forms.some(invalidDate)) return INVALID_DATE;
      const names = forms.map((form) => aType((form as core.$ZodIssueInvalidType).expected));
      const received = receivedIn(forms[0]!);
      return `must be ${names.length === 1 ? names[0] : `${names.slice(0, -1).join(", ")} or ${names.at(-1)}`}${received ? ` (got ${received})` : ""}`;
    }
    case "unrecognized_keys":
      return `unknown field${issue.keys.length === 1 ? "" : "s"} ${issue.keys.map((k) => `"${k}"`).join(", ")}`;
    case "too_small":
    case "too_big": {
      const bound = issue.code === "too_small" ? issue.minimum : issue.maximum;
      const [least, exclusive] = issue.code === "too_small" ? ["at least", "greater than"] : ["at most", "less than"];
      if (issue.origin === "string") return `must be ${least} ${plural(bound, "character")} long`;
      if (issue.origin === "array") return `must have ${least} ${plural(bound, "item")}`;
      return `must be ${issue.inclusive === false ? exclusive : least} ${bound}`;
    }
    case "invalid_value":
      return `must be ${issue.values.length === 1 ? JSON.stringify(issue.values[0]) : `one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`}`;
    case "not_multiple_of":
      return issue.divisor === 1 ? "must be an integer" : `must be a multiple of ${issue.divisor}`;
    default:
      return issue.message;
  }
}
