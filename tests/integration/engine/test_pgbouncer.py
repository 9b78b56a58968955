"""A real pgbouncer in front of PostgreSQL: transaction pooling is refused, session pooling works.

Skipped when pgbouncer is not installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import assert_no_secret, run_pgshift, write_drizzle_folder
from tests.integration.engine.conftest import running_pgbouncer
from tests.pgserver import PASSWORD, PgServer

pytestmark = pytest.mark.integration


def test_transaction_pooling_is_refused(
    tmp_path: Path, pg_server: PgServer, database_name: str, psql
) -> None:
    folder = write_drizzle_folder(tmp_path / "m", ["CREATE TABLE u (id int);"])
    with running_pgbouncer(pg_server, "transaction") as bouncer:
        proc = run_pgshift("apply", "--dir", str(folder), database_url=bouncer.url(database_name))
    assert proc.returncode == 2, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("error[PooledConnection]: ") and "transaction pooler" in line
    assert_no_secret(proc.stdout + proc.stderr, PASSWORD)
    assert psql("SELECT to_regclass('u') IS NULL") == "t"


def test_session_pooling_works(
    tmp_path: Path, pg_server: PgServer, database_name: str, psql
) -> None:
    folder = write_drizzle_folder(tmp_path / "m", ["CREATE TABLE u (id int);", "SELECT 1;"])
    with running_pgbouncer(pg_server, "session") as bouncer:
        proc = run_pgshift("apply", "--dir", str(folder), database_url=bouncer.url(database_name))
    assert proc.returncode == 0, proc.stderr
    assert psql("SELECT count(*) FROM drizzle.__drizzle_migrations") == "2"
