// A REST request runs its procedure's own steps in order: the access check, the input schema,
// delivery confirmation for calls that take something for their caller (a client watch for calls
// that only wait), the resolver and the output schema. They are the functions and schemas
// tRPC's middlewares run for the same procedure (src/trpc/init.ts), so both transports validate,
// refuse and answer alike; what REST skips is tRPC's middleware chain itself, whose per-call
// object spreads and closures were a tenth of the event loop under REST load (bench/RESULTS.md).
// Errors are thrown as tRPC's middlewares throw them, and take the one error shape in the REST
// handler.
import { TRPCError } from "@trpc/server";
import { CoordinationError } from "../errors.js";
import { ZodError, type z } from "zod";
import type { Services } from "../services.js";
import type { Context } from "../trpc/context.js";
import { admitCall, startDelivery, startWatch, takesForCaller, watchesClient } from "../trpc/init.js";
import type { Meta } from "../trpc/meta.js";
import { copyWith } from "../copy-with.js";

/** What a procedure's resolver receives (the part our resolvers read). */
interface ResolverOptions {
  ctx: Context & { services: Services; call?: unknown };
  input: unknown;
  path: string;
  type: "query" | "mutation" | "subscription";
  signal: AbortSignal | undefined;
}

/** The procedure definition tRPC keeps (`_def`): what the direct call needs of it. */
export interface ProcedureDefinition {
  meta?: Meta;
  inputs: z.ZodType[];
  output?: z.ZodType;
  type: "query" | "mutation" | "subscription";
  middlewares: unknown[];
  resolver?: (options: ResolverOptions) => unknown;
}

export type DirectCall = (ctx: Context, rawInput: unknown) => Promise<unknown>;

/** The direct call of the procedure at `path`; throws at start-up if the definition lacks a part it needs. */
export function directCall(path: string, def: ProcedureDefinition): DirectCall {
  const { meta, output, type, resolver } = def;
  const input = def.inputs[0];
  if (typeof resolver !== "function") throw new Error(`${path}: no resolver in its tRPC definition`);
  if (def.inputs.length > 1) throw new Error(`${path}: more than one input schema`);
  const takes = takesForCaller(def.middlewares);
  const watches = watchesClient(def.middlewares);
  return async (ctx, rawInput) => {
    const admitted = admitCall(ctx, meta, path, rawInput, type);
    const delivery = takes ? startDelivery(ctx, path, undefined) : undefined;
    const watch = watches ? startWatch(ctx, undefined) : undefined;
    let answered = false;
    try {
      let parsed: unknown;
      try {
        // As over tRPC, a procedure without an input schema gets none.
        parsed = input === undefined ? undefined : await parse(input, admitted);
      } catch (cause) {
        throw new TRPCError({ code: "BAD_REQUEST", cause });
      }
      const services = ctx.core as Services;
      let data: unknown;
      try {
        const call = delivery?.call ?? watch?.call;
        data = await resolver({ ctx: copyWith(ctx, call ? { services, call } : { services }), input: parsed, path, type, signal: undefined });
      } catch (error) {
        // As tRPC does: what is neither a domain error nor tRPC's own is the server's failure.
        if (error instanceof CoordinationError || error instanceof TRPCError) throw error;
        throw new TRPCError({ code: "INTERNAL_SERVER_ERROR", cause: error });
      }
      let answer: unknown = data;
      if (output !== undefined) {
        try {
          answer = await parse(output, data);
        } catch (cause) {
          throw new TRPCError({ code: "INTERNAL_SERVER_ERROR", message: "Output validation failed", cause });
        }
      }
      answered = true;
      return answer;
    } finally {
      delivery?.settle(answered);
      watch?.dispose();
    }
  };
}

/** Synchronously where the schema allows (all of ours do), as tRPC's parser does; else asynchronously. */
function parse(schema: z.ZodType, value: unknown): unknown {
  try {
    return schema.parse(value);
  } catch (error) {
    if (error instanceof ZodError) throw error;
    return schema.parseAsync(value);
  }
}
