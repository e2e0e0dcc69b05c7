// Each query's and mutation's input is serialized (superjson) on its own, before batching. The
// batch link serializes a batch's inputs together: one it cannot serialize (a `__proto__` key
// from JSON.parse of a model's output, a getter or a toJSON that throws) failed every call batched with it,
// with an error that looked like a broken connection, so callers retried it forever. Here that
// call alone fails, with UnsendableInputError, and the others go. The batch link then takes the
// serialized input as it is: nothing is serialized twice.
import { TRPCClientError, type TRPCLink } from "@trpc/client";
import { observable } from "@trpc/server/observable";
import superjson from "superjson";
import type { AppRouter } from "./types.js";

/** A call's input could not be serialized: it was never sent, and sending it again cannot help. */
export class UnsendableInputError extends Error {
  override readonly name = "UnsendableInputError";

  /** `reason`: why the serializer refused the input (its error's message). */
  constructor(
    path: string,
    readonly reason: string,
    options?: ErrorOptions,
  ) {
    super(`${path}: the input cannot be sent: ${reason}`, options);
  }
}

/** An input already serialized by serializeInputLink, which the transports' transformer passes through. */
class SerializedInput {
  constructor(readonly wire: ReturnType<typeof superjson.serialize>) {}
}

/** A call's input as JSON, whether serializeInputLink serialized it already or not (what links after it read: which fields it names). */
export const inputJson = (input: unknown): unknown => (input instanceof SerializedInput ? input.wire.json : input);

/** The transformer of the HTTP links: superjson, but an input serializeInputLink serialized goes as it is. */
export const httpTransformer = {
  input: {
    serialize: (value: unknown) => (value instanceof SerializedInput ? value.wire : superjson.serialize(value)),
    deserialize: (value: Parameters<typeof superjson.deserialize>[0]) => superjson.deserialize(value),
  },
  output: superjson,
};

/** The UnsendableInputError a call failed with (its input could not be serialized; it was never sent), or undefined. */
export const unsendableCause = (error: unknown): UnsendableInputError | undefined =>
  error instanceof TRPCClientError && error.cause instanceof UnsendableInputError ? error.cause : undefined;

/** True when the call failed because its input could not be serialized (it was never sent). */
export const isUnsendable = (error: unknown): boolean => unsendableCause(error) !== undefined;

/** Serializes each query's and mutation's input alone; one that cannot be fails by itself. Subscriptions pass (their input changes on resume). */
export function serializeInputLink(): TRPCLink<AppRouter> {
  return () =>
    ({ op, next }) =>
      observable((observer) => {
        if (op.type === "subscription" || op.input === undefined) return next(op).subscribe(observer);
        let wire: SerializedInput;
        try {
          const serialized = superjson.serialize(op.input);
          // superjson leaves what it does not know (a class instance, an object with a toJSON of
          // its own) for the transport's JSON.stringify, whose throw came after the call was
          // under way, as a broken connection's would: a call "that may have been served",
          // retried for good by the worker. Stringified here, it fails alone, never sent.
          JSON.stringify(serialized.json);
          wire = new SerializedInput(serialized);
        } catch (error) {
          observer.error(TRPCClientError.from(new UnsendableInputError(op.path, error instanceof Error ? error.message : String(error), { cause: error })));
          return () => undefined;
        }
        return next(Object.assign({}, op, { input: wire })).subscribe(observer);
      });
}
