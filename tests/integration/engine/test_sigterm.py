"""SIGTERM at any point: exit code 1 (docs/runner.md), an `Interrupted` result file, no query
left running, within a second; and the summary always says what the tracking table holds."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import (
    GATE,
    handles_sigterm,
    result_of,
    start_pgshift,
    wait_for,
    waiting_on_gate,
    write_drizzle_folder,
)

pytestmark = pytest.mark.integration

USERS = "CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL);"
#: a signal is handled and the process gone within this (issue 9).
BOUND_S = 1.0


def _pgshift_backends(conn: Any) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT pid, state, query FROM pg_stat_activity WHERE application_name = 'pgshift' "
        "AND datname = current_database()"
    ).fetchall()




def _apply(folder: Path, result: Path, database_url: str) -> subprocess.Popen[str]:
    return start_pgshift(
        "apply", "--dir", str(folder), "--output", "json", "--lock-timeout", "0",
        "--result-file", str(result), database_url=database_url,
    )  # fmt: skip


def _terminate(proc: subprocess.Popen[str], times: int = 1) -> tuple[str, str, float]:
    """SIGTERM (`times` in a row); the output, and seconds from the first signal to the exit."""
    t0 = time.monotonic()
    for _ in range(times):
        proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    return out, err, time.monotonic() - t0


def _assert_interrupted(
    proc: subprocess.Popen[str], out: str, err: str, result: Path, elapsed: float, watcher: Any
) -> dict[str, Any]:
    assert proc.returncode == 1, (proc.returncode, out, err)
    assert "Traceback" not in err, err
    assert err.strip().splitlines()[-1].startswith("error[Interrupted]: "), err
    data = json.loads(result.read_text())
    assert data["stopped"]["reason"] == "Interrupted"
    assert data["failure"]["code"] == "Interrupted" and data["failure"]["retryable"] is True
    assert result_of(out) == {"event": "result", **data}
    assert elapsed < BOUND_S, f"took {elapsed:.2f} s"
    # nothing left running: the backend's query was cancelled and the session closed.
    wait_for(lambda: not _pgshift_backends(watcher), "the run's backend to end", limit=BOUND_S)
    return data


def test_sigterm_during_start_up(tmp_path: Path, database_url: str, session) -> None:
    folder = write_drizzle_folder(tmp_path / "m", [USERS])
    result = tmp_path / "r.json"
    proc = _apply(folder, result, database_url)
    # as soon as pgshift's code runs: the driver is not even loaded yet (before the fix, the
    # handler came after every import, and a SIGTERM meanwhile killed the process: -15)
    wait_for(lambda: handles_sigterm(proc.pid), "pgshift to install its handler", interval=0.001)
    driver_loaded = "psycopg" in Path(f"/proc/{proc.pid}/maps").read_text()
    out, err, elapsed = _terminate(proc)
    assert not driver_loaded
    data = _assert_interrupted(proc, out, err, result, elapsed, session())
    assert data["applied"] == [] and "before any step ran" in data["failure"]["message"]
    assert "appliedCount" not in data  # unknown: the tracking table was not read


def test_sigterm_mid_statement(tmp_path: Path, database_url: str, psql, session) -> None:
    folder = write_drizzle_folder(tmp_path / "m", [USERS, "CREATE TABLE b (id int);\n" + GATE])
    gate = session()
    gate.execute("SELECT pg_advisory_lock(4242)")
    result = tmp_path / "r.json"
    proc = _apply(folder, result, database_url)
    wait_for(lambda: waiting_on_gate(gate), "the run to wait at the gate")
    out, err, elapsed = _terminate(proc)
    data = _assert_interrupted(proc, out, err, result, elapsed, gate)
    assert not waiting_on_gate(gate)  # cancelled, not left behind
    assert data["failure"]["sqlstate"] == "57014" and data["failure"]["migration"] == "0001_m1"
    assert [a["migration"] for a in data["applied"]] == ["0000_m0"] == data["appliedNow"]
    assert psql("SELECT to_regclass('b') IS NULL") == "t"


def test_double_sigterm_mid_statement(tmp_path: Path, database_url: str, session) -> None:
    folder = write_drizzle_folder(tmp_path / "m", [USERS + "\n" + GATE])
    gate = session()
    gate.execute("SELECT pg_advisory_lock(4242)")
    result = tmp_path / "r.json"
    proc = _apply(folder, result, database_url)
    wait_for(lambda: waiting_on_gate(gate), "the run to wait at the gate")
    out, err, elapsed = _terminate(proc, times=2)
    _assert_interrupted(proc, out, err, result, elapsed, gate)


def test_double_sigterm_during_start_up(tmp_path: Path, database_url: str, session) -> None:
    folder = write_drizzle_folder(tmp_path / "m", [USERS])
    result = tmp_path / "r.json"
    proc = _apply(folder, result, database_url)
    wait_for(lambda: handles_sigterm(proc.pid), "pgshift to install its handler", interval=0.001)
    out, err, elapsed = _terminate(proc, times=2)
    _assert_interrupted(proc, out, err, result, elapsed, session())


def test_sigterm_during_the_analysis_of_a_large_file(
    tmp_path: Path, database_url: str, psql, session
) -> None:
    big = "CREATE TABLE t (id int, v text);\n" + "".join(
        f"--> statement-breakpoint\nUPDATE t SET v = 'x{i}' WHERE id = {i};\n"
        for i in range(20_000)
    )
    folder = write_drizzle_folder(tmp_path / "m", [big])
    result = tmp_path / "r.json"
    proc = _apply(folder, result, database_url)
    assert proc.stdout is not None
    for line in proc.stdout:  # the lock is taken and the analysis thread is at work
        if '"event": "plan"' in line:
            break
    time.sleep(0.5)
    assert proc.poll() is None  # still analysing: this file takes tens of seconds
    out, err, elapsed = _terminate(proc)
    data = _assert_interrupted(proc, out, err, result, elapsed, session())
    assert data["applied"] == []
    assert psql("SELECT to_regclass('t') IS NULL") == "t"


def _reset(psql: Any) -> None:
    psql("DROP SCHEMA IF EXISTS drizzle CASCADE; DROP SCHEMA public CASCADE; CREATE SCHEMA public")


def _tracking(psql: Any) -> tuple[int, set[str]]:
    """Rows of the tracking table, and the recorded steps of partly applied files."""

    def exists(table: str) -> bool:
        return psql(f"SELECT to_regclass('drizzle.{table}') IS NOT NULL") == "t"

    rows = psql("SELECT count(*) FROM drizzle.__drizzle_migrations") if exists(
        "__drizzle_migrations"
    ) else "0"
    steps = set(psql("SELECT step FROM drizzle.pgshift_steps").split()) if exists(
        "pgshift_steps"
    ) else set()
    return int(rows), steps


def test_the_summary_matches_the_tracking_table_wherever_sigterm_comes(
    tmp_path: Path, database_url: str, psql
) -> None:
    sqls = [f"CREATE TABLE t{i} (id int);\nINSERT INTO t{i} VALUES ({i});" for i in range(6)]
    # a file of three steps (an autocommit index build between two transactional parts)
    sqls.append(
        "ALTER TABLE t0 ADD COLUMN v int;\n--> statement-breakpoint\n"
        "CREATE INDEX CONCURRENTLY t0_v ON t0 (v);\n--> statement-breakpoint\n"
        "ALTER TABLE t1 ADD COLUMN v int;"
    )
    folder = write_drizzle_folder(tmp_path / "m", sqls)
    names = [p.stem for p in sorted(folder.glob("*.sql"))]
    # how long a whole run takes here, to spread the signals over it
    _reset(psql)
    t0 = time.monotonic()
    full = _apply(folder, tmp_path / "full.json", database_url)
    _out, full_err = full.communicate(timeout=120)  # waits, and closes its pipes
    assert full.returncode == 0, full_err
    whole = time.monotonic() - t0
    rounds = 16
    seen: set[str] = set()
    for k in range(rounds):
        _reset(psql)
        result = tmp_path / f"r{k}.json"
        proc = _apply(folder, result, database_url)
        wait_for(lambda proc=proc: handles_sigterm(proc.pid), "the handler", interval=0.001)
        time.sleep(whole * k / rounds)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert "Traceback" not in err, err
        data = json.loads(result.read_text())
        assert result_of(out) == {"event": "result", **data}
        seen.add(data["stopped"]["reason"])
        if proc.returncode == 0:  # it had finished: the signal came while it exited
            assert data["stopped"]["reason"] == "Done", data
        else:
            assert proc.returncode == 1 and data["stopped"]["reason"] == "Interrupted", data
        count, step_records = _tracking(psql)
        if "appliedCount" not in data:  # stopped before the tracking table was read
            assert count == 0 and not step_records and data["applied"] == [], (k, data)
            continue
        applied_now = data.get("appliedNow", [])
        assert data["appliedCount"] == count == len(applied_now), (k, data, count)
        assert applied_now == names[:count], (k, data)
        assert data["pendingCount"] == len(names) - count
        assert set(data["pending"]) == set(names[count:])
        # every finished step of a file still partly applied is recorded, and no other
        listed = {
            s[0] for a in data["applied"] if a["migration"] not in applied_now for s in a["steps"]
        }
        assert listed == step_records, (k, data, step_records)
    assert "Interrupted" in seen


def test_sigterm_while_the_commit_result_is_on_its_way_counts_the_file_applied(
    tmp_path: Path, database_url: str, psql, session
) -> None:
    """The race seen under load: the server commits a file, the SIGTERM arrives before the
    client has read the COMMIT's result. psycopg cancels (too late: nothing to cancel), reads
    the result and re-raises the interrupt; the summary said nothing of the committed file."""
    folder = write_drizzle_folder(tmp_path / "m", [USERS, "CREATE TABLE b (id int);\n" + GATE])
    gate = session()
    gate.execute("SELECT pg_advisory_lock(4242)")
    result = tmp_path / "r.json"
    proc = _apply(folder, result, database_url)
    wait_for(lambda: waiting_on_gate(gate), "the run to wait at the gate")
    proc.send_signal(signal.SIGSTOP)  # the client waits for the result, and now cannot read it
    try:
        gate.execute("SELECT pg_advisory_unlock(4242)")
        wait_for(
            lambda: psql("SELECT count(*) FROM drizzle.__drizzle_migrations") == "2",
            "the server to commit the file",
        )
        proc.send_signal(signal.SIGTERM)  # delivered the moment the process runs again
    finally:
        proc.send_signal(signal.SIGCONT)
    out, err = proc.communicate(timeout=60)
    data = json.loads(result.read_text())
    assert proc.returncode == 1 and data["stopped"]["reason"] == "Interrupted", (out, err)
    assert data["appliedNow"] == ["0000_m0", "0001_m1"]
    assert [a["migration"] for a in data["applied"]] == ["0000_m0", "0001_m1"]
    assert data["appliedCount"] == 2 and data["pendingCount"] == 0
