// Another process holding the database's write lock: BEGIN IMMEDIATE, wait, COMMIT.
// usage: node bench/responsiveness/lock-holder.mjs DBFILE MS   (prints "locked", then "released")
import Database from "better-sqlite3";

const [dbPath, msArg] = process.argv.slice(2);
const db = new Database(dbPath, { timeout: 10_000 });
db.prepare("BEGIN IMMEDIATE").run();
console.log("locked");
await new Promise((r) => setTimeout(r, Number(msArg)));
db.prepare("COMMIT").run();
db.close();
console.log("released");
