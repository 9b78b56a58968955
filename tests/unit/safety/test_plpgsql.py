"""Guarded-DDL DO blocks (older drizzle-kit output) are classified and linted by what they hold."""

from __future__ import annotations

import pytest
from pglast import parse_sql

from pgshift.safety import analyze
from pgshift.safety.plpgsql import guarded_statements
from tests.unit.safety.helpers import migration

FK = (
    'DO $$ BEGIN\n ALTER TABLE "posts" ADD CONSTRAINT "posts_author_id_users_id_fk" FOREIGN KEY '
    '("author_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;\n'
    "EXCEPTION\n WHEN duplicate_object THEN null;\nEND $$;\n"
)
ENUM = (
    "DO $$ BEGIN\n CREATE TYPE \"public\".\"mood\" AS ENUM('sad', 'ok');\nEXCEPTION\n"
    " WHEN duplicate_object THEN null;\nEND $$;\n"
)


@pytest.mark.parametrize(
    ("sql", "inner"),
    [
        (FK, ["AlterTableStmt"]),
        (ENUM, ["CreateEnumStmt"]),
        ("DO $$ BEGIN CREATE TABLE a (id int); CREATE INDEX ON a (id); END $$",
         ["CreateStmt", "IndexStmt"]),
        ("DO $$ BEGIN PERFORM pg_sleep(1); END $$", None),
        ("DO $$ BEGIN DROP TABLE t; EXCEPTION WHEN others THEN NULL; END $$", None),
        ("DO $$ BEGIN DROP TABLE t; EXCEPTION WHEN undefined_table THEN RAISE NOTICE 'x'; END $$",
         None),
        ("DO $$ DECLARE n int; BEGIN SELECT count(*) INTO n FROM t; END $$", None),
        ("DO $$ BEGIN IF true THEN DROP TABLE t; END IF; END $$", None),
        ("DO LANGUAGE plperl $$ 1; $$", None),
    ],
)
def test_guarded_statements(sql: str, inner: list[str] | None) -> None:
    got = guarded_statements(parse_sql(sql)[0].stmt)
    assert (None if got is None else [type(n).__name__ for n in got]) == inner


def test_guarded_fk_between_new_tables_is_expand_and_weak() -> None:
    sql = (
        'CREATE TABLE "users" ("id" serial PRIMARY KEY);\n'
        'CREATE TABLE "posts" ("id" serial PRIMARY KEY, "author_id" integer);\n' + FK
    )
    a = analyze(migration(sql))
    do = a.statements[2]
    assert (do.phase.value, do.tx.value, do.lock.value, do.rewrite) == (
        "expand", "transaction", "weak", "")
    assert do.summary == "guarded add foreign key posts_author_id_users_id_fk on posts"
    assert a.findings == ()


def test_guarded_fk_on_an_existing_table_is_rewritten() -> None:
    a = analyze(migration(FK))
    assert [(s.rewrite, s.tx.value, s.sql) for s in a.statements] == [
        ("guarded-not-valid-constraint", "transaction",
         "DO $$ BEGIN ALTER TABLE posts ADD CONSTRAINT posts_author_id_users_id_fk "
         "FOREIGN KEY (author_id) REFERENCES public.users (id) NOT VALID; EXCEPTION WHEN "
         "duplicate_object THEN NULL; END $$"),
        ("guarded-not-valid-constraint", "autocommit",
         "ALTER TABLE posts VALIDATE CONSTRAINT posts_author_id_users_id_fk"),
    ]
    assert a.findings == ()


def test_guarded_statements_are_linted_when_run_as_written() -> None:
    a = analyze(migration(FK), rewrite=False)
    assert [f.rule for f in a.findings] == ["constraint-missing-not-valid"]
    drop = analyze(migration(
        "DO $$ BEGIN ALTER TABLE t DROP COLUMN a; EXCEPTION WHEN undefined_column THEN null; "
        "END $$;"
    ))
    (s,) = drop.statements
    assert s.phase.value == "contract" and s.destructive
    assert [f.rule for f in drop.findings] == ["ban-drop-column"]


def test_guarded_enum_is_expand() -> None:
    (s,) = analyze(migration(ENUM)).statements
    assert (s.phase.value, s.lock.value) == ("expand", "weak")
    assert analyze(migration(ENUM)).findings == ()
