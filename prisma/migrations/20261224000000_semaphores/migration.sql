-- Semaphores (semaphores.acquire): a name that up to a limit of agents hold at once, each by a
-- permit: a lease it renews, with a fencing token drawn from the same counter as named locks'
-- (system_state 'locks.fencingToken': larger than every token before it, of any lock or
-- semaphore). A row is a permit held (or one whose lease ran out, until the expiry job or the
-- next acquire of its name takes it away): a released permit has none. permitLimit: the limit the
-- acquire that took it asked for; a new permit is granted only while fewer permits are held than
-- the smallest limit among its own and those held (one holder's limit binds every newcomer).
-- idempotencyKey: the acquire's (null: none); the same agent acquiring with the same key gets this
-- permit again. answers: the answers that handed it out; only the last one's loss gives it back.
CREATE TABLE "semaphore_permits" (
    "name" TEXT NOT NULL,
    "fencingToken" INTEGER NOT NULL,
    "holder" TEXT NOT NULL,
    "permitLimit" INTEGER NOT NULL,
    "acquiredAt" DATETIME NOT NULL,
    "leaseMs" INTEGER NOT NULL,
    "expiresAt" DATETIME NOT NULL,
    "idempotencyKey" TEXT,
    "answers" INTEGER NOT NULL DEFAULT 1,

    PRIMARY KEY ("name", "fencingToken")
);

-- The expiry job's range read (nothing to read when no lease ran out).
CREATE INDEX "semaphore_permits_expiresAt_idx" ON "semaphore_permits"("expiresAt");

-- An agent's permits: counted against maxLocksPerAgent, listed by holder, released at deregistration.
CREATE INDEX "semaphore_permits_holder_name_idx" ON "semaphore_permits"("holder", "name");
