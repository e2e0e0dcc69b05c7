-- A webhook's secrets retired by rotations whose grace has not ended, each with its end: every
-- one still signs requests until then. One column held only the last rotation's old secret, so a
-- second rotation within the first one's grace dropped the first old secret early, and receivers
-- that had not yet moved off it saw every request fail verification before the grace they were
-- promised ended. The old columns' secret is copied into the list; the columns stay as they are
-- (the last rotation's old secret, which every rotation still writes), since a server of an
-- earlier version still running on the file signs with them alone.
ALTER TABLE "webhooks" ADD COLUMN "retiredSecrets" TEXT NOT NULL DEFAULT '[]';
UPDATE "webhooks" SET "retiredSecrets" = json_array(json_object('secret', "previousSecret", 'until', "previousSecretUntil"))
  WHERE "previousSecret" IS NOT NULL AND "previousSecretUntil" IS NOT NULL;
