-- A publish sent again (its answer lost) stored the event twice: a direct message landed twice in
-- its target's mailbox. A publish may now carry an idempotencyKey, unique per source (an agent's
-- keys never meet another's): the same source sending the same key again gets the event it
-- stored (src/events/event-commands.ts, events.publish), for as long as the event is kept.
-- Partial: the events published without a key, the server's own on every task change among
-- them, add nothing to it.
-- AlterTable
ALTER TABLE "events" ADD COLUMN "idempotencyKey" TEXT;

-- CreateIndex
CREATE UNIQUE INDEX "events_idempotency_idx" ON "events"("source", "idempotencyKey") WHERE idempotencyKey IS NOT NULL;
