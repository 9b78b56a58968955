"""Every rule: fires on its bad form with its id, line and docs; is silent on the safe form; can be
allowed for one statement. Offline analysis: every table is assumed to exist."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgshift.safety import RULES, Severity, analyze
from pgshift.safety.rules import STYLE
from tests.unit.safety.helpers import KEY_CASE, migration

ROOT = Path(__file__).resolve().parents[3]

#: rule id -> (statements that break it, statements that do not); checked with rewrites off,
#: so the rule itself is judged, not the rewrite that would fix the statement.
CASES: dict[str, tuple[list[str], list[str]]] = {
    "require-concurrent-index-creation": (
        ["CREATE INDEX i ON t (a)", "CREATE UNIQUE INDEX i ON s.t (a)"],
        ["CREATE INDEX CONCURRENTLY i ON t (a)"],
    ),
    "require-concurrent-index-deletion": (["DROP INDEX i"], ["DROP INDEX CONCURRENTLY i"]),
    "constraint-missing-not-valid": (
        ["ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES u (id)",
         "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0)"],
        ["ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES u (id) NOT VALID",
         "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT VALID",
         "ALTER TABLE t VALIDATE CONSTRAINT c"],
    ),
    "adding-not-nullable-field": (
        ["ALTER TABLE t ADD COLUMN a int NOT NULL", "ALTER TABLE t ALTER COLUMN a SET NOT NULL",
         # a NOT VALID check proves nothing about old rows: PostgreSQL still scans.
         "ALTER TABLE t ADD CONSTRAINT t_a_nn CHECK (a IS NOT NULL) NOT VALID;\n"
         "ALTER TABLE t ALTER COLUMN a SET NOT NULL",
         "ALTER TABLE t ADD CONSTRAINT t_a_nn CHECK (a IS NOT NULL) NOT VALID;\n"
         "ALTER TABLE t VALIDATE CONSTRAINT other;\nALTER TABLE t ALTER COLUMN a SET NOT NULL"],
        ["ALTER TABLE t ADD COLUMN a int NOT NULL DEFAULT 0", "ALTER TABLE t ADD COLUMN a int",
         "ALTER TABLE t ADD CONSTRAINT t_a_nn CHECK (a IS NOT NULL) NOT VALID;\n"
         "ALTER TABLE t VALIDATE CONSTRAINT t_a_nn;\nALTER TABLE t ALTER COLUMN a SET NOT NULL",
         "ALTER TABLE t ADD CONSTRAINT t_a_nn CHECK (a IS NOT NULL);\n"
         "ALTER TABLE t ALTER COLUMN a SET NOT NULL"],
    ),
    "disallowed-unique-constraint": (
        ["ALTER TABLE t ADD CONSTRAINT c UNIQUE (a)", "ALTER TABLE t ADD COLUMN a int UNIQUE"],
        ["ALTER TABLE t ADD CONSTRAINT c UNIQUE USING INDEX c"],
    ),
    "adding-primary-key-constraint": (
        ["ALTER TABLE t ADD PRIMARY KEY (id)"],
        ["ALTER TABLE t ADD CONSTRAINT t_pkey PRIMARY KEY USING INDEX t_pkey"],
    ),
    "adding-field-with-volatile-default": (
        ["ALTER TABLE t ADD COLUMN a uuid DEFAULT gen_random_uuid()",
         "ALTER TABLE t ADD COLUMN id bigserial",
         "ALTER TABLE t ADD COLUMN n int GENERATED ALWAYS AS (a + 1) STORED",
         # unknown functions are VOLATILE, PostgreSQL's default.
         "ALTER TABLE t ADD COLUMN a int DEFAULT my_counter()",
         'ALTER TABLE "core_recipe" ADD COLUMN "foo" integer DEFAULT uuid()',
         'ALTER TABLE "core_recipe" ADD COLUMN "foo" jsonb DEFAULT myjsonb()',
         "ALTER TABLE t ADD COLUMN a text DEFAULT app.make_code(8)",
         "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';\n"
         "ALTER TABLE t ADD COLUMN a int DEFAULT f()",
         "ALTER TABLE t ADD COLUMN a int DEFAULT f();\n"
         "CREATE FUNCTION f() RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT 1'"],
        ["ALTER TABLE t ADD COLUMN at timestamptz DEFAULT now()",
         "ALTER TABLE t ADD COLUMN s text DEFAULT 'x'",
         "ALTER TABLE t ADD COLUMN s text DEFAULT lower(md5('x'))",
         "ALTER TABLE t ADD COLUMN d date DEFAULT CURRENT_DATE",
         "ALTER TABLE t ADD COLUMN foo boolean DEFAULT true",
         "ALTER TABLE t ADD COLUMN foo jsonb DEFAULT '{}'::jsonb",
         "ALTER TABLE t ADD COLUMN foo some_enum_type DEFAULT 'my-enum-variant'",
         "ALTER TABLE t ADD COLUMN blah integer DEFAULT 2 + 2",
         "CREATE FUNCTION app.code() RETURNS text IMMUTABLE LANGUAGE sql AS 'SELECT 1';\n"
         "ALTER TABLE t ADD COLUMN a text DEFAULT app.code()",
         "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';\n"
         "ALTER FUNCTION f() STABLE;\nALTER TABLE t ADD COLUMN a int DEFAULT f()"],
    ),
    "changing-column-type": (["ALTER TABLE t ALTER COLUMN a TYPE bigint",
                              "ALTER TABLE t ALTER COLUMN a TYPE varchar(200)"], []),
    "ban-drop-column": (["ALTER TABLE t DROP COLUMN a"], []),
    "ban-drop-table": (["DROP TABLE t", "DROP TABLE IF EXISTS s.t, u CASCADE"],
                       ["CREATE TABLE n (id int);\nDROP TABLE n"]),
    "renaming-column": (["ALTER TABLE t RENAME COLUMN a TO b"], []),
    "renaming-table": (["ALTER TABLE t RENAME TO u"], []),
    "unbatched-backfill": (
        ["UPDATE t SET n = n + 1", "UPDATE t SET a = 1 WHERE b > 0",
         "UPDATE t SET a = u.a FROM u WHERE u.id = t.id AND t.a IS NULL"],
        ["UPDATE t SET a = 1 WHERE a IS NULL", "-- pgshift:backfill\nUPDATE t SET n = n + 1"],
    ),
    "ban-vacuum-full": (["VACUUM FULL t", "VACUUM (FULL, ANALYZE) t", "CLUSTER t USING i",
                         "VACUUM (FULL TRUE) t", "VACUUM (FULL on) t", "VACUUM (FULL 1) t",
                         "VACUUM (FULL false, FULL) t"],
                        ["VACUUM t", "VACUUM (ANALYZE) t", "VACUUM (FULL FALSE) t",
                         "VACUUM (FULL off) t", "VACUUM (FULL 0, ANALYZE) t"]),
    "ban-reindex-without-concurrently": (
        ["REINDEX TABLE t", "REINDEX INDEX i", "REINDEX (CONCURRENTLY FALSE) TABLE t",
         "REINDEX (CONCURRENTLY off) INDEX i"],
        ["REINDEX (CONCURRENTLY) TABLE t", "REINDEX TABLE CONCURRENTLY t",
         "REINDEX (CONCURRENTLY true) TABLE t", "REINDEX (CONCURRENTLY 1) TABLE t"],
    ),
    "ban-table-rewrite": (
        ["ALTER TABLE t SET LOGGED", "ALTER TABLE t SET UNLOGGED",
         "ALTER TABLE t SET ACCESS METHOD heap", "ALTER TABLE t SET TABLESPACE fast",
         "ALTER INDEX i SET TABLESPACE fast", "ALTER TABLE ALL IN TABLESPACE a SET TABLESPACE b"],
        ["CREATE UNLOGGED TABLE n (id int);\nALTER TABLE n SET LOGGED",
         "ALTER TABLE t SET (fillfactor = 90)"],
    ),
    "require-concurrent-partition-detach": (
        ["ALTER TABLE t DETACH PARTITION p"],
        ["ALTER TABLE t DETACH PARTITION p CONCURRENTLY",
         "ALTER TABLE t DETACH PARTITION p FINALIZE"],
    ),
    "ban-alter-domain-with-add-constraint": (
        ["ALTER DOMAIN d ADD CONSTRAINT c CHECK (VALUE > 0)", "ALTER DOMAIN d SET NOT NULL"],
        ["ALTER DOMAIN d ADD CONSTRAINT c CHECK (VALUE > 0) NOT VALID",
         "ALTER DOMAIN d VALIDATE CONSTRAINT c", "CREATE DOMAIN d AS int CHECK (VALUE > 0)",
         "ALTER DOMAIN d DROP CONSTRAINT c", "ALTER DOMAIN d RENAME TO e"],
    ),
    "ban-drop-not-null": (
        ["ALTER TABLE t ALTER COLUMN a DROP NOT NULL", "ALTER DOMAIN d DROP NOT NULL"],
        ["CREATE TABLE n (a int NOT NULL);\nALTER TABLE n ALTER COLUMN a DROP NOT NULL",
         "ALTER TABLE t ALTER COLUMN a SET DEFAULT 0"],
    ),
    "identifier-too-long": (
        [f"CREATE TABLE {'t' * 64} (id bigint)", f"ALTER TABLE t ADD COLUMN {'c' * 64} int",
         f'CREATE INDEX CONCURRENTLY "{"i" * 64}" ON t (a)',
         f'CREATE TABLE n (id bigint, "{"é" * 32}" text)',
         f"ALTER TABLE t ADD CONSTRAINT {'k' * 70} CHECK (a > 0) NOT VALID"],
        [f"CREATE TABLE {'t' * 63} (id bigint)", f'CREATE TABLE n ("{"é" * 31}" text)',
         f"SELECT '{'x' * 100}'"],
    ),
    "prefer-bigint-over-int": (
        ["CREATE TABLE n (id int)", "ALTER TABLE t ADD COLUMN a integer",
         "ALTER TABLE t ALTER COLUMN a TYPE int4", "CREATE TABLE n (id serial)"],
        ["CREATE TABLE n (id bigint)", "CREATE TABLE n (id int8)"],
    ),
    "prefer-bigint-over-smallint": (
        ["CREATE TABLE n (a smallint)", "CREATE TABLE n (a smallserial)"],
        ["CREATE TABLE n (a bigint)"],
    ),
    "prefer-identity": (
        ["CREATE TABLE n (id serial)", "ALTER TABLE t ADD COLUMN id bigserial"],
        ["CREATE TABLE n (id bigint GENERATED BY DEFAULT AS IDENTITY)"],
    ),
    "prefer-timestamptz": (
        ["CREATE TABLE n (at timestamp)",
         "ALTER TABLE t ADD COLUMN at timestamp without time zone"],
        ["CREATE TABLE n (at timestamptz)", "CREATE TABLE n (at timestamp with time zone)"],
    ),
    "prefer-text-field": (
        ["CREATE TABLE n (a varchar(100))", "CREATE TABLE n (a char(2))",
         "ALTER TABLE t ALTER COLUMN a TYPE varchar(1000)"],
        ["CREATE TABLE n (a text)", "CREATE TABLE n (a varchar)"],
    ),
    "require-enum-value-ordering": (
        ["ALTER TYPE e ADD VALUE 'x'", "ALTER TYPE e ADD VALUE IF NOT EXISTS 'x'"],
        ["ALTER TYPE e ADD VALUE 'x' BEFORE 'y'", "ALTER TYPE e ADD VALUE 'x' AFTER 'y'",
         "ALTER TYPE e RENAME VALUE 'x' TO 'y'"],
    ),
    "ban-truncate-cascade": (["TRUNCATE t CASCADE"], ["TRUNCATE t"]),
    "transaction-nesting": (["BEGIN", "ROLLBACK", "SAVEPOINT s", "PREPARE TRANSACTION 'x'"],
                            ["COMMIT", "END"]),
    "releases-advisory-lock": (
        ["SELECT pg_advisory_unlock_all()", "SELECT pg_advisory_unlock(1)", "DISCARD ALL",
         "DO $$ BEGIN PERFORM pg_advisory_unlock_all(); END $$"],
        ["SELECT pg_advisory_xact_lock(1)", "DISCARD TEMP"],
    ),
    "ban-drop-database": (["DROP DATABASE old"], []),
    "unclassified-statement": (["DO $$ BEGIN PERFORM 1; END $$"],
                               ["-- pgshift:phase=expand\nDO $$ BEGIN PERFORM 1; END $$"]),
}


#: cases where a rule softens its default severity.
SEVERITY = {"ALTER TABLE t ALTER COLUMN a TYPE varchar(200)": Severity.WARNING}


def test_every_rule_has_cases_and_a_docs_page() -> None:
    assert set(CASES) == set(RULES)
    for rule in RULES.values():
        page = ROOT / rule.docs
        assert page.is_file(), page
        text = page.read_text()
        assert text.startswith(f"# {rule.id}\n")
        assert f"-- pgshift:allow={rule.id}" in text
        assert f"Severity: **{rule.severity.value}**" in text
    index = (ROOT / "docs/rules/README.md").read_text()
    assert all(f"[{rid}]({rid}.md)" in index for rid in RULES)


def test_rule_ids_are_kebab_case() -> None:
    for rid in RULES:
        assert rid == rid.lower() and " " not in rid and "_" not in rid


BAD = [(rid, sql) for rid, (bad, _) in CASES.items() for sql in bad]
GOOD = [(rid, sql) for rid, (_, good) in CASES.items() for sql in good]


@pytest.mark.parametrize(("rule", "sql"), BAD, ids=[f"{r}:{s[:30]}" for r, s in BAD])
def test_rule_fires_with_line_docs_and_help(rule: str, sql: str) -> None:
    text = "SELECT 1;\n\n" + sql + ";\n"
    found = analyze(migration(text), rewrite=False, enable=STYLE).findings
    findings = [f for f in found if f.rule == rule]
    assert len(findings) == 1, findings
    f = findings[0]
    assert f.path == "drizzle/0001_test.sql" and f.line >= 3
    assert f.severity is SEVERITY.get(sql, RULES[rule].severity)
    assert f.docs == f"docs/rules/{rule}.md"
    assert f.message and f.help
    assert f.as_dict()["rule"] == rule


@pytest.mark.parametrize(("rule", "sql"), BAD, ids=[f"{r}:{s[:30]}" for r, s in BAD])
def test_allow_directive_silences_exactly_that_rule(rule: str, sql: str) -> None:
    text = f"-- pgshift:allow={rule}\n{sql};\n"
    if ";\n" in sql:  # several statements: allow the rule on each
        text = "".join(f"-- pgshift:allow={rule}\n{part};\n" for part in sql.split(";\n"))
    found = analyze(migration(text), rewrite=False, enable=STYLE).findings
    assert rule not in {f.rule for f in found}


@pytest.mark.parametrize(("rule", "sql"), GOOD, ids=[f"{r}:{s[:30]}" for r, s in GOOD])
def test_rule_is_silent_on_the_safe_form(rule: str, sql: str) -> None:
    findings = analyze(migration(sql + ";\n"), enable=STYLE).findings
    assert rule not in {f.rule for f in findings}


def test_statements_on_tables_created_in_the_run_are_not_judged() -> None:
    sql = (
        "CREATE TABLE n (id int, a int);\n"
        "CREATE INDEX n_a ON n (a);\n"
        "ALTER TABLE n ADD COLUMN b int NOT NULL;\n"
        "ALTER TABLE n ADD CONSTRAINT n_a_key UNIQUE (a);\n"
        "ALTER TABLE n ALTER COLUMN a TYPE bigint;\n"
        "ALTER TABLE n DROP COLUMN b;\n"
        "UPDATE n SET a = a + 1;\n"
    )
    assert analyze(migration(sql), rewrite=False).findings == ()


def test_rewritten_statements_are_linted_after_rewriting() -> None:
    assert analyze(migration(KEY_CASE)).findings == ()
    # an unnamed constraint cannot be rewritten, so it is still reported.
    unnamed = analyze(migration("ALTER TABLE t ADD UNIQUE (a);")).findings
    assert [f.rule for f in unnamed] == ["disallowed-unique-constraint"]


def test_what_the_user_sees_for_set_not_null() -> None:
    (f,) = analyze(migration("ALTER TABLE t ALTER COLUMN a SET NOT NULL;"), rewrite=False).findings
    assert f.as_dict() == {
        "rule": "adding-not-nullable-field",
        "severity": "error",
        "message": "SET NOT NULL on t.a scans every row under an ACCESS EXCLUSIVE lock: reads and "
                   "writes wait",
        "path": "drizzle/0001_test.sql",
        "line": 1,
        "help": "ADD CONSTRAINT c CHECK (a IS NOT NULL) NOT VALID; VALIDATE CONSTRAINT c; "
                "SET NOT NULL; DROP CONSTRAINT c (pgshift rewrites it so unless rewrite=false)",
        "docs": "docs/rules/adding-not-nullable-field.md",
    }
    assert f.severity is Severity.ERROR


def test_batching_a_table_without_a_single_column_key_is_reported() -> None:
    from pgshift.safety import lint

    created = migration(
        "CREATE TABLE logs (id int, msg text);\n"
        "CREATE TABLE pairs (a int, b int, msg text, PRIMARY KEY (a, b));\n"
        "CREATE TABLE ok (id int PRIMARY KEY, msg text);\n"
        "CREATE TABLE later (id int, msg text);\n"
        "ALTER TABLE later ADD CONSTRAINT later_pkey PRIMARY KEY (id);\n"
    )
    updates = migration(
        "UPDATE logs SET msg = 'x' WHERE msg IS NULL;\n"
        "UPDATE pairs SET msg = 'x' WHERE msg IS NULL;\n"
        "UPDATE ok SET msg = 'x' WHERE msg IS NULL;\n"
        "UPDATE later SET msg = 'x' WHERE msg IS NULL;\n"
        "-- pgshift:backfill\nUPDATE logs SET msg = upper(msg);\n"
        "-- pgshift:backfill key=id\nUPDATE logs SET msg = lower(msg);\n",
        name="0002_updates",
    )
    found = [(f.line, f.severity) for f in lint([created, updates])
             if f.rule == "unbatched-backfill"]
    assert found == [(1, Severity.WARNING), (2, Severity.WARNING), (6, Severity.ERROR)]
    # alone (no earlier file says the tables have no key), nothing is known
    assert [f for f in analyze(updates).findings if f.rule == "unbatched-backfill"] == []
