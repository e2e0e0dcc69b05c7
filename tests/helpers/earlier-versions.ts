// What servers of earlier versions left in a database file, for tests of the versions after them.
import type { Database } from "better-sqlite3";

/**
 * Stores a lesson the way a version before notes_fts did: its row in memories and its entry in
 * memories_fts, none in notes_fts (its store knew no notes_fts). Returns its seq.
 */
export function storeLessonAsEarlierVersion(db: Database, id: string, content: string, createdAt = Date.now()): number {
  const seq = Number(db.prepare(`INSERT INTO memories (id, kind, content, createdAt) VALUES (?, 'lesson', ?, ?)`).run(id, content, createdAt).lastInsertRowid);
  db.prepare(`INSERT INTO memories_fts (rowid, content, tags) VALUES (?, ?, '[]')`).run(seq, content);
  return seq;
}
