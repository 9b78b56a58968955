"""pgshift's lock and the session between files (issue 9): a file that releases advisory locks
is refused before anything runs unless allowed; allowed, the run notices the lost lock after
the step and stops before the next one. One file's SET search_path / SET ROLE never changes
where the next file's objects land, interrupted or not."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.helpers import result_of, run_pgshift, start_pgshift, wait_for, write_drizzle_folder

pytestmark = pytest.mark.integration

USERS = "CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL);"


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT pg_advisory_unlock_all();",
        "SELECT pg_advisory_unlock(7365437682468823841);",
        "DISCARD ALL;",
        "DO $$ BEGIN PERFORM pg_advisory_unlock_all(); END $$;",
    ],
)
def test_a_file_that_releases_advisory_locks_is_refused_before_anything_runs(
    statement: str, tmp_path: Path, database_url: str, psql
) -> None:
    folder = write_drizzle_folder(tmp_path / "m", [USERS, f"CREATE TABLE a (id int);\n{statement}"])
    proc = run_pgshift("apply", "--dir", str(folder), database_url=database_url)
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error[ReleasesLock]: ") and "0001_m1.sql:2: " in line
    assert "-- pgshift:allow=releases-advisory-lock" in line
    assert psql("SELECT to_regclass('users') IS NULL") == "t"


@pytest.mark.parametrize("mode", ["transaction", "no-transaction"])
def test_an_allowed_lock_release_stops_the_run_before_the_next_step(
    mode: str, tmp_path: Path, database_url: str, psql
) -> None:
    directives = "-- pgshift:allow=releases-advisory-lock\n" + (
        "-- pgshift:no-transaction\n" if mode == "no-transaction" else ""
    )
    release = (
        "CREATE TABLE a (id int);\nCOMMIT;\n" + directives + "SELECT pg_advisory_unlock_all();"
    )
    folder = write_drizzle_folder(
        tmp_path / "m", [USERS, release + "\nCOMMIT;\nCREATE TABLE b (id int);",
                         "CREATE TABLE c (id int);"]
    )
    proc = run_pgshift("apply", "--dir", str(folder), "--output", "json",
                       database_url=database_url)
    assert proc.returncode == 1, proc.stderr
    summary = result_of(proc)
    assert summary["failure"]["code"] == "LockLost"
    assert "no longer held" in summary["failure"]["message"]
    assert summary["failure"]["step"].endswith("-1")  # the step that released it
    # the step before it ran; nothing after it did
    assert psql("SELECT to_regclass('a') IS NOT NULL") == "t"
    assert psql("SELECT to_regclass('b') IS NULL AND to_regclass('c') IS NULL") == "t"
    assert psql("SELECT count(*) FROM drizzle.__drizzle_migrations") == "1"
    # the releasing step is not recorded as done (a transactional one was rolled back)
    assert psql("SELECT count(*) FROM drizzle.pgshift_steps") == "1"


def _objects(psql) -> str:
    return psql(
        "SELECT string_agg(n.nspname || '.' || c.relname || ':' || pg_get_userbyid(c.relowner),"
        " ',' ORDER BY c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relname IN ('t', 'settings') AND c.relkind = 'r'"
    )


def test_a_set_search_path_or_role_in_one_file_never_reaches_the_next(
    tmp_path: Path, database_url: str, psql, database_name: str
) -> None:
    role = f"r_{database_name}"
    me = psql("SELECT current_user")
    psql(f"CREATE ROLE {role}; GRANT CREATE ON DATABASE {database_name} TO {role}")
    try:
        first = (
            f"CREATE SCHEMA other AUTHORIZATION {role};\n"
            "SET search_path TO other;\n"
            f"SET ROLE {role};\n"
            "CREATE TEMP TABLE t (id int);\n"
        )
        second = (
            "CREATE TABLE t (id int);\n"
            "CREATE TABLE settings AS SELECT current_setting('statement_timeout') AS v;\n"
        )
        folder = write_drizzle_folder(tmp_path / "m", [first, second])
        proc = run_pgshift("apply", "--dir", str(folder), "--statement-timeout", "5m",
                           database_url=database_url)
        assert proc.returncode == 0, proc.stderr
        # the second file's tables land where they would in a fresh session, owned by the
        # run's user; the run's own statement_timeout is set again after the reset.
        assert _objects(psql) == f"public.settings:{me},public.t:{me}"
        assert psql("SELECT v FROM settings") == "5min"
    finally:
        psql(f"DROP OWNED BY {role}; DROP ROLE {role}")


def test_a_run_interrupted_between_the_files_resumes_with_a_clean_session(
    tmp_path: Path, database_url: str, psql, session
) -> None:
    gate_sql = "SELECT pg_advisory_xact_lock(4242);\n"
    first = "CREATE SCHEMA other;\nSET search_path TO other;\n"
    second = gate_sql + "CREATE TABLE t (id int);\n"
    folder = write_drizzle_folder(tmp_path / "m", [first, second])
    gate = session()
    gate.execute("SELECT pg_advisory_lock(4242)")
    proc = start_pgshift("apply", "--dir", str(folder), "--lock-timeout", "0",
                         database_url=database_url)

    def waiting() -> bool:
        row = gate.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                           "AND NOT granted AND objid = 4242").fetchone()
        return bool(row and row[0])

    wait_for(waiting, "the run to start the second file")
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == 1
    gate.execute("SELECT pg_advisory_unlock(4242)")
    assert psql("SELECT count(*) FROM drizzle.__drizzle_migrations") == "1"
    rerun = run_pgshift("apply", "--dir", str(folder), database_url=database_url)
    assert rerun.returncode == 0, rerun.stderr
    assert psql("SELECT to_regclass('public.t') IS NOT NULL") == "t"
    assert psql("SELECT to_regclass('other.t') IS NULL") == "t"
