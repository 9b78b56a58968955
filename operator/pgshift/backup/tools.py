"""Finding pg_dump / pg_restore and running them with credentials in the environment only."""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from pgshift.engine.connect import Database
from pgshift.errors import BackupError, PgDumpTooOld
from pgshift.logs import redact

_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")
#: where PostgreSQL client packages put their tools, besides PATH: Debian/Ubuntu (and PGDG's
#: apt packages) keep one folder per major, so do PGDG's RPMs, Homebrew and Postgres.app.
KNOWN_FOLDERS = (
    "/usr/lib/postgresql/*/bin",
    "/usr/pgsql-*/bin",
    "/opt/homebrew/opt/postgresql@*/bin",
    "/usr/local/opt/postgresql@*/bin",
    "/Applications/Postgres.app/Contents/Versions/*/bin",
)


def tool_version(path: str) -> tuple[int, int]:
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=False).stdout
    match = _VERSION.search(out)
    if not match:
        raise BackupError(f"{path} --version: cannot read a version from {out.strip()!r}")
    return int(match.group(1)), int(match.group(2) or 0)


def candidates(name: str) -> list[str]:
    """`name` in `PGSHIFT_PG_BINDIR` alone when set (folders separated like PATH: an explicit
    choice, and how tests stand in an old pg_dump); else on PATH and in `KNOWN_FOLDERS`."""
    forced = os.environ.get("PGSHIFT_PG_BINDIR")
    if forced:
        folders = [Path(f) for f in forced.split(os.pathsep) if f]
        return [str(f / name) for f in folders if (f / name).is_file()]
    found: list[str] = []
    on_path = shutil.which(name)
    if on_path:
        found.append(on_path)
    for pattern in KNOWN_FOLDERS:
        for folder in sorted(glob.glob(pattern)):
            tool = Path(folder) / name
            if tool.is_file() and os.access(tool, os.X_OK):
                found.append(str(tool))
    return list(dict.fromkeys(found))


def choose(
    versions: list[tuple[tuple[int, int], str]], server_major: int | None
) -> tuple[tuple[int, int], str] | None:
    """The tool for a server of `server_major`: of those at least as new, the nearest major
    (its output is what that major restores by the documentation's promise: a newer pg_dump's
    may use syntax an older server lacks), newest minor; with no server, the newest."""
    if not versions:
        return None
    if server_major is None:
        return max(versions)
    fit = [v for v in versions if v[0][0] >= server_major]
    if not fit:
        return None
    return min(fit, key=lambda v: (v[0][0], -v[0][1]))


def find_tool(name: str, server_major: int | None) -> tuple[str, tuple[int, int]]:
    """`name` for a server of `server_major` (see `choose`); refuse when every one found is
    older than the server (it cannot read newer catalogs), naming both versions."""
    versions = []
    for path in candidates(name):
        try:
            versions.append((tool_version(path), path))
        except (BackupError, OSError):
            continue
    if not versions:
        raise BackupError(
            f"{name} not found on PATH or in {', '.join(KNOWN_FOLDERS)}",
            hint="install the PostgreSQL client tools (postgresql-client), or set "
            "PGSHIFT_PG_BINDIR to their folder",
        )
    chosen = choose(versions, server_major)
    if chosen is None:
        (major, minor), path = max(versions)
        raise PgDumpTooOld(
            f"{path} is version {major}.{minor}, older than the server "
            f"(PostgreSQL {server_major}), and it is the newest {name} found",
            hint=f"install {name} {server_major} or newer (postgresql-client-{server_major}), "
            "or set PGSHIFT_PG_BINDIR to its folder",
        )
    version, path = chosen
    return path, version


def _die_with_parent() -> None:
    """In the child, before exec (Linux): SIGKILL when pgshift dies, so a killed run leaves
    no pg_restore behind writing while the next run starts (its single transaction then rolls
    back). Elsewhere a no-op."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


_PR_SET_PDEATHSIG = 1


def run_tool(args: list[str], db: Database, what: str) -> subprocess.CompletedProcess[str]:
    """Run with `PG*` variables (password included) in the environment, never on argv."""
    env = {**os.environ, **db.libpq_env(), "PGAPPNAME": "pgshift"}
    proc = subprocess.run(
        args,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        preexec_fn=_die_with_parent,  # only prctl: no locks taken
    )
    if proc.returncode != 0:
        lines = [
            ln for ln in redact(proc.stderr).splitlines() if ln.strip()
        ]
        reason = "; ".join(lines[-3:]) or f"exit code {proc.returncode}"
        raise BackupError(f"{what} failed: {reason}")
    return proc


#: what a pg_restore of 17 or newer sets that a server older than 17 does not know (its
#: direct restore then fails: `unrecognized configuration parameter "transaction_timeout"`).
_NEWER_ONLY = (b"SET transaction_timeout",)


def restore_through_psql(
    restore_args: list[str], psql: str, db: Database, what: str
) -> None:
    """pg_restore's script (`--file=-`) streamed into psql, without the settings the older
    server does not know; psql stops at the first error (ON_ERROR_STOP), and the script's own
    BEGIN/COMMIT (`--single-transaction`) rolls everything back then."""
    env = {**os.environ, **db.libpq_env(), "PGAPPNAME": "pgshift"}
    with tempfile.TemporaryFile() as restore_err, tempfile.TemporaryFile() as psql_err:
        producer = subprocess.Popen(
            [*restore_args, "--file=-"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=restore_err,
            preexec_fn=_die_with_parent,  # only prctl: no locks taken
        )
        consumer = subprocess.Popen(
            [psql, "--no-psqlrc", "--quiet", "-v", "ON_ERROR_STOP=1", f"--dbname={db.dbname}"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=psql_err,
            preexec_fn=_die_with_parent,  # only prctl: no locks taken
        )
        assert producer.stdout is not None and consumer.stdin is not None
        try:
            for line in producer.stdout:
                if not line.startswith(_NEWER_ONLY):
                    consumer.stdin.write(line)
        except BrokenPipeError:
            pass  # psql stopped at an error: its stderr says which
        finally:
            with contextlib.suppress(BrokenPipeError):
                consumer.stdin.close()
            producer.stdout.close()
        codes = (producer.wait(), consumer.wait())
        if codes != (0, 0):
            messages = []
            for stream in (restore_err, psql_err):
                stream.seek(0)
                messages += [
                    ln for ln in redact(stream.read().decode(errors="replace")).splitlines()
                    if ln.strip()
                ]
            reason = "; ".join(messages[-3:]) or f"exit codes {codes}"
            raise BackupError(f"{what} failed: {reason}")
