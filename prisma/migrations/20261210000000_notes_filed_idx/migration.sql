-- A note or lesson filed under a queue or a capability (memory.remember's queue, capability) is
-- about that queue's or capability's tasks: a claim's context takes the newest of them whatever
-- their words (src/memory/memory-recall.ts). Found by these, without walking the queue's
-- execution records, which the index on (queue, createdAt) holds too.
-- CreateIndex
CREATE INDEX "memories_notes_queue_idx" ON "memories"("queue", "seq") WHERE kind <> 'execution';

-- CreateIndex
CREATE INDEX "memories_notes_capability_idx" ON "memories"("capability", "seq") WHERE kind <> 'execution';
