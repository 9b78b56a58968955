"""The syntax each PostgreSQL major lacks (safety/versions.py), without a server: the same table
is checked against real servers of every major in tests/integration/engine/
test_postgres_versions.py."""

from __future__ import annotations

import json

import pytest
from pglast import parser

from pgshift.engine.analysis import quick_check
from pgshift.errors import SyntaxTooNew
from pgshift.safety import analyze
from pgshift.safety.facts import CatalogFacts
from pgshift.safety.model import TxMode
from pgshift.safety.versions import (
    FEATURES,
    GRAMMAR_MAJOR,
    SUPPORTED_MAJORS,
    _statements_json,
    check_sql,
)
from tests.unit.safety.helpers import migration


def test_the_grammar_is_the_newest_supported_major() -> None:
    assert GRAMMAR_MAJOR == SUPPORTED_MAJORS[-1] == 18


def test_every_feature_is_newer_than_the_oldest_major() -> None:
    assert all(SUPPORTED_MAJORS[0] < f.since <= GRAMMAR_MAJOR for f in FEATURES)


@pytest.mark.parametrize(
    ("sql", "since"),
    [
        ("CREATE UNIQUE INDEX i ON t (a) NULLS NOT DISTINCT", 15),
        ("ALTER TABLE t ADD CONSTRAINT c UNIQUE NULLS NOT DISTINCT (a)", 15),
        ("CREATE TABLE t (a int UNIQUE NULLS NOT DISTINCT)", 15),
        ("ALTER TABLE p DETACH PARTITION p1 CONCURRENTLY", 14),
        ("ALTER TABLE t ADD CONSTRAINT c NOT NULL a NOT VALID", 18),
        ("CREATE TABLE t (a int, b int GENERATED ALWAYS AS (a) VIRTUAL)", 18),
        ("CREATE TABLE t (a int, b int GENERATED ALWAYS AS (a))", 18),
        ("ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT ENFORCED", 18),
        ("SELECT * FROM JSON_TABLE(jsonb '[]', '$[*]' COLUMNS (a int PATH '$.a')) j", 17),
    ],
)
def test_syntax_newer_than_the_server_is_refused_by_name(sql: str, since: int) -> None:
    check_sql(sql, since, str)  # the first major that has it
    with pytest.raises(SyntaxTooNew, match=f"needs PostgreSQL {since}; the server is "
                       f"PostgreSQL {since - 1}"):  # fmt: skip
        check_sql(sql, since - 1, str)


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE TABLE t (a int CHECK (a > 0), b int NOT NULL REFERENCES r, c int PRIMARY KEY)",
        "CREATE TABLE t (a int, b int GENERATED ALWAYS AS (a) STORED)",
        "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT VALID",
        "ALTER TABLE t ALTER COLUMN a SET NOT NULL",
        "ALTER TABLE p DETACH PARTITION p1",
        "CREATE UNIQUE INDEX CONCURRENTLY i ON t (a)",
        "ALTER TYPE mood ADD VALUE 'happy'",
    ],
)
def test_syntax_every_supported_major_has_passes(sql: str) -> None:
    check_sql(sql, SUPPORTED_MAJORS[0], str)


def test_quick_check_names_file_and_line() -> None:
    m = migration("CREATE TABLE t (a int);\n\nCREATE UNIQUE INDEX i ON t (a) NULLS NOT DISTINCT;\n")
    quick_check([m])  # no server major: the grammar's
    with pytest.raises(SyntaxTooNew, match=r"^drizzle/0001_test\.sql:3: UNIQUE NULLS NOT"):
        quick_check([m], facts=CatalogFacts(server_major=14))


def test_a_feature_among_many_statements_is_found_in_its_own_statement() -> None:
    """Only the statements whose JSON holds a feature's marker are decoded (issue 14): the one
    that uses it is still found, with its line, first or last, with strings that look like
    JSON around it."""
    before = "".join(f"INSERT INTO t VALUES ({i}, '{{\"stmt\":x}}');\n" for i in range(50))
    feature = "ALTER TABLE t ADD CONSTRAINT c NOT NULL b NOT VALID;\n"
    for sql, line in ((feature + before, 1), (before + feature, 51)):
        m = migration(sql)
        with pytest.raises(SyntaxTooNew, match=rf"^drizzle/0001_test\.sql:{line}: NOT NULL \.\.\."):
            quick_check([m], facts=CatalogFacts(server_major=17))
    tree = parser.parse_sql_json(before + feature)
    assert [json.loads(p) for p in _statements_json(tree)] == json.loads(tree)["stmts"]


def test_detach_partition_concurrently_runs_outside_a_transaction() -> None:
    # PostgreSQL refuses it in a transaction block ("cannot run inside a transaction block").
    (s,) = analyze(migration("ALTER TABLE p DETACH PARTITION p1 CONCURRENTLY;")).statements
    assert s.tx is TxMode.AUTOCOMMIT
    (plain,) = analyze(migration("ALTER TABLE p DETACH PARTITION p1;")).statements
    assert plain.tx is TxMode.TRANSACTION


def test_lint_server_version_refuses_by_name_offline(tmp_path) -> None:
    from tests.helpers import run_pgshift, write_plain_folder

    sql = "CREATE TABLE t (id int);\n\nCREATE UNIQUE INDEX t_id ON t (id) NULLS NOT DISTINCT;\n"
    folder = write_plain_folder(tmp_path / "m", [sql])
    old = run_pgshift("lint", "--dir", str(folder), "--server-version", "14")
    assert old.returncode == 2
    assert old.stderr.strip().startswith(
        f"error[SyntaxTooNew]: {folder}/0001_m0.sql:3: UNIQUE NULLS NOT DISTINCT needs "
        "PostgreSQL 15; the server is PostgreSQL 14"
    )
    assert run_pgshift("lint", "--dir", str(folder), "--server-version", "15.4").returncode == 0
    bad = run_pgshift("lint", "--dir", str(folder), "--server-version", "12")
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error[Usage]: --server-version")
