-- A note or lesson sent again after its answer was lost (memory.remember's idempotencyKey): the
-- same writer's same key finds the memory it stored, not a second one that recall would hand out
-- twice. Null for every memory stored before, and for execution records: the partial index holds
-- keyed memories only, so a run's record writes no entry in it.
ALTER TABLE "memories" ADD COLUMN "idempotencyKey" TEXT;
CREATE UNIQUE INDEX "memories_idempotency_idx" ON "memories"("agentId", "idempotencyKey") WHERE idempotencyKey IS NOT NULL;
