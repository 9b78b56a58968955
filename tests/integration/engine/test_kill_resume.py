"""A run killed at any point loses nothing: the database's own tables hold the truth."""

from __future__ import annotations

import signal
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
)

pytestmark = pytest.mark.integration

USERS = "CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL);"






def test_sigkill_during_a_single_transaction_migration(
    tmp_path: Path, database_url: str, psql, session
) -> None:
    slow = "CREATE TABLE a (id int);\nINSERT INTO a VALUES (1);\nSELECT pg_sleep(30);"
    folder = write_drizzle_folder(tmp_path / "m", [USERS, slow])
    watcher = session()
    proc = start_pgshift("apply", "--dir", str(folder), database_url=database_url)
    # the file goes to the server as one query string (BEGIN; ...; COMMIT): wait until the
    # server is in its pg_sleep.
    wait_for(
        lambda: (
            watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgshift' "
                "AND wait_event = 'PgSleep'"
            ).fetchone()[0]
            == 1
        ),
        "pg_sleep to run",
    )
    proc.kill()
    proc.communicate()  # waits, and closes its pipes
    # the orphaned backend notices its client is gone (client_connection_check_interval),
    # rolls back and frees the migration lock.
    wait_for(lambda: pgshift_backends(watcher) == 0, "the killed run's backend to end", limit=30)
    assert psql("SELECT count(*) FROM drizzle.__drizzle_migrations") == "1"
    assert psql("SELECT to_regclass('a') IS NULL") == "t"
    fast = write_drizzle_folder(
        tmp_path / "m2", [USERS, slow.replace("pg_sleep(30)", "pg_sleep(0)")]
    )
    rerun = run_pgshift(
        "apply", "--dir", str(fast), "--output", "json", "--allow-drift", database_url=database_url
    )
    assert rerun.returncode == 0, rerun.stderr
    assert result_of(rerun)["appliedNow"] == ["0001_m1"]
    assert psql("SELECT count(*) FROM a") == "1"


def test_sigkill_between_the_steps_of_a_file_resumes(
    tmp_path: Path, database_url: str, psql, session
) -> None:
    folder = write_drizzle_folder(tmp_path / "m", [USERS])
    assert run_pgshift("apply", "--dir", str(folder), database_url=database_url).returncode == 0
    psql("INSERT INTO users (email) SELECT 'u' || g FROM generate_series(1, 500) g")
    multi = (
        "ALTER TABLE users ADD COLUMN name text;\n--> statement-breakpoint\n"
        "CREATE INDEX CONCURRENTLY users_email_idx ON users (email);\n--> statement-breakpoint\n"
        "-- pgshift:phase=contract\n" + GATE
    )
    folder = write_drizzle_folder(tmp_path / "m", [USERS, multi])
    gate = session()
    gate.execute("SELECT pg_advisory_lock(4242)")
    proc = start_pgshift(
        "apply", "--dir", str(folder), "--lock-timeout", "0", database_url=database_url
    )
    wait_for(lambda: waiting_on_gate(gate), "the run to reach the last step")
    proc.kill()
    proc.communicate()  # waits, and closes its pipes
    # the last step's transaction went to the server whole (BEGIN; ...; COMMIT in one query
    # string): released before its backend notices the kill, it would commit the file whole,
    # which is as correct, but not what this test is about.
    wait_for(lambda: pgshift_backends(gate) == 0, "the killed run's backend to end", limit=30)
    gate.execute("SELECT pg_advisory_unlock(4242)")
    assert psql("SELECT count(*) FROM drizzle.pgshift_steps") == "2"  # the first two steps
    assert psql("SELECT count(*) FROM drizzle.__drizzle_migrations") == "1"
    rerun = run_pgshift(
        "apply", "--dir", str(folder), "--output", "json", database_url=database_url
    )
    assert rerun.returncode == 0, rerun.stderr
    summary = result_of(rerun)
    # only the last step ran again (ADD COLUMN again would have failed)
    assert [s[0] for m in summary["applied"] for s in m["steps"]] == [
        f"{summary['applied'][0]['steps'][0][0].split('-')[0]}-2"
    ]
    assert psql("SELECT count(*) FROM drizzle.__drizzle_migrations") == "2"
    assert psql("SELECT count(*) FROM drizzle.pgshift_steps") == "0"
    assert (
        psql("SELECT indisvalid FROM pg_index WHERE indexrelid = 'users_email_idx'::regclass")
        == "t"
    )


def test_sigkill_during_a_backfill_resumes_after_the_checkpoint(
    tmp_path: Path, database_url: str, psql, session
) -> None:
    folder = write_drizzle_folder(
        tmp_path / "m", [USERS, "ALTER TABLE users ADD COLUMN lower text;"]
    )
    assert run_pgshift("apply", "--dir", str(folder), database_url=database_url).returncode == 0
    psql("INSERT INTO users (email) SELECT 'U' || g FROM generate_series(1, 20000) g")
    fill = "UPDATE users SET lower = lower(email) WHERE lower IS NULL;"
    folder = write_drizzle_folder(
        tmp_path / "m", [USERS, "ALTER TABLE users ADD COLUMN lower text;", fill]
    )
    watcher = session()
    proc = start_pgshift(
        "apply",
        "--dir",
        str(folder),
        "--output",
        "json",
        "--target-batch-time",
        "1ms",
        "--batch-pause",
        "50ms",
        database_url=database_url,
    )

    def batches() -> int:
        row = watcher.execute(
            "SELECT coalesce(max(batches), 0) FROM drizzle.pgshift_backfill"
        ).fetchone()
        return int(row[0]) if row else 0

    wait_for(lambda: batches() >= 3, "three committed batches")
    proc.kill()
    proc.communicate()  # waits, and closes its pipes
    wait_for(lambda: pgshift_backends(watcher) == 0, "the killed run's backend to end", limit=30)
    last_key = int(psql("SELECT last_key FROM drizzle.pgshift_backfill"))
    # every row up to the checkpoint is done, none after it: batches commit with their checkpoint
    assert psql(f"SELECT count(*) FROM users WHERE id <= {last_key} AND lower IS NULL") == "0"
    assert psql(f"SELECT count(*) FROM users WHERE id > {last_key} AND lower IS NOT NULL") == "0"
    assert 0 < last_key < 20000
    # rows written by old code meanwhile, behind the walk: the catch-up pass gets them
    psql("UPDATE users SET lower = NULL WHERE id = 1")
    rerun = run_pgshift(
        "apply", "--dir", str(folder), "--output", "json", database_url=database_url
    )
    assert rerun.returncode == 0, rerun.stderr
    progress = events(rerun.stdout, "backfill.progress")
    assert progress and progress[-1]["done"] and progress[-1]["pass"] == "catchup"
    walk_end = [p for p in progress if p["pass"] == "walk"][-1]
    assert walk_end["rows"] == 20000  # counted across both runs, no row done twice in the walk
    assert psql("SELECT count(*) FROM users WHERE lower IS DISTINCT FROM lower(email)") == "0"
    assert psql("SELECT count(*) FROM drizzle.__drizzle_migrations") == "3"


def test_sigterm_cancels_the_running_query_and_a_rerun_resumes(
    tmp_path: Path, database_url: str, psql, session
) -> None:
    folder = write_drizzle_folder(tmp_path / "m", [USERS, "CREATE TABLE b (id int);\n" + GATE])
    gate = session()
    gate.execute("SELECT pg_advisory_lock(4242)")
    proc = start_pgshift(
        "apply",
        "--dir",
        str(folder),
        "--output",
        "json",
        "--lock-timeout",
        "0",
        "--result-file",
        str(tmp_path / "r.json"),
        database_url=database_url,
    )
    wait_for(lambda: waiting_on_gate(gate), "the run to wait at the gate")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    summary = result_of(out)
    assert summary["stopped"]["reason"] == "Interrupted" and summary["failure"]["retryable"]
    assert err.strip().splitlines()[-1].startswith("error[Interrupted]: 0001_m1")
    assert "Traceback" not in err
    assert not waiting_on_gate(gate)  # the query was cancelled, not left behind
    assert psql("SELECT to_regclass('b') IS NULL") == "t"
    gate.execute("SELECT pg_advisory_unlock(4242)")
    rerun = run_pgshift(
        "apply", "--dir", str(folder), "--output", "json", database_url=database_url
    )
    assert rerun.returncode == 0 and result_of(rerun)["appliedNow"] == ["0001_m1"]


def test_sigterm_while_waiting_for_the_migration_lock(
    tmp_path: Path, database_url: str, session
) -> None:
    from pgshift.engine.lock import LOCK_KEY

    holder = session()
    holder.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
    folder = write_drizzle_folder(tmp_path / "m", [USERS])
    result = tmp_path / "r.json"
    proc = start_pgshift(
        "apply",
        "--dir",
        str(folder),
        "--output",
        "json",
        "--lock-wait",
        "5m",
        "--result-file",
        str(result),
        database_url=database_url,
    )
    for line in proc.stdout:  # the run says it waits before we stop it
        if '"lock.waiting"' in line:
            break
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert err.strip().splitlines()[-1].startswith("error[Interrupted]: ")
    import json

    data = json.loads(result.read_text())
    assert data["stopped"]["reason"] == "Interrupted" and data["failure"]["retryable"] is True


def test_a_partly_applied_file_edited_before_the_rerun_is_drift(
    tmp_path: Path, database_url: str, psql, session
) -> None:
    folder = write_drizzle_folder(tmp_path / "m", [USERS])
    assert run_pgshift("apply", "--dir", str(folder), database_url=database_url).returncode == 0
    multi = (
        "ALTER TABLE users ADD COLUMN name text;\n--> statement-breakpoint\n"
        "-- pgshift:phase=contract\n" + GATE
    )
    folder = write_drizzle_folder(tmp_path / "m", [USERS, multi])
    stop = run_pgshift(
        "apply", "--dir", str(folder), "--until-phase", "expand", database_url=database_url
    )
    assert stop.returncode == 0 and psql("SELECT count(*) FROM drizzle.pgshift_steps") == "1"
    folder = write_drizzle_folder(tmp_path / "m", [USERS, multi.replace("4242", "4243")])
    drift = run_pgshift("apply", "--dir", str(folder), database_url=database_url)
    assert drift.returncode == 2
    line = drift.stderr.strip().splitlines()[-1]
    assert line.startswith("error[Drift]: ") and "partly applied from another version" in line
    status = run_pgshift(
        "status", "--dir", str(folder), "--output", "json", database_url=database_url
    )
    assert (
        status.returncode == 1 and "partly applied" in result_of(status)["problems"][0]["message"]
    )
