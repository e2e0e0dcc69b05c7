-- The health monitor ran every second over every agent ever registered (health != its CASE):
-- 57 ms at 100,000 agents. It now reads ranges of (health, lastHeartbeatAt): only the agents
-- whose health may have changed. The old index on health alone is this one's prefix.
-- DropIndex
DROP INDEX "agents_health_idx";

-- CreateIndex
CREATE INDEX "agents_health_lastHeartbeatAt_idx" ON "agents"("health", "lastHeartbeatAt");
