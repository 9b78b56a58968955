"""A throwaway PostgreSQL server on a private data directory and a free port.

It listens on loopback, and on a cluster's node-facing address when asked
(``running_server(host=cluster.host_ip, allow=...)``): Pods on the real node reach it there,
and pg_hba admits the node and pod networks given in ``allow``.

Used by the test fixtures and by `make demo`. initdb and postgres refuse to run as root, so when
we are root the server runs as the `postgres` system user (Debian's package creates it). Auth is
scram-sha-256 with a password that contains URL-special characters, so every test exercises
credential handling and redaction.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

#: the default server's bin directory (Debian's 15); `running_server(major=N)` picks another.
PG_BIN = Path(os.environ.get("PGSHIFT_PG_BIN", "/usr/lib/postgresql/15/bin"))
SUPERUSER = "pgshift_admin"
#: contains every character that must be percent-encoded in a URL: tests assert it never leaks.
PASSWORD = "s3cr@t/p%ss:word"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgServer:
    port: int
    datadir: Path
    user: str = SUPERUSER
    password: str = PASSWORD
    host: str = "127.0.0.1"
    #: the server's major, and where psql / pg_dump for it live (tests/pgversions.py).
    major: int = 15
    client_bin: Path = PG_BIN

    def url(
        self, dbname: str = "postgres", *, user: str | None = None, password: str | None = None
    ) -> str:
        quoted = urllib.parse.quote(password if password is not None else self.password, safe="")
        return f"postgresql://{user or self.user}:{quoted}@{self.host}:{self.port}/{dbname}"

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        """Run SQL with psql (password through the environment), return its output."""
        env = {**os.environ, "PGPASSWORD": self.password}
        out = subprocess.run(
            [str(self.client_bin / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At",
             "-h", self.host, "-p", str(self.port), "-U", self.user, "-d", dbname, "-c", sql],
            env=env, check=True, capture_output=True, text=True,
        )
        return out.stdout.strip()

    def create_database(self, name: str) -> str:
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _as_postgres_user() -> dict[str, object]:
    if os.geteuid() != 0:
        return {}
    import pwd

    pw = pwd.getpwnam("postgres")
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


def _binaries(major: int | None) -> tuple[int, Path, Path]:
    """(major, server bin, client bin): PG_BIN for the default, else tests/pgversions.py's."""
    from tests import pgversions

    if major is None or (major == pgversions.DEFAULT_MAJOR and "PGSHIFT_PG_BIN" not in os.environ):
        if not (PG_BIN / "postgres").exists():
            raise RuntimeError(f"{PG_BIN}/postgres not found: run `make system-deps` (postgres 15)")
        return pgversions.DEFAULT_MAJOR, PG_BIN, PG_BIN
    return major, pgversions.require(major), pgversions.client_bindir(major)


@contextlib.contextmanager
def running_server(
    *,
    max_connections: int = 100,
    host: str = "127.0.0.1",
    allow: tuple[str, ...] = (),
    major: int | None = None,
    fsync: bool = False,
    settings: tuple[str, ...] = (),
) -> Iterator[PgServer]:
    """Start a server (PostgreSQL `major`, default Debian's 15), yield it, and remove every
    trace of it afterwards.

    ``host``: the address URLs name (it also listens on 127.0.0.1); ``allow``: networks (CIDR)
    pg_hba admits besides loopback, with the same scram-sha-256 password. ``fsync``: durable
    commits (fsync, synchronous_commit, full_page_writes on) for benchmarks that report both;
    ``settings``: more `name=value` server settings.
    """
    major, server_bin, client_bin = _binaries(major)
    root = Path(tempfile.mkdtemp(prefix="pgshift-pg-"))
    os.chmod(root, 0o755)
    datadir = root / "data"
    run_as = _as_postgres_user()
    if run_as:
        os.chown(root, run_as["user"], run_as["group"])  # type: ignore[arg-type]
    pwfile = root / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if run_as:
        os.chown(pwfile, run_as["user"], run_as["group"])  # type: ignore[arg-type]
    port = free_port()
    proc: subprocess.Popen[bytes] | None = None
    log: BinaryIO | None = None
    try:
        subprocess.run(
            [str(server_bin / "initdb"), "-D", str(datadir), "-U", SUPERUSER, "--pwfile",
             str(pwfile), "--auth=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"],
            check=True, capture_output=True, **run_as,  # type: ignore[arg-type]
        )
        if allow:
            with (datadir / "pg_hba.conf").open("a") as hba:
                for network in allow:
                    hba.write(f"host all all {network} scram-sha-256\n")
        listen = ",".join(dict.fromkeys(["127.0.0.1", host]))
        log = open(root / "postgres.log", "wb")  # noqa: SIM115 - closed after the process
        proc = subprocess.Popen(
            [str(server_bin / "postgres"), "-D", str(datadir), "-p", str(port),
             "-c", f"listen_addresses={listen}", "-c", f"unix_socket_directories={root}",
             *[arg for name in ("fsync", "synchronous_commit", "full_page_writes")
               for arg in ("-c", f"{name}={'on' if fsync else 'off'}")],
             "-c", f"max_connections={max_connections}", "-c", "shared_buffers=256MB",
             *[arg for setting in settings for arg in ("-c", setting)]],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            **run_as,  # type: ignore[arg-type]
        )
        server = PgServer(
            port=port, datadir=datadir, host=host, major=major, client_bin=client_bin
        )
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                log_tail = (root / "postgres.log").read_text()[-2000:]
                raise RuntimeError(f"postgres exited: {log_tail}")
            ready = subprocess.run(
                [str(client_bin / "pg_isready"), "-h", host, "-p", str(port)],
                capture_output=True,
            )
            if ready.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("postgres did not become ready in 30 s")
            time.sleep(0.1)
        yield server
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if log is not None:
            log.close()  # the server has its own copy; ours leaked (a ResourceWarning)
        shutil.rmtree(root, ignore_errors=True)
