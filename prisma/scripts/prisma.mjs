#!/usr/bin/env node
// Runs the local Prisma CLI (node_modules/prisma) with the environment it needs on machines
// that reach the npm registry but not Prisma's binary host. Each variable is set only if unset,
// so a caller can still override it. Usage: node scripts/prisma.mjs <prisma args...>
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const prismaDir = dirname(dirname(fileURLToPath(import.meta.url)));
const placeholder = join(prismaDir, "scripts", "native-engine-placeholder");

export const prismaEnv = {
  // An existing file for each native engine stops the CLI from downloading them...
  PRISMA_SCHEMA_ENGINE_BINARY: placeholder,
  PRISMA_QUERY_ENGINE_LIBRARY: placeholder,
  // ...and this stops it from failing on the checksum files it cannot fetch either.
  PRISMA_ENGINES_CHECKSUM_IGNORE_MISSING: "1",
  // No telemetry / update checks (they would only time out here).
  CHECKPOINT_DISABLE: "1",
  PRISMA_HIDE_UPDATE_MESSAGE: "1",
};

export function withPrismaEnv(env = process.env) {
  const out = { ...env };
  for (const [k, v] of Object.entries(prismaEnv)) if (!out[k]) out[k] = v;
  return out;
}

// Commands that read schema.prisma but never connect: schema.prisma's `url = env("DATABASE_URL")`
// must still resolve, so give them a dummy URL if none is set. Migrate commands get no default.
const OFFLINE_COMMANDS = new Set(["validate", "format"]);
const DUMMY_DATABASE_URL = "postgresql://unused@localhost:5432/unused";

export function runPrisma(args, options = {}) {
  const cli = createRequire(join(prismaDir, "package.json")).resolve("prisma/build/index.js");
  const env = withPrismaEnv();
  if (OFFLINE_COMMANDS.has(args[0]) && !env.DATABASE_URL) env.DATABASE_URL = DUMMY_DATABASE_URL;
  const res = spawnSync(process.execPath, [cli, ...args], {
    cwd: prismaDir,
    env,
    stdio: "inherit",
    ...options,
  });
  if (res.error) throw res.error;
  return res;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const res = runPrisma(process.argv.slice(2));
  // Propagate Prisma's exit code (e.g. 2 from `migrate diff --exit-code`); a child killed by a
  // signal has status null and must not look like success.
  process.exit(res.status ?? 1);
}
