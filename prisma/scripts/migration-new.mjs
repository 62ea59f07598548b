#!/usr/bin/env node
// Creates migrations/<UTC YYYYMMDDHHMMSS>_<name>/migration.sql from the difference between the
// existing migrations (replayed in a shadow database on DATABASE_URL's server) and
// schema.prisma, using `prisma migrate diff --script`. Refuses an empty diff.
//
// Usage: DATABASE_URL=postgresql://... npm run migration:new -- <name>
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { prismaDir, runPrisma } from "./prisma.mjs";

function fail(message) {
  console.error(`migration:new: ${message}`);
  process.exit(1);
}

const rawName = process.argv.slice(2).join(" ");
// Same shape as Prisma's own names: lowercase words joined by underscores.
const name = rawName.toLowerCase().replace(/[^a-z0-9]+/g, "_").replace(/^_+|_+$/g, "").slice(0, 200);
if (!name) fail("usage: npm run migration:new -- <name>   (e.g. add_bar_source)");
if (!process.env.DATABASE_URL) {
  fail("DATABASE_URL is not set: Prisma needs a throwaway PostgreSQL server (with pgvector) for its shadow database");
}

const migrationsDir = join(prismaDir, "migrations");
const res = runPrisma(
  ["migrate", "diff", "--from-migrations", "migrations", "--to-schema-datamodel", "schema.prisma", "--script"],
  { stdio: ["inherit", "pipe", "inherit"], encoding: "utf-8", maxBuffer: 64 * 1024 * 1024 },
);
if (res.status !== 0) fail(`prisma migrate diff failed (exit ${res.status ?? res.signal})`);
const script = res.stdout;

// Prisma prints "-- This is an empty migration." when nothing differs.
const statements = script.replace(/--.*$/gm, "").trim();
if (!statements) fail("schema.prisma and migrations/ are in sync: nothing to migrate (edit schema.prisma first)");

// UTC timestamp; never at or before the newest existing migration, so folders stay in order.
const stamp = (d) => d.toISOString().replace(/[-:T]/g, "").slice(0, 14);
const existing = readdirSync(migrationsDir, { withFileTypes: true })
  .filter((e) => e.isDirectory() && /^\d{14}_/.test(e.name))
  .map((e) => e.name.slice(0, 14))
  .sort();
let when = new Date();
const newest = existing.at(-1);
if (newest && stamp(when) <= newest) {
  const t = newest.replace(/^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)$/, "$1-$2-$3T$4:$5:$6Z");
  when = new Date(Date.parse(t) + 1000);
}

const folder = `${stamp(when)}_${name}`;
const dir = join(migrationsDir, folder);
mkdirSync(dir);
writeFileSync(join(dir, "migration.sql"), script, "utf-8");
console.log(`created migrations/${folder}/migration.sql (review it, then commit it with schema.prisma)`);
