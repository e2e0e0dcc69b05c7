-- A schedule's bounds and its overlap policy (schedules.set): endAt, no run falls due after it;
-- maxRuns, no run after that many were claimed; overlap, whether a run is enqueued while the last
-- one still runs ("allow", as before) or only once it settled, the times that fell due meanwhile
-- skipped ("skip"). A schedule set before keeps running as it did: no bound, overlap "allow".
ALTER TABLE "schedules" ADD COLUMN "endAt" DATETIME;
ALTER TABLE "schedules" ADD COLUMN "maxRuns" INTEGER;
ALTER TABLE "schedules" ADD COLUMN "overlap" TEXT NOT NULL DEFAULT 'allow';
