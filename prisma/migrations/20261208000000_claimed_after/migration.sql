-- A complete-and-claim sent again (its first answer lost on the way) claimed another task: the
-- agent held two, and the one it never saw ran out its lease and was charged an attempt. The task
-- a complete-and-claim leases now names the task whose complete claimed it, so the same call sent
-- again hands out the same lease instead. Set by every claim (null for a plain one).
-- AlterTable
ALTER TABLE "tasks" ADD COLUMN "claimedAfter" TEXT;
