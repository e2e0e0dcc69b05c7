-- An agent's held tasks, claimed ones only. Finished tasks keep their leaseOwner (who ran them),
-- so the full index grew by a row per task and every claim inserted at the end of its agent's
-- range: a page per agent claiming in a commit (5.5 of a claim+complete commit's ~40 WAL
-- frames). Its readers (held tasks of an agent, stealing from an agent) ask for claimed ones only.

-- DropIndex
DROP INDEX "tasks_leaseOwner_idx";

-- CreateIndex
CREATE INDEX "tasks_claimed_owner_idx" ON "tasks"("leaseOwner") WHERE status = 'claimed';
