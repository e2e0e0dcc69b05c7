-- What the pruner deleted, for the readers behind it (src/events/event-store.ts prune): the
-- newest pruned untargeted event of each type (kind 'type') and the newest pruned event targeted
-- at each agent (kind 'target'). A live stream of a rare type resuming from its last event, once
-- retention pruned past it, was refused EVENTS_PRUNED although nothing it would have received was
-- pruned: its id moves only with the events it receives (and an agent's poll likewise by its
-- mailbox). With these a reader is refused only when an event it would have read is gone.
-- Bounded: past 10,000 names of a kind they fold into one row named '', which stands for all.
-- CreateTable
CREATE TABLE "pruned_event_marks" (
    "kind" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "lastSeq" INTEGER NOT NULL,

    PRIMARY KEY ("kind", "name")
);
