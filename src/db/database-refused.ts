/**
 * A database file the server will not serve (damaged, someone else's, another version's, a
 * migration history it cannot continue): said in one sentence, exit code 3, never a crash with
 * its stack. Its own module so that migrate.ts, which startup-checks.ts imports, can throw it too.
 */
export class DatabaseRefused extends Error {
  override name = "DatabaseRefused";
}
