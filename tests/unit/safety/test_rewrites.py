"""Rewrites: their SQL re-parses to the tree they were built from; names are deterministic."""

from __future__ import annotations

import pytest
from pglast import parse_sql

from pgshift.safety import analyze
from pgshift.safety.names import MAX_IDENTIFIER_BYTES, invent, render
from pgshift.safety.rewrites.set_not_null import constraint_name
from tests.unit.safety.helpers import migration

SOURCES = [
    "CREATE INDEX i ON t (lower(a) DESC NULLS LAST) INCLUDE (b) WHERE a IS NOT NULL",
    "CREATE UNIQUE INDEX IF NOT EXISTS i ON ONLY s.t USING btree (a) NULLS NOT DISTINCT "
    "WITH (fillfactor = 70) TABLESPACE pg_default WHERE a > 1",
    "CREATE INDEX i ON t USING gin (doc jsonb_path_ops)",
    "ALTER TABLE s.t ADD CONSTRAINT f FOREIGN KEY (a, b) REFERENCES u (x, y) "
    "MATCH FULL ON DELETE SET NULL (a) DEFERRABLE INITIALLY DEFERRED",
    "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0 AND b IS NOT NULL) NO INHERIT",
    'ALTER TABLE "Weird Schema"."Table" ALTER COLUMN "Col Name" SET NOT NULL',
    "ALTER TABLE ONLY t ALTER COLUMN a SET NOT NULL",
    "DROP INDEX IF EXISTS s.i",
    'ALTER TABLE "App"."T" ADD COLUMN "Token" uuid DEFAULT gen_random_uuid() NOT NULL',
    "ALTER TABLE s.t ADD CONSTRAINT t_pk PRIMARY KEY (a, b) WITH (fillfactor = 90) "
    "USING INDEX TABLESPACE pg_default",
    "ALTER TABLE t ADD CONSTRAINT k UNIQUE NULLS NOT DISTINCT (a, b) INCLUDE (c) "
    "WITH (fillfactor = 80) USING INDEX TABLESPACE pg_default DEFERRABLE",
]


@pytest.mark.parametrize("sql", SOURCES)
def test_rewritten_sql_reparses_to_what_was_built(sql: str) -> None:
    a = analyze(migration(sql + ";"))
    assert all(s.rewrite for s in a.statements), [s.sql for s in a.statements]
    assert len(a.statements) >= 1
    for s in a.statements:
        (raw,) = parse_sql(s.sql)
        # printing the re-parsed tree gives the same text: nothing was lost in printing.
        assert render(raw.stmt) == s.sql
        assert s.original_sql == sql and s.source_index == 0 and s.line == 1
    assert a.findings == ()


def test_only_the_table_keeps_its_only() -> None:
    a = analyze(migration("ALTER TABLE ONLY t ALTER COLUMN a SET NOT NULL;"))
    assert [s.sql for s in a.statements] == [
        "ALTER TABLE ONLY t ADD CONSTRAINT t_a_not_null_check CHECK (a IS NOT NULL) NOT VALID",
        "ALTER TABLE ONLY t VALIDATE CONSTRAINT t_a_not_null_check",
        "ALTER TABLE ONLY t ALTER COLUMN a SET NOT NULL",
        "ALTER TABLE ONLY t DROP CONSTRAINT t_a_not_null_check",
    ]


def test_unnamed_constraints_are_not_rewritten() -> None:
    for sql in ("ALTER TABLE t ADD FOREIGN KEY (a) REFERENCES u (id)",
                "ALTER TABLE t ADD CHECK (a > 0)", "ALTER TABLE t ADD UNIQUE (a)"):
        (s,) = analyze(migration(sql + ";")).statements
        assert s.rewrite == "" and s.sql == sql


def test_multi_command_alter_table_is_not_rewritten() -> None:
    sql = "ALTER TABLE t ALTER COLUMN a SET NOT NULL, ALTER COLUMN b SET NOT NULL"
    (s,) = analyze(migration(sql + ";")).statements
    assert s.rewrite == ""
    assert {f.rule for f in analyze(migration(sql + ";")).findings} == {
        "adding-not-nullable-field"
    }


def test_invented_names_are_deterministic_and_short() -> None:
    long = "x" * 60
    name = constraint_name(long, long)
    assert name == constraint_name(long, long)
    assert len(name.encode()) == MAX_IDENTIFIER_BYTES
    assert name != constraint_name(long, long + "y")
    assert constraint_name("projects", "slug") == "projects_slug_not_null_check"
    multibyte = invent("ü" * 40, "é" * 40)
    assert len(multibyte.encode()) <= MAX_IDENTIFIER_BYTES
    multibyte.encode().decode("utf-8")  # cut on a character boundary


def test_directive_no_transaction_and_phase_apply_to_every_part() -> None:
    sql = "-- pgshift:phase=expand\nALTER TABLE t ALTER COLUMN a SET NOT NULL;\n"
    a = analyze(migration(sql))
    assert {s.phase.value for s in a.statements} == {"expand"}


def test_drop_index_with_cascade_or_several_indexes_is_left_alone() -> None:
    for sql in ("DROP INDEX i CASCADE", "DROP INDEX i, j"):
        a = analyze(migration(sql + ";"))
        assert [s.rewrite for s in a.statements] == [""]
        assert [f.rule for f in a.findings] == ["require-concurrent-index-deletion"]


def test_primary_key_makes_its_columns_not_null_first() -> None:
    a = analyze(migration("ALTER TABLE t ADD PRIMARY KEY (a, b);"))
    assert [s.sql for s in a.statements] == [
        "ALTER TABLE t ADD CONSTRAINT t_a_not_null_check CHECK (a IS NOT NULL) NOT VALID",
        "ALTER TABLE t VALIDATE CONSTRAINT t_a_not_null_check",
        "ALTER TABLE t ALTER COLUMN a SET NOT NULL",
        "ALTER TABLE t DROP CONSTRAINT t_a_not_null_check",
        "ALTER TABLE t ADD CONSTRAINT t_b_not_null_check CHECK (b IS NOT NULL) NOT VALID",
        "ALTER TABLE t VALIDATE CONSTRAINT t_b_not_null_check",
        "ALTER TABLE t ALTER COLUMN b SET NOT NULL",
        "ALTER TABLE t DROP CONSTRAINT t_b_not_null_check",
        "CREATE UNIQUE INDEX CONCURRENTLY t_pkey ON t (a, b)",
        "ALTER TABLE t ADD CONSTRAINT t_pkey PRIMARY KEY USING INDEX t_pkey",
    ]
    assert {s.rewrite for s in a.statements} == {"primary-key-using-index"}
    assert {s.phase.value for s in a.statements} == {"contract"}
    assert a.statements[1].catch_up is not None and a.statements[8].index_unique
    assert a.findings == ()


def test_volatile_default_is_added_set_and_backfilled() -> None:
    a = analyze(migration("ALTER TABLE t ADD COLUMN at timestamptz DEFAULT clock_timestamp();"))
    assert [(s.phase.value, s.tx.value, s.sql) for s in a.statements] == [
        ("expand", "transaction", "ALTER TABLE t ADD COLUMN at timestamptz"),
        ("expand", "transaction", "ALTER TABLE t ALTER COLUMN at SET DEFAULT clock_timestamp()"),
        ("backfill", "batched", "UPDATE t SET at = clock_timestamp() WHERE at IS NULL"),
    ]
    backfill = a.statements[2].backfill
    assert backfill is not None and backfill.idempotent and backfill.columns == ("at",)
    assert a.findings == ()


@pytest.mark.parametrize(
    "sql",
    [
        "ALTER TABLE t ADD COLUMN IF NOT EXISTS a uuid DEFAULT gen_random_uuid()",
        "ALTER TABLE t ADD COLUMN a uuid DEFAULT gen_random_uuid() UNIQUE",
        "ALTER TABLE t ADD COLUMN a bigserial",
        "ALTER TABLE t ADD COLUMN a timestamptz DEFAULT now() NOT NULL",
    ],
)
def test_volatile_default_rewrite_leaves_other_columns_alone(sql: str) -> None:
    (s,) = analyze(migration(sql + ";")).statements
    assert s.rewrite == ""


def test_no_transaction_keeps_batches_batched() -> None:
    sql = "-- pgshift:no-transaction\nALTER TABLE t ADD COLUMN a uuid DEFAULT gen_random_uuid();\n"
    assert [s.tx.value for s in analyze(migration(sql)).statements] == [
        "autocommit", "autocommit", "batched"]
