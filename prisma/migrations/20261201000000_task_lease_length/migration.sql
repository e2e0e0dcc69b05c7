-- A heartbeat that names no length renews the lease by the length it was claimed with, not by
-- the server's default: a task claimed for ten minutes is not cut to thirty seconds by it.
-- AlterTable
ALTER TABLE "tasks" ADD COLUMN "leaseMs" INTEGER;
