-- A release sent again (its answer lost) was a 409: the task was pending, and nothing said that
-- its lease had ended by its holder's own release rather than expired, or been taken back. A
-- release now keeps the lease it ended and who held it, "LEASETOKEN:AGENTID" (tasks.release in
-- src/tasks/task-commands.ts): the same agent releasing the same lease again, while the task is
-- still pending under it (only a claim moves leaseToken on), gets the same answer.
-- AlterTable
ALTER TABLE "tasks" ADD COLUMN "releasedBy" TEXT;
