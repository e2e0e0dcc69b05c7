-- The memory index's segments are merged in small steps by the server itself
-- (MemoryStore.compactIndex, the memoryIndexCompactMs job): FTS5's 'merge' command merges a
-- level once it holds 'usermerge' segments, 4 by default, the threshold of the merges that run
-- as memories are written. At 2, a step merges any level holding two or more, down to one
-- segment a level. Recall looks each term up in every segment: an index written by 30,000 runs
-- had 11 segments, 4 after these merges, and a text recall took about 6% less CPU (bench/RESULTS.md).
INSERT INTO "memories_fts"("memories_fts", "rank") VALUES ('usermerge', 2);
