-- An agent seen offline loses its leases. One write released them all: an agent that had claimed
-- 20,000 tasks held every other write 3.5-4.9 s. Its offline write now frees 500 and marks the
-- agent: every claim it took at or before leasesForfeitedAt is forfeit, and goes back 500 a write
-- after it. The mark, not the agent's health, says which: an agent back (a heartbeat, or a claim
-- under the same id after a restart) keeps the claims it takes since, and still loses the old ones.
-- AlterTable
ALTER TABLE "agents" ADD COLUMN "leasesForfeitedAt" DATETIME;

-- CreateIndex
CREATE INDEX "agents_forfeit_idx" ON "agents"("leasesForfeitedAt") WHERE leasesForfeitedAt IS NOT NULL;
