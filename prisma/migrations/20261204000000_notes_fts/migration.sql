-- Agents' notes and lessons get a search index of their own, beside memories_fts (which indexes
-- every memory). Recall ranks a word found in many memories by its newest matches only (bm25 over
-- all of them grows with the store): once execution records, or other notes, shared a word with a
-- lesson 64 times, the lesson could no longer be recalled by that word, however relevant. Notes
-- and lessons are what agents chose to keep, far fewer than the records of every run: over this
-- index a word's matches are ranked by bm25, all of them (src/memory/memory-recall.ts).
-- The same tokenizer as memories_fts, so a word matches alike in both. Contentless (the text is in memories): the store indexes each note it inserts; the triggers
-- keep the index in step when a memory is deleted or changed.
CREATE VIRTUAL TABLE "notes_fts" USING fts5(
    "content",
    "tags",
    content = '',
    contentless_delete = 1,
    tokenize = 'porter unicode61'
);

INSERT INTO "notes_fts"(rowid, "content", "tags") SELECT "seq", "content", "tags" FROM "memories" WHERE "kind" <> 'execution';

CREATE TRIGGER "notes_fts_after_delete" AFTER DELETE ON "memories" WHEN old."kind" <> 'execution' BEGIN
    DELETE FROM "notes_fts" WHERE rowid = old."seq";
END;

CREATE TRIGGER "notes_fts_after_update" AFTER UPDATE ON "memories" BEGIN
    DELETE FROM "notes_fts" WHERE rowid = old."seq";
    INSERT INTO "notes_fts"(rowid, "content", "tags") SELECT new."seq", new."content", new."tags" WHERE new."kind" <> 'execution';
END;
