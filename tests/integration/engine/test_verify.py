"""`pgshift verify` on real PostgreSQL: drift made by hand is reported, equivalent forms are not.

Production is a fresh database of the session's server; the scratch target is the same server's
`postgres` database (pgshift creates and drops its own database there). Every run checks that no
scratch database is left behind.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import (
    assert_no_secret,
    result_of,
    run_pgshift,
    scratch_databases,
    write_drizzle_folder,
)
from tests.pgserver import PASSWORD, PgServer

pytestmark = pytest.mark.integration

QUICKSTART = Path(__file__).resolve().parents[3] / "examples" / "quickstart" / "drizzle"

#: one of each kind of object verify compares, over three files: the later ones alter tables of
#: the first, so the engine rewrites them (CONCURRENTLY, NOT VALID + VALIDATE, SET NOT NULL).
RICH = [
    """
CREATE SCHEMA "billing";
CREATE TYPE "mood" AS ENUM ('happy', 'sad');
CREATE TABLE "users" (
    "id" bigserial PRIMARY KEY,
    "email" text NOT NULL,
    "avatar" varchar(255),
    "status" text DEFAULT 'active' NOT NULL,
    "mood" "mood",
    "created_at" timestamptz DEFAULT now() NOT NULL,
    CONSTRAINT "users_email_unique" UNIQUE ("email")
);
CREATE TABLE "billing"."invoices" (
    "id" integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    "user_id" bigint NOT NULL,
    "amount" numeric(12, 2) NOT NULL CHECK ("amount" >= 0)
);
CREATE SEQUENCE "billing"."invoice_numbers" START 1000 INCREMENT 10;
""",
    """
CREATE INDEX "users_created_idx" ON "users" ("created_at");
ALTER TABLE "billing"."invoices" ADD CONSTRAINT "invoices_user_fk"
    FOREIGN KEY ("user_id") REFERENCES "users" ("id");
ALTER TABLE "users" ALTER COLUMN "mood" SET NOT NULL;
""",
    """
CREATE FUNCTION "billing"."total"(uid bigint) RETURNS numeric LANGUAGE sql STABLE
    AS $$ SELECT coalesce(sum(amount), 0) FROM billing.invoices WHERE user_id = uid $$;
CREATE VIEW "active_users" AS SELECT "id", "email" FROM "users" WHERE "status" = 'active';
ALTER TYPE "mood" ADD VALUE 'calm';
""",
]


@pytest.fixture
def scratch_env(pg_server: PgServer) -> dict[str, str]:
    """The scratch target: the same server's `postgres` database (never the test's)."""
    return {"SCRATCH_DATABASE_URL": pg_server.url("postgres")}



def verify(
    folder: Path, database_url: str, env: dict[str, str], *extra: str
) -> tuple[int, dict[str, Any], str]:
    proc = run_pgshift(
        "verify", "--dir", str(folder), "--output", "json", *extra,
        database_url=database_url, env=env,
    )
    if proc.returncode == 2:
        return proc.returncode, {}, proc.stderr
    return proc.returncode, result_of(proc), proc.stderr


def messages(result: dict[str, Any]) -> list[str]:
    return [d["message"] for d in result["verify"]["drift"]]


def apply(folder: Path, database_url: str) -> None:
    proc = run_pgshift("apply", "--dir", str(folder), database_url=database_url)
    assert proc.returncode == 0, proc.stderr


def test_hand_made_alters_in_production_are_reported(
    tmp_path: Path, database_url: str, pg_server: PgServer, psql: Any,
    scratch_env: dict[str, str],
) -> None:
    folder = write_drizzle_folder(tmp_path / "m", RICH)
    apply(folder, database_url)
    code, result, err = verify(folder, database_url, scratch_env)
    assert code == 0, (messages(result), err)
    assert result["verify"]["inSync"] is True
    assert result["verify"]["schemas"] == ["billing", "public"]
    assert result["verify"]["compared"] > 20
    psql(
        'ALTER TABLE users ALTER COLUMN avatar TYPE text;'
        'ALTER TABLE users ALTER COLUMN status DROP DEFAULT;'
        'ALTER TABLE users ADD COLUMN nickname text;'
        'DROP INDEX users_created_idx;'
    )
    proc = run_pgshift(
        "verify", "--dir", str(folder), "--output", "json",
        database_url=database_url, env=scratch_env,
    )
    assert proc.returncode == 1, proc.stderr
    assert_no_secret(proc.stdout + proc.stderr, PASSWORD)
    result = result_of(proc)
    assert result["ok"] is False and result["verify"]["inSync"] is False
    assert sorted(messages(result)) == sorted([
        "users.avatar: type text in production, character varying(255) expected",
        "users.status: no default in production, 'active'::text expected",
        "users.nickname: column in production, not made by the migrations "
        "(add it to a migration, drop it, or --ignore it)",
        "users.users_created_idx: index missing in production, expected by the migrations",
    ])
    assert scratch_databases(pg_server) == []


def test_the_text_output_is_a_list_a_person_can_act_on(
    tmp_path: Path, database_url: str, psql: Any, scratch_env: dict[str, str],
) -> None:
    folder = write_drizzle_folder(tmp_path / "m", RICH)
    apply(folder, database_url)
    psql("ALTER TABLE users ALTER COLUMN avatar TYPE text")
    proc = run_pgshift("verify", "--dir", str(folder), database_url=database_url, env=scratch_env)
    assert proc.returncode == 1, proc.stderr
    assert "schema drift: 1 difference(s)" in proc.stdout
    assert "  users.avatar: type text in production, character varying(255) expected" in (
        proc.stdout.splitlines()
    )


def test_a_database_built_by_the_files_as_written_is_not_drift(
    tmp_path: Path, database_url: str, psql: Any, scratch_env: dict[str, str],
) -> None:
    """Production ran the files as written (drizzle-kit migrate: no CONCURRENTLY, no NOT VALID);
    the expected schema is built by the engine, which rewrites the later files' statements."""
    folder = write_drizzle_folder(tmp_path / "m", RICH)
    apply(folder, database_url)  # the tracking rows
    psql('DROP SCHEMA billing CASCADE; DROP VIEW active_users; DROP TABLE users; DROP TYPE mood')
    for text in RICH:
        psql(text)
    code, result, err = verify(folder, database_url, scratch_env)
    assert code == 0, (messages(result), err)


def test_concurrent_and_not_valid_forms_done_by_hand_are_not_drift(
    tmp_path: Path, database_url: str, psql: Any, scratch_env: dict[str, str],
) -> None:
    folder = write_drizzle_folder(tmp_path / "m", RICH)
    apply(folder, database_url)
    psql("DROP INDEX users_created_idx")
    psql('CREATE INDEX CONCURRENTLY "users_created_idx" ON "users" ("created_at")')
    psql(
        'ALTER TABLE billing.invoices DROP CONSTRAINT invoices_user_fk;'
        'ALTER TABLE billing.invoices ADD CONSTRAINT "invoices_user_fk" '
        'FOREIGN KEY ("user_id") REFERENCES "users" ("id") NOT VALID;'
        'ALTER TABLE billing.invoices VALIDATE CONSTRAINT invoices_user_fk;'
    )
    code, result, err = verify(folder, database_url, scratch_env)
    assert code == 0, (messages(result), err)
    # left NOT VALID, it is drift: production does not hold what the source promises
    psql(
        'ALTER TABLE billing.invoices DROP CONSTRAINT invoices_user_fk;'
        'ALTER TABLE billing.invoices ADD CONSTRAINT "invoices_user_fk" '
        'FOREIGN KEY ("user_id") REFERENCES "users" ("id") NOT VALID;'
    )
    code, result, err = verify(folder, database_url, scratch_env)
    assert code == 1, err
    assert messages(result) == [
        "billing.invoices.invoices_user_fk: NOT VALID in production, validated expected"
    ]


def test_an_ignored_dba_index_is_not_drift(
    tmp_path: Path, database_url: str, psql: Any, scratch_env: dict[str, str],
) -> None:
    folder = write_drizzle_folder(tmp_path / "m", RICH)
    apply(folder, database_url)
    psql("CREATE INDEX users_email_lower_dba_idx ON users (lower(email))")
    code, result, _ = verify(folder, database_url, scratch_env)
    assert code == 1
    assert messages(result) == [
        "users.users_email_lower_dba_idx: index in production, not made by the migrations "
        "(add it to a migration, drop it, or --ignore it)"
    ]
    code, result, err = verify(
        folder, database_url, scratch_env, "--ignore", "index:*_dba_idx"
    )
    assert code == 0, err
    assert result["verify"]["ignored"] == 1


def test_a_bad_ignore_pattern_is_a_usage_error_before_anything_connects(
    tmp_path: Path, scratch_env: dict[str, str],
) -> None:
    folder = write_drizzle_folder(tmp_path / "m", RICH)
    proc = run_pgshift(
        "verify", "--dir", str(folder), "--ignore", "idx:foo",
        database_url="postgresql://u:p@127.0.0.1:1/nowhere", env=scratch_env,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error[Usage]: --ignore 'idx:foo': give NAME or KIND:NAME")


def test_quickstart_in_sync_then_a_dropped_not_null_is_reported(
    database_url: str, psql: Any, scratch_env: dict[str, str],
) -> None:
    """The quickstart is the only (and so the largest) example folder."""
    apply(QUICKSTART, database_url)
    code, result, err = verify(QUICKSTART, database_url, scratch_env)
    assert code == 0, (messages(result), err)
    assert result["verify"]["expectedUpTo"] == "0004_projects_slug_not_null"
    psql('ALTER TABLE projects ALTER COLUMN slug DROP NOT NULL')
    code, result, err = verify(QUICKSTART, database_url, scratch_env)
    assert code == 1, err
    assert messages(result) == ["projects.slug: nullable in production, NOT NULL expected"]


def test_drizzle_kits_snapshot_of_the_last_applied_migration_is_compared_too(
    tmp_path: Path, database_url: str, scratch_env: dict[str, str],
) -> None:
    """The SQL and drizzle-kit's snapshot disagree (a migration edited by hand after it was
    generated): the snapshot's own view is reported, beside the catalog comparison."""
    folder = tmp_path / "drizzle"
    shutil.copytree(QUICKSTART, folder)
    snapshot = folder / "meta" / "0004_snapshot.json"
    data = json.loads(snapshot.read_text())
    users = data["tables"]["public.users"]
    users["columns"]["bio"] = {"name": "bio", "type": "varchar(100)", "notNull": False}
    users["columns"]["name"]["type"] = "varchar(50)"
    snapshot.write_text(json.dumps(data))
    apply(folder, database_url)
    code, result, err = verify(folder, database_url, scratch_env)
    assert code == 1, err
    assert result["verify"]["drift"] == []
    assert result["verify"]["snapshot"] == "meta/0004_snapshot.json"
    assert [d["message"] for d in result["verify"]["snapshotDrift"]] == [
        "users.bio: column missing in production, in drizzle's snapshot (meta/0004_snapshot.json)",
        "users.name: type text in production, varchar(50) in drizzle's snapshot "
        "(meta/0004_snapshot.json)",
    ]
    snapshot.write_text("{not json")
    code, _, err = verify(folder, database_url, scratch_env)
    assert code == 2
    assert err.startswith(f"error[Source]: {snapshot}: not JSON")


def test_pending_migrations_are_left_out_of_the_expected_schema(
    tmp_path: Path, database_url: str, scratch_env: dict[str, str],
) -> None:
    folder = write_drizzle_folder(tmp_path / "m", RICH)
    proc = run_pgshift(
        "apply", "--dir", str(folder), "--target", "0001_m1", database_url=database_url
    )
    assert proc.returncode == 0, proc.stderr
    code, result, err = verify(folder, database_url, scratch_env)
    assert code == 0, (messages(result), err)
    assert result["verify"]["expectedUpTo"] == "0001_m1"
    assert result["verify"]["pending"] == 1


def test_with_a_baseline_only_objects_of_later_migrations_are_compared(
    tmp_path: Path, database_url: str, psql: Any, scratch_env: dict[str, str],
) -> None:
    """A database built by `drizzle-kit push` (here: by hand, with its own differences) and
    adopted with `baseline --up-to 0000_m0`: what push made is not the source's to judge."""
    folder = write_drizzle_folder(tmp_path / "m", RICH)
    psql(RICH[0].replace('"avatar" varchar(255)', '"avatar" text'))
    psql("ALTER TABLE users ADD COLUMN legacy int")
    proc = run_pgshift(
        "baseline", "--dir", str(folder), "--up-to", "0000_m0", database_url=database_url
    )
    assert proc.returncode == 0, proc.stderr
    apply(folder, database_url)
    code, result, err = verify(folder, database_url, scratch_env)
    assert code == 1, err  # without --baseline, push's differences are drift
    assert len(messages(result)) == 2
    code, result, err = verify(folder, database_url, scratch_env, "--baseline", "0000_m0")
    assert code == 0, (messages(result), err)
    psql("DROP INDEX users_created_idx")  # made by 0001_m1: compared
    code, result, err = verify(folder, database_url, scratch_env, "--baseline", "0000_m0")
    assert code == 1, err
    assert messages(result) == [
        "users.users_created_idx: index missing in production, expected by the migrations"
    ]


def test_statements_reaching_past_the_database_are_refused_before_anything_runs(
    tmp_path: Path, database_url: str, pg_server: PgServer, psql: Any,
    scratch_env: dict[str, str],
) -> None:
    sqls = [RICH[0], "GRANT pg_monitor TO CURRENT_USER;\nCREATE TABLE t (id int);"]
    folder = write_drizzle_folder(tmp_path / "m", sqls)
    code, _, err = verify(folder, database_url, scratch_env)
    assert code == 2
    assert err.startswith(
        f"error[ExternalEffects]: {folder / '0001_m1.sql'}:1: GRANT/REVOKE of a role reaches "
        "past the database"
    ), err
    assert scratch_databases(pg_server) == []
    assert psql("SELECT count(*) FROM pg_namespace WHERE nspname = 'drizzle'") == "0"
    code, result, err = verify(folder, database_url, scratch_env, "--allow-external")
    assert code == 1, err  # allowed: replayed; production has none of it
    assert "t: table missing in production, expected by the migrations" in messages(result)


def test_a_migration_that_fails_on_an_empty_database_is_a_named_error(
    tmp_path: Path, database_url: str, pg_server: PgServer, scratch_env: dict[str, str],
) -> None:
    """Marked applied by hand in production, the file cannot build the expected schema."""
    folder = write_drizzle_folder(
        tmp_path / "m", ["CREATE TABLE t (id int);", "ALTER TABLE missing ADD COLUMN x int;"]
    )
    proc = run_pgshift(
        "baseline", "--dir", str(folder), "--up-to", "0001_m1", database_url=database_url
    )
    assert proc.returncode == 0, proc.stderr
    code, _, err = verify(folder, database_url, scratch_env)
    assert code == 1
    line = err.strip().splitlines()[-1]
    assert line.startswith(
        "error[VerifyReplayFailed]: the migrations do not build on an empty database: "
        "0001_m1 line 1: relation \"missing\" does not exist [42P01]"
    ), line
    assert scratch_databases(pg_server) == []


def test_an_unreachable_scratch_server_names_the_scratch_option(
    tmp_path: Path, database_url: str, pg_server: PgServer,
) -> None:
    folder = write_drizzle_folder(tmp_path / "m", ["CREATE TABLE t (id int);"])
    bad = pg_server.url("postgres", password="wrong-" + PASSWORD)
    proc = run_pgshift(
        "verify", "--dir", str(folder), database_url=database_url,
        env={"SCRATCH_DATABASE_URL": bad},
    )
    assert proc.returncode == 2, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("error[Connection]: cannot connect to the scratch server "), line
    assert "check --scratch-url / SCRATCH_DATABASE_URL" in line
    assert_no_secret(proc.stdout + proc.stderr, PASSWORD)


def test_a_database_without_tracking_table_is_compared_with_every_migration(
    tmp_path: Path, database_url: str, psql: Any, scratch_env: dict[str, str],
) -> None:
    """Built by `drizzle-kit push` (here: the files run by hand, then one change pushed on
    top): nothing recorded, so the expected schema is the whole source, and the push shows."""
    folder = write_drizzle_folder(tmp_path / "m", RICH)
    for text in RICH:
        psql(text)
    code, result, err = verify(folder, database_url, scratch_env)
    assert code == 0, (messages(result), err)
    assert result["verify"]["expectedUpTo"] == "0002_m2"
    psql("ALTER TABLE billing.invoices ALTER COLUMN amount TYPE numeric(14, 2)")
    code, result, err = verify(folder, database_url, scratch_env)
    assert code == 1, err
    assert messages(result) == [
        "billing.invoices.amount: type numeric(14,2) in production, numeric(12,2) expected"
    ]
