"""What lint claims about PostgreSQL, shown on a real PostgreSQL server (issue 9).

A table rewrite is seen as a new `pg_class.relfilenode`; SET NOT NULL's fast path as the
server's own DEBUG1 message "existing constraints on column ... are sufficient to prove that
it does not contain nulls". Each test also checks that pgshift says the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgshift.engine.analysis import function_volatility, source_functions
from pgshift.migrations.model import Layout, Source
from pgshift.safety import CatalogFacts, analyze
from pgshift.safety.builtin_functions import NON_VOLATILE
from pgshift.safety.volatility import VOLATILE
from tests.helpers import result_of, run_pgshift, write_drizzle_folder
from tests.unit.safety.helpers import migration

pytestmark = pytest.mark.integration

ROWS = 2000


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database_url, autocommit=True) as c:
        c.execute(f"CREATE TABLE t AS SELECT g AS id, g AS a FROM generate_series(1, {ROWS}) g")
        yield c


def _filenode(conn: psycopg.Connection[Any], table: str = "t") -> int:
    row = conn.execute("SELECT relfilenode FROM pg_class WHERE oid = %s::regclass",
                       (table,)).fetchone()
    assert row is not None
    return int(row[0])


def _rewrites(conn: psycopg.Connection[Any], sql: str) -> bool:
    before = _filenode(conn)
    conn.execute(sql)
    return _filenode(conn) != before


def _rules(sql: str, **kw: Any) -> set[str]:
    return {f.rule for f in analyze(migration(sql + ";\n"), rewrite=False, **kw).findings}


def test_builtin_volatility_lists_match_this_servers_catalog(
    conn: psycopg.Connection[Any],
) -> None:
    rows = conn.execute(
        "SELECT proname, bool_or(provolatile = 'v') FROM pg_proc p JOIN pg_namespace n "
        "ON n.oid = p.pronamespace WHERE nspname = 'pg_catalog' GROUP BY proname"
    ).fetchall()
    volatile = {name for name, v in rows if v}
    assert not NON_VOLATILE & volatile, sorted(NON_VOLATILE & volatile)[:10]
    assert {name for name, _ in rows} >= NON_VOLATILE
    assert {"random", "gen_random_uuid", "clock_timestamp", "nextval"} <= volatile & VOLATILE


def test_a_default_calling_an_unknown_function_rewrites_the_table(
    conn: psycopg.Connection[Any],
) -> None:
    # no volatility given: PostgreSQL's default, VOLATILE (plpgsql: a one-line SQL function
    # would be inlined into a constant before PostgreSQL looks).
    conn.execute("CREATE FUNCTION app_code() RETURNS int LANGUAGE plpgsql "
                 "AS 'BEGIN RETURN 7; END'")
    sql = "ALTER TABLE t ADD COLUMN code int DEFAULT app_code()"
    assert _rewrites(conn, sql)
    assert "adding-field-with-volatile-default" in _rules(sql)
    # the catalog says volatile too, and the engine passes that on.
    catalog = function_volatility(conn)
    assert catalog["app_code"] == "v" and catalog["public.app_code"] == "v"
    facts = CatalogFacts(functions=catalog)
    assert "adding-field-with-volatile-default" in _rules(sql, facts=facts)


def test_a_default_calling_an_immutable_function_does_not_rewrite(
    conn: psycopg.Connection[Any],
) -> None:
    conn.execute("CREATE FUNCTION app_code() RETURNS int IMMUTABLE LANGUAGE plpgsql "
                 "AS 'BEGIN RETURN 7; END'")
    conn.execute("CREATE FUNCTION app_now() RETURNS timestamptz STABLE LANGUAGE plpgsql "
                 "AS 'BEGIN RETURN now(); END'")
    for column, call in (("code", "app_code()"), ("at", "app_now()"), ("n", "now()")):
        sql = f"ALTER TABLE t ADD COLUMN {column} {'int' if column == 'code' else 'timestamptz'} " \
              f"DEFAULT {call}"
        facts = CatalogFacts(functions=function_volatility(conn))
        assert "adding-field-with-volatile-default" not in _rules(sql, facts=facts)
        assert not _rewrites(conn, sql), sql


def test_plan_reads_function_volatility_from_the_catalog(tmp_path: Path, database_url: str,
                                                         conn: psycopg.Connection[Any]) -> None:
    conn.execute("CREATE FUNCTION stable_code() RETURNS int STABLE LANGUAGE sql AS 'SELECT 1'")
    conn.execute("CREATE FUNCTION random_code() RETURNS int LANGUAGE sql AS 'SELECT 1'")
    folder = write_drizzle_folder(tmp_path / "m", [
        "ALTER TABLE t ADD COLUMN a1 int DEFAULT stable_code();--> statement-breakpoint\n"
        "ALTER TABLE t ADD COLUMN a2 int DEFAULT random_code();\n",
    ])
    data = result_of(run_pgshift("plan", "--dir", str(folder), "--output", "json",
                                 "--no-rewrite", database_url=database_url))
    found = [(f["line"], f["rule"]) for f in data["findingList"]]
    assert found == [(2, "adding-field-with-volatile-default")]
    # offline, stable_code is unknown: both are reported.
    lint = result_of(run_pgshift("lint", "--dir", str(folder), "--output", "json",
                                 "--no-rewrite"))
    assert [f["line"] for f in lint["findingList"]] == [1, 2]
    # the source's own definition wins over the catalog, before and after it is applied.
    source = Source(layout=Layout.DRIZZLE, migrations=(migration(
        "CREATE OR REPLACE FUNCTION stable_code() RETURNS int LANGUAGE sql AS 'SELECT 2';\n",
        name="0000_f"), migration("SELECT 1;\n", name="0001_use")))
    assert source_functions(source, function_volatility(conn))["0001_use"]["stable_code"] == "v"


def _proves(conn: psycopg.Connection[Any], sql: str) -> bool:
    """Did SET NOT NULL skip its scan? The server says so at DEBUG1."""
    notices: list[str] = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    conn.execute("SET client_min_messages = debug1")
    try:
        conn.execute(sql)
    finally:
        conn.execute("RESET client_min_messages")
    return any("sufficient to prove" in n for n in notices)


def test_only_a_validated_check_spares_set_not_null_its_scan(
    conn: psycopg.Connection[Any],
) -> None:
    conn.execute("ALTER TABLE t ADD CONSTRAINT t_a_nn CHECK (a IS NOT NULL) NOT VALID")
    set_not_null = "ALTER TABLE t ALTER COLUMN a SET NOT NULL"
    assert not _proves(conn, set_not_null)  # NOT VALID: PostgreSQL scanned
    not_valid = ("ALTER TABLE t ADD CONSTRAINT t_a_nn CHECK (a IS NOT NULL) NOT VALID;\n"
                 + set_not_null)
    assert "adding-not-nullable-field" in _rules(not_valid)
    conn.execute("ALTER TABLE t ALTER COLUMN a DROP NOT NULL")
    conn.execute("ALTER TABLE t VALIDATE CONSTRAINT t_a_nn")
    assert _proves(conn, set_not_null)  # validated: no scan
    validated = not_valid.replace(set_not_null,
                                  "ALTER TABLE t VALIDATE CONSTRAINT t_a_nn;\n" + set_not_null)
    assert "adding-not-nullable-field" not in _rules(validated)


@pytest.mark.parametrize(
    "sql", ["ALTER TABLE t SET UNLOGGED", "ALTER TABLE t SET ACCESS METHOD heap2"]
)
def test_set_logged_unlogged_and_access_method_rewrite_the_table(
    conn: psycopg.Connection[Any], sql: str
) -> None:
    conn.execute("CREATE ACCESS METHOD heap2 TYPE TABLE HANDLER heap_tableam_handler")
    assert _rewrites(conn, sql)
    assert "ban-table-rewrite" in _rules(sql)
    if "UNLOGGED" in sql:
        assert _rewrites(conn, "ALTER TABLE t SET LOGGED")
        assert "ban-table-rewrite" in _rules("ALTER TABLE t SET LOGGED")


def test_option_values_count_as_postgresql_reads_them(conn: psycopg.Connection[Any]) -> None:
    for off in ("VACUUM (FULL FALSE) t", "VACUUM (FULL off) t", "VACUUM (FULL 0) t"):
        assert not _rewrites(conn, off), off
        assert "ban-vacuum-full" not in _rules(off)
    assert _rewrites(conn, "VACUUM (FULL TRUE) t")
    assert "ban-vacuum-full" in _rules("VACUUM (FULL TRUE) t")
    conn.execute("CREATE INDEX t_a ON t (a)")
    # CONCURRENTLY FALSE is a plain REINDEX: PostgreSQL runs it inside a transaction block,
    # which a concurrent one refuses.
    with conn.transaction():
        conn.execute("REINDEX (CONCURRENTLY FALSE) TABLE t")
    assert "ban-reindex-without-concurrently" in _rules("REINDEX (CONCURRENTLY FALSE) TABLE t")


def test_detach_partition_concurrently_is_applied_outside_a_transaction(
    tmp_path: Path, database_url: str, conn: psycopg.Connection[Any]
) -> None:
    conn.execute("CREATE TABLE ev (at date) PARTITION BY RANGE (at)")
    conn.execute("CREATE TABLE ev_2023 PARTITION OF ev FOR VALUES FROM ('2023-01-01') "
                 "TO ('2024-01-01')")
    folder = write_drizzle_folder(
        tmp_path / "m", ["ALTER TABLE ev DETACH PARTITION ev_2023 CONCURRENTLY;\n"]
    )
    assert "require-concurrent-partition-detach" not in _rules(
        "ALTER TABLE ev DETACH PARTITION ev_2023 CONCURRENTLY")
    proc = run_pgshift("apply", "--dir", str(folder), database_url=database_url)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    row = conn.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'ev'::regclass"
                       ).fetchone()
    assert row is not None and row[0] == 0


def test_long_identifiers_are_truncated_by_postgresql(conn: psycopg.Connection[Any]) -> None:
    long = "x" * 70
    sql = f"CREATE TABLE {long} (id bigint)"
    conn.execute(sql)
    assert conn.execute("SELECT to_regclass(%s)", ("x" * 63,)).fetchone() == ("x" * 63,)
    assert "identifier-too-long" in _rules(sql)


def test_enable_rule_turns_on_opt_in_rules_and_names_an_unknown_one(tmp_path: Path) -> None:
    folder = write_drizzle_folder(tmp_path / "m", ["CREATE TABLE n (id serial, at timestamp);"])
    default = result_of(run_pgshift("lint", "--dir", str(folder), "--output", "json"))
    assert default["findingList"] == []
    on = result_of(run_pgshift("lint", "--dir", str(folder), "--output", "json",
                               "--enable-rule", "prefer-identity,prefer-timestamptz"))
    assert {f["rule"] for f in on["findingList"]} == {"prefer-identity", "prefer-timestamptz"}
    style = result_of(run_pgshift("lint", "--dir", str(folder), "--output", "json",
                                  "--enable-rule", "style"))
    assert {f["rule"] for f in style["findingList"]} == {
        "prefer-identity", "prefer-timestamptz", "prefer-bigint-over-int"}
    bad = run_pgshift("lint", "--dir", str(folder), "--enable-rule", "prefer-nothing")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "--enable-rule: 'prefer-nothing' is not a lint rule" in bad.stderr
