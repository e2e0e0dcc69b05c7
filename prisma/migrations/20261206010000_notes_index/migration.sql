-- Notes and lessons alone, by seq. A server of an earlier version still running on a file a later
-- one migrated (servers sharing a file, upgraded one at a time) stores notes without the entry in
-- notes_fts that only a later version's store writes, and recall could never find them by a word
-- many memories share. The writer finds them by this index and indexes them (the memory index
-- job: src/memory/memory-service.ts). Not a trigger on memories: any row trigger there makes
-- every execution record's insert open a statement journal, 10-18 µs more (measured).
-- CreateIndex
CREATE INDEX "memories_notes_idx" ON "memories"("seq") WHERE kind <> 'execution';
