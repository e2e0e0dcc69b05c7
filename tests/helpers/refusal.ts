// What a typed-client call that must fail failed with: the error's code, details and message.
import { TRPCClientError } from "@trpc/client";

/** The error code, details and message of a call that must fail (one that succeeds fails the test). */
export async function refusal(call: Promise<unknown>): Promise<{ code: unknown; details: unknown; message: string }> {
  const error = await call.then(
    () => {
      throw new Error("the call succeeded");
    },
    (e: unknown) => e,
  );
  if (!(error instanceof TRPCClientError)) throw error;
  const data = error.data as { code: unknown; details?: unknown };
  return { code: data.code, details: data.details, message: error.message };
}
