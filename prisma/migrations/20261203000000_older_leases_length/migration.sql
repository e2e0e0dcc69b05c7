-- A lease taken before tasks.leaseMs existed has none, so a heartbeat naming no length renewed it
-- by the server's default (30 s), not by the length it was claimed with: a task claimed for ten
-- minutes by an agent that heartbeats every few minutes lost its lease after an upgrade. Every
-- version before that column set leaseExpiresAt = now + length and updatedAt = now together, at
-- the claim and at each heartbeat, so their difference is the length last granted.
UPDATE "tasks" SET "leaseMs" = "leaseExpiresAt" - "updatedAt"
WHERE "status" = 'claimed' AND "leaseMs" IS NULL
  AND typeof("leaseExpiresAt") = 'integer' AND typeof("updatedAt") = 'integer'
  AND "leaseExpiresAt" > "updatedAt";
