"""What the runner's result says for each failure class, against a real server: the retry
decision of `pgshift.contract.sqlstates` in `failure.retryable`, with the SQLSTATE behind it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.helpers import (
    result_of,
    run_pgshift,
    start_pgshift,
    wait_for,
    write_drizzle_folder,
)
from tests.pgserver import PgServer, running_server

pytestmark = pytest.mark.integration

USERS = "CREATE TABLE users (id serial PRIMARY KEY);"
SLEEP = "CREATE TABLE b (id int);\nSELECT pg_sleep(60);"


def _failure(proc: subprocess.CompletedProcess[str], result: Path) -> dict[str, Any]:
    data = json.loads(result.read_text())
    assert result_of(proc) == {"event": "result", **data}
    assert "Traceback" not in proc.stderr, proc.stderr
    return data["failure"]


def _apply(folder: Path, result: Path, url: str, *extra: str) -> list[str]:
    return ["apply", "--dir", str(folder), "--output", "json", "--result-file", str(result),
            *extra]  # fmt: skip


def test_wrong_password_is_not_retryable(
    tmp_path: Path, pg_server: PgServer, database_name: str
) -> None:
    folder = write_drizzle_folder(tmp_path / "m", [USERS])
    url = pg_server.url(database_name, password="not-the-password")
    proc = run_pgshift(*_apply(folder, tmp_path / "r.json", url), database_url=url)
    failure = _failure(proc, tmp_path / "r.json")
    assert proc.returncode == 2
    assert failure["code"] == "Connection" and failure["sqlstate"] == "28P01"
    assert failure["retryable"] is False
    assert "password authentication failed" in failure["message"]


def test_missing_database_is_not_retryable(tmp_path: Path, pg_server: PgServer) -> None:
    folder = write_drizzle_folder(tmp_path / "m", [USERS])
    url = pg_server.url("no_such_database")
    proc = run_pgshift(*_apply(folder, tmp_path / "r.json", url), database_url=url)
    failure = _failure(proc, tmp_path / "r.json")
    assert failure["sqlstate"] == "3D000" and failure["retryable"] is False


def _sleeping(conn: psycopg.Connection[Any]) -> int | None:
    row = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgshift' "
        "AND wait_event = 'PgSleep'"
    ).fetchone()
    return int(row[0]) if row else None


def test_a_terminated_backend_mid_run_is_retryable(
    tmp_path: Path, database_url: str, session
) -> None:
    folder = write_drizzle_folder(tmp_path / "m", [USERS, SLEEP])
    watcher = session()
    proc = start_pgshift(*_apply(folder, tmp_path / "r.json", database_url),
                         database_url=database_url)  # fmt: skip
    wait_for(lambda: _sleeping(watcher) is not None, "the run to sleep")
    watcher.execute("SELECT pg_terminate_backend(%s)", (_sleeping(watcher),))
    out, err = proc.communicate(timeout=60)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    failure = _failure(done, tmp_path / "r.json")
    assert proc.returncode == 1 and failure["migration"] == "0001_m1"
    assert failure["sqlstate"] == "57P01" and failure["retryable"] is True
    assert result_of(out)["appliedNow"] == ["0000_m0"]


def test_a_terminated_backend_during_pgshifts_own_work_is_retryable(
    tmp_path: Path, database_url: str, session
) -> None:
    from pgshift.engine.lock import LOCK_KEY

    holder = session()
    holder.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
    folder = write_drizzle_folder(tmp_path / "m", [USERS])
    proc = start_pgshift(*_apply(folder, tmp_path / "r.json", database_url, "--lock-wait", "5m"),
                         database_url=database_url)  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:  # polling for the lock: pgshift's own queries, no migration
        if '"lock.waiting"' in line:
            break
    holder.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = 'pgshift' AND datname = current_database()"
    )
    out, err = proc.communicate(timeout=60)
    failure = _failure(
        subprocess.CompletedProcess(proc.args, proc.returncode, out, err), tmp_path / "r.json"
    )
    assert proc.returncode == 1 and failure["code"] == "Database"
    assert failure["sqlstate"] == "57P01" and failure["retryable"] is True


def test_statement_timeout_is_not_retryable(tmp_path: Path, database_url: str) -> None:
    folder = write_drizzle_folder(tmp_path / "m", [SLEEP])
    result = tmp_path / "r.json"
    proc = run_pgshift(*_apply(folder, result, database_url, "--statement-timeout", "300ms"),
                       database_url=database_url)  # fmt: skip
    failure = _failure(proc, result)
    assert failure["sqlstate"] == "57014" and failure["retryable"] is False
    assert failure["code"] == "MigrationFailed"


# --- a server of the test's own, to shut down, crash and fill -----------------------------------


@pytest.fixture
def own_server() -> Iterator[PgServer]:
    with running_server(max_connections=6) as server:
        server.create_database("app")
        yield server


def _postmaster(server: PgServer) -> int:
    return int((server.datadir / "postmaster.pid").read_text().split()[0])


def _run_until_asleep(
    server: PgServer, tmp_path: Path
) -> tuple[subprocess.Popen[str], psycopg.Connection[Any]]:
    folder = write_drizzle_folder(tmp_path / "m", [USERS, SLEEP])
    url = server.url("app")
    proc = start_pgshift(*_apply(folder, tmp_path / "r.json", url), database_url=url)
    watcher = psycopg.connect(url, autocommit=True)
    wait_for(lambda: _sleeping(watcher) is not None, "the run to sleep")
    return proc, watcher


def _finish(proc: subprocess.Popen[str], tmp_path: Path) -> dict[str, Any]:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, (out, err)
    return _failure(subprocess.CompletedProcess(proc.args, 1, out, err), tmp_path / "r.json")


def test_a_server_shutting_down_mid_run_is_retryable(
    tmp_path: Path, own_server: PgServer
) -> None:
    proc, watcher = _run_until_asleep(own_server, tmp_path)
    os.kill(_postmaster(own_server), signal.SIGINT)  # fast shutdown
    failure = _finish(proc, tmp_path)
    watcher.close()
    assert failure["sqlstate"] == "57P01" and failure["retryable"] is True


def test_a_connection_lost_mid_run_without_a_sqlstate_is_retryable(
    tmp_path: Path, own_server: PgServer
) -> None:
    proc, watcher = _run_until_asleep(own_server, tmp_path)
    with watcher:  # closed: left open, a ResourceWarning when it is collected
        pid = _sleeping(watcher)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)  # the backend dies: its client gets no error message at all
        failure = _finish(proc, tmp_path)
    assert failure["sqlstate"] is None and failure["retryable"] is True
    assert failure["code"] == "MigrationFailed"


def test_a_server_refusing_new_connections_while_shutting_down_is_retryable(
    tmp_path: Path, own_server: PgServer
) -> None:
    holder = psycopg.connect(own_server.url("app"))  # a smart shutdown waits for it
    try:
        os.kill(_postmaster(own_server), signal.SIGTERM)
        url = own_server.url("app")
        folder = write_drizzle_folder(tmp_path / "m", [USERS])

        def refused() -> bool:
            proc = run_pgshift(*_apply(folder, tmp_path / "r.json", url), database_url=url)
            return proc.returncode != 0 and "shutting down" in proc.stderr

        wait_for(refused, "the server to refuse connections", limit=30, interval=0.2)
        failure = json.loads((tmp_path / "r.json").read_text())["failure"]
        assert failure["sqlstate"] == "57P03" and failure["retryable"] is True
    finally:
        holder.close()


def test_too_many_connections_is_retryable(tmp_path: Path, own_server: PgServer) -> None:
    url = own_server.url("app")
    held = []
    try:
        while True:  # every slot, the superuser-reserved ones included
            try:
                held.append(psycopg.connect(url))
            except psycopg.OperationalError:
                break
        folder = write_drizzle_folder(tmp_path / "m", [USERS])
        proc = run_pgshift(*_apply(folder, tmp_path / "r.json", url), database_url=url)
        failure = _failure(proc, tmp_path / "r.json")
        assert failure["sqlstate"] == "53300" and failure["retryable"] is True
    finally:
        for conn in held:
            conn.close()
