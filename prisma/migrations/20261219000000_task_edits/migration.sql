-- When an operator last changed a task (tasks.update, tasks.promote), which moves updatedAt too:
-- a release sent again (its answer lost) reads its delay from runAt and updatedAt, which such a
-- change leaves saying nothing of it. Null: never changed so (every task stored before).
ALTER TABLE "tasks" ADD COLUMN "editedAt" DATETIME;
