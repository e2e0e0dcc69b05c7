-- Webhooks (webhooks.create): the server POSTs each untargeted event matching `types` (a JSON
-- array of type patterns) to `url`, one request an event, in seq order, signed with `secret`
-- (Standard Webhooks: HMAC-SHA256 of "id.timestamp.body"). `cursor`: the last seq delivered or
-- passed over (events after it that match are still to go). A failed request is tried again
-- from `nextAttemptAt` with backoff, the same event first (no event of a webhook overtakes
-- another); one failing for webhookDisableAfterMs is disabled (`enabled` 0, `disabledReason`).
-- `previousSecret` signs too until `previousSecretUntil` (a rotation's grace). `turnOwner` and
-- `turnUntil`: the server process delivering it now (several share a file; one delivers a
-- webhook at a time), free once `turnUntil` passed (that process stopped). Times in ms.
CREATE TABLE "webhooks" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "url" TEXT NOT NULL,
    "types" TEXT NOT NULL,
    "description" TEXT,
    "secret" TEXT NOT NULL,
    "previousSecret" TEXT,
    "previousSecretUntil" DATETIME,
    "cursor" INTEGER NOT NULL,
    "enabled" BOOLEAN NOT NULL DEFAULT true,
    "disabledReason" TEXT,
    "failures" INTEGER NOT NULL DEFAULT 0,
    "failingSince" DATETIME,
    "lastError" TEXT,
    "lastStatus" INTEGER,
    "lastAttemptAt" DATETIME,
    "lastDeliveredAt" DATETIME,
    "delivered" INTEGER NOT NULL DEFAULT 0,
    "gaps" INTEGER NOT NULL DEFAULT 0,
    "nextAttemptAt" DATETIME NOT NULL,
    "turnOwner" TEXT,
    "turnUntil" DATETIME,
    "createdAt" DATETIME NOT NULL,
    "createdBy" TEXT,
    "updatedAt" DATETIME NOT NULL
);
