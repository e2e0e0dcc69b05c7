// The Prisma client, used for the read side (get, list, stats, health). Writes go through
// the Writer (src/db/writer.ts) on its own connection: see the comment there for why.
import { PrismaBetterSqlite3 } from "@prisma/adapter-better-sqlite3";
import type { Config } from "../config.js";
import { PrismaClient } from "../generated/prisma/client.js";

export type Prisma = PrismaClient;

export function createPrismaClient(config: Pick<Config, "dbPath" | "busyTimeoutMs">): PrismaClient {
  // Times are integer Unix milliseconds in every table (see prisma/schema.prisma).
  // fileMustExist: the server made and migrated the file at start-up; Prisma never makes one.
  const adapter = new PrismaBetterSqlite3(
    { url: config.dbPath, timeout: config.busyTimeoutMs, fileMustExist: config.dbPath !== ":memory:" },
    { timestampFormat: "unixepoch-ms" },
  );
  return new PrismaClient({ adapter });
}
