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

-- What was pruned before this migration is not known by type or target: it counts as every
-- type and every target (name ''), so a reader behind it is refused as before.
INSERT INTO "pruned_event_marks" ("kind", "name", "lastSeq")
SELECT kinds.kind, '', CAST(s.value AS INTEGER) FROM system_state s, (SELECT 'type' AS kind UNION ALL SELECT 'target') kinds
WHERE s.key = 'events.prunedThroughSeq' AND CAST(s.value AS INTEGER) > 0;

-- How far the marks cover: a server of an earlier version sharing the file prunes without marking,
-- and what it pruned past this counts as every type and target (src/events/event-positions.ts).
INSERT INTO "system_state" ("key", "value")
SELECT 'events.markedThroughSeq', s.value FROM system_state s WHERE s.key = 'events.prunedThroughSeq';
