"""Classification of single statements on existing tables (offline: every table exists)."""

from __future__ import annotations

import pytest

from pgshift.safety import CatalogFacts, analyze
from tests.unit.safety.helpers import migration

#: sql -> (phase, tx, lock, destructive, tables, summary), rewrites off: as written.
CASES = {
    "CREATE TABLE app.t (id int PRIMARY KEY)":
        ("expand", "transaction", "weak", False, ("app.t",), "create table app.t"),
    "CREATE TABLE t (id int, u int REFERENCES users (id))":
        ("expand", "transaction", "strong", False, ("t",), "create table t"),
    'ALTER TABLE "projects" ADD COLUMN "slug" text':
        ("expand", "transaction", "strong", False, ("projects",), "add column projects.slug"),
    "ALTER TABLE t ALTER COLUMN a SET DEFAULT 0":
        ("expand", "transaction", "strong", False, ("t",), "set default t.a"),
    "ALTER TABLE t ALTER COLUMN a DROP DEFAULT":
        ("contract", "transaction", "strong", False, ("t",), "drop default t.a"),
    "ALTER TABLE t ALTER COLUMN a DROP NOT NULL":
        ("expand", "transaction", "strong", False, ("t",), "drop not null t.a"),
    "ALTER TABLE t ALTER COLUMN a SET NOT NULL":
        ("contract", "transaction", "strong", False, ("t",), "set not null t.a"),
    "ALTER TABLE t ALTER COLUMN a TYPE bigint":
        ("contract", "transaction", "strong", True, ("t",), "change type of t.a"),
    "ALTER TABLE t DROP COLUMN a":
        ("contract", "transaction", "strong", True, ("t",), "drop column t.a"),
    "ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES u (id) NOT VALID":
        ("expand", "transaction", "strong", False, ("t",), "add foreign key f on t"),
    "ALTER TABLE t VALIDATE CONSTRAINT f":
        ("expand", "autocommit", "weak", False, ("t",), "validate constraint f on t"),
    "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0)":
        ("contract", "transaction", "strong", False, ("t",), "add check c on t"),
    "ALTER TABLE t ADD CONSTRAINT k UNIQUE (a)":
        ("contract", "transaction", "strong", False, ("t",), "add unique k on t"),
    "ALTER TABLE t DROP CONSTRAINT k":
        ("contract", "transaction", "strong", False, ("t",), "drop constraint k on t"),
    "ALTER TABLE t RENAME COLUMN a TO b":
        ("contract", "transaction", "strong", True, ("t",), "rename column t.a to b"),
    "ALTER TABLE t RENAME TO u":
        ("contract", "transaction", "strong", True, ("t",), "rename table t to u"),
    "CREATE INDEX i ON t (a)":
        ("expand", "transaction", "strong", False, ("t",), "create index i on t"),
    "CREATE UNIQUE INDEX CONCURRENTLY i ON t (a)":
        ("expand", "autocommit", "weak", False, ("t",), "create unique index i on t"),
    "DROP INDEX CONCURRENTLY i":
        ("contract", "autocommit", "weak", True, (), "drop index i"),
    "DROP TABLE s.t":
        ("contract", "transaction", "strong", True, ("s.t",), "drop table s.t"),
    "DROP TYPE mood":
        ("contract", "transaction", "strong", True, (), "drop type mood"),
    "TRUNCATE t":
        ("contract", "transaction", "strong", True, ("t",), "truncate t"),
    "DELETE FROM t WHERE a = 1":
        ("contract", "transaction", "weak", True, ("t",), "delete from t"),
    "UPDATE t SET a = 1":
        ("backfill", "transaction", "weak", False, ("t",), "update t"),
    "INSERT INTO t SELECT * FROM u":
        ("backfill", "transaction", "weak", False, ("t",), "insert into t select"),
    "INSERT INTO t VALUES (1)":
        ("expand", "transaction", "weak", False, ("t",), "insert into t"),
    "CREATE TYPE mood AS ENUM ('a')":
        ("expand", "transaction", "weak", False, (), "create enum"),
    "ALTER TYPE mood ADD VALUE 'b'":
        ("expand", "autocommit", "weak", False, (), "add value 'b' to type mood"),
    "CREATE EXTENSION IF NOT EXISTS pgcrypto":
        ("expand", "transaction", "weak", False, (), "create extension"),
    "VACUUM t":
        ("expand", "autocommit", "weak", False, ("t",), "vacuum t"),
    "VACUUM FULL t":
        ("expand", "autocommit", "strong", False, ("t",), "vacuum full t"),
    "REINDEX (CONCURRENTLY) INDEX i":
        ("expand", "autocommit", "weak", False, (), "reindex i"),
    "ALTER SYSTEM SET work_mem = '64MB'":
        ("expand", "autocommit", "weak", False, (), "alter system"),
    "CREATE DATABASE other":
        ("expand", "autocommit", "weak", False, (), "create database"),
    "DROP DATABASE other":
        ("contract", "autocommit", "strong", True, (), "drop database"),
    "DO $$ BEGIN PERFORM 1; END $$":
        ("contract", "transaction", "strong", False, (), "do block"),
    "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()":
        ("expand", "transaction", "strong", False, ("t",), "create trigger on t"),
    "LOCK TABLE t":
        ("contract", "transaction", "strong", False, (), "lock"),
}


@pytest.mark.parametrize("sql", list(CASES))
def test_classification(sql: str) -> None:
    (s,) = analyze(migration(sql + ";"), rewrite=False).statements
    got = (s.phase.value, s.tx.value, s.lock.value, s.destructive, s.tables, s.summary)
    assert got == CASES[sql]


@pytest.mark.parametrize(
    ("directive", "phase", "tx"),
    [
        ("phase=expand", "expand", "transaction"),
        ("no-transaction", "contract", "autocommit"),
        ("phase=backfill no-transaction", "backfill", "autocommit"),
    ],
)
def test_directives_decide_phase_and_transaction(directive: str, phase: str, tx: str) -> None:
    sql = f"-- pgshift:{directive}\nDO $$ BEGIN PERFORM 1; END $$;\n"
    (s,) = analyze(migration(sql)).statements
    assert (s.phase.value, s.tx.value) == (phase, tx)


def test_index_name_is_kept_for_concurrent_builds() -> None:
    (s,) = analyze(migration("CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a);")).statements
    assert s.index_name == "i"


def test_alter_table_with_several_commands_takes_the_latest_phase() -> None:
    (s,) = analyze(migration("ALTER TABLE t ADD COLUMN b int, DROP COLUMN a;")).statements
    assert s.phase.value == "contract" and s.destructive
    assert s.summary == "add column t.b; drop column t.a"


def test_index_name_is_qualified_like_its_table() -> None:
    plan = analyze(migration(
        "CREATE INDEX i ON app.t (a);\nALTER TABLE app.t ADD CONSTRAINT k UNIQUE (a);\n"
        "CREATE INDEX CONCURRENTLY j ON t (a);\n"
    )).statements
    assert [s.index_name for s in plan] == ["app.i", "app.k", None, "j"]


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("REFRESH MATERIALIZED VIEW CONCURRENTLY mv", ("backfill", "transaction", "weak")),
        ("REFRESH MATERIALIZED VIEW mv", ("backfill", "transaction", "strong")),
        ("CREATE TABLESPACE ts LOCATION '/x'", ("expand", "autocommit", "weak")),
        ("CREATE FOREIGN TABLE ft (a int) SERVER srv", ("expand", "transaction", "weak")),
        ("CREATE TABLE p2 PARTITION OF t FOR VALUES FROM (1) TO (9)",
         ("expand", "transaction", "strong")),
    ],
)
def test_more_statement_kinds(sql: str, expected: tuple[str, str, str]) -> None:
    (s,) = analyze(migration(sql + ";")).statements
    assert (s.phase.value, s.tx.value, s.lock.value) == expected


def test_every_kind_of_statement_is_classified_without_error() -> None:
    # a wide sample of PostgreSQL's statements: classification never fails, unknown -> contract.
    sql = """
    ALTER INDEX i RENAME TO j; ALTER VIEW v RENAME TO w; ALTER SEQUENCE s RESTART WITH 10;
    COMMENT ON COLUMN t.a IS 'x'; GRANT SELECT ON t TO PUBLIC; CREATE POLICY p ON t USING (true);
    DROP POLICY p ON t; CREATE RULE r AS ON INSERT TO t DO INSTEAD NOTHING;
    ALTER TABLE t ATTACH PARTITION p FOR VALUES FROM (1) TO (10); COPY t FROM STDIN;
    LOCK TABLE t; DROP TRIGGER tr ON t; DROP FUNCTION f(int); DROP SCHEMA s CASCADE;
    ALTER TYPE e RENAME TO f; ALTER TYPE e RENAME VALUE 'a' TO 'b'; ALTER TABLE t SET SCHEMA s;
    ALTER DOMAIN d ADD CONSTRAINT c CHECK (VALUE > 0); ALTER TABLE t ENABLE ROW LEVEL SECURITY;
    ALTER TABLE t ADD CONSTRAINT ex EXCLUDE USING gist (r WITH &&);
    CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;
    MERGE INTO t USING u ON t.id = u.id WHEN MATCHED THEN UPDATE SET a = u.a;
    CLUSTER; REINDEX DATABASE db; SET search_path TO app; SHOW work_mem; NOTIFY ch; CALL p();
    CREATE EVENT TRIGGER et ON ddl_command_start EXECUTE FUNCTION f(); DROP OWNED BY bob;
    CHECKPOINT; IMPORT FOREIGN SCHEMA s FROM SERVER srv INTO app;
    """
    a = analyze(migration(sql))
    assert len(a.statements) == 32
    assert all(s.summary for s in a.statements)


def test_foreign_key_on_a_new_table_bounds_its_wait_for_an_existing_referenced_table() -> None:
    sql = (
        "CREATE TABLE a (id int PRIMARY KEY, u int, p int);\n"
        "ALTER TABLE a ADD CONSTRAINT a_u_fk FOREIGN KEY (u) REFERENCES users (id);\n"
        "ALTER TABLE a ADD CONSTRAINT a_p_fk FOREIGN KEY (p) REFERENCES a (id);\n"
        "ALTER TABLE a ADD COLUMN n text;\n"
    )
    locks = [s.lock.value for s in analyze(migration(sql)).statements]
    # users exists (it may be busy): SHARE ROW EXCLUSIVE on it is waited for under lock_timeout
    assert locks == ["weak", "strong", "weak", "weak"]
    # with users created earlier in the run (CatalogFacts.created_earlier), nothing waits on
    # the app
    later = analyze(migration(sql), facts=CatalogFacts(created_earlier=frozenset({"users"})))
    assert [s.lock.value for s in later.statements] == ["weak"] * 4
