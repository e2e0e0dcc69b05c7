-- New memories are indexed by the store's own INSERT into "memories_fts", in the same
-- transaction as the row (src/memory/memory-store.ts), not by a trigger: the trigger cost twice
-- as much per row (~70 µs against ~25 µs), once on every completed or failed task. Updates and
-- deletes keep their triggers (nothing on the hot path updates or deletes memories).
DROP TRIGGER "memories_fts_after_insert";
