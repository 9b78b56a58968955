#!/usr/bin/env node
// The peer: drizzle-orm's own `migrate()` (node-postgres driver) for one folder.
//
//   DATABASE_URL=postgresql://... node migrate.mjs --dir FOLDER [--line stable|v1]
//       [--schema drizzle] [--table __drizzle_migrations]
//
// The URL comes from the environment only (never argv: it holds the password).
// `--line stable` uses drizzle-orm 0.45 (journal folders); `--line v1` uses drizzle-orm 1.0 rc
// (one folder per migration), installed under the npm alias `drizzle-orm-v1`.
// On success it prints one JSON line: {"ok": true, "line", "importMs", "connectMs", "migrateMs",
// "insideMs", "elapsedMs"}: `migrateMs` is the time inside `migrate()` alone (reading the folder
// and applying), `insideMs` = connecting + migrate() + closing, `elapsedMs` also counts loading
// the modules (not node's own start-up, which the benchmark measures with a no-op).
// On failure: {"ok": false, "message", "code", ...} on stdout and exit code 1.
import { parseArgs } from "node:util";
import { performance } from "node:perf_hooks";
import pg from "pg";

const t0 = performance.now();
const { values } = parseArgs({
  options: {
    dir: { type: "string" },
    line: { type: "string", default: "stable" },
    schema: { type: "string" },
    table: { type: "string" },
  },
});
if (!values.dir) fail("usage", "--dir FOLDER is required");
if (!["stable", "v1"].includes(values.line)) fail("usage", "--line must be stable or v1");
const url = process.env.DATABASE_URL;
if (!url) fail("usage", "DATABASE_URL is not set");

const pkg = values.line === "v1" ? "drizzle-orm-v1" : "drizzle-orm";
const { drizzle } = await import(`${pkg}/node-postgres`);
const { migrate } = await import(`${pkg}/node-postgres/migrator`);
const tImported = performance.now();

const client = new pg.Client({ connectionString: url });
let migrateMs = 0;
let connectMs = 0;
try {
  await client.connect();
  connectMs = performance.now() - tImported;
  const db = drizzle({ client });
  const config = { migrationsFolder: values.dir };
  if (values.schema !== undefined) config.migrationsSchema = values.schema;
  if (values.table !== undefined) config.migrationsTable = values.table;
  const t1 = performance.now();
  await migrate(db, config);
  migrateMs = performance.now() - t1;
} catch (err) {
  await client.end().catch(() => {});
  // drizzle wraps driver errors; the SQLSTATE is on the cause.
  const cause = err?.cause ?? err;
  fail("migrate", String(err?.message ?? err).split("\n")[0], {
    sqlstate: cause?.code ?? null,
    cause: cause === err ? null : String(cause?.message ?? cause),
  });
}
await client.end();
const tEnd = performance.now();
console.log(
  JSON.stringify({
    ok: true,
    line: values.line,
    importMs: round(tImported - t0),
    connectMs: round(connectMs),
    migrateMs: round(migrateMs),
    insideMs: round(tEnd - tImported),
    elapsedMs: round(tEnd - t0),
  }),
);

function round(ms) {
  return Math.round(ms * 1000) / 1000;
}

function fail(code, message, extra = {}) {
  console.log(JSON.stringify({ ok: false, code, message, ...extra }));
  process.exit(code === "usage" ? 2 : 1);
}
