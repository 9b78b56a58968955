"""`pgshift apply / plan / status / baseline / mark-applied` against real PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import (
    assert_no_secret,
    events,
    result_of,
    run_pgshift,
    write_drizzle_folder,
    write_plain_folder,
    write_v1_folder,
)
from tests.pgserver import PASSWORD

pytestmark = pytest.mark.integration

USERS = "CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL);"
PROJECTS = (
    "CREATE TABLE projects (id serial PRIMARY KEY, "
    "owner_id integer NOT NULL REFERENCES users (id));"
    "\n--> statement-breakpoint\nCREATE INDEX projects_owner_idx ON projects (owner_id);"
)
ADD_NAME = "ALTER TABLE users ADD COLUMN name text;"


def apply(folder: Path, url: str, *extra: str):
    return run_pgshift("apply", "--dir", str(folder), "--output", "json", *extra, database_url=url)


def test_stable_folder_applies_once_with_drizzles_rows(
    tmp_path: Path, database_url: str, psql
) -> None:
    folder = write_drizzle_folder(tmp_path / "m", [USERS, PROJECTS, ADD_NAME])
    first = apply(folder, database_url)
    assert first.returncode == 0, first.stderr
    summary = result_of(first)
    assert summary["ok"] and summary["appliedCount"] == 3 and summary["pendingCount"] == 0
    assert summary["stopped"]["reason"] == "Done"
    assert [e["migration"] for e in events(first.stdout, "migration.applied")] == [
        "0000_m0",
        "0001_m1",
        "0002_m2",
    ]
    rows = psql("SELECT hash, created_at FROM drizzle.__drizzle_migrations ORDER BY id")
    from pgshift.migrations import read_source

    source = read_source(folder)
    assert rows.splitlines() == [f"{m.hash}|{m.when}" for m in source.migrations]
    # the stable form, exactly as drizzle 0.45 creates it
    assert (
        psql(
            "SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM "
            "information_schema.columns WHERE table_schema = 'drizzle' AND "
            "table_name = '__drizzle_migrations'"
        )
        == "id,hash,created_at"
    )
    again = apply(folder, database_url)
    assert again.returncode == 0 and result_of(again)["applied"] == []
    assert psql("SELECT count(*) FROM drizzle.__drizzle_migrations") == "3"
    assert_no_secret(first.stdout + first.stderr + again.stdout + again.stderr, PASSWORD)


def test_v1_folder_writes_names(tmp_path: Path, database_url: str, psql) -> None:
    folder = write_v1_folder(tmp_path / "m", [USERS, ADD_NAME], names=["init", "add_name"])
    proc = apply(folder, database_url)
    assert proc.returncode == 0, proc.stderr
    names = psql("SELECT name FROM drizzle.__drizzle_migrations ORDER BY id").splitlines()
    assert names == [p.name for p in sorted(folder.iterdir())]
    assert (
        psql("SELECT count(*) FROM drizzle.__drizzle_migrations WHERE applied_at IS NOT NULL")
        == "2"
    )


def test_stable_table_is_upgraded_for_a_v1_source(tmp_path: Path, database_url: str, psql) -> None:
    v1 = write_v1_folder(tmp_path / "v1", [USERS, ADD_NAME])
    from pgshift.migrations import read_source

    m0 = read_source(v1).migrations[0]
    psql(
        "CREATE SCHEMA drizzle; CREATE TABLE drizzle.__drizzle_migrations (id SERIAL PRIMARY KEY, "
        f"hash text NOT NULL, created_at bigint); INSERT INTO drizzle.__drizzle_migrations "
        f"(hash, created_at) VALUES ('{m0.hash}', {m0.when}); {USERS}"
    )
    proc = apply(v1, database_url)
    assert proc.returncode == 0, proc.stderr
    assert result_of(proc)["appliedNow"] == [read_source(v1).migrations[1].name]
    assert psql("SELECT name FROM drizzle.__drizzle_migrations ORDER BY id").splitlines() == [
        m.name for m in read_source(v1).migrations
    ]


def test_plain_folder_and_custom_tracking_names(tmp_path: Path, database_url: str, psql) -> None:
    folder = write_plain_folder(tmp_path / "m", [USERS, ADD_NAME])
    proc = apply(
        folder, database_url, "--tracking-schema", "My Schema", "--tracking-table", 'we"ird'
    )
    assert proc.returncode == 0, proc.stderr
    assert psql('SELECT created_at FROM "My Schema"."we""ird" ORDER BY id').splitlines() == [
        "1",
        "2",
    ]


def test_failed_migration_has_no_effects_and_reports_where(
    tmp_path: Path, database_url: str, psql
) -> None:
    bad = (
        "CREATE TABLE a (id int);\n--> statement-breakpoint\n\n"
        "INSERT INTO a VALUES (1);\nINSERT INTO nope VALUES (1);"
    )
    folder = write_drizzle_folder(tmp_path / "m", [USERS, bad])
    result_file = tmp_path / "result.json"
    proc = apply(folder, database_url, "--result-file", str(result_file))
    assert proc.returncode == 1
    failure = result_of(proc)["failure"]
    assert failure["migration"] == "0001_m1" and failure["sqlstate"] == "42P01"
    assert failure["line"] == 5 and "nope" in failure["statement"] and not failure["retryable"]
    # one line: nothing else (a driver's warning about the aborted pipeline) on stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert proc.stderr.strip().startswith("error[MigrationFailed]: 0001_m1")
    assert psql("SELECT to_regclass('a') IS NULL") == "t"  # the whole file rolled back
    assert psql("SELECT count(*) FROM drizzle.__drizzle_migrations") == "1"
    written = result_file.read_text()
    assert len(written.encode()) <= 4096 and json.loads(written)["failure"]["sqlstate"] == "42P01"


def test_concurrent_index_and_enum_value_then_use(tmp_path: Path, database_url: str, psql) -> None:
    setup = [
        USERS,
        "CREATE TYPE mood AS ENUM ('sad');\n--> statement-breakpoint\n"
        "ALTER TABLE users ADD COLUMN mood mood;",
    ]
    folder = write_drizzle_folder(tmp_path / "m", setup)
    assert apply(folder, database_url).returncode == 0
    psql("INSERT INTO users (email) SELECT 'u' || g FROM generate_series(1, 1000) g")
    more = [
        *setup,
        "CREATE INDEX CONCURRENTLY users_email_idx ON users (email);",
        "ALTER TYPE mood ADD VALUE 'happy';\n--> statement-breakpoint\n"
        "UPDATE users SET mood = 'happy' WHERE id = 1;",
    ]
    folder = write_drizzle_folder(tmp_path / "m", more)
    proc = apply(folder, database_url)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert (
        psql("SELECT indisvalid FROM pg_index WHERE indexrelid = 'users_email_idx'::regclass")
        == "t"
    )
    assert psql("SELECT mood FROM users WHERE id = 1") == "happy"
    assert psql("SELECT count(*) FROM drizzle.__drizzle_migrations") == "4"


def test_invalid_index_from_a_failed_build_is_dropped_before_retry(
    tmp_path: Path, database_url: str, psql
) -> None:
    folder = write_drizzle_folder(tmp_path / "m", [USERS])
    assert apply(folder, database_url).returncode == 0
    psql("INSERT INTO users (email) VALUES ('same'), ('same')")
    build = "CREATE UNIQUE INDEX CONCURRENTLY users_email_key ON users (email);"
    folder = write_drizzle_folder(tmp_path / "m", [USERS, build])
    failed = apply(folder, database_url)
    assert failed.returncode == 1 and result_of(failed)["failure"]["sqlstate"] == "23505"
    assert (
        psql("SELECT indisvalid FROM pg_index WHERE indexrelid = 'users_email_key'::regclass")
        == "f"
    )
    psql("DELETE FROM users WHERE ctid = (SELECT max(ctid) FROM users)")
    retried = apply(folder, database_url)
    assert retried.returncode == 0, retried.stderr
    assert events(retried.stdout, "index.dropInvalid")
    assert (
        psql("SELECT indisvalid FROM pg_index WHERE indexrelid = 'users_email_key'::regclass")
        == "t"
    )


def test_plan_status_and_named_problems(tmp_path: Path, database_url: str, psql) -> None:
    folder = write_drizzle_folder(tmp_path / "m", [USERS, ADD_NAME])
    plan = run_pgshift("plan", "--dir", str(folder), "--output", "json", database_url=database_url)
    assert plan.returncode == 0, plan.stderr
    data = result_of(plan)
    assert [s["migration"] for s in data["steps"]] == ["0000_m0", "0001_m1"]
    assert (
        psql("SELECT to_regclass('drizzle.__drizzle_migrations') IS NULL") == "t"
    )  # plan wrote nothing
    assert apply(folder, database_url).returncode == 0
    # an applied file edited -> Drift
    (folder / "0001_m1.sql").write_text(ADD_NAME + "\n-- edited\n")
    drift = apply(folder, database_url)
    assert drift.returncode == 2 and drift.stderr.startswith("error[Drift]: ")
    assert "0001_m1" in drift.stderr
    assert apply(folder, database_url, "--allow-drift").returncode == 0
    status = run_pgshift(
        "status", "--dir", str(folder), "--output", "json", database_url=database_url
    )
    assert status.returncode == 1 and result_of(status)["problems"][0]["code"] == "Drift"
    # a row that matches no file -> UnknownApplied; a file older than the last row -> OutOfOrder
    (folder / "0001_m1.sql").write_text(ADD_NAME)
    psql("INSERT INTO drizzle.__drizzle_migrations (hash, created_at) VALUES ('f00', 1)")
    unknown = apply(folder, database_url)
    assert unknown.returncode == 2 and unknown.stderr.startswith(
        "error[UnknownApplied]: tracking row id 3"
    )
    psql("DELETE FROM drizzle.__drizzle_migrations WHERE hash = 'f00'")
    late = write_drizzle_folder(
        tmp_path / "late",
        [USERS, "SELECT 1;", ADD_NAME],
        when=[1761955200000, 1761955200500, 1761955201000],
    )
    ooo = apply(late, database_url)
    assert (
        ooo.returncode == 2
        and ooo.stderr.startswith("error[OutOfOrder]: ")
        and "0001_m1" in ooo.stderr
    )


def test_target_until_phase_stop_before_and_digest(tmp_path: Path, database_url: str, psql) -> None:
    folder = write_drizzle_folder(
        tmp_path / "m", [USERS, ADD_NAME, "ALTER TABLE users DROP COLUMN name;"]
    )
    target = apply(folder, database_url, "--target", "0000_m0")
    assert target.returncode == 0 and result_of(target)["stopped"]["reason"] == "Target"
    assert result_of(target)["pending"] == ["0001_m1", "0002_m2"]
    until = apply(folder, database_url, "--until-phase", "expand")
    s = result_of(until)
    assert until.returncode == 0 and s["stopped"]["reason"] == "UntilPhase"
    assert s["stopped"]["phase"] == "contract" and s["stopped"]["migration"] == "0002_m2"
    plan = result_of(
        run_pgshift("plan", "--dir", str(folder), "--output", "json", database_url=database_url)
    )
    key = plan["steps"][0]["key"]
    stop = apply(folder, database_url, "--stop-before", key)
    assert result_of(stop)["stopped"] == {
        "reason": "StopBefore",
        "step": key,
        "migration": "0002_m2",
        "phase": "contract",
        "why": f"--stop-before {key}",
    }
    needs = apply(folder, database_url, "--destructive", "RequireApproval")
    assert result_of(needs)["stopped"]["reason"] == "NeedsApproval" and needs.returncode == 0
    wrong = apply(folder, database_url, "--expect-digest", "sha256:" + "0" * 64)
    assert wrong.returncode == 2 and wrong.stderr.startswith("error[DigestMismatch]: ")
    ok = apply(
        folder,
        database_url,
        "--expect-digest",
        plan["sourceDigest"],
        "--destructive",
        "RequireApproval",
        "--approve",
        "0002_m2",
    )
    assert ok.returncode == 0 and result_of(ok)["stopped"]["reason"] == "Done"
    assert psql("SELECT count(*) FROM drizzle.__drizzle_migrations") == "3"


def test_baseline_and_mark_applied(tmp_path: Path, database_url: str, psql) -> None:
    psql(USERS)  # built with drizzle-kit push
    folder = write_drizzle_folder(tmp_path / "m", [USERS, ADD_NAME, "SELECT 1;"])
    base = run_pgshift(
        "baseline",
        "--dir",
        str(folder),
        "--up-to",
        "0000_m0",
        "--output",
        "json",
        database_url=database_url,
    )
    assert base.returncode == 0, base.stderr
    assert result_of(base)["marked"] == ["0000_m0"]
    mark = run_pgshift("mark-applied", "0002_m2", "--dir", str(folder), database_url=database_url)
    assert mark.returncode == 0, mark.stderr
    proc = apply(folder, database_url, "--allow-out-of-order")
    assert proc.returncode == 0 and result_of(proc)["appliedNow"] == ["0001_m1"]
    unknown = run_pgshift(
        "baseline", "--dir", str(folder), "--up-to", "nope", database_url=database_url
    )
    assert unknown.returncode == 2 and unknown.stderr.startswith("error[UnknownMigration]: ")


def test_statement_timeout_fails_the_migration_without_retry(
    tmp_path: Path, database_url: str, psql
) -> None:
    folder = write_drizzle_folder(tmp_path / "m", [USERS, "SELECT pg_sleep(5);"])
    proc = apply(folder, database_url, "--statement-timeout", "200ms")
    assert proc.returncode == 1
    failure = result_of(proc)["failure"]
    assert failure["sqlstate"] == "57014" and not failure["retryable"]
    assert failure["migration"] == "0001_m1"
    assert psql("SELECT count(*) FROM drizzle.__drizzle_migrations") == "1"


def test_allow_drift_with_a_name_accepts_only_that_migrations_edit(
    tmp_path: Path, database_url: str
) -> None:
    """`--allow-drift=NAME` (what the operator's pgshift.dev/allow-drift passes): another edited
    file still stops, and a name that names nothing is refused before anything runs."""
    folder = write_drizzle_folder(tmp_path / "m", [USERS, ADD_NAME])
    assert apply(folder, database_url).returncode == 0
    (folder / "0000_m0.sql").write_text(USERS + "\n-- edited\n")
    (folder / "0001_m1.sql").write_text(ADD_NAME + "\n-- edited\n")
    one = apply(folder, database_url, "--allow-drift=0001_m1")
    assert one.returncode == 2 and one.stderr.startswith("error[Drift]: ")
    assert "0000_m0" in one.stderr and "--allow-drift=NAME" in one.stderr
    typo = apply(folder, database_url, "--allow-drift=0001_m9")
    assert typo.returncode == 2 and typo.stderr.startswith("error[UnknownMigration]: ")
    assert "--allow-drift 0001_m9" in typo.stderr
    both = apply(folder, database_url, "--allow-drift=0001_m1", "--allow-drift=0000_m0")
    assert both.returncode == 0, both.stderr
    assert apply(folder, database_url, "--allow-drift").returncode == 0  # bare: any file


def test_out_of_order_in_a_journal_hints_mark_applied_not_renaming(
    tmp_path: Path, database_url: str
) -> None:
    """A drizzle journal orders by its entries: renaming the file moves nothing there."""
    first = write_drizzle_folder(tmp_path / "a", [USERS, ADD_NAME], when=[1000, 3000])
    assert apply(first, database_url).returncode == 0
    late = write_drizzle_folder(
        tmp_path / "late", [USERS, "SELECT 1;", ADD_NAME], when=[1000, 2000, 3000]
    )
    ooo = apply(late, database_url)
    assert ooo.returncode == 2 and ooo.stderr.startswith("error[OutOfOrder]: ")
    assert "pgshift mark-applied 0001_m1" in ooo.stderr and "rename it" not in ooo.stderr
    plain = tmp_path / "p"
    plain.mkdir()
    (plain / "0001_a.sql").write_text("CREATE TABLE p1 (id int);")
    (plain / "0003_c.sql").write_text("SELECT 1;")
    assert apply(plain, database_url, "--tracking-table", "plain_t").returncode == 0
    (plain / "0002_b.sql").write_text("SELECT 2;")
    renamed = apply(plain, database_url, "--tracking-table", "plain_t")
    assert renamed.returncode == 2 and renamed.stderr.startswith("error[OutOfOrder]: ")
    assert "rename it to sort after 0003_c" in renamed.stderr
    assert "pgshift mark-applied 0002_b" in renamed.stderr
