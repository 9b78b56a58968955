"""pgshift and drizzle-orm's real migrator on the same databases, both ways.

drizzle-orm 0.45 with node-postgres reads the stable layout (journal), drizzle-orm 1.0 rc the v1
layout (one folder per migration). Every test compares against what drizzle itself writes on a
fresh database: the tracking rows (hash, created_at, and name for v1), the schema (pg_dump) and
the data.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import write_down_files
from tests.interop.drizzle import (
    QUICKSTART,
    Line,
    NodeMissing,
    Spec,
    drizzle_migrate,
    first_k,
    pgshift,
    query,
    quickstart_v1,
    require_node_modules,
    schema_dump,
    tracking_columns,
    tracking_rows,
    write_folder,
)
from tests.pgserver import PgServer

pytestmark = pytest.mark.interop

LINES: list[Line] = ["stable", "v1"]

_other_counter = itertools.count()

#: what drizzle-kit generates, with its exact whitespace, and a custom migration.
GENERATED = [
    Spec("create_users", 'CREATE TABLE "users" (\n\t"id" bigserial PRIMARY KEY NOT NULL,\n'
                         '\t"email" text NOT NULL,\n\tCONSTRAINT "users_email_unique" '
                         'UNIQUE("email")\n);\n'),
    Spec("create_projects",
         'CREATE TABLE "projects" (\n\t"id" bigserial PRIMARY KEY NOT NULL,\n'
         '\t"owner_id" bigint NOT NULL,\n\t"name" text NOT NULL\n);\n'
         "--> statement-breakpoint\n"
         'ALTER TABLE "projects" ADD CONSTRAINT "projects_owner_id_users_id_fk" FOREIGN KEY '
         '("owner_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;'
         "--> statement-breakpoint\n"
         'CREATE INDEX "projects_owner_id_idx" ON "projects" USING btree ("owner_id");'),
    Spec("add_users_nickname", 'ALTER TABLE "users" ADD COLUMN "nickname" text;'),
    Spec("seed_users", "-- Custom SQL migration file, put your code below! --\n"
                       "INSERT INTO \"users\" (\"email\") VALUES ('ada@example.com'), "
                       "('grace@example.com');\n"),
    Spec("backfill_users_nickname",
         "-- Custom SQL migration file, put your code below! --\n"
         'UPDATE "users" SET "nickname" = split_part("email", \'@\', 1) '
         'WHERE "nickname" IS NULL;\n'),
    Spec("users_nickname_not_null", 'ALTER TABLE "users" ALTER COLUMN "nickname" SET NOT NULL;'),
]

#: chunk shapes node-postgres accepts: several statements per chunk, comments, empty and blank
#: chunks, a trailing breakpoint, dollar quotes holding `;`, CRLF line ends and non-ASCII text.
CHUNKY = Spec(
    "chunk_shapes",
    "-- a header comment\r\n"
    "CREATE TABLE \"notes\" (\"id\" int PRIMARY KEY, \"body\" text NOT NULL); "
    "INSERT INTO \"notes\" VALUES (1, 'ünïcødé ✓'); -- two statements, one chunk\r\n"
    "--> statement-breakpoint"
    "--> statement-breakpoint\n"
    "   \n\t\n"
    "--> statement-breakpoint\n"
    "-- a chunk that is only a comment\n"
    "--> statement-breakpoint\n"
    "/* a block comment */\n"
    "CREATE FUNCTION \"notes_count\"() RETURNS bigint LANGUAGE sql AS $$ SELECT count(*) "
    "FROM \"notes\"; $$;\n"
    "INSERT INTO \"notes\" VALUES (2, 'two; with a semicolon');\n"
    "--> statement-breakpoint\n"
    "DO $body$ BEGIN INSERT INTO \"notes\" VALUES (3, 'from a DO block'); END $body$;\n"
    "--> statement-breakpoint\n",
)

ALL = [*GENERATED, CHUNKY]


@pytest.fixture(scope="session", autouse=True)
def node_tools() -> None:
    """The drizzle packages must be installed: a missing peer fails the test, never skips it."""
    try:
        require_node_modules()
    except NodeMissing as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def other_db(pg_server: PgServer) -> Iterator[tuple[str, str]]:
    """A second fresh database (name, url): where drizzle alone applies the same folder."""
    name = f"o{os.getpid()}_{next(_other_counter)}"
    pg_server.create_database(name)
    yield name, pg_server.url(name)
    pg_server.drop_database(name)


def apply_args(folder: Path, *extra: str) -> list[str]:
    return ["apply", "--dir", str(folder), "--output", "json", *extra]


def same_database(server: PgServer, a: tuple[str, str], b: tuple[str, str],
                  tables: list[str]) -> None:
    """Schema (pg_dump of public) and the rows of `tables` are identical in both databases."""
    assert schema_dump(server, a[0]) == schema_dump(server, b[0])
    for table in tables:
        select = f'SELECT * FROM "{table}" ORDER BY 1'
        assert query(a[1], select) == query(b[1], select), table


@pytest.mark.parametrize("line", LINES)
def test_pgshift_applies_then_drizzle_applies_nothing(
    line: Line, tmp_path: Path, pg_server: PgServer, database_name: str, database_url: str,
    other_db: tuple[str, str],
) -> None:
    folder = tmp_path / "drizzle"
    names = write_folder(folder, ALL, line)

    pgshift(database_url, *apply_args(folder))
    ours = tracking_rows(database_url, line)
    assert len(ours) == len(names)

    drizzle_migrate(database_url, folder, line)  # must find nothing to do
    assert tracking_rows(database_url, line) == ours

    drizzle_migrate(other_db[1], folder, line)  # drizzle alone, on a fresh database
    assert ours == tracking_rows(other_db[1], line)
    assert tracking_columns(database_url) == tracking_columns(other_db[1])
    if line == "v1":
        assert [row[2] for row in ours] == names
    same_database(pg_server, (database_name, database_url), other_db, ["users", "notes"])


@pytest.mark.parametrize(("line", "k"), [("stable", 1), ("stable", 4), ("v1", 2), ("v1", 5)])
def test_drizzle_applies_the_first_k_then_pgshift_the_rest_once(
    line: Line, k: int, tmp_path: Path, pg_server: PgServer, database_name: str,
    database_url: str, other_db: tuple[str, str],
) -> None:
    folder = tmp_path / "drizzle"
    write_folder(folder, ALL, line)
    drizzle_migrate(database_url, first_k(folder, k, tmp_path / "first"), line)
    assert len(tracking_rows(database_url, line)) == k

    pgshift(database_url, *apply_args(folder))
    again = pgshift(database_url, *apply_args(folder))  # nothing left: applies nothing
    drizzle_migrate(database_url, folder, line)  # nor does drizzle

    drizzle_migrate(other_db[1], folder, line)
    rows = tracking_rows(database_url, line)
    assert rows == tracking_rows(other_db[1], line)
    assert len({row[0] for row in rows}) == len(ALL)  # each migration exactly once
    assert not [e for e in again.events() if e.get("event") == "migration.applied"]
    same_database(pg_server, (database_name, database_url), other_db, ["users", "notes"])


@pytest.mark.parametrize("line", LINES)
def test_custom_tracking_schema_and_table(
    line: Line, tmp_path: Path, database_url: str, other_db: tuple[str, str],
) -> None:
    # names that must be quoted: a space, capitals, a dash and a double quote.
    schema, table = 'Mig "Rations"', "applied-Migrations"
    folder = tmp_path / "drizzle"
    write_folder(folder, GENERATED[:3], line)
    drizzle_migrate(database_url, first_k(folder, 1, tmp_path / "first"), line,
                    schema=schema, table=table)

    pgshift(database_url, *apply_args(folder, "--tracking-schema", schema,
                                      "--tracking-table", table))
    drizzle_migrate(database_url, folder, line, schema=schema, table=table)
    drizzle_migrate(other_db[1], folder, line, schema=schema, table=table)

    assert tracking_rows(database_url, line, schema, table) == tracking_rows(
        other_db[1], line, schema, table)
    assert len(tracking_rows(database_url, line, schema, table)) == 3
    # nothing was written under drizzle's default names
    assert query(database_url, "SELECT count(*) FROM information_schema.tables "
                               "WHERE table_name = '__drizzle_migrations'") == [(0,)]


def _quickstart(line: Line, tmp_path: Path) -> Path:
    return QUICKSTART / "drizzle" if line == "stable" else quickstart_v1(tmp_path / "qs")


def _app_writes_rows(url: str) -> None:
    """What the application does between the expand and the backfill: rows without a slug."""
    query(url, "INSERT INTO users (email, name, created_at) SELECT 'u' || g || '@example.com', "
               "'User ' || g, '2026-01-01T00:00:00Z' FROM generate_series(1, 50) g RETURNING id")
    query(url, "INSERT INTO projects (owner_id, name) SELECT 1 + g % 50, 'Project  #' || g "
               "FROM generate_series(1, 500) g RETURNING id")


@pytest.mark.parametrize("line", LINES)
def test_quickstart_applied_by_both(
    line: Line, tmp_path: Path, pg_server: PgServer, database_name: str, database_url: str,
    other_db: tuple[str, str],
) -> None:
    folder = _quickstart(line, tmp_path)
    pgshift(database_url, *apply_args(folder))
    drizzle_migrate(database_url, folder, line)
    drizzle_migrate(other_db[1], folder, line)
    assert tracking_rows(database_url, line) == tracking_rows(other_db[1], line)
    assert len(tracking_rows(database_url, line)) == 5
    same_database(pg_server, (database_name, database_url), other_db, ["users", "projects"])


@pytest.mark.parametrize("line", LINES)
def test_quickstart_backfill_of_rows_written_after_drizzle_expanded(
    line: Line, tmp_path: Path, pg_server: PgServer, database_name: str, database_url: str,
    other_db: tuple[str, str],
) -> None:
    """drizzle applied the expand migrations; the app wrote rows; pgshift backfills and
    contracts. The result equals drizzle doing the same in one transaction."""
    folder = _quickstart(line, tmp_path)
    expand = first_k(folder, 3, tmp_path / "expand")
    databases: list[tuple[str, str]] = [(database_name, database_url), other_db]
    for _, url in databases:
        drizzle_migrate(url, expand, line)
        _app_writes_rows(url)

    pgshift(database_url, *apply_args(folder))
    drizzle_migrate(other_db[1], folder, line)

    assert tracking_rows(database_url, line) == tracking_rows(other_db[1], line)
    assert query(database_url, "SELECT count(*) FROM projects WHERE slug IS NULL") == [(0,)]
    same_database(pg_server, databases[0], databases[1], ["users", "projects"])


def test_v1_upgrades_a_stable_tracking_table_as_drizzle_does(
    tmp_path: Path, pg_server: PgServer, database_name: str, database_url: str,
    other_db: tuple[str, str],
) -> None:
    """A database migrated by drizzle 0.45, then the folder converted by `drizzle-kit up`:
    pgshift upgrades the tracking table (name, applied_at) exactly as drizzle 1.0 does."""
    v1_folder = quickstart_v1(tmp_path / "qs")
    stable = first_k(QUICKSTART / "drizzle", 4, tmp_path / "stable")
    for url in (database_url, other_db[1]):
        drizzle_migrate(url, stable, "stable")

    pgshift(database_url, *apply_args(v1_folder))
    drizzle_migrate(other_db[1], v1_folder, "v1")
    drizzle_migrate(database_url, v1_folder, "v1")  # applies nothing

    ours, theirs = tracking_rows(database_url, "v1"), tracking_rows(other_db[1], "v1")
    assert ours == theirs
    assert [row[2] for row in ours] == sorted(p.name for p in v1_folder.iterdir())
    assert tracking_columns(database_url) == tracking_columns(other_db[1])
    same_database(pg_server, (database_name, database_url), other_db, ["users", "projects"])


def test_failed_drizzle_peer_reports_the_sqlstate(tmp_path: Path, database_url: str) -> None:
    """The peer itself: a failing migration is reported with its SQLSTATE and no row."""
    folder = tmp_path / "drizzle"
    write_folder(folder, [Spec("bad", "CREATE TABLE a (id int);\n--> statement-breakpoint\n"
                                      "SELECT * FROM missing_table;")], "stable")
    result = drizzle_migrate(database_url, folder, "stable", check=False)
    assert not result.ok and result.report["sqlstate"] == "42P01"
    assert query(database_url, "SELECT to_regclass('public.a') IS NULL") == [(True,)]



@pytest.mark.parametrize("line", LINES)
def test_a_migration_merged_from_another_branch(
    line: Line, tmp_path: Path, database_url: str,
) -> None:
    """The folder gains a migration that sorts before one already applied. drizzle 0.45 skips
    it silently (forever); drizzle 1.0 applies it out of order; pgshift refuses, naming it,
    and applies it with --allow-out-of-order."""
    full = tmp_path / "full"
    names = write_folder(full, GENERATED[:3], line)
    # the branch without migration 1: drizzle applied 0 and 2.
    merged = tmp_path / "merged"
    shutil.copytree(full, merged)
    if line == "stable":
        journal = merged / "meta" / "_journal.json"
        data = json.loads(journal.read_text())
        data["entries"] = [e for e in data["entries"] if e["idx"] != 1]
        journal.write_text(json.dumps(data))
    else:
        shutil.rmtree(merged / names[1])
    drizzle_migrate(database_url, merged, line)

    refused = pgshift(database_url, *apply_args(full), check=False)
    assert refused.returncode == 2, refused
    assert "error[OutOfOrder]" in refused.stderr and names[1] in refused.stderr

    drizzle = drizzle_migrate(database_url, full, line)
    assert drizzle.ok
    projects_exists = query(database_url, "SELECT to_regclass('public.projects') IS NOT NULL")
    # drizzle 0.45 never applies it; drizzle 1.0 does.
    assert projects_exists == [(line == "v1",)]
    if line == "stable":
        pgshift(database_url, *apply_args(full, "--allow-out-of-order"))
        assert query(database_url, "SELECT to_regclass('public.projects') IS NOT NULL") == [(True,)]
        assert len(tracking_rows(database_url, line)) == 3


# --- down files and rollback (docs/drizzle.md "Down files") ----------------------------------

#: a down file for each of GENERATED, in the layout's own names (tests/helpers.write_down_files).
DOWNS = [
    'DROP TABLE "users";',
    'DROP TABLE "projects";',
    'ALTER TABLE "users" DROP COLUMN "nickname";',
    "DELETE FROM \"users\" WHERE \"email\" IN ('ada@example.com', 'grace@example.com');",
    'UPDATE "users" SET "nickname" = NULL;',
    'ALTER TABLE "users" ALTER COLUMN "nickname" DROP NOT NULL;',
]


def _with_downs(folder: Path, names: list[str]) -> Path:
    return write_down_files(folder, dict(zip(names, DOWNS, strict=True)))


@pytest.mark.parametrize("line", LINES)
def test_drizzle_sees_the_same_migrations_with_down_files_present(
    line: Line, tmp_path: Path, pg_server: PgServer, database_name: str, database_url: str,
    other_db: tuple[str, str],
) -> None:
    plain = tmp_path / "without"
    names = write_folder(plain, GENERATED, line)
    folder = tmp_path / "with"
    shutil.copytree(plain, folder)
    _with_downs(folder, names)
    drizzle_migrate(database_url, folder, line)  # down files beside: never applied
    drizzle_migrate(other_db[1], plain, line)
    assert tracking_rows(database_url, line) == tracking_rows(other_db[1], line)
    assert len(tracking_rows(database_url, line)) == len(GENERATED)
    same_database(pg_server, (database_name, database_url), other_db, ["users"])
    # and pgshift reads them as drizzle did: nothing pending, no drift, no unlisted file.
    plan = pgshift(database_url, "plan", "--dir", str(folder), "--output", "json")
    result = next(e for e in plan.events() if e.get("event") == "result")
    assert result["pendingCount"] == 0 and not result.get("problems")
    assert [m["name"] for m in result["migrations"]] == names


@pytest.mark.parametrize("line", LINES)
def test_pgshift_rolls_back_two_and_drizzle_reapplies_exactly_those_two(
    line: Line, tmp_path: Path, pg_server: PgServer, database_name: str, database_url: str,
    other_db: tuple[str, str],
) -> None:
    folder = tmp_path / "drizzle"
    names = write_folder(folder, GENERATED, line)
    _with_downs(folder, names)
    pgshift(database_url, *apply_args(folder))
    before = tracking_rows(database_url, line)
    back = pgshift(database_url, "rollback", "--dir", str(folder), "--to", names[-3],
                   "--destructive", "Allow", "--output", "json")
    result = next(e for e in back.events() if e.get("event") == "result")
    assert result["rollback"]["undone"] == [names[-1], names[-2]]
    assert tracking_rows(database_url, line) == before[:-2]
    assert query(database_url, "SELECT count(*) FROM users WHERE nickname IS NULL") == [(2,)]

    drizzle_migrate(database_url, folder, line)  # re-applies exactly the two
    assert tracking_rows(database_url, line) == before
    drizzle_migrate(other_db[1], folder, line)
    assert tracking_rows(database_url, line) == tracking_rows(other_db[1], line)
    same_database(pg_server, (database_name, database_url), other_db, ["users"])
