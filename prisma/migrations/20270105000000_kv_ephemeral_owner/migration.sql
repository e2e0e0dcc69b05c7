-- Keys tied to an agent's life (kv.set's ephemeral): the agent whose life the key is tied to. It
-- is deleted, with its kv.deleted, in the write that sees that agent offline or deregisters it.
-- Null: a key that outlives its writer (every key stored before).
ALTER TABLE "kv" ADD COLUMN "ephemeralOwner" TEXT;

-- An agent's keys by key: read when it goes, counted against maxEphemeralKeysPerAgent at each
-- ephemeral set, and paged by kv.list's ephemeralOwner from a cursor with no sort (keys of no
-- owner are not in it).
CREATE INDEX "kv_ephemeralOwner_idx" ON "kv"("ephemeralOwner", "key") WHERE ephemeralOwner IS NOT NULL;
