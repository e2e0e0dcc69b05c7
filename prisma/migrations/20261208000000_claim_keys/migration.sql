-- A claim sent again (its answer lost on the way) leased another task: the agent held two, and
-- the one it never saw ran out its lease and was charged an attempt. A lease now keeps the key of
-- the call that took it: a complete-and-claim's ("after:" and the task it completed) or a claim's
-- own idempotencyKey ("claim:" and the key). The same call sent again finds the leases its agent
-- still holds under that key and answers them again instead of leasing others. Set by every
-- claim (null for one with no key).
-- AlterTable
ALTER TABLE "tasks" ADD COLUMN "claimKey" TEXT;
