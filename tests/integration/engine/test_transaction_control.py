"""Transaction control in a file (issue 9): a top-level COMMIT is a step boundary, recorded like
any other step so a rerun resumes after it; BEGIN, ROLLBACK, SAVEPOINT... are refused, with
nothing applied. Both for drizzle-style files (`--> statement-breakpoint`) and plain SQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import (
    GATE,
    events,
    pgshift_backends,
    result_of,
    run_pgshift,
    start_pgshift,
    wait_for,
    waiting_on_gate,
    write_drizzle_folder,
    write_plain_folder,
)

pytestmark = pytest.mark.integration

USERS = "CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL);"

#: what real projects write to escape drizzle's one transaction before a concurrent build,
#: then more DDL after it (which waits at the gate the first time).
DRIZZLE_FILE = (
    "ALTER TABLE users ADD COLUMN name text;\nCOMMIT;\n--> statement-breakpoint\n"
    "CREATE INDEX CONCURRENTLY users_name_idx ON users (name);\n--> statement-breakpoint\n"
    "ALTER TABLE users ADD COLUMN nick text;\n--> statement-breakpoint\n" + GATE + "\n"
)
PLAIN_FILE = (
    "ALTER TABLE users ADD COLUMN name text;\nCOMMIT;\n"
    "CREATE INDEX CONCURRENTLY users_name_idx ON users (name);\n"
    "END;\nALTER TABLE users ADD COLUMN nick text;\n" + GATE + "\n"
)


def _folder(layout: str, path: Path, sqls: list[str]) -> Path:
    return (write_drizzle_folder if layout == "drizzle" else write_plain_folder)(path, sqls)






@pytest.mark.parametrize("layout", ["drizzle", "plain"])
def test_a_commit_in_a_file_is_a_step_boundary_and_a_killed_run_resumes_after_it(
    layout: str, tmp_path: Path, database_url: str, psql, session
) -> None:
    folder = _folder(layout, tmp_path / "m", [USERS, DRIZZLE_FILE if layout == "drizzle"
                                               else PLAIN_FILE])
    planned = run_pgshift("plan", "--dir", str(folder), "--output", "json",
                          database_url=database_url)
    assert planned.returncode == 0, planned.stderr
    steps = [s for s in result_of(planned)["steps"] if s["migration"] != result_of(planned)[
        "steps"][0]["migration"]]
    # the COMMIT is no statement of its own: ADD COLUMN | the concurrent build | ADD COLUMN+gate
    assert [s["tx"] for s in steps] == ["transaction", "autocommit", "transaction"]
    assert "commit" not in " ".join(s["summary"].lower() for s in steps)

    gate = session()
    gate.execute("SELECT pg_advisory_lock(4242)")
    proc = start_pgshift("apply", "--dir", str(folder), "--lock-timeout", "0",
                         database_url=database_url)
    wait_for(lambda: waiting_on_gate(gate), "the run to reach the part after the COMMIT")
    proc.kill()
    proc.communicate()  # waits, and closes its pipes
    wait_for(lambda: pgshift_backends(gate) == 0, "the killed run's backend to end", limit=30)
    gate.execute("SELECT pg_advisory_unlock(4242)")
    # the parts before the boundary are committed and recorded; the last one is not
    assert psql("SELECT count(*) FROM drizzle.pgshift_steps") == "2"
    assert psql("SELECT count(*) FROM drizzle.__drizzle_migrations") == "1"
    assert psql("SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' "
                "AND column_name IN ('name', 'nick')") == "1"

    rerun = run_pgshift("apply", "--dir", str(folder), "--output", "json",
                        database_url=database_url)
    assert rerun.returncode == 0, rerun.stderr
    started = [e["step"] for e in events(rerun.stdout, "step.started")]
    assert [k.rsplit("-", 1)[1] for k in started] == ["2"]  # only the part after the boundary
    assert psql("SELECT count(*) FROM drizzle.__drizzle_migrations") == "2"
    assert psql("SELECT count(*) FROM drizzle.pgshift_steps") == "0"
    assert psql("SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' "
                "AND column_name IN ('name', 'nick')") == "2"


@pytest.mark.parametrize("layout", ["drizzle", "plain"])
def test_a_failure_after_the_commit_keeps_the_part_before_it_and_a_rerun_finishes(
    layout: str, tmp_path: Path, database_url: str, psql, session
) -> None:
    # the part after the COMMIT fails on a row the test inserts; the part before stays
    # committed and recorded, and once the data is fixed a rerun (same file) runs the rest.
    body = ("CREATE TABLE t (id int PRIMARY KEY, v int);\nINSERT INTO t VALUES (1, NULL);\n"
            "COMMIT;\n" + ("--> statement-breakpoint\n" if layout == "drizzle" else "")
            + "ALTER TABLE t ADD CONSTRAINT t_v CHECK (v IS NOT NULL);\n")
    folder = _folder(layout, tmp_path / "m", [body])
    failed = run_pgshift("apply", "--dir", str(folder), "--output", "json",
                         database_url=database_url)
    assert failed.returncode == 1, failed.stderr
    failure = result_of(failed)["failure"]
    assert failure["sqlstate"] == "23514" and failure["line"] == (5 if layout == "drizzle" else 4)
    assert psql("SELECT count(*) FROM t") == "1"
    assert psql("SELECT count(*) FROM drizzle.pgshift_steps") == "1"
    psql("UPDATE t SET v = 0")
    rerun = run_pgshift("apply", "--dir", str(folder), database_url=database_url)
    assert rerun.returncode == 0, rerun.stderr
    assert psql("SELECT count(*) FROM t") == "1"  # the INSERT did not run twice
    assert psql("SELECT count(*) FROM pg_constraint WHERE conname = 't_v'") == "1"
    assert psql("SELECT count(*) FROM drizzle.__drizzle_migrations") == "1"


@pytest.mark.parametrize(
    ("layout", "statement", "word"),
    [
        ("drizzle", "BEGIN;", "BEGIN"),
        ("plain", "SAVEPOINT s;", "SAVEPOINT"),
        ("plain", "ROLLBACK;", "ROLLBACK"),
        ("drizzle", "PREPARE TRANSACTION 'x';", "PREPARE TRANSACTION"),
    ],
)
def test_other_transaction_control_is_refused_before_anything_runs(
    layout: str, statement: str, word: str, tmp_path: Path, database_url: str, psql
) -> None:
    sep = "\n--> statement-breakpoint\n" if layout == "drizzle" else "\n"
    folder = _folder(layout, tmp_path / "m", [USERS, "CREATE TABLE a (id int);" + sep
                                              + statement + sep + "CREATE TABLE b (id int);"])
    for verb in ("plan", "apply"):
        proc = run_pgshift(verb, "--dir", str(folder), database_url=database_url)
        assert proc.returncode == 2, proc.stderr
        (line,) = proc.stderr.strip().splitlines()
        assert line.startswith("error[TransactionControl]: ")
        line_no = 3 if layout == "drizzle" else 2
        assert f"m1.sql:{line_no}: {word} in a migration file" in line
        assert "COMMIT; marks a step boundary" in line
    # nothing applied, not even the file before it
    assert psql("SELECT to_regclass('users') IS NULL AND to_regclass('a') IS NULL") == "t"
    assert psql("SELECT to_regclass('drizzle.__drizzle_migrations') IS NULL") == "t"
