-- Every agent has a mailbox: direct messages (events with a target) are read from their own
-- cursor, so subscribing late, or never, does not skip the ones already waiting.
-- AlterTable
ALTER TABLE "subscriptions" ADD COLUMN "mailboxCursor" INTEGER NOT NULL DEFAULT 0;

-- Until now one cursor covered both; an existing subscription has read its mailbox as far.
UPDATE "subscriptions" SET "mailboxCursor" = "cursor";
