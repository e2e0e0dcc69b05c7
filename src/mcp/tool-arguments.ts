// What LLM hosts send as a tool call's arguments that a tool's schema would refuse, though what
// they mean is plain. Function calling in "strict" modes (OpenAI's, and the adapters that convert
// tool schemas for it) makes every field required and lets the model send null for those it means
// to leave out; some hosts send `arguments: null` for a call with none. Read as left out, rather
// than refused field by field ("expected string, received null") until the model gives up.
import { z } from "zod";
import { findRefusedKey, isJsonObject, REFUSED_KEY_PROBLEM } from "../json-checks.js";

/** A tool call's arguments as the endpoint passes them on: cleaned, or refused with why. */
export type ToolArguments = { ok: true; arguments: Record<string, unknown> | undefined } | { ok: false; message: string };

/** The schema inside optional(), default(), nullable() and readonly(). */
function unwrapped(schema: z.ZodType): z.ZodType {
  let inner = schema;
  while (inner instanceof z.ZodOptional || inner instanceof z.ZodDefault || inner instanceof z.ZodNullable || inner instanceof z.ZodReadonly) {
    inner = inner._zod.def.innerType as z.ZodType;
  }
  return inner;
}

/**
 * `value` without the null fields `schema` (an object's) would refuse but may leave out, at any
 * depth of nested objects and lists of them (append_task_log's entries, whose level and data a
 * strict host fills in with null). A field that takes null keeps it (a payload or a result may be
 * JSON null); a required one keeps it too, so its refusal names it; an unknown one is left for the
 * schema to refuse.
 */
function withoutNulls(schema: z.ZodType, value: unknown): unknown {
  const object = unwrapped(schema);
  if (object instanceof z.ZodArray && Array.isArray(value)) return value.map((item) => withoutNulls(object.element as z.ZodType, item));
  if (!(object instanceof z.ZodObject) || !isJsonObject(value)) return value;
  const shape = object.shape as Record<string, z.ZodType>;
  // Entries, made an object by fromEntries: a "__proto__" key stays a key (an assignment would set
  // the copy's prototype, and the strict schema would no longer see it to refuse it).
  const kept: Array<[string, unknown]> = [];
  for (const [key, field] of Object.entries(value)) {
    const fieldSchema = Object.hasOwn(shape, key) ? shape[key] : undefined;
    if (fieldSchema === undefined) kept.push([key, field]);
    else if (field === null && fieldSchema.safeParse(undefined).success && !fieldSchema.safeParse(null).success) continue;
    else kept.push([key, withoutNulls(fieldSchema, field)]);
  }
  return Object.fromEntries(kept);
}

/**
 * A tools/call's `arguments` for the tool whose input schema is `schema` (undefined: a tool this
 * session does not have, whose call the SDK refuses by name): null is no arguments; an object
 * loses the null fields it may leave out; anything else (a string, a number, a list) is refused,
 * naming what the field must be.
 */
export function toolArguments(schema: z.ZodType | undefined, given: unknown): ToolArguments {
  if (given === undefined || given === null) return { ok: true, arguments: undefined };
  if (!isJsonObject(given)) {
    const kind = Array.isArray(given) ? "a list" : typeof given === "string" ? "a string" : `a ${typeof given}`;
    return { ok: false, message: `Invalid params: arguments must be an object of the tool's named arguments, or left out; it is ${kind}` };
  }
  // The keys superjson refuses, at any depth, as every transport refuses them: the SDK's own
  // reading of arguments (records among them: metadata) would drop a "__proto__" without a word
  // (an assignment of it sets a prototype), and the call would run without it.
  const refused = findRefusedKey(given);
  if (refused !== null) return { ok: false, message: `Invalid params: ${refused} ${REFUSED_KEY_PROBLEM}` };
  return { ok: true, arguments: schema === undefined ? given : (withoutNulls(schema, given) as Record<string, unknown>) };
}
