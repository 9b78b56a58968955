"""`pgshift rollback --to NAME` on a real PostgreSQL: down files run like up files."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.helpers import (
    GATE,
    pgshift_backends,
    result_of,
    run_pgshift,
    start_pgshift,
    wait_for,
    waiting_on_gate,
    write_down_files,
    write_drizzle_folder,
    write_plain_folder,
)

pytestmark = pytest.mark.integration

UPS = [
    "CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL);",
    "ALTER TABLE users ADD COLUMN name text;",
    "CREATE TABLE posts (id serial PRIMARY KEY, title text);",
    "CREATE INDEX CONCURRENTLY users_email_idx ON users (email);",
]
DOWNS = {
    "0001_m1": "ALTER TABLE users DROP COLUMN name;",
    "0002_m2": "DROP TABLE posts;",
    # a no-transaction statement: its own step.
    "0003_m3": "DROP INDEX CONCURRENTLY users_email_idx;",
}
ROWS = "SELECT count(*) FROM drizzle.__drizzle_migrations"


def _applied(tmp_path: Path, database_url: str, downs: dict[str, str] = DOWNS) -> Path:
    folder = write_down_files(write_drizzle_folder(tmp_path / "m", UPS), downs)
    done = run_pgshift("apply", "--dir", str(folder), database_url=database_url)
    assert done.returncode == 0, done.stderr
    return folder


def _rollback(folder: Path, database_url: str, *args: str, to: str = "0000_m0"):  # type: ignore[no-untyped-def]
    return run_pgshift(
        "rollback",
        "--dir",
        str(folder),
        "--to",
        to,
        "--output",
        "json",
        *args,
        database_url=database_url,
    )


def test_rollback_of_three_newest_first_with_a_backup(
    tmp_path: Path, database_url: str, psql
) -> None:
    folder = _applied(tmp_path, database_url)
    # down files are never migrations: the plan sees four applied, nothing pending.
    plan = run_pgshift("plan", "--dir", str(folder), "--output", "json", database_url=database_url)
    assert result_of(plan)["pendingCount"] == 0
    backups = tmp_path / "backups"
    backups.mkdir()
    proc = _rollback(folder, database_url, "--backup-dir", str(backups), "--destructive", "Allow")
    assert proc.returncode == 0, proc.stderr
    summary = result_of(proc)
    assert summary["rollback"]["undone"] == ["0003_m3", "0002_m2", "0001_m1"]
    assert summary["rollback"]["undo"] == []
    assert summary["backup"]["scope"] == "database"
    (dump,) = backups.glob("*-rollback-to-0000_m0.dump")
    # taken under the rollback's own lock (not waiting for itself), with the way back: the
    # four tracking rows as they were before the first down step.
    manifest = json.loads(dump.with_name(dump.name + ".json").read_text())
    assert len(manifest["saved"]["rows"]) == 4
    assert psql(ROWS) == "1"
    assert psql("SELECT to_regclass('posts') IS NULL, to_regclass('users_email_idx') IS NULL") == (
        "t|t"
    )
    assert (
        psql(
            "SELECT count(*) FROM information_schema.columns WHERE column_name = 'name' "
            "AND table_name = 'users'"
        )
        == "0"
    )
    assert psql("SELECT count(*) FROM drizzle.pgshift_steps") == "0"
    # and forward again: the same three re-apply.
    again = run_pgshift(
        "apply", "--dir", str(folder), "--output", "json", database_url=database_url
    )
    assert result_of(again)["appliedNow"] == ["0001_m1", "0002_m2", "0003_m3"]


def test_destructive_down_steps_follow_the_destructive_policy(
    tmp_path: Path, database_url: str, psql
) -> None:
    folder = _applied(tmp_path, database_url)
    denied = _rollback(folder, database_url, "--destructive", "RequireApproval")
    summary = result_of(denied)
    # every drop needs --approve: stopped before the first, nothing undone.
    assert summary["rollback"]["undone"] == []
    assert summary["stopped"]["reason"] == "NeedsApproval"
    assert summary["stopped"]["migration"] == "0003_m3"
    assert psql(ROWS) == "4"
    approved = result_of(
        _rollback(
            folder,
            database_url,
            "--destructive",
            "RequireApproval",
            "--approve",
            "0003_m3",
            "--approve",
            "0002_m2",
        )
    )
    assert approved["rollback"]["undone"] == ["0003_m3", "0002_m2"]
    assert approved["rollback"]["undo"] == ["0001_m1"]
    assert approved["stopped"]["migration"] == "0001_m1"
    assert psql(ROWS) == "2"


def test_a_missing_down_file_stops_before_anything_runs(
    tmp_path: Path, database_url: str, psql
) -> None:
    downs = {k: v for k, v in DOWNS.items() if k != "0002_m2"}
    folder = _applied(tmp_path, database_url, downs)
    proc = _rollback(folder, database_url, "--destructive", "Allow", "--backup-dir", str(tmp_path))
    assert proc.returncode == 2
    assert "error[DownFileMissing]" in proc.stderr
    assert "0002_m2.down.sql: migration 0002_m2 has no down file" in proc.stderr
    assert f"restore a backup of {tmp_path}" in proc.stderr
    assert psql(ROWS) == "4"
    assert psql("SELECT to_regclass('users_email_idx') IS NOT NULL") == "t"
    assert not list(tmp_path.glob("*.dump"))  # refused before the backup, too


def test_a_partly_applied_file_must_be_finished_first(
    tmp_path: Path, database_url: str, psql, session
) -> None:
    ups = [
        *UPS,
        "ALTER TABLE users ADD COLUMN x int;\n--> statement-breakpoint\n"
        "CREATE INDEX CONCURRENTLY users_x ON users (x);\n--> statement-breakpoint\n" + GATE,
    ]
    folder = write_down_files(write_drizzle_folder(tmp_path / "m", ups), DOWNS)
    gate = session()
    gate.execute("SELECT pg_advisory_lock(4242)")
    proc = start_pgshift("apply", "--dir", str(folder), database_url=database_url)
    wait_for(lambda: waiting_on_gate(gate), "the run to reach the last step")
    proc.kill()
    proc.communicate()
    wait_for(lambda: pgshift_backends(gate) == 0, "the killed run's backend to end", limit=30)
    gate.execute("SELECT pg_advisory_unlock(4242)")
    refused = _rollback(folder, database_url, "--destructive", "Allow")
    assert refused.returncode == 2
    assert "error[PartlyApplied]" in refused.stderr
    assert "migration 0004_m4 is partly applied" in refused.stderr
    assert psql(ROWS) == "4"


def test_tracking_order_that_disagrees_is_refused(tmp_path: Path, database_url: str, psql) -> None:
    folder = write_down_files(
        write_plain_folder(tmp_path / "p", UPS[:3]),
        {"0002_m1": "ALTER TABLE users DROP COLUMN name;", "0003_m2": "DROP TABLE posts;"},
    )
    # applied in another order than the files' (out of order, allowed)
    first = write_plain_folder(tmp_path / "q", [UPS[0]])
    assert run_pgshift("apply", "--dir", str(first), database_url=database_url).returncode == 0
    (tmp_path / "q" / "0003_m2.sql").write_text(UPS[2])
    assert run_pgshift("apply", "--dir", str(first), database_url=database_url).returncode == 0
    (tmp_path / "q" / "0002_m1.sql").write_text(UPS[1])
    out = run_pgshift(
        "apply", "--dir", str(first), "--allow-out-of-order", database_url=database_url
    )
    assert out.returncode == 0, out.stderr
    proc = _rollback(
        folder, database_url, "--destructive", "Allow", "--allow-out-of-order", to="0001_m0"
    )
    assert proc.returncode == 2
    assert "error[RollbackOrder]" in proc.stderr
    assert psql("SELECT count(*) FROM drizzle.__drizzle_migrations") == "3"


def test_sigkill_during_a_rollback_then_rerun_is_consistent(
    tmp_path: Path, database_url: str, psql, session
) -> None:
    downs = {
        **DOWNS,
        # three steps: a transaction, a no-transaction index drop, then a gated transaction.
        "0001_m1": "CREATE INDEX CONCURRENTLY users_name ON users (name);\n"
        "--> statement-breakpoint\nALTER TABLE users ADD COLUMN y int;\n--> statement-breakpoint\n"
        "DROP INDEX CONCURRENTLY users_name;\n--> statement-breakpoint\n"
        + GATE
        + "\nALTER TABLE users DROP COLUMN name;\nALTER TABLE users DROP COLUMN y;",
    }
    folder = _applied(tmp_path, database_url, downs)
    gate = session()
    gate.execute("SELECT pg_advisory_lock(4242)")
    proc = start_pgshift(
        "rollback",
        "--dir",
        str(folder),
        "--to",
        "0000_m0",
        "--destructive",
        "Allow",
        database_url=database_url,
    )
    wait_for(lambda: waiting_on_gate(gate), "the rollback to reach the gated step")
    proc.kill()
    proc.communicate()
    wait_for(lambda: pgshift_backends(gate) == 0, "the killed run's backend to end", limit=30)
    gate.execute("SELECT pg_advisory_unlock(4242)")
    # two files undone whole, the third's first steps recorded under its down file's hash.
    assert psql(ROWS) == "2"
    assert psql("SELECT count(*) FROM drizzle.pgshift_steps WHERE migration = '0001_m1'") == "3"
    # an apply now would not redo anything of 0001_m1 (still applied): the rollback resumes.
    rerun = _rollback(folder, database_url, "--destructive", "Allow")
    assert rerun.returncode == 0, rerun.stderr
    summary = result_of(rerun)
    assert summary["rollback"]["undone"] == ["0001_m1"]
    # only the last step ran again (ADD COLUMN y again would have failed)
    assert min(int(s[0].rsplit("-", 1)[1]) for m in summary["applied"] for s in m["steps"]) == 3
    assert psql(ROWS) == "1"
    assert psql("SELECT count(*) FROM drizzle.pgshift_steps") == "0"
    assert psql("SELECT to_regclass('users_name') IS NULL") == "t"
    again = run_pgshift(
        "apply", "--dir", str(folder), "--output", "json", database_url=database_url
    )
    assert result_of(again)["appliedNow"] == ["0001_m1", "0002_m2", "0003_m3"]


def test_bad_rollback_input_is_one_line(tmp_path: Path, database_url: str) -> None:
    folder = _applied(tmp_path, database_url)
    proc = _rollback(folder, database_url, to="0009_nope")
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error[UnknownMigration]: --to 0009_nope")
    target = _rollback(folder, database_url, "--target", "0001_m1")
    assert target.returncode == 2 and "error[Usage]: --target" in target.stderr


def test_sigterm_during_a_rollback_reports_what_the_tracking_table_holds(
    tmp_path: Path, database_url: str, psql, session
) -> None:
    downs = {**DOWNS, "0002_m2": "DROP TABLE posts;\n" + GATE}
    folder = _applied(tmp_path, database_url, downs)
    gate = session()
    gate.execute("SELECT pg_advisory_lock(4242)")
    result = tmp_path / "r.json"
    proc = start_pgshift(
        "rollback", "--dir", str(folder), "--to", "0000_m0", "--destructive", "Allow",
        "--output", "json", "--result-file", str(result), database_url=database_url,
    )  # fmt: skip
    wait_for(lambda: waiting_on_gate(gate), "the rollback to wait at the gate")
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == 1
    data = json.loads(result.read_text())
    assert data["failure"]["code"] == "Interrupted" and data["failure"]["migration"] == "0002_m2"
    assert data["rollback"]["undone"] == ["0003_m3"]
    assert data["rollback"]["undo"] == ["0002_m2", "0001_m1"]
    assert psql(ROWS) == "3" and psql("SELECT to_regclass('posts') IS NOT NULL") == "t"
    gate.execute("SELECT pg_advisory_unlock(4242)")
    rerun = _rollback(folder, database_url, "--destructive", "Allow")
    assert result_of(rerun)["rollback"]["undone"] == ["0002_m2", "0001_m1"]
    assert psql(ROWS) == "1"
