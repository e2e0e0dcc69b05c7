// The root router: composes the capability routers and the health check. Its type is what
// the client (client/) imports to get end-to-end types.
import { z } from "zod";
import { agentRouter } from "../agents/agent-router.js";
import { OPEN } from "../auth/access.js";
import { tokenRouter } from "../auth/token-router.js";
import { eventRouter } from "../events/event-router.js";
import { memoryRouter } from "../memory/memory-router.js";
import { taskRouter } from "../tasks/task-router.js";
import { queueRouter } from "../tasks/queue-router.js";
import { scheduleRouter } from "../schedules/schedule-router.js";
import { lockRouter } from "../locks/lock-router.js";
import { semaphoreRouter } from "../locks/semaphore-router.js";
import { webhookRouter } from "../webhooks/webhook-router.js";
import { kvRouter } from "../kv/kv-router.js";
import { VERSION } from "../version.js";
import { shippedSchema } from "../db/migrate.js";

/** Read once: the migrations shipped with this build. */
const SCHEMA = shippedSchema();
import type { ProcedureDefinition } from "../rest/direct-call.js";
import { inputShape } from "../rest/rest-input.js";
import { procedure, router } from "./init.js";

const startedAt = Date.now();

const healthSchema = z.object({
  status: z.literal("ok"),
  version: z.string(),
  schema: z.string().describe("The newest database migration this build ships (its schema version): two builds of one version number differ by it"),
  uptimeMs: z.number(),
  db: z.literal("ok"),
  writeWaitMs: z
    .number()
    .describe(
      "How long the oldest write under way has waited for its answer, in ms (0 with none). Past busyTimeoutMs another process holds the database's write lock, or the disk stalls: writes wait, and those that wait past busyTimeoutMs answer DATABASE_LOCKED",
    ),
});

export const appRouter = router({
  health: procedure
    .meta({ access: OPEN, rest: { method: "GET", path: "/health", tags: ["health"], summary: "Health check (queries the database; 503 with the reason while writes fail)", errors: ["DISK_FULL", "READ_ONLY", "IO_ERROR", "DATABASE_REPLACED"] } })
    .input(z.strictObject({}).optional())
    .output(healthSchema)
    .query(async ({ ctx }) => {
      // A round trip to the database file, on the reader thread: never waits behind writes. It
      // also notices a database file deleted or replaced under the server (DATABASE_REPLACED).
      // A writer thread that died fails it too: the server could answer reads but take no write.
      const { db } = ctx.services;
      if (db.failure) throw db.failure;
      await db.read("health.check", undefined);
      // While writes are failing (a full disk, a read-only file, I/O errors), a small write says
      // whether they work again: /health is 503 with the reason until one does (and, for a full
      // disk, until the disk has room again: faults.ts).
      if (db.faults.current) {
        await db.write("health.probe", undefined);
        if (db.faults.current) throw db.faults.current;
      }
      return { status: "ok" as const, version: VERSION, schema: SCHEMA, uptimeMs: Date.now() - startedAt, db: "ok" as const, writeWaitMs: db.writeWaitMs };
    }),
  tasks: taskRouter,
  queues: queueRouter,
  schedules: scheduleRouter,
  events: eventRouter,
  agents: agentRouter,
  memory: memoryRouter,
  locks: lockRouter,
  semaphores: semaphoreRouter,
  webhooks: webhookRouter,
  kv: kvRouter,
  tokens: tokenRouter,
});

export type AppRouter = typeof appRouter;

/**
 * Every procedure's tRPC definition by dotted path (at run time `_def.procedures` is flat): what
 * the transports read of a procedure (its type, access, schemas and resolver) before they call it.
 */
export const PROCEDURES: ReadonlyMap<string, ProcedureDefinition> = new Map(
  Object.entries(appRouter._def.procedures as unknown as Record<string, { _def: ProcedureDefinition }>).map(([path, { _def }]) => {
    // A procedure that says nothing about who may call it would be refused on every call with
    // credentials on, and callable by all without: neither is a decision. Refuse to load instead.
    if (_def.meta?.access === undefined) throw new Error(`procedure ${path} declares no access (meta.access, src/auth/access.ts)`);
    const { writesKey } = _def.meta.access;
    if (writesKey !== undefined) assertKeyField(path, writesKey, _def.inputs);
    return [path, _def];
  }),
);

/**
 * authorize checks a key against a credential's kvPrefixes on the raw input, before the schema,
 * and lets a field that is no string through to the schema's 400. That holds only if the schema
 * takes nothing but a string there, as sent: a field it does not have, an optional one, a default
 * or a transform (a trim, a normalization) would let a key be written that was never checked, or
 * one other than the key checked. Such a procedure is refused at load instead.
 */
export function assertKeyField(path: string, field: string, inputs: readonly unknown[]): void {
  const schema = inputs.length === 1 ? inputShape(inputs[0] as Parameters<typeof inputShape>[0])[field] : undefined;
  type Def = { type?: string; checks?: Array<{ _zod: { def: { check?: string } } }> };
  const def = (schema as { _zod?: { def?: Def } } | undefined)?._zod?.def;
  // zod's trim, toLowerCase, normalize are "overwrite" checks of a string schema: they change the value.
  const rewrites = (def?.checks ?? []).some((check) => check._zod.def.check === "overwrite");
  if (def?.type !== "string" || rewrites) {
    throw new Error(
      `procedure ${path}: access.writesKey names ${JSON.stringify(field)}, which its input schema must require as a string taken as sent (no optional, default, transform, trim or normalize): it is ${rewrites ? "a string it rewrites" : (def?.type ?? "absent")}`,
    );
  }
}
