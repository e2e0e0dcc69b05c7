-- W3C Baggage carried by a task (tasks.enqueue's baggage, or the enqueue's baggage header): the
-- caller's key-value pairs that travel with its trace, handed to every run of it. Members without
-- their optional whitespace, joined by ","; at most 64 and 8,192 characters. Null: none (every task
-- stored before).
ALTER TABLE "tasks" ADD COLUMN "baggage" TEXT;
