"""`pgshift backup` / `pgshift restore` with the real pg_dump and pg_restore."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from tests.helpers import assert_no_secret, result_of, run_pgshift
from tests.pgserver import PASSWORD, PgServer

pytestmark = pytest.mark.integration


def test_backup_checksum_sidecar_restore_and_clean(
    tmp_path: Path, database_url: str, psql, pg_server: PgServer
) -> None:
    psql(
        "CREATE TABLE a (id int PRIMARY KEY, v text); INSERT INTO a VALUES (1, 'one'), (2, 'two');"
        "CREATE TABLE b (id int); INSERT INTO b VALUES (7);"
    )
    dump = tmp_path / "backups" / "db.dump"
    proc = run_pgshift("backup", "--to", str(dump), "--output", "json", database_url=database_url)
    assert proc.returncode == 0, proc.stderr
    info = result_of(proc)["backup"]
    assert info["sha256"] == hashlib.sha256(dump.read_bytes()).hexdigest()
    assert info["size"] == dump.stat().st_size and info["scope"] == "database"
    sidecar = json.loads((tmp_path / "backups" / "db.dump.json").read_text())
    assert sidecar["sha256"] == info["sha256"] and sidecar["tables"] == []
    assert not list((tmp_path / "backups").glob("*.partial"))
    assert_no_secret(proc.stdout + proc.stderr + json.dumps(sidecar), PASSWORD)

    target = "restore_" + tmp_path.name[-20:].replace("-", "_").lower()
    pg_server.create_database(target)
    try:
        url = pg_server.url(target)
        restored = run_pgshift("restore", "--from", str(dump), database_url=url)
        assert restored.returncode == 0, restored.stderr
        assert pg_server.psql("SELECT string_agg(v, ',' ORDER BY id) FROM a", target) == "one,two"
        again = run_pgshift("restore", "--from", str(dump), database_url=url)
        assert again.returncode == 2
        assert again.stderr.strip().startswith("error[RestoreTargetNotEmpty]: ")
        pg_server.psql("DELETE FROM a WHERE id = 1", target)
        clean = run_pgshift("restore", "--from", str(dump), "--clean", database_url=url)
        assert clean.returncode == 0, clean.stderr
        assert pg_server.psql("SELECT count(*) FROM a", target) == "2"
    finally:
        pg_server.drop_database(target)


def test_table_scope_and_keep(tmp_path: Path, database_url: str, psql) -> None:
    psql("CREATE TABLE a (id int); CREATE TABLE b (id int);")
    folder = tmp_path / "bk"
    for i in range(3):
        proc = run_pgshift(
            "backup",
            "--to",
            str(folder / f"{i}.dump"),
            "--tables",
            "public.a",
            "--keep",
            "2",
            "--output",
            "json",
            database_url=database_url,
        )
        assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in folder.glob("*.dump")) == ["1.dump", "2.dump"]
    assert not (folder / "0.dump.json").exists()
    info = result_of(proc)["backup"]
    assert info["scope"] == "tables" and info["tables"] == ["public.a"]
    assert info["pruned"] == [str(folder / "0.dump")]


def test_pg_dump_older_than_the_server_is_refused(
    tmp_path: Path, database_url: str, pg_server: PgServer
) -> None:
    fake = tmp_path / "oldbin"
    fake.mkdir()
    for tool in ("pg_dump", "pg_restore"):
        script = fake / tool
        script.write_text('#!/bin/sh\necho "' + tool + ' (PostgreSQL) 12.22"\n')
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    proc = run_pgshift(
        "backup",
        "--to",
        str(tmp_path / "x.dump"),
        database_url=database_url,
        env={"PGSHIFT_PG_BINDIR": str(fake)},
    )
    assert proc.returncode == 2
    line = proc.stderr.strip()
    assert line.startswith("error[PgDumpTooOld]: ") and "12.22" in line
    assert f"PostgreSQL {pg_server.major}" in line


def test_backup_failure_is_redacted(tmp_path: Path, database_url: str) -> None:
    proc = run_pgshift(
        "backup",
        "--to",
        str(tmp_path / "x.dump"),
        "--tables",
        "a.b.c.d",  # pg_dump: improper qualified name (a missing table is skipped instead)
        database_url=database_url,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("error[Backup]: pg_dump failed")
    assert "a.b.c.d" in proc.stderr
    assert_no_secret(proc.stdout + proc.stderr, PASSWORD)
    assert not list(tmp_path.glob("x.dump*"))
    assert os.environ.get("PGPASSWORD") is None  # the test process never held it either


def test_affected_tables_absent_on_a_fresh_database_are_skipped_and_named(
    tmp_path: Path, database_url: str, psql, pg_server: PgServer
) -> None:
    """`backup.when: Always` with scope AffectedTables before the first migration: the tables
    do not exist yet. pg_dump refused (`no matching tables were found`, BackupFailed); now the
    dump holds what exists and the result names what was skipped."""
    dump = tmp_path / "fresh.dump"
    proc = run_pgshift(
        "backup", "--to", str(dump), "--tables", "users", "public.orders", database_url=database_url
    )
    assert proc.returncode == 0, proc.stderr
    assert "skipped (not in the database yet, nothing to back up): users, public.orders" in (
        proc.stdout
    )
    as_json = run_pgshift(
        "backup", "--to", str(dump), "--tables", "users", "--output", "json",
        database_url=database_url,
    )
    info = result_of(as_json)["backup"]
    # the fields the operator reads (file, size, sha256, time) are there: a valid, empty dump.
    assert info["tables"] == [] and info["skipped"] == ["users"] and info["scope"] == "tables"
    assert info["size"] == dump.stat().st_size > 0
    assert info["sha256"] == hashlib.sha256(dump.read_bytes()).hexdigest()
    assert json.loads((tmp_path / "fresh.dump.json").read_text())["skipped"] == ["users"]

    psql("CREATE TABLE users (id int); INSERT INTO users VALUES (1);")
    proc = run_pgshift(
        "backup", "--to", str(dump), "--tables", "users", "orders", "--output", "json",
        database_url=database_url,
    )
    assert proc.returncode == 0, proc.stderr
    info = result_of(proc)["backup"]
    assert info["tables"] == ["users"] and info["skipped"] == ["orders"]
    target = "restore_" + tmp_path.name[-20:].replace("-", "_").lower()
    pg_server.create_database(target)
    try:
        restored = run_pgshift("restore", "--from", str(dump), database_url=pg_server.url(target))
        assert restored.returncode == 0, restored.stderr
        assert pg_server.psql("SELECT count(*) FROM users", target) == "1"
    finally:
        pg_server.drop_database(target)
