"""Fixtures for the engine's integration tests (real PostgreSQL, the CLI as a subprocess)."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.pgserver import PgServer, free_port


@pytest.fixture
def psql(pg_server: PgServer, database_name: str) -> Callable[[str], str]:
    """Run SQL in the test's database through psql; returns its unaligned output."""
    return lambda sql: pg_server.psql(sql, database_name)


@pytest.fixture
def session(database_url: str) -> Iterator[Callable[[], psycopg.Connection[Any]]]:
    """Open extra autocommit sessions (lock holders, readers); all closed afterwards."""
    opened: list[psycopg.Connection[Any]] = []

    def open_one() -> psycopg.Connection[Any]:
        conn = psycopg.connect(database_url, autocommit=True, application_name="test-session")
        opened.append(conn)
        return conn

    yield open_one
    for conn in opened:
        conn.close()


PGBOUNCER = Path("/usr/sbin/pgbouncer")


@dataclass
class Bouncer:
    port: int
    server: PgServer

    def url(self, dbname: str) -> str:
        return self.server.url(dbname).replace(f":{self.server.port}/", f":{self.port}/")


@contextlib.contextmanager
def running_pgbouncer(server: PgServer, pool_mode: str) -> Iterator[Bouncer]:
    """A real pgbouncer in front of the test server (as the postgres user: it refuses root)."""
    if not PGBOUNCER.exists():
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer)")
    root = Path(tempfile.mkdtemp(prefix="pgshift-bouncer-"))
    os.chmod(root, 0o755)
    port = free_port()
    (root / "userlist.txt").write_text(f'"{server.user}" "{server.password}"\n')
    (root / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host=127.0.0.1 port={server.port}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = scram-sha-256\nauth_file = {root}/userlist.txt\n"
        f"pool_mode = {pool_mode}\ndefault_pool_size = 4\nmax_client_conn = 50\n"
        f"logfile = {root}/pgbouncer.log\npidfile = {root}/pgbouncer.pid\n"
        "ignore_startup_parameters = extra_float_digits,options\n"
    )
    run_as: dict[str, Any] = {}
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        for f in root.iterdir():
            os.chown(f, pw.pw_uid, pw.pw_gid)
        os.chown(root, pw.pw_uid, pw.pw_gid)
        run_as = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
    proc = subprocess.Popen(
        [str(PGBOUNCER), str(root / "pgbouncer.ini")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        **run_as,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (
                    (root / "pgbouncer.log").read_text()
                    if (root / "pgbouncer.log").exists()
                    else ""
                )
                pytest.fail(f"pgbouncer did not start: {log[-1000:]}")
            time.sleep(0.05)
        yield Bouncer(port=port, server=server)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)
