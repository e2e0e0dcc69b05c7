// Types the client's modules share, inferred from the server's router (type-only imports: no
// server code is bundled into the client).
import type { TRPCClient } from "@trpc/client";
import type { inferRouterInputs, inferRouterOutputs } from "@trpc/server";
import type { AppRouter } from "../src/trpc/app-router.js";

export type { AppRouter };
export type { JsonObject, JsonValue } from "../src/json-types.js";
export type { ErrorCode } from "../src/errors.js";
export type CoordinationApi = TRPCClient<AppRouter>;
export type RouterInputs = inferRouterInputs<AppRouter>;
export type RouterOutputs = inferRouterOutputs<AppRouter>;
/** A task as a claim hands it out: the task, its lease, and the memories recalled for it. */
export type ClaimedTask = NonNullable<RouterOutputs["tasks"]["claim"]>;
