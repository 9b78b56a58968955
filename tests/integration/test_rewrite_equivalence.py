"""Proof that every safe rewrite builds exactly what the original statement builds.

For each case, two fresh databases get the same setup; one runs the migration as written, the
other runs pgshift's plan of it (AUTOCOMMIT statements outside a transaction, batched backfills
in keyset batches from their `Backfill` spec, as the engine would). Then `pg_dump --schema-only`
of both must be identical, and so must the rows.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

import psycopg
import pytest

from pgshift.errors import SyntaxTooNew
from pgshift.safety import AUTO_BACKFILL, PlannedStatement, TxMode, analyze
from pgshift.safety.rewrites import REWRITES
from pgshift.safety.statements import split_statements
from pgshift.safety.versions import check_sql
from tests.pgserver import PgServer
from tests.unit.safety.helpers import KEY_CASE, migration

pytestmark = pytest.mark.integration

SETUP = """
CREATE SCHEMA "App";
CREATE TABLE items (id int PRIMARY KEY, name text, price numeric);
CREATE TABLE orders (id int PRIMARY KEY, item_id int, qty int);
CREATE TABLE projects (id bigint PRIMARY KEY, name text NOT NULL);
CREATE TABLE "App"."Projects" ("Id" int PRIMARY KEY, "Slug" text, "Title" text);
INSERT INTO items SELECT g, 'item ' || g, g FROM generate_series(1, 50) g;
INSERT INTO orders SELECT g, 1 + g % 50, g FROM generate_series(1, 50) g;
INSERT INTO projects SELECT g, 'Project Number ' || g FROM generate_series(1, 37) g;
INSERT INTO "App"."Projects" SELECT g, 's' || g, 't' || g FROM generate_series(1, 20) g;
"""

LONG = "a_table_name_that_is_long_enough_to_need_cutting_" + "x" * 12


@dataclass(frozen=True)
class Case:
    id: str
    sql: str
    rewrites: frozenset[str]
    setup: str = ""
    #: a column filled by a volatile default: each side draws its own values, so it is compared
    #: as "no NULLs" rather than value by value.
    volatile: str | None = None


CASES = [
    Case("index", "CREATE INDEX items_name_idx ON items (lower(name)) WHERE price > 3;",
         frozenset({"concurrent-index"})),
    Case("unique-index", "CREATE UNIQUE INDEX items_name_key ON items USING btree (name DESC) "
         "INCLUDE (price) WITH (fillfactor = 70);", frozenset({"concurrent-index"})),
    Case("drop-index", 'DROP INDEX IF EXISTS "items_name_lower";',
         frozenset({"concurrent-drop-index"}),
         setup="CREATE INDEX items_name_lower ON items (lower(name));"),
    Case("foreign-key", "ALTER TABLE orders ADD CONSTRAINT orders_item_id_items_id_fk "
         "FOREIGN KEY (item_id) REFERENCES items(id) ON DELETE cascade ON UPDATE no action;",
         frozenset({"not-valid-constraint"})),
    Case("guarded-foreign-key", "DO $$ BEGIN\n ALTER TABLE \"orders\" ADD CONSTRAINT "
         "\"orders_item_id_items_id_fk\" FOREIGN KEY (\"item_id\") REFERENCES "
         "\"public\".\"items\"(\"id\") ON DELETE no action ON UPDATE no action;\nEXCEPTION\n"
         " WHEN duplicate_object THEN null;\nEND $$;",
         frozenset({"guarded-not-valid-constraint"})),
    Case("check", "ALTER TABLE items ADD CONSTRAINT items_price_positive CHECK (price > 0);",
         frozenset({"not-valid-constraint"})),
    Case("set-not-null", "ALTER TABLE items ALTER COLUMN name SET NOT NULL;",
         frozenset({"set-not-null"})),
    Case("set-not-null-quoted", 'ALTER TABLE "App"."Projects" ALTER COLUMN "Slug" SET NOT NULL;',
         frozenset({"set-not-null"})),
    Case("set-not-null-long-name", f"ALTER TABLE {LONG} ALTER COLUMN {LONG} SET NOT NULL;",
         frozenset({"set-not-null"}),
         setup=f"CREATE TABLE {LONG} (id int PRIMARY KEY, {LONG} int); "
               f"INSERT INTO {LONG} VALUES (1, 1);"),
    Case("unique", 'ALTER TABLE "App"."Projects" ADD CONSTRAINT "Projects_Title_unique" '
         'UNIQUE("Title");', frozenset({"unique-using-index"})),
    Case("unique-options", "ALTER TABLE items ADD CONSTRAINT items_name_price_key "
         "UNIQUE NULLS NOT DISTINCT (name, price) INCLUDE (id) WITH (fillfactor = 80) "
         "DEFERRABLE INITIALLY DEFERRED;", frozenset({"unique-using-index"})),
    Case("primary-key", "ALTER TABLE pairs ADD CONSTRAINT pairs_a_b_pk PRIMARY KEY (a, b);",
         frozenset({"primary-key-using-index"}),
         setup="CREATE TABLE pairs (a int, b int NOT NULL, n text); "
               "INSERT INTO pairs SELECT g, g, 'x' FROM generate_series(1, 30) g;"),
    Case("primary-key-unnamed", "ALTER TABLE pairs ADD PRIMARY KEY (a);",
         frozenset({"primary-key-using-index"}),
         setup="CREATE TABLE pairs (a int, n text); INSERT INTO pairs VALUES (1, 'x');"),
    Case("volatile-default", "ALTER TABLE items ADD COLUMN token uuid DEFAULT gen_random_uuid() "
         "NOT NULL;", frozenset({"volatile-default"}), volatile="token"),
    Case("volatile-default-nullable", "ALTER TABLE items ADD COLUMN seen timestamptz "
         "DEFAULT clock_timestamp();", frozenset({"volatile-default"}), volatile="seen"),
    Case("backfill", "UPDATE items SET price = id * 2 WHERE price <> id * 2;",
         frozenset({AUTO_BACKFILL})),
    Case("key-case", KEY_CASE,
         frozenset({AUTO_BACKFILL, "set-not-null", "unique-using-index"})),
]


def test_every_rewrite_has_a_case() -> None:
    covered = frozenset().union(*(c.rewrites for c in CASES))
    assert covered == set(REWRITES) | {AUTO_BACKFILL}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_rewrite_builds_the_same_schema(
    case: Case, pg_server: PgServer, database_name: str
) -> None:
    try:
        check_sql(case.sql, pg_server.major, str)
    except SyntaxTooNew as exc:  # e.g. NULLS NOT DISTINCT on 13 and 14: pgshift refuses it
        pytest.skip(f"PostgreSQL {pg_server.major} lacks this syntax: {exc.message}")
    m = migration(case.sql)
    plan = analyze(m).statements
    assert {s.rewrite for s in plan} - {""} == case.rewrites
    assert analyze(m).findings == ()

    original_db, rewritten_db = database_name, f"{database_name}_rw"
    pg_server.create_database(rewritten_db)
    try:
        with _connect(pg_server, original_db) as a, _connect(pg_server, rewritten_db) as b:
            for conn in (a, b):
                conn.execute(SETUP + case.setup)
            for stmt in split_statements(m):
                a.execute(stmt.text)
            for planned in plan:
                _run_planned(b, planned)
            tables = _tables(a)
            assert tables == _tables(b)
            for table in tables:
                assert _rows(a, table, case.volatile) == _rows(b, table, case.volatile), table
        assert _dump(pg_server, original_db) == _dump(pg_server, rewritten_db)
    finally:
        pg_server.drop_database(rewritten_db)


def _connect(server: PgServer, name: str) -> psycopg.Connection:
    return psycopg.connect(server.url(name), autocommit=True)


def _run_planned(conn: psycopg.Connection, s: PlannedStatement) -> None:
    if s.tx is TxMode.BATCHED:
        _run_batched(conn, s)
    elif s.tx is TxMode.AUTOCOMMIT:
        conn.execute(s.sql)
    else:
        with conn.transaction():
            conn.execute(s.sql)


def _run_batched(conn: psycopg.Connection, s: PlannedStatement) -> None:
    """Keyset batches of 7 rows over `id`, from the Backfill spec alone, then a final pass."""
    b = s.backfill
    assert b is not None
    table = f'"{b.table[0]}"."{b.table[1]}"' if b.table[0] else f'"{b.table[1]}"'
    guard = f"({b.where_sql}) AND " if b.where_sql else ""
    last = None
    while True:
        after = "" if last is None else f"WHERE id > {last}"
        row = conn.execute(
            f"SELECT id FROM {table} {after} ORDER BY id OFFSET 6 LIMIT 1"
        ).fetchone()
        upper = row[0] if row else None
        lower_bound = "" if last is None else f"id > {last} AND "
        upper_bound = "TRUE" if upper is None else f"id <= {upper}"
        with conn.transaction():
            conn.execute(f"UPDATE {table} SET {b.set_sql} WHERE {guard}{lower_bound}{upper_bound}")
        if upper is None:
            break
        last = upper
    if b.idempotent:
        conn.execute(f"UPDATE {table} SET {b.set_sql} WHERE {b.where_sql}")


def _tables(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
        "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows]


def _rows(conn: psycopg.Connection, table: str, volatile: str | None) -> list[tuple[object, ...]]:
    columns = [r[0] for r in conn.execute(
        "SELECT quote_ident(attname) FROM pg_attribute WHERE attrelid = %s::regclass "
        "AND attnum > 0 AND NOT attisdropped ORDER BY attnum", (table,)
    ).fetchall()]
    shown = [c if c != volatile else f"{c} IS NOT NULL" for c in columns]
    return conn.execute(f"SELECT {', '.join(shown)} FROM {table} ORDER BY 1").fetchall()


def _dump(server: PgServer, name: str) -> str:
    env = {**os.environ, "PGPASSWORD": server.password}
    out = subprocess.run(
        [str(server.client_bin / "pg_dump"), "--schema-only", "--no-owner", "-h", server.host,
         "-p", str(server.port), "-U", server.user, "-d", name],
        env=env, check=True, capture_output=True, text=True,
    )
    # `\restrict <random key>` (pg_dump since 15.14) differs on every run: not schema.
    restrict = ("\\restrict", "\\unrestrict")
    return "\n".join(line for line in out.stdout.splitlines() if not line.startswith(restrict))
