-- Shared state (kv.set, kv.get, kv.delete, kv.list): keys agents read and write, each a JSON
-- value with a version. `version` is drawn from one counter for every key (system_state
-- 'kv.version'), so a key deleted and set again never repeats a version a reader saw: a
-- compare-and-set (ifVersion) or a watch (afterVersion) cannot mistake a new value for an old one.
-- `previousVersion`: the version this write replaced (0: it created the key). `idempotencyKey`:
-- the write's own key (null: none), so a set sent again after its answer was lost finds its own
-- write while no other came after it (its content would not do: two writers of one agent that read
-- one version may compute one value). `expiresAt` (Unix ms; null: never): the key reads
-- as absent from then; the expiry job, or the next write of the key, deletes it with kv.expired.
CREATE TABLE "kv" (
    "key" TEXT NOT NULL PRIMARY KEY,
    "value" TEXT NOT NULL,
    "version" INTEGER NOT NULL,
    "previousVersion" INTEGER NOT NULL,
    "createdAt" DATETIME NOT NULL,
    "updatedAt" DATETIME NOT NULL,
    "updatedBy" TEXT,
    "idempotencyKey" TEXT,
    "expiresAt" DATETIME
);

-- The expiry job's range read (keys without an expiry are not in it).
CREATE INDEX "kv_expiresAt_idx" ON "kv"("expiresAt") WHERE expiresAt IS NOT NULL;
