-- A claim sent again (its answer lost on the way) leased another task: the agent held two, and
-- the one it never saw ran out its lease and was charged an attempt. A lease now keeps the key of
-- the call that took it (src/tasks/claim-keys.ts): a complete-and-claim's ("after:" and the task
-- it completed) or a claim's own idempotencyKey ("claim:" and the key), then the leaseToken it
-- was written for (a lease that moved on since, leased again by a version that does not write
-- the column, never matches) and how many answers handed the lease out (a lost one gives the
-- lease back only if it was the only one). The same call sent again finds the leases its agent
-- still holds under that key, in the agent's claimed-tasks index (now keyed by it too: a keyed
-- claim reads none of the agent's other rows), and answers them again.
-- AlterTable
ALTER TABLE "tasks" ADD COLUMN "claimKey" TEXT;

-- DropIndex
DROP INDEX "tasks_claimed_owner_idx";

-- CreateIndex
CREATE INDEX "tasks_claimed_owner_idx" ON "tasks"("leaseOwner", "claimKey") WHERE status = 'claimed';
