-- Named locks (locks.acquire): at most one agent holds a name at a time, for a lease it renews;
-- each grant gets a fencing token larger than every one before it (of any name), so whatever the
-- lock guards can refuse a holder whose lease ran out and was granted to another since. A row is
-- a lock held (or one whose lease ran out, until the expiry job or the next acquire takes it
-- away): a released lock has none. The last token granted is kept in system_state
-- ('locks.fencingToken'), so tokens keep growing whatever rows are deleted. idempotencyKey: the
-- acquire's (null: none); the same agent acquiring with the same key (or none, as the grant had
-- none) gets this grant again, and any other acquire waits for it. answers: the answers that handed
-- this grant out (the first, and each acquire sent again): one that did not reach its caller takes
-- one away, and only the last one's loss releases the grant (another answer may have arrived).
CREATE TABLE "locks" (
    "name" TEXT NOT NULL PRIMARY KEY,
    "holder" TEXT NOT NULL,
    "fencingToken" INTEGER NOT NULL,
    "acquiredAt" DATETIME NOT NULL,
    "leaseMs" INTEGER NOT NULL,
    "expiresAt" DATETIME NOT NULL,
    "idempotencyKey" TEXT,
    "answers" INTEGER NOT NULL DEFAULT 1
);

-- The expiry job's range read (nothing to read when no lease ran out).
CREATE INDEX "locks_expiresAt_idx" ON "locks"("expiresAt");

-- An agent's locks: counted against maxLocksPerAgent, listed by holder, released at deregistration.
CREATE INDEX "locks_holder_name_idx" ON "locks"("holder", "name");
