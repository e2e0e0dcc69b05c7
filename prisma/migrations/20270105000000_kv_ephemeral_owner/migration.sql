-- Keys tied to an agent's life (kv.set's ephemeral): the agent whose life the key is tied to. It
-- is deleted, with its kv.deleted, in the write that sees that agent offline or deregisters it.
-- Null: a key that outlives its writer (every key stored before).
ALTER TABLE "kv" ADD COLUMN "ephemeralOwner" TEXT;

-- An agent's keys, read when it goes and counted against maxEphemeralKeysPerAgent at each
-- ephemeral set (keys of no owner are not in it).
CREATE INDEX "kv_ephemeralOwner_idx" ON "kv"("ephemeralOwner") WHERE ephemeralOwner IS NOT NULL;
