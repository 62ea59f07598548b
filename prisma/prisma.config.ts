// Prisma CLI config (Prisma 6.19, loaded by the CLI itself; no tsx needed).
//
// Migrate commands run through the WASM schema engine and a driver adapter (@prisma/adapter-pg)
// instead of Prisma's native schema engine, which cannot be downloaded on our machines (see
// README.md). The database is DATABASE_URL; `migrate diff --from-migrations` also creates and
// drops a throwaway shadow database on that server.
//
// PatchedPrismaPg works around three bugs of @prisma/adapter-pg 6.19.3 that break migrate
// against PostgreSQL. Drop each fix once the adapter handles it.
import { PrismaPg } from "@prisma/adapter-pg";
import { parse } from "pg-connection-string";
import type { PoolConfig } from "pg";
import { defineConfig } from "prisma/config";

const PG_CHAR = 18; // "char" (single byte), e.g. pg_class.relkind
const PG_NAME = 19; // name, e.g. pg_namespace.nspname
const PG_TEXT = 25;
const COLUMN_TYPE_CHARACTER = 6; // ColumnTypeEnum.Character in @prisma/driver-adapter-utils

// Queries whose result has "char" columns -> their indices (keyed by the query object, which
// queryRaw passes on to performIO, so concurrent queries cannot mix them up).
const charColumns = new WeakMap<object, number[]>();

// Fixes 1 and 2, applied to the adapter and to every transaction it starts.
function patchQueryable<T extends object>(q: T): T {
  const any = q as any;
  const performIO = any.performIO.bind(q);
  any.performIO = async (query: object) => {
    const result = await performIO(query);
    const chars: number[] = [];
    result?.fields?.forEach((field: { dataTypeID: number }, i: number) => {
      // Fix 1: `name` columns fail with "Column type 'name' could not be deserialized"
      // (prisma/orm#27403): report them as text.
      if (field.dataTypeID === PG_NAME) field.dataTypeID = PG_TEXT;
      // Fix 2: `"char"` columns crash the WASM engine ("RuntimeError: unreachable"): report
      // them as text here, and as Prisma's Character column type below.
      else if (field.dataTypeID === PG_CHAR) {
        field.dataTypeID = PG_TEXT;
        chars.push(i);
      }
    });
    if (chars.length > 0) charColumns.set(query, chars);
    return result;
  };
  const queryRaw = any.queryRaw.bind(q);
  any.queryRaw = async (query: object) => {
    const result = await queryRaw(query);
    for (const i of charColumns.get(query) ?? []) result.columnTypes[i] = COLUMN_TYPE_CHARACTER;
    return result;
  };
  if (typeof any.startTransaction === "function") {
    const startTransaction = any.startTransaction.bind(q);
    any.startTransaction = async (...args: unknown[]) => patchQueryable(await startTransaction(...args));
  }
  return q;
}

class PatchedPrismaPg extends PrismaPg {
  constructor(private readonly pgConfig: PoolConfig) {
    super(pgConfig);
  }

  override async connect() {
    return patchQueryable(await super.connect());
  }

  // Fix 3: upstream drops the shadow database while its own pool still holds connections
  // ("database ... is being accessed by other users") and never closes the main pool. Close
  // the shadow pool first, then DROP DATABASE ... WITH (FORCE). The shadow config is built
  // from separate host/user/database fields: with a connectionString, node-pg would ignore
  // `database` and the "shadow" pool would point at the main database.
  override async connectToShadowDb() {
    const main = await this.connect();
    const database = `prisma_migrate_shadow_db_${globalThis.crypto.randomUUID()}`;
    await main.executeScript(`CREATE DATABASE "${database}"`);
    const shadow = await new PatchedPrismaPg({ ...this.pgConfig, database }).connect();
    const disposeShadow = shadow.dispose.bind(shadow);
    shadow.dispose = async () => {
      try {
        await disposeShadow();
        await main.executeScript(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
      } finally {
        await main.dispose();
      }
    };
    return shadow;
  }
}

// DATABASE_URL as separate pg fields (host may be a unix socket directory, e.g. ?host=/tmp/x).
function poolConfig(): PoolConfig {
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error("DATABASE_URL is not set (Prisma migrate commands need a PostgreSQL server)");
  const { host, port, user, password, database, ssl, options, application_name } = parse(url);
  const config: PoolConfig = {
    host: host ?? undefined,
    port: port ? Number(port) : undefined,
    user,
    password,
    database: database ?? undefined,
    options,
    application_name: application_name ?? "prisma-migrate",
  };
  if (ssl !== undefined && ssl !== null) config.ssl = ssl as PoolConfig["ssl"];
  return config;
}

export default defineConfig({
  experimental: { adapter: true },
  engine: "js",
  adapter: async () => new PatchedPrismaPg(poolConfig()),
  schema: "schema.prisma",
  migrations: { path: "migrations" },
});
