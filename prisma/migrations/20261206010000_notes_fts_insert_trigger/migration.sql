-- Notes and lessons are indexed in notes_fts by a trigger now, whoever inserts them. The store did
-- it (migration notes_fts), so a server of an earlier version still running on a file a later one
-- migrated (servers sharing one file, upgraded one at a time) stored notes that notes_fts never
-- held: recall could not find them by a word many memories share. A server of the version just
-- before this one still indexes its notes itself too: the same rowid is then written twice, which
-- notes_fts (contentless_delete) takes as a replacement. The trigger's WHEN costs an execution
-- record's insert well under a microsecond.
CREATE TRIGGER "notes_fts_after_insert" AFTER INSERT ON "memories" WHEN new."kind" <> 'execution' BEGIN
    INSERT INTO "notes_fts"(rowid, "content", "tags") VALUES (new."seq", new."content", new."tags");
END;

-- The notes such a server stored since notes_fts was made. notes_fts_docsize is FTS5's own table
-- of the rows it holds (one per rowid): a lookup by key, where a query of notes_fts by rowid would
-- read its whole index for every note.
INSERT INTO "notes_fts"(rowid, "content", "tags")
    SELECT "seq", "content", "tags" FROM "memories" AS m
    WHERE m."kind" <> 'execution' AND NOT EXISTS (SELECT 1 FROM "notes_fts_docsize" AS d WHERE d."id" = m."seq");
