"""A harsh outside run of issue 9's safety features on a real PostgreSQL (the CLI as a
subprocess): transaction control as step boundaries, lock releases, the lock after each step,
the session between files, --resume-edited, names that name nothing. Each test tries a way
the tool could do what it was told not to."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgshift.migrations import read_source
from tests.helpers import (
    events,
    pgshift_backends,
    result_of,
    run_pgshift,
    start_pgshift,
    wait_for,
    write_drizzle_folder,
    write_plain_folder,
)

pytestmark = pytest.mark.integration

USERS = "CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL);"
BP = "\n--> statement-breakpoint\n"


def _plan_steps(folder: Path, database_url: str) -> list[dict[str, Any]]:
    planned = run_pgshift("plan", "--dir", str(folder), "--output", "json",
                          database_url=database_url)
    assert planned.returncode == 0, planned.stderr
    return list(result_of(planned)["steps"])


def _steps_of(folder: Path, database_url: str, migration: str) -> list[dict[str, Any]]:
    return [s for s in _plan_steps(folder, database_url) if s["migration"] == migration]


def _one_error_line(proc: Any, code: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"error[{code}]: "), line
    return line




def _waiting_on(conn: psycopg.Connection[Any], key: int) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
        "AND objid = %s", (key,)
    ).fetchone()
    return bool(row and row[0])


# --- transaction control: what is and is not a boundary ------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        # plpgsql: END IF / END LOOP / END of a block, in a function and in a DO block
        "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$\nBEGIN\n  IF true THEN\n"
        "    NULL;\n  END IF;\n  FOR i IN 1..2 LOOP\n    NULL;\n  END LOOP;\n  RETURN 1;\nEND\n$$;",
        "DO $$\nBEGIN\n  IF true THEN\n    CREATE TABLE t0 (id int);\n  END IF;\nEND\n$$;\n"
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql RETURN 1;",
        # SQL-standard body: BEGIN ATOMIC ... END; is parsed by PostgreSQL's grammar
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT 1;\nEND;",
    ],
    ids=["function-end-if-loop", "do-end-if", "begin-atomic"],
)
@pytest.mark.parametrize("layout", ["drizzle", "plain"])
def test_end_inside_a_body_is_no_step_boundary(
    body: str, layout: str, tmp_path: Path, database_url: str, psql
) -> None:
    sql = "CREATE TABLE a (id int);\n" + body + "\nCREATE TABLE b (id int);\n"
    writer = write_drizzle_folder if layout == "drizzle" else write_plain_folder
    folder = writer(tmp_path / "m", [sql])
    (name,) = [m.name for m in read_source(str(folder)).migrations]
    steps = _steps_of(folder, database_url, name)
    # the steps the statements' phases give (a DO block is a contract step of its own), none
    # cut at an END
    want = ["expand", "contract", "expand"] if body.startswith("DO") else ["expand"]
    assert [s["phase"] for s in steps] == want, steps
    proc = run_pgshift("apply", "--dir", str(folder), database_url=database_url)
    assert proc.returncode == 0, proc.stderr
    assert psql("SELECT f()") == "1"


def test_a_commit_inside_a_do_block_is_no_boundary_and_the_file_stays_all_or_nothing(
    tmp_path: Path, database_url: str, psql
) -> None:
    # PostgreSQL refuses a COMMIT in a DO block run inside a transaction (2D000): the file
    # fails whole, nothing of it is committed, nothing recorded.
    sql = ("CREATE TABLE a (id int);\nDO $$ BEGIN CREATE TABLE b (id int); COMMIT; END $$;\n"
           "CREATE TABLE c (id int);\n")
    folder = write_drizzle_folder(tmp_path / "m", [sql])
    # three steps by phase (the DO block is a contract step), run as one transaction
    assert len(_steps_of(folder, database_url, "0000_m0")) == 3
    proc = run_pgshift("apply", "--dir", str(folder), "--output", "json",
                       database_url=database_url)
    assert proc.returncode == 1, proc.stderr
    assert result_of(proc)["failure"]["sqlstate"] == "2D000"
    assert psql("SELECT to_regclass('a') IS NULL AND to_regclass('b') IS NULL") == "t"
    assert psql("SELECT count(*) FROM drizzle.__drizzle_migrations") == "0"


@pytest.mark.parametrize(
    "commit",
    [
        "commit;",
        "COMMIT WORK;",
        "COMMIT TRANSACTION;",
        "COMMIT; -- escape drizzle's transaction",
        "/* escape */ COMMIT /* here */;",
        "End;",
        "END WORK;",
        "COMMIT AND NO CHAIN;",
    ],
)
def test_every_spelling_of_a_plain_commit_is_a_boundary(
    commit: str, tmp_path: Path, database_url: str, psql
) -> None:
    sql = f"CREATE TABLE a (id int);\n{commit}\nCREATE TABLE b (id int);\n"
    folder = write_plain_folder(tmp_path / "m", [sql])
    steps = _steps_of(folder, database_url, "0001_m0")
    assert len(steps) == 2, steps
    proc = run_pgshift("apply", "--dir", str(folder), database_url=database_url)
    assert proc.returncode == 0, proc.stderr
    assert psql("SELECT to_regclass('a') IS NOT NULL AND to_regclass('b') IS NOT NULL") == "t"


@pytest.mark.parametrize(
    ("statement", "word"),
    [
        ("COMMIT AND CHAIN;", "COMMIT AND CHAIN"),
        ("ABORT;", "ROLLBACK"),
        ("START TRANSACTION ISOLATION LEVEL SERIALIZABLE;", "START TRANSACTION"),
        ("begin work;", "BEGIN"),
        ("RELEASE SAVEPOINT s;", "RELEASE SAVEPOINT"),
        ("ROLLBACK TO SAVEPOINT s;", "ROLLBACK TO SAVEPOINT"),
        ("COMMIT PREPARED 'x';", "COMMIT PREPARED"),
        ("ROLLBACK PREPARED 'x';", "ROLLBACK PREPARED"),
    ],
)
def test_other_spellings_of_transaction_control_are_refused_before_anything_runs(
    statement: str, word: str, tmp_path: Path, database_url: str, psql
) -> None:
    folder = write_plain_folder(tmp_path / "m", [USERS, f"CREATE TABLE a (id int);\n{statement}"])
    line = _one_error_line(run_pgshift("apply", "--dir", str(folder), database_url=database_url),
                           "TransactionControl")
    assert f"0002_m1.sql:2: {word} in a migration file" in line
    assert psql("SELECT to_regclass('users') IS NULL") == "t"


@pytest.mark.parametrize("layout", ["drizzle", "plain"])
@pytest.mark.parametrize(
    "sql",
    ["COMMIT;", "COMMIT;\n", "-- only a commit\nCOMMIT;\nCOMMIT;\n",
     "CREATE TABLE a (id int);\nCOMMIT;", "COMMIT;\nCREATE TABLE a (id int);",
     "CREATE TABLE a (id int);\nCOMMIT;\nCOMMIT;\nCREATE TABLE b (id int);\nCOMMIT;\n"],
    ids=["only", "only-newline", "only-two", "last", "first", "doubled"],
)
def test_a_commit_alone_first_last_or_doubled_applies_once_and_drizzle_agrees(
    sql: str, layout: str, tmp_path: Path, database_url: str, psql
) -> None:
    writer = write_drizzle_folder if layout == "drizzle" else write_plain_folder
    folder = writer(tmp_path / "m", [USERS, sql, "CREATE TABLE z (id int);"])
    proc = run_pgshift("apply", "--dir", str(folder), database_url=database_url)
    assert proc.returncode == 0, proc.stderr
    assert psql("SELECT count(*) FROM drizzle.__drizzle_migrations") == "3"
    assert psql("SELECT count(*) FROM drizzle.pgshift_steps") == "0"
    assert psql("SELECT to_regclass('z') IS NOT NULL") == "t"
    again = run_pgshift("apply", "--dir", str(folder), "--output", "json",
                        database_url=database_url)
    assert again.returncode == 0, again.stderr
    assert not events(again.stdout, "step.started")


def test_drizzle_breakpoint_style_killed_at_every_point_resumes_exactly_once(
    tmp_path: Path, database_url: str, psql, session
) -> None:
    # what real projects write to get CREATE INDEX CONCURRENTLY past drizzle's transaction:
    # a kill -9 while each part runs (the concurrent build included, blocked by a writer), then
    # a rerun; in the end each part ran once and drizzle's row is written once.
    body = (
        "ALTER TABLE users ADD COLUMN name text;\nSELECT pg_advisory_xact_lock(9001);\n"
        "COMMIT;" + BP + "CREATE INDEX CONCURRENTLY users_name_idx ON users (name);" + BP
        + "ALTER TABLE users ADD COLUMN nick text;" + BP + "SELECT pg_advisory_xact_lock(9003);\n"
        "COMMIT;" + BP + "INSERT INTO users (email) VALUES ('once');\n"
    )
    folder = write_drizzle_folder(tmp_path / "m", [USERS, body])
    assert run_pgshift("apply", "--dir", str(folder), "--target", "0000_m0",
                       database_url=database_url).returncode == 0
    gate = session()
    gate.execute("SELECT pg_advisory_lock(9001), pg_advisory_lock(9003)")
    writer = session()

    def kill_when(predicate: Callable[[], bool], what: str) -> None:
        proc = start_pgshift("apply", "--dir", str(folder), "--lock-timeout", "0",
                             database_url=database_url)
        wait_for(predicate, what)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()  # waits, and closes its pipes
        wait_for(lambda: pgshift_backends(gate) == 0, "the killed run's backend to end",
                 limit=30)

    def columns() -> str:
        return psql("SELECT count(*) FROM information_schema.columns WHERE table_name = 'users'"
                    " AND column_name IN ('name', 'nick')")

    # 1. inside the first part: nothing of it stays
    kill_when(lambda: _waiting_on(gate, 9001), "the first part")
    assert columns() == "0" and psql("SELECT count(*) FROM drizzle.pgshift_steps") == "0"
    gate.execute("SELECT pg_advisory_unlock(9001)")

    # 2. inside the concurrent build, which waits for an older snapshot (another table's reader:
    # the ALTER TABLE before the build is not blocked by it)
    psql("CREATE TABLE elsewhere (id int)")
    writer.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
    writer.execute("SELECT count(*) FROM elsewhere")

    def building() -> bool:
        row = gate.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgshift' "
            "AND query ILIKE '%CREATE INDEX CONCURRENTLY%' AND wait_event_type = 'Lock'"
        ).fetchone()
        return bool(row and row[0])

    kill_when(building, "the concurrent build")
    writer.execute("ROLLBACK")
    assert columns() == "1" and psql("SELECT count(*) FROM drizzle.pgshift_steps") == "1"

    # 3. inside the part after the build
    kill_when(lambda: _waiting_on(gate, 9003), "the third part")
    assert psql("SELECT indisvalid FROM pg_index WHERE indexrelid = "
                "'users_name_idx'::regclass") == "t"
    assert columns() == "1"
    gate.execute("SELECT pg_advisory_unlock(9003)")

    done = run_pgshift("apply", "--dir", str(folder), database_url=database_url)
    assert done.returncode == 0, done.stderr
    assert columns() == "2"
    assert psql("SELECT count(*) FROM users WHERE email = 'once'") == "1"
    assert psql("SELECT count(*) FROM drizzle.__drizzle_migrations") == "2"
    assert psql("SELECT count(*) FROM drizzle.pgshift_steps") == "0"
    assert psql("SELECT count(*) FROM pg_index WHERE NOT indisvalid") == "0"


# --- the lock ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT pg_catalog.pg_advisory_unlock_all();",
        'SELECT "pg_advisory_unlock_all"();',
        "SELECT * FROM pg_advisory_unlock_all();",
        "SELECT PG_ADVISORY_UNLOCK_SHARED(1);",
        "CREATE FUNCTION u() RETURNS void LANGUAGE sql BEGIN ATOMIC SELECT "
        "pg_advisory_unlock_all(); END;",
        "CREATE FUNCTION u() RETURNS void LANGUAGE plpgsql AS 'BEGIN PERFORM "
        "pg_catalog.pg_advisory_unlock_all(); END';",
        "DO $$ BEGIN EXECUTE 'select pg_advisory_unlock_all()'; END $$;",
        "discard all;",
    ],
)
def test_hidden_spellings_of_a_lock_release_are_refused_before_anything_runs(
    statement: str, tmp_path: Path, database_url: str, psql
) -> None:
    folder = write_drizzle_folder(tmp_path / "m", [USERS, f"CREATE TABLE a (id int);\n{statement}"])
    line = _one_error_line(run_pgshift("apply", "--dir", str(folder), database_url=database_url),
                           "ReleasesLock")
    assert "0001_m1.sql:2: " in line
    assert psql("SELECT to_regclass('users') IS NULL") == "t"


#: a release the file's text cannot show: dynamic SQL built at run time.
DYNAMIC = "DO $$ BEGIN EXECUTE 'select pg_advisory_' || 'unlock_all()'; END $$;"


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("whole-file", "CREATE TABLE a (id int);\n" + DYNAMIC + "\nCREATE TABLE b (id int);"),
        ("after-commit", "CREATE TABLE a (id int);\nCOMMIT;\n" + DYNAMIC
         + "\nCREATE TABLE b (id int);\nCOMMIT;\nCREATE TABLE c (id int);"),
        ("function-made-before", "CREATE TABLE a (id int);\nSELECT unlocker();\n"
         "CREATE TABLE b (id int);"),
        ("autocommit", "CREATE TABLE a (id int);\nCOMMIT;\n-- pgshift:no-transaction\n"
         + DYNAMIC + "\nCOMMIT;\nCREATE TABLE c (id int);"),
    ],
)
def test_a_lock_release_the_text_cannot_show_stops_the_run_at_that_step(
    name: str, body: str, tmp_path: Path, database_url: str, psql
) -> None:
    psql("CREATE FUNCTION unlocker() RETURNS void LANGUAGE plpgsql AS "
         "$$ BEGIN PERFORM pg_advisory_unlock_all(); END $$")
    folder = write_drizzle_folder(tmp_path / "m", [USERS, body, "CREATE TABLE later (id int);"])
    proc = run_pgshift("apply", "--dir", str(folder), "--output", "json",
                       database_url=database_url)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert result_of(proc)["failure"]["code"] == "LockLost"
    assert psql("SELECT to_regclass('b') IS NULL AND to_regclass('c') IS NULL "
                "AND to_regclass('later') IS NULL") == "t"
    assert psql("SELECT count(*) FROM drizzle.__drizzle_migrations") == "1"
    # a transactional step that released the lock rolled back with its record
    if name in ("whole-file", "function-made-before"):
        assert psql("SELECT to_regclass('a') IS NULL") == "t"
        assert psql("SELECT count(*) FROM drizzle.pgshift_steps") == "0"
    else:
        assert psql("SELECT to_regclass('a') IS NOT NULL") == "t"


# --- the session between files ----------------------------------------------------------------


def _where(psql, table: str) -> str:
    return psql(
        "SELECT string_agg(n.nspname || ':' || pg_get_userbyid(c.relowner), ',') FROM pg_class c"
        f" JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = '{table}' "
        "AND c.relkind = 'r'"
    )


@pytest.mark.parametrize(
    "setting",
    [
        "SELECT set_config('search_path', 'other', false);",
        "SELECT pg_catalog.set_config('search_path', 'other, public', false);",
        "SET SESSION search_path = other;",
        "SET SESSION AUTHORIZATION {role};",
        "SET ROLE {role};",
        "SELECT set_config('role', '{role}', false);",
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY;",
        "SET default_tablespace = '';\nSET search_path = other;",
    ],
)
@pytest.mark.parametrize("interrupted", [False, True], ids=["one-run", "interrupted"])
def test_a_session_setting_of_one_file_never_reaches_the_next(
    setting: str, interrupted: bool, tmp_path: Path, database_url: str, psql, session,
    database_name: str,
) -> None:
    role = f"r_{database_name}"
    me = psql("SELECT current_user")
    psql(f"CREATE ROLE {role}; GRANT CREATE ON DATABASE {database_name} TO {role}; "
         f"CREATE SCHEMA other AUTHORIZATION {role}; GRANT ALL ON SCHEMA public TO {role}")
    try:
        first = "CREATE TABLE one (id int);\n" + setting.format(role=role) + "\n"
        second = "SELECT pg_advisory_xact_lock(4242);\nCREATE TABLE two (id int);\n"
        folder = write_drizzle_folder(tmp_path / "m", [first, second])
        if interrupted:
            gate = session()
            gate.execute("SELECT pg_advisory_lock(4242)")
            proc = start_pgshift("apply", "--dir", str(folder), "--lock-timeout", "0",
                                 database_url=database_url)
            wait_for(lambda: _waiting_on(gate, 4242), "the run to start the second file")
            proc.send_signal(signal.SIGKILL)
            proc.communicate()  # waits, and closes its pipes
            wait_for(lambda: pgshift_backends(gate) == 0, "the killed run's backend", limit=30)
            gate.execute("SELECT pg_advisory_unlock(4242)")
            assert psql("SELECT count(*) FROM drizzle.__drizzle_migrations") == "1"
        run = run_pgshift("apply", "--dir", str(folder), database_url=database_url)
        assert run.returncode == 0, run.stderr
        assert _where(psql, "two") == f"public:{me}"
        assert psql("SELECT count(*) FROM drizzle.__drizzle_migrations") == "2"
    finally:
        psql(f"DROP OWNED BY {role}; DROP ROLE {role}")


def test_a_set_role_before_a_commit_keeps_the_files_role_for_its_later_steps(
    tmp_path: Path, database_url: str, psql, database_name: str
) -> None:
    # the records are written as the session user, but the file's own later steps keep the
    # role it set (docs/runner.md): b is the role's.
    role = f"r_{database_name}"
    psql(f"CREATE ROLE {role}; GRANT ALL ON SCHEMA public TO {role}")
    try:
        body = f"SET ROLE {role};\nCREATE TABLE a (id int);\nCOMMIT;\nCREATE TABLE b (id int);\n"
        folder = write_drizzle_folder(tmp_path / "m", [body, "CREATE TABLE c (id int);"])
        run = run_pgshift("apply", "--dir", str(folder), database_url=database_url)
        assert run.returncode == 0, run.stderr
        me = psql("SELECT current_user")
        assert _where(psql, "a") == f"public:{role}"
        assert _where(psql, "b") == f"public:{role}"
        assert _where(psql, "c") == f"public:{me}"
    finally:
        psql(f"DROP OWNED BY {role}; DROP ROLE {role}")


# --- --resume-edited --------------------------------------------------------------------------

#: three steps (COMMIT boundaries); the third fails on purpose.
APPLIED = (
    "ALTER TABLE users ADD COLUMN name text;\nCOMMIT;\n"
    "ALTER TABLE users ADD COLUMN nick text;\nCOMMIT;\n"
)
BROKEN = APPLIED + "SELECT 1/0;\n"


def _failed_half_way(tmp_path: Path, database_url: str, psql) -> Path:
    folder = write_plain_folder(tmp_path / "m", [USERS, BROKEN])
    failed = run_pgshift("apply", "--dir", str(folder), database_url=database_url)
    assert failed.returncode == 1, failed.stderr
    assert psql("SELECT count(*) FROM drizzle.pgshift_steps") == "2"
    return folder


@pytest.mark.parametrize(
    ("edited", "resumes"),
    [
        # the step not yet applied: edited, split in two, more steps after it
        (APPLIED + "SELECT 1;\n", True),
        (APPLIED + "SELECT 1;\nCOMMIT;\nCREATE TABLE x (id int);\nCOMMIT;\nSELECT 2;\n", True),
        (APPLIED + "COMMIT;\nSELECT 1;\n", True),
        # comments between statements are no statement's text
        ("-- why\n" + APPLIED.replace("COMMIT;\nALTER", "COMMIT; -- c\n-- nick\nALTER")
         + "SELECT 1;\n", True),
        # an applied step's text changed, or boundaries moved within the applied part
        (APPLIED.replace("name text", "name varchar") + "SELECT 1;\n", False),
        (APPLIED.replace("text;\nCOMMIT;\nALTER", "text;\nALTER", 1) + "SELECT 1;\n", False),
        ("CREATE TABLE before (id int);\n" + APPLIED + "SELECT 1;\n", False),
        # whitespace or a comment inside an applied statement: its text changed (conservative)
        (APPLIED.replace("ADD COLUMN name", "ADD  COLUMN name") + "SELECT 1;\n", False),
        # fewer steps than were applied
        ("ALTER TABLE users ADD COLUMN name text;\n", False),
    ],
    ids=["next-step", "more-steps", "extra-commit-after", "comments-between", "applied-text",
         "boundary-moved", "statement-before", "whitespace-inside", "fewer-steps"],
)
def test_resume_edited_resumes_only_when_every_applied_step_is_unchanged(
    edited: str, resumes: bool, tmp_path: Path, database_url: str, psql
) -> None:
    folder = _failed_half_way(tmp_path, database_url, psql)
    write_plain_folder(folder, [USERS, edited])
    proc = run_pgshift("apply", "--dir", str(folder), "--resume-edited", "--output", "json",
                       database_url=database_url)
    columns = psql("SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' "
                   "AND column_name IN ('name', 'nick')")
    if resumes:
        assert proc.returncode == 0, proc.stderr
        assert all(not k.endswith(("-0", "-1")) for k in
                   (e["step"] for e in events(proc.stdout, "step.started")))
        assert psql("SELECT count(*) FROM drizzle.__drizzle_migrations") == "2"
        assert psql("SELECT count(*) FROM drizzle.pgshift_steps") == "0"
    else:
        _one_error_line(proc, "EditedAppliedStep")
        assert psql("SELECT count(*) FROM drizzle.pgshift_steps") == "2"
        assert psql("SELECT count(*) FROM drizzle.__drizzle_migrations") == "1"
    assert columns == "2"


def test_resume_edited_never_reruns_an_edited_fully_applied_file(
    tmp_path: Path, database_url: str, psql
) -> None:
    folder = write_plain_folder(tmp_path / "m", [USERS, "CREATE TABLE a (id int);"])
    assert run_pgshift("apply", "--dir", str(folder), database_url=database_url).returncode == 0
    write_plain_folder(folder, [USERS, "CREATE TABLE a (id int);\nCOMMIT;\nSELECT 1;"])
    proc = run_pgshift("apply", "--dir", str(folder), "--resume-edited",
                       database_url=database_url)
    assert proc.returncode == 2, proc.stderr
    assert "error[Drift]" in proc.stderr
    assert psql("SELECT count(*) FROM drizzle.__drizzle_migrations") == "2"


def test_the_upgrade_of_pgshifts_tables_interrupted_leaves_them_as_they_were(
    tmp_path: Path, database_url: str, psql, session
) -> None:
    # main's shape, a partly applied file; the upgrade waits on a lock the test holds on
    # pgshift_steps and is killed there: the tables are as they were, and a rerun upgrades and
    # resumes from the recorded step.
    folder = write_plain_folder(tmp_path / "m", [USERS, BROKEN.replace("SELECT 1/0;\n",
                                                                       "SELECT 1;\n")])
    m0, m1 = read_source(str(folder)).migrations
    psql("CREATE SCHEMA drizzle; CREATE TABLE drizzle.__drizzle_migrations (id SERIAL PRIMARY "
         "KEY, hash text NOT NULL, created_at bigint);"
         "CREATE TABLE drizzle.pgshift_steps (step text PRIMARY KEY, migration text NOT NULL, "
         "hash text NOT NULL, done_at timestamptz NOT NULL DEFAULT now());"
         "CREATE TABLE drizzle.pgshift_backfill (step text PRIMARY KEY, migration text NOT NULL,"
         " last_key text, rows bigint NOT NULL DEFAULT 0, batches bigint NOT NULL DEFAULT 0, "
         "walked boolean NOT NULL DEFAULT false, updated_at timestamptz NOT NULL DEFAULT now());"
         + USERS + "ALTER TABLE users ADD COLUMN name text;"
         f"INSERT INTO drizzle.__drizzle_migrations (hash, created_at) VALUES ('{m0.hash}', "
         f"{m0.when});"
         f"INSERT INTO drizzle.pgshift_steps (step, migration, hash) VALUES "
         f"('{m1.hash[:12]}-0', '{m1.name}', '{m1.hash}')")
    holder = session()
    holder.execute("BEGIN")
    holder.execute("LOCK TABLE drizzle.pgshift_steps IN ACCESS EXCLUSIVE MODE")
    proc = start_pgshift("apply", "--dir", str(folder), "--lock-timeout", "0",
                         database_url=database_url)

    watcher = session()  # pg_stat_activity is a snapshot within the holder's transaction

    def upgrading() -> bool:
        row = watcher.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgshift' "
            "AND wait_event_type = 'Lock'"
        ).fetchone()
        return bool(row and row[0])

    wait_for(upgrading, "the upgrade to wait on pgshift_steps")
    proc.send_signal(signal.SIGKILL)
    proc.communicate()  # waits, and closes its pipes
    holder.execute("ROLLBACK")
    wait_for(lambda: pgshift_backends(holder) == 0, "the killed run's backend", limit=30)
    assert psql("SELECT to_regclass('drizzle.pgshift_schema') IS NULL") == "t"
    assert psql("SELECT count(*) FROM information_schema.columns WHERE column_name = "
                "'text_hash'") == "0"
    run = run_pgshift("apply", "--dir", str(folder), "--output", "json",
                      database_url=database_url)
    assert run.returncode == 0, run.stderr
    assert [e["step"].rsplit("-", 1)[1] for e in events(run.stdout, "step.started")] == ["1",
                                                                                           "2"]
    assert psql("SELECT version FROM drizzle.pgshift_schema") == "2"
    assert psql("SELECT count(*) FROM drizzle.__drizzle_migrations") == "2"


# --- names that name nothing ------------------------------------------------------------------


def _two_files(tmp_path: Path) -> Path:
    # 0002's step 1 drops a table of 0001's: destructive (a table of its own file would not be)
    return write_plain_folder(tmp_path / "m", [
        USERS + "\nCREATE TABLE a (id int);\n",
        "ALTER TABLE users ADD COLUMN x int;\nCOMMIT;\nDROP TABLE a;\n",
        "CREATE TABLE c (id int);\n",
    ])


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--stop-before", ""),
        ("--stop-before", " "),
        ("--target", ""),
        ("--approve", ""),
        ("--stop-before", "0002_M1"),  # names are exact
        ("--stop-before", "0002_m1.sql"),
        ("--stop-before", "{hash}-9"),  # a step the pending file does not have
        ("--stop-before", "{hash}-1 "),
        ("--stop-before", "{HASH}-1"),
        ("--stop-before", "{hash}-01"),
        ("--stop-before", "{hash}.abcdef-1"),  # a plan version it does not have
        ("--target", "{hash}-1"),  # --target takes migration names
    ],
)
def test_a_name_that_names_nothing_is_exit_2_before_anything_runs(
    option: str, value: str, tmp_path: Path, database_url: str, psql
) -> None:
    folder = _two_files(tmp_path)
    m1 = read_source(str(folder)).migrations[1]
    value = value.format(hash=m1.hash[:12], HASH=m1.hash[:12].upper())
    proc = run_pgshift("apply", "--dir", str(folder), option, value, database_url=database_url)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and proc.stderr.strip().startswith("error[")
    assert psql("SELECT to_regclass('users') IS NULL") == "t"


def test_names_of_applied_steps_and_migrations_are_consumed_and_nothing_more_runs(
    tmp_path: Path, database_url: str, psql
) -> None:
    folder = _two_files(tmp_path)
    m0, m1, _m2 = read_source(str(folder)).migrations
    # the destructive step 1 waits for an approval: step 0 applied, recorded
    first = run_pgshift("apply", "--dir", str(folder), "--destructive", "RequireApproval",
                        database_url=database_url)
    assert first.returncode == 0, first.stderr
    assert psql("SELECT count(*) FROM drizzle.pgshift_steps") == "1"
    assert psql("SELECT to_regclass('a') IS NOT NULL AND to_regclass('c') IS NULL") == "t"
    # --target of an applied migration: nothing more runs
    proc = run_pgshift("apply", "--dir", str(folder), "--target", m0.name,
                       database_url=database_url)
    assert proc.returncode == 0, proc.stderr
    assert psql("SELECT to_regclass('a') IS NOT NULL AND to_regclass('c') IS NULL") == "t"
    # --stop-before the applied step 0: consumed; the run stops before the other file
    key0 = f"{m1.hash[:12]}-0"
    proc = run_pgshift("apply", "--dir", str(folder), "--stop-before", key0,
                       "--target", m1.name, database_url=database_url)
    assert proc.returncode == 0, proc.stderr
    assert psql("SELECT to_regclass('a') IS NULL AND to_regclass('c') IS NULL") == "t"
    assert psql("SELECT count(*) FROM drizzle.__drizzle_migrations") == "2"
    assert psql("SELECT count(*) FROM drizzle.pgshift_steps") == "0"
    # a key of a file now wholly applied: consumed; the last file runs
    proc = run_pgshift("apply", "--dir", str(folder), "--stop-before", key0,
                       database_url=database_url)
    assert proc.returncode == 0, proc.stderr
    assert psql("SELECT count(*) FROM drizzle.__drizzle_migrations") == "3"


def test_a_second_stop_before_never_silently_replaces_the_first(
    tmp_path: Path, database_url: str, psql
) -> None:
    # `--stop-before A --stop-before B` with A first: A must not run (argparse keeps the last).
    folder = _two_files(tmp_path)
    m0, m1, m2 = read_source(str(folder)).migrations
    proc = run_pgshift("apply", "--dir", str(folder), "--stop-before",
                       m1.name, "--stop-before", m2.name, database_url=database_url)
    line = _one_error_line(proc, "Usage")
    assert f"--stop-before: given 2 times ('{m1.name}', '{m2.name}')" in line
    assert psql("SELECT to_regclass('users') IS NULL") == "t"
    proc = run_pgshift("apply", "--dir", str(folder), "--target", m0.name, "--target", m2.name,
                       database_url=database_url)
    _one_error_line(proc, "Usage")
    assert psql("SELECT to_regclass('users') IS NULL") == "t"


# --- drizzle reads what pgshift wrote -----------------------------------------------------------


@pytest.mark.interop
def test_drizzle_agrees_after_commit_boundaries_a_commit_only_file_and_resume_edited(
    tmp_path: Path, database_url: str, pg_server, psql
) -> None:
    from tests.interop.drizzle import drizzle_migrate, require_node_modules, tracking_rows

    require_node_modules()
    head = "CREATE TABLE p (id int);\nCOMMIT;" + BP
    sqls = [
        USERS,
        "ALTER TABLE users ADD COLUMN name text;\nCOMMIT;" + BP
        + "CREATE INDEX CONCURRENTLY users_name_idx ON users (name);" + BP
        + "ALTER TABLE users ADD COLUMN nick text;\n",
        "COMMIT;\n",
        head + "SELECT 1/0;\n",
    ]
    folder = write_drizzle_folder(tmp_path / "drizzle", sqls)
    assert run_pgshift("apply", "--dir", str(folder), database_url=database_url).returncode == 1
    write_drizzle_folder(folder, [*sqls[:3], head + "SELECT 1;\n"])
    resumed = run_pgshift("apply", "--dir", str(folder), "--resume-edited",
                          database_url=database_url)
    assert resumed.returncode == 0, resumed.stderr
    ours = tracking_rows(database_url, "stable")
    assert len(ours) == 4
    report = drizzle_migrate(database_url, folder, "stable")  # finds nothing to do
    assert tracking_rows(database_url, "stable") == ours, report
    name = f"harsh_{tmp_path.name[-20:]}".replace("-", "_").lower()
    pg_server.create_database(name)
    try:
        drizzle_migrate(pg_server.url(name), folder, "stable")  # drizzle alone
        assert tracking_rows(pg_server.url(name), "stable") == ours
    finally:
        pg_server.drop_database(name)


@pytest.mark.parametrize("verb", ["plan", "apply"])
def test_an_override_that_allows_a_lock_release_is_honoured_by_plan_and_apply(
    verb: str, tmp_path: Path, database_url: str, psql
) -> None:
    # docs/runner.md: refused "unless the statement (or the migration's override) allows" it;
    # apply checked the files a second time without the overrides and refused.
    folder = write_drizzle_folder(
        tmp_path / "m", [USERS, "CREATE TABLE a (id int);\nSELECT pg_advisory_unlock(4242);"]
    )
    overrides = tmp_path / "o.yaml"
    overrides.write_text("0001_m1: {allow: [releases-advisory-lock]}\n")
    proc = run_pgshift(verb, "--dir", str(folder), "--overrides", str(overrides),
                       database_url=database_url)
    assert proc.returncode == 0, proc.stderr
    if verb == "apply":
        assert psql("SELECT count(*) FROM drizzle.__drizzle_migrations") == "2"


def test_a_backfill_that_releases_the_lock_stops_the_run_before_the_next_step(
    tmp_path: Path, database_url: str, psql
) -> None:
    psql(USERS + "INSERT INTO users (email) SELECT 'U' || g FROM generate_series(1, 3000) g;"
         "CREATE FUNCTION unlocker() RETURNS text LANGUAGE plpgsql AS "
         "$$ BEGIN PERFORM pg_advisory_unlock_all(); RETURN ''; END $$")
    body = ("ALTER TABLE users ADD COLUMN lower text;" + BP
            + "UPDATE users SET lower = lower(email) || unlocker() WHERE lower IS NULL;" + BP
            + "ALTER TABLE users ADD COLUMN nick text;\n")
    folder = write_drizzle_folder(tmp_path / "m", [body])
    proc = run_pgshift("apply", "--dir", str(folder), "--output", "json",
                       database_url=database_url)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert result_of(proc)["failure"]["code"] == "LockLost"
    assert psql("SELECT count(*) FROM information_schema.columns WHERE column_name = 'nick'") \
        == "0"
    assert psql("SELECT count(*) FROM drizzle.__drizzle_migrations") == "0"
