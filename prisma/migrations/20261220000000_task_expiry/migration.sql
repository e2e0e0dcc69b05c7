-- A task's expiry (tasks.enqueue's expiresAt or ttlMs): no run of it starts after this time. One
-- still waiting to run then (pending, a retry's backoff, waiting for its dependencies) is
-- cancelled by the expiry job, which reads the index below: only tasks given an expiry are in it,
-- so tasks without one (every task stored before) cost it nothing. Null: it never expires.
ALTER TABLE "tasks" ADD COLUMN "expiresAt" DATETIME;
-- The expiry it was enqueued with (null: none; every task stored before had none), whatever a
-- requeue (which drops an expiry that passed) or tasks.update made of it since: an enqueue sent
-- again with its idempotencyKey is compared with what it asked for.
ALTER TABLE "tasks" ADD COLUMN "enqueuedExpiresAt" DATETIME;
CREATE INDEX "tasks_expiring_idx" ON "tasks"("expiresAt") WHERE status IN ('pending', 'waiting') AND expiresAt IS NOT NULL;
