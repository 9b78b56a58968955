"""Lint that agrees with PostgreSQL (issue 9): unknown functions are volatile, only validated
checks prove NOT NULL, option values count, DETACH CONCURRENTLY runs outside a transaction,
opt-in rules stay off unless asked for. What PostgreSQL itself does is shown against a real
server in tests/integration/test_lint_postgres.py."""

from __future__ import annotations

import pytest
from pglast import parse_sql

from pgshift.safety import CatalogFacts, LockClass, Phase, TxMode, analyze, analyze_all, lint
from pgshift.safety.analyze import functions_before
from pgshift.safety.classify import classify
from pgshift.safety.context import Context
from pgshift.safety.rules import RULES, STYLE
from pgshift.safety.volatility import volatility
from tests.unit.safety.helpers import migration

UNKNOWN = "ALTER TABLE t ADD COLUMN code text DEFAULT app.make_code();\n"
VOLATILE_RULE = "adding-field-with-volatile-default"


def _rules(sql: str, **kw: object) -> list[str]:
    return [f.rule for f in analyze(migration(sql), rewrite=False, **kw).findings]  # type: ignore[arg-type]


def test_unknown_function_default_is_volatile_in_rule_and_rewrite() -> None:
    assert VOLATILE_RULE in _rules(UNKNOWN)
    planned = analyze(migration(UNKNOWN)).statements
    assert [s.rewrite for s in planned] == ["volatile-default"] * 3
    assert [s.tx for s in planned][-1] is TxMode.BATCHED
    # the rewritten form is not reported: rule and rewrite agree.
    assert VOLATILE_RULE not in [f.rule for f in analyze(migration(UNKNOWN)).findings]


@pytest.mark.parametrize("letter", ["i", "s"])
def test_catalog_facts_make_a_function_non_volatile(letter: str) -> None:
    facts = {"app.make_code": letter, "make_code": letter}
    assert VOLATILE_RULE not in _rules(UNKNOWN, facts=CatalogFacts(functions=facts))
    planned = analyze(migration(UNKNOWN), facts=CatalogFacts(functions=facts)).statements
    assert [s.rewrite for s in planned] == [""]


def test_catalog_volatile_fact_is_volatile() -> None:
    assert VOLATILE_RULE in _rules(UNKNOWN, facts=CatalogFacts(functions={"app.make_code": "v"}))


def test_the_files_definition_wins_over_the_catalog_from_that_statement_on() -> None:
    sql = (
        "ALTER TABLE t ADD COLUMN a int DEFAULT f();\n"
        "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';\n"
        "ALTER TABLE t ADD COLUMN b int DEFAULT f();\n"
    )
    found = [(f.line, f.rule) for f in analyze(migration(sql), rewrite=False,
                                               facts=CatalogFacts(functions={"f": "i"})).findings]
    assert found == [(3, VOLATILE_RULE)]


def test_definitions_reach_later_files() -> None:
    first = migration("CREATE FUNCTION app.code() RETURNS text STABLE LANGUAGE sql "
                      "AS 'SELECT 1';\n", name="0001_f", path="drizzle/0001_f.sql")
    second = migration("ALTER TABLE t ADD COLUMN c text DEFAULT app.code();\n",
                       name="0002_use", path="drizzle/0002_use.sql")
    assert VOLATILE_RULE not in [f.rule for f in lint([first, second])]
    assert [s.rewrite for s in analyze_all([first, second])[1].statements] == [""]
    before = functions_before([first, second], {"app.code": "v", "other": "i"})
    assert before["0001_f"] == {"app.code": "v", "other": "i"}
    assert before["0002_use"] == {"app.code": "s", "code": "s", "other": "i"}
    # alone, the second file's function is unknown: volatile.
    assert analyze(second).statements[0].rewrite == "volatile-default"
    assert VOLATILE_RULE in _rules(second.sql)


def test_builtins_are_known_and_pg_catalog_comes_first() -> None:
    assert volatility(("now",)) == "s" and volatility(("pg_catalog", "lower")) == "s"
    assert volatility(("gen_random_uuid",)) == "v" and volatility(("uuid_generate_v4",)) == "v"
    assert volatility(("lower",), {"lower": "v"}) == "s"  # unqualified: pg_catalog's lower
    assert volatility(("app", "lower"), {"app.lower": "v"}) == "v"
    assert volatility(("my_fn",)) is None


def test_a_not_valid_check_does_not_prove_not_null() -> None:
    not_valid = ("ALTER TABLE t ADD CONSTRAINT t_a_nn CHECK (a IS NOT NULL) NOT VALID;\n"
                 "ALTER TABLE t ALTER COLUMN a SET NOT NULL;\n")
    assert "adding-not-nullable-field" in _rules(not_valid)
    validated = not_valid.replace(
        "ALTER TABLE t ALTER", "ALTER TABLE t VALIDATE CONSTRAINT t_a_nn;\nALTER TABLE t ALTER")
    assert "adding-not-nullable-field" not in _rules(validated)


def _cls(sql: str):  # type: ignore[no-untyped-def]
    return classify(parse_sql(sql)[0].stmt, Context())


@pytest.mark.parametrize(("sql", "lock"), [
    ("VACUUM (FULL FALSE) t", LockClass.WEAK), ("VACUUM (FULL off) t", LockClass.WEAK),
    ("VACUUM (FULL 0) t", LockClass.WEAK), ("VACUUM (FULL) t", LockClass.STRONG),
    ("VACUUM (FULL true) t", LockClass.STRONG), ("VACUUM FULL t", LockClass.STRONG),
    ("REINDEX (CONCURRENTLY FALSE) TABLE t", LockClass.STRONG),
    ("REINDEX (CONCURRENTLY 0) INDEX i", LockClass.STRONG),
    ("REINDEX (CONCURRENTLY) TABLE t", LockClass.WEAK),
    ("REINDEX (CONCURRENTLY on) TABLE t", LockClass.WEAK),
])
def test_option_values_count_in_the_classification(sql: str, lock: LockClass) -> None:
    assert _cls(sql).lock is lock


def test_blocking_reindex_may_run_in_a_transaction() -> None:
    assert _cls("REINDEX (CONCURRENTLY FALSE) TABLE t").tx is TxMode.TRANSACTION
    assert _cls("REINDEX (CONCURRENTLY TRUE) TABLE t").tx is TxMode.AUTOCOMMIT


def test_explain_analyze_is_classified_as_the_statement_it_runs() -> None:
    ran = _cls("EXPLAIN (ANALYZE) UPDATE t SET a = 1")
    assert ran.phase is Phase.BACKFILL and ran.on_existing
    assert _cls("EXPLAIN ANALYZE DELETE FROM t").destructive
    for plain in ("EXPLAIN UPDATE t SET a = 1", "EXPLAIN (ANALYZE FALSE) DELETE FROM t"):
        cls = _cls(plain)
        assert (cls.phase, cls.lock, cls.destructive) == (Phase.EXPAND, LockClass.WEAK, False)


def test_detach_partition_concurrently_runs_on_its_own_outside_a_transaction() -> None:
    concurrent = _cls("ALTER TABLE t DETACH PARTITION p CONCURRENTLY")
    assert (concurrent.tx, concurrent.lock) == (TxMode.AUTOCOMMIT, LockClass.WEAK)
    plain = _cls("ALTER TABLE t DETACH PARTITION p")
    assert (plain.tx, plain.lock) == (TxMode.TRANSACTION, LockClass.STRONG)
    assert _cls("ALTER TABLE t DETACH PARTITION p FINALIZE").tx is TxMode.TRANSACTION


def test_set_logged_and_friends_say_they_rewrite() -> None:
    for sql in ("ALTER TABLE t SET LOGGED", "ALTER TABLE t SET UNLOGGED",
                "ALTER TABLE t SET ACCESS METHOD heap", "ALTER TABLE t SET TABLESPACE x"):
        cls = _cls(sql)
        assert "rewrites the table" in cls.summary and cls.lock is LockClass.STRONG


def test_opt_in_rules_are_off_by_default_and_on_when_enabled() -> None:
    sql = ("CREATE TABLE n (id serial, small smallint, at timestamp, name varchar(20));\n"
           "ALTER TYPE e ADD VALUE 'x';\n")
    assert not set(_rules(sql)) & STYLE
    assert set(_rules(sql, enable=STYLE)) == STYLE
    assert set(_rules(sql, enable=frozenset({"prefer-identity"}))) == {"prefer-identity"}
    assert all(RULES[r].opt_in for r in STYLE) and len(STYLE) == 6


def test_a_rewritten_statement_reports_a_long_identifier_once() -> None:
    sql = f"ALTER TABLE t ADD COLUMN {'c' * 64} uuid DEFAULT gen_random_uuid() NOT NULL;\n"
    analysis = analyze(migration(sql))
    assert len(analysis.statements) > 1
    assert [f.rule for f in analysis.findings] == ["identifier-too-long"]


@pytest.mark.parametrize("default", [
    "gen_random_uuid()", "my_counter()", "app.code()", "now()", "'x'", "lower('A')", "2 + 2",
    "clock_timestamp() - interval '1 day'", "coalesce(NULL, nextval('s'))", "CURRENT_TIMESTAMP",
])
def test_rule_and_rewrite_agree_on_every_default(default: str) -> None:
    sql = f"ALTER TABLE t ADD COLUMN c text DEFAULT {default};\n"
    fires = VOLATILE_RULE in _rules(sql)
    rewritten = analyze(migration(sql)).statements[0].rewrite == "volatile-default"
    assert fires == rewritten
    assert fires == (default.split("(")[0] in (
        "gen_random_uuid", "my_counter", "app.code", "clock_timestamp", "coalesce"))
