// Prisma CLI configuration. The server never needs the CLI at run time: it applies
// prisma/migrations itself. The URL here only matters for `prisma migrate status/deploy`.
import { defineConfig } from "prisma/config";

export default defineConfig({
  schema: "prisma/schema.prisma",
  migrations: { path: "prisma/migrations" },
  datasource: { url: `file:${process.env.COORDINATION_DB_PATH ?? "coordination.db"}` },
});
