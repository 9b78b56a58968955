"""Locks: two runs at once, a migration lock held elsewhere, lock timeouts and their retries,
and how long a waiting migration may block the application."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.helpers import (
    assert_no_secret,
    events,
    result_of,
    run_pgshift,
    start_pgshift,
    wait_for,
    write_drizzle_folder,
)
from tests.pgserver import PASSWORD

pytestmark = pytest.mark.integration

USERS = "CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL);"


def test_two_runs_started_together_apply_each_migration_once(
    tmp_path: Path, database_url: str, psql
) -> None:
    sqls = [USERS] + [
        f"CREATE TABLE t{i} (id int);\nINSERT INTO users (email) VALUES ('m{i}');"
        for i in range(15)
    ]
    folder = write_drizzle_folder(tmp_path / "m", sqls)
    args = ("apply", "--dir", str(folder), "--output", "json", "--lock-wait", "2m")
    procs = [start_pgshift(*args, database_url=database_url) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    applied = [result_of(out[0])["appliedNow"] for out in outs]
    assert sorted(applied[0] + applied[1]) == sorted(f"{i:04d}_m{i}" for i in range(16))
    assert (
        psql("SELECT count(*), count(DISTINCT created_at) FROM drizzle.__drizzle_migrations")
        == "16|16"
    )
    assert psql("SELECT count(*) FROM users") == "15"  # every INSERT ran once


def test_migration_lock_held_elsewhere_names_the_holder(
    tmp_path: Path, database_url: str, session, psql
) -> None:
    from pgshift.engine.lock import LOCK_KEY

    holder = session()
    holder.execute("SET application_name = 'someone-else'")
    holder.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
    folder = write_drizzle_folder(tmp_path / "m", [USERS])
    proc = run_pgshift(
        "apply",
        "--dir",
        str(folder),
        "--lock-wait",
        "1s",
        "--output",
        "json",
        database_url=database_url,
    )
    assert proc.returncode == 1
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("error[LockNotAcquired]: migration lock not acquired after")
    assert f"pid {holder.info.backend_pid} (someone-else" in line
    assert events(proc.stdout, "lock.waiting")
    assert psql("SELECT to_regclass('users') IS NULL") == "t"
    holder.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    assert run_pgshift("apply", "--dir", str(folder), database_url=database_url).returncode == 0


def _applied_users(tmp_path: Path, database_url: str) -> Path:
    folder = write_drizzle_folder(tmp_path / "m", [USERS])
    assert run_pgshift("apply", "--dir", str(folder), database_url=database_url).returncode == 0
    return write_drizzle_folder(tmp_path / "m", [USERS, "ALTER TABLE users ADD COLUMN name text;"])


def _read_lines_until(proc, needle: str, seen: list[str]) -> None:
    for line in proc.stdout:
        seen.append(line)
        if needle in line:
            return
    raise AssertionError(f"{needle!r} never printed: {''.join(seen)} / {proc.stderr.read()}")


def test_lock_timeout_is_retried_until_the_lock_is_released(
    tmp_path: Path, database_url: str, session, psql
) -> None:
    folder = _applied_users(tmp_path, database_url)
    blocker = session()
    blocker.execute("BEGIN")
    blocker.execute("SELECT count(*) FROM users")  # holds ACCESS SHARE until COMMIT
    proc = start_pgshift(
        "apply",
        "--dir",
        str(folder),
        "--output",
        "json",
        "--lock-timeout",
        "200ms",
        "--lock-retries",
        "20",
        database_url=database_url,
    )
    seen: list[str] = []
    _read_lines_until(proc, '"lock.retry"', seen)
    blocker.execute("COMMIT")
    out, err = proc.communicate(timeout=120)
    stdout = "".join(seen) + out
    assert proc.returncode == 0, err
    retry = events(stdout, "lock.retry")[0]
    assert retry["sqlstate"] == "55P03" and retry["attempt"] == 1
    assert (
        psql(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' "
            "AND column_name = 'name'"
        )
        == "1"
    )


def test_lock_timeout_fails_with_a_named_error_after_its_retries(
    tmp_path: Path, database_url: str, session, psql
) -> None:
    folder = _applied_users(tmp_path, database_url)
    blocker = session()
    blocker.execute("BEGIN")
    blocker.execute("SELECT count(*) FROM users")
    proc = run_pgshift(
        "apply",
        "--dir",
        str(folder),
        "--output",
        "json",
        "--lock-timeout",
        "100ms",
        "--lock-retries",
        "1",
        database_url=database_url,
    )
    assert proc.returncode == 1
    failure = result_of(proc)["failure"]
    assert (
        failure["code"] == "LockTimeout" and failure["sqlstate"] == "55P03" and failure["retryable"]
    )
    assert proc.stderr.strip().splitlines()[-1].startswith("error[LockTimeout]: 0001_m1")
    assert len(events(proc.stdout, "lock.retry")) == 1
    assert_no_secret(proc.stdout + proc.stderr, PASSWORD)
    blocker.execute("COMMIT")
    assert psql("SELECT count(*) FROM drizzle.__drizzle_migrations") == "1"


def test_a_waiting_migration_blocks_readers_for_about_one_lock_timeout(
    tmp_path: Path, database_url: str, session
) -> None:
    """The classic outage: ALTER waits behind a long transaction and every query queues behind
    the ALTER. With lock_timeout the ALTER gives up, so the reader gets through while the long
    transaction is still open (without it, the reader would wait for that transaction)."""
    folder = _applied_users(tmp_path, database_url)
    long_tx = session()
    long_tx.execute("BEGIN")
    long_tx.execute("SELECT count(*) FROM users")
    proc = start_pgshift(
        "apply",
        "--dir",
        str(folder),
        "--output",
        "json",
        "--lock-timeout",
        "500ms",
        "--lock-retries",
        "50",
        database_url=database_url,
    )
    watcher = session()
    # the migration is queued for its ACCESS EXCLUSIVE lock behind the long transaction
    wait_for(
        lambda: (
            watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgshift' "
                "AND wait_event_type = 'Lock'"
            ).fetchone()[0]
            == 1
        ),
        "the migration to wait for its lock",
    )
    reader = session()
    done = threading.Event()
    elapsed: list[float] = []

    def read() -> None:
        t0 = time.monotonic()
        reader.execute("SELECT count(*) FROM users")
        elapsed.append(time.monotonic() - t0)
        done.set()

    threading.Thread(target=read, daemon=True).start()
    assert done.wait(30), "the reader stayed blocked behind the waiting migration"
    # the long transaction is still open: the reader got through because the ALTER gave up.
    assert long_tx.info.transaction_status.name == "INTRANS"
    assert elapsed[0] < 0.5 + 2.5, f"reader blocked {elapsed[0]:.2f}s, lock_timeout is 0.5s"
    long_tx.execute("COMMIT")
    proc.communicate(timeout=120)
    assert proc.returncode == 0
