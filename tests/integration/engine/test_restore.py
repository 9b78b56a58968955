"""`pgshift restore` brings the way back with the data: a table-scoped dump restored after a
DROP COLUMN leaves data, schema, the tracking table and step progress as of the backup; every
refusal is a named one-line error found before anything is touched; a restore killed with -9
and run again is consistent (issue 12)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import pgshift_backends, result_of, run_pgshift, start_pgshift, wait_for
from tests.pgserver import PgServer

pytestmark = pytest.mark.integration

USERS = (
    "CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL, legacy text);\n"
    "INSERT INTO users VALUES (1, 'a@x', 'old-a'), (2, 'b@x', 'old-b');"
)
#: expand (add nick) then contract (drop legacy): two steps, the backup taken between them.
SPLIT = "ALTER TABLE users ADD COLUMN nick text;\nALTER TABLE users DROP COLUMN legacy;"


def write_plain(folder: Path, sqls: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, text in enumerate(sqls):
        (folder / f"{i + 1:04d}_m{i}.sql").write_text(text, encoding="utf-8")
    return folder


def ok(*args: str, database_url: str) -> dict:
    proc = run_pgshift(*args, "--output", "json", database_url=database_url)
    assert proc.returncode == 0, proc.stderr
    return result_of(proc)


def tracking_hashes(psql) -> str:
    return psql("SELECT string_agg(hash, ',' ORDER BY id) FROM drizzle.__drizzle_migrations")


def steps_of(psql) -> str:
    return psql(
        "SELECT coalesce(string_agg(step, ',' ORDER BY step), '') FROM drizzle.pgshift_steps"
    )


def columns(psql) -> str:
    return psql(
        "SELECT string_agg(column_name, ',' ORDER BY ordinal_position) "
        "FROM information_schema.columns WHERE table_name = 'users'"
    )


@pytest.fixture
def backed_up(tmp_path: Path, database_url: str, psql) -> dict:
    """0001 applied, 0002 applied up to its expand step, a `--tables users` backup taken with
    the source (the operator's BeforeDestructive + AffectedTables), then 0002 finished (DROP
    COLUMN) and a row written: what the restore must undo."""
    folder = write_plain(tmp_path / "m", [USERS, SPLIT])
    ok("apply", "--dir", str(folder), "--until-phase", "expand", database_url=database_url)
    dump = tmp_path / "bk" / "users.dump"
    info = ok(
        "backup",
        "--to",
        str(dump),
        "--tables",
        "users",
        "--dir",
        str(folder),
        database_url=database_url,
    )["backup"]
    then = {
        "tracking": tracking_hashes(psql),
        "steps": steps_of(psql),
        "columns": columns(psql),
        "data": psql("SELECT string_agg(id || ':' || legacy, ',' ORDER BY id) FROM users"),
    }
    assert then["steps"] and then["columns"] == "id,email,legacy,nick"
    ok("apply", "--dir", str(folder), database_url=database_url)
    psql("INSERT INTO users VALUES (3, 'c@x', 'n')")
    assert columns(psql) == "id,email,nick" and steps_of(psql) == ""
    return {"folder": folder, "dump": dump, "info": info, "then": then}


def test_a_table_scoped_restore_brings_back_data_schema_tracking_and_steps(
    backed_up: dict, database_url: str, psql
) -> None:
    folder, dump, then = backed_up["folder"], backed_up["dump"], backed_up["then"]
    manifest = json.loads(dump.with_name("users.dump.json").read_text())
    assert manifest["sha256"] == backed_up["info"]["sha256"] and manifest["scope"] == "tables"
    assert manifest["trackingTable"] == "drizzle.__drizzle_migrations"
    assert [r["hash"] for r in manifest["saved"]["rows"]] == then["tracking"].split(",")
    assert manifest["saved"]["migrations"] == ["0001_m0", "0002_m1"]
    result = ok(
        "restore",
        "--from",
        str(dump),
        "--clean",
        "--dir",
        str(folder),
        "--restore-id",
        "u/1",
        database_url=database_url,
    )["restore"]
    assert columns(psql) == then["columns"]
    assert (
        psql("SELECT string_agg(id || ':' || legacy, ',' ORDER BY id) FROM users") == then["data"]
    )
    assert tracking_hashes(psql) == then["tracking"]
    assert steps_of(psql) == then["steps"]
    assert result["pendingAgain"] == ["0002_m1"] and result["backupTime"] == manifest["time"]
    assert (
        result["restoreId"] == "u/1" and result["trackingTable"] == "drizzle.__drizzle_migrations"
    )
    status = ok("status", "--dir", str(folder), database_url=database_url)
    assert status["pending"] == ["0002_m1"] and status["partialSteps"]
    # the same restore id again: refused, in the database itself.
    again = run_pgshift(
        "restore",
        "--from",
        str(dump),
        "--clean",
        "--dir",
        str(folder),
        "--restore-id",
        "u/1",
        database_url=database_url,
    )
    assert again.returncode == 2
    assert again.stderr.strip().startswith("error[RestoreAlreadyUsed]: restore id u/1")


def _refused(code: str, *args: str, database_url: str) -> str:
    proc = run_pgshift("restore", *args, database_url=database_url)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error[{code}]: "), proc.stderr
    return lines[0]


def test_each_refusal_is_named_and_touches_nothing(
    backed_up: dict, tmp_path: Path, database_url: str, psql, pg_server: PgServer
) -> None:
    folder, dump = backed_up["folder"], backed_up["dump"]
    src = ("--dir", str(folder))
    now = {
        "columns": columns(psql),
        "tracking": tracking_hashes(psql),
        "n": psql("SELECT count(*) FROM users"),
    }
    _refused("RestoreTargetNotEmpty", "--from", str(dump), *src, database_url=database_url)

    manifest_path = dump.with_name("users.dump.json")
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "sha256": "0" * 64}))
    line = _refused(
        "RestoreChecksumMismatch", "--from", str(dump), "--clean", *src, database_url=database_url
    )
    assert manifest["sha256"] in line
    manifest_path.write_text(json.dumps({**manifest, "serverMajor": pg_server.major + 1}))
    line = _refused(
        "RestoreServerTooOld", "--from", str(dump), "--clean", *src, database_url=database_url
    )
    assert f"PostgreSQL {pg_server.major + 1}" in line
    manifest_path.unlink()
    _refused(
        "RestoreManifestMissing", "--from", str(dump), "--clean", *src, database_url=database_url
    )
    manifest_path.write_text(json.dumps(manifest))

    psql("CREATE VIEW user_emails AS SELECT email FROM users")
    line = _refused(
        "RestoreNeedsCascade", "--from", str(dump), "--clean", *src, database_url=database_url
    )
    assert "view public.user_emails" in line
    psql("DROP VIEW user_emails")

    # a migration applied after the backup created a table the dump does not hold.
    write_plain(folder, [USERS, SPLIT, "CREATE TABLE audit (id int);"])
    ok("apply", "--dir", str(folder), database_url=database_url)
    line = _refused(
        "RestoreOutOfScope", "--from", str(dump), "--clean", *src, database_url=database_url
    )
    assert "0003_m2 (audit)" in line and "0002_m1" not in line
    assert columns(psql) == now["columns"] and psql("SELECT count(*) FROM users") == now["n"]
    assert tracking_hashes(psql).startswith(now["tracking"])


def test_a_restore_killed_with_sigkill_then_rerun_is_consistent(
    backed_up: dict, database_url: str, psql, session
) -> None:
    folder, dump, then = backed_up["folder"], backed_up["dump"], backed_up["then"]
    holder = session()
    watcher = session()
    holder.execute("BEGIN")
    holder.execute("LOCK TABLE users IN ACCESS SHARE MODE")  # pg_restore's DROP TABLE waits
    proc = start_pgshift(
        "restore",
        "--from",
        str(dump),
        "--clean",
        "--dir",
        str(folder),
        "--restore-id",
        "k/1",
        database_url=database_url,
    )
    wait_for(
        lambda: (
            watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND application_name = 'pgshift'"
            ).fetchone()[0]
            == 1
        ),
        "pg_restore to wait for the table lock",
    )
    proc.kill()
    proc.communicate()
    holder.execute("ROLLBACK")
    wait_for(
        lambda: pgshift_backends(watcher) == 0, "the killed restore's backends to end", limit=30
    )
    # nothing half done: pg_restore's single transaction rolled back, the rows untouched.
    assert columns(psql) == "id,email,nick" and psql("SELECT count(*) FROM users") == "3"
    assert steps_of(psql) == ""
    result = ok(
        "restore",
        "--from",
        str(dump),
        "--clean",
        "--dir",
        str(folder),
        "--restore-id",
        "k/1",
        database_url=database_url,
    )["restore"]
    assert result["pendingAgain"] == ["0002_m1"]
    assert columns(psql) == then["columns"] and tracking_hashes(psql) == then["tracking"]
    assert steps_of(psql) == then["steps"]


def test_another_migrations_rows_in_the_shared_tracking_schema_are_untouched(
    backed_up: dict, tmp_path: Path, database_url: str, psql
) -> None:
    """Two Migrations share the tracking schema (`drizzle`): a restore for the first rewrites
    its tracking table and its files' progress rows only."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "0001_orders.sql").write_text("CREATE TABLE orders (id int PRIMARY KEY, gone text);")
    (other / "0002_orders_split.sql").write_text(
        "ALTER TABLE orders ADD COLUMN total int;\nALTER TABLE orders DROP COLUMN gone;"
    )
    flags = ("--dir", str(other), "--tracking-table", "other_migrations")
    ok("apply", *flags, "--until-phase", "expand", database_url=database_url)
    theirs = psql("SELECT string_agg(hash, ',' ORDER BY id) FROM drizzle.other_migrations")
    their_steps = steps_of(psql)
    assert their_steps  # 0002 of the other source, partly applied
    ok(
        "restore", "--from", str(backed_up["dump"]), "--clean", "--dir", str(backed_up["folder"]),
        database_url=database_url,
    )  # fmt: skip
    assert psql("SELECT string_agg(hash, ',' ORDER BY id) FROM drizzle.other_migrations") == theirs
    steps = steps_of(psql).split(",")
    assert set(their_steps.split(",")) <= set(steps)
    assert set(backed_up["then"]["steps"].split(",")) <= set(steps)
    assert tracking_hashes(psql) == backed_up["then"]["tracking"]


def test_a_newer_pg_restore_restores_into_an_older_server(
    backed_up: dict, database_url: str, psql, pg_server: PgServer
) -> None:
    """The image carries pg_restore 18; restoring directly into PostgreSQL 15 failed with
    `unrecognized configuration parameter "transaction_timeout"` (its fixed output state). Its
    script now goes through psql without that setting, still in one transaction."""
    from tests import pgversions

    if pg_server.major >= 17 or not pgversions.installed(18):
        pytest.skip("needs a server older than 17 and the PostgreSQL 18 clients")
    proc = run_pgshift(
        "restore", "--from", str(backed_up["dump"]), "--clean", "--dir", str(backed_up["folder"]),
        "--output", "json", database_url=database_url,
        env={"PGSHIFT_PG_BINDIR": str(pgversions.bindir(18))},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert columns(psql) == backed_up["then"]["columns"]
    assert tracking_hashes(psql) == backed_up["then"]["tracking"]
    assert psql("SELECT count(*) FROM users") == "2"
