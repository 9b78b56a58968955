"""Finding pg_dump / pg_restore and running them with credentials in the environment only."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from pgshift.engine.connect import Database
from pgshift.errors import BackupError, PgDumpTooOld
from pgshift.logs import redact

_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")
_DEBIAN_BIN = Path("/usr/lib/postgresql")


def tool_version(path: str) -> tuple[int, int]:
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=False).stdout
    match = _VERSION.search(out)
    if not match:
        raise BackupError(f"{path} --version: cannot read a version from {out.strip()!r}")
    return int(match.group(1)), int(match.group(2) or 0)


def candidates(name: str) -> list[str]:
    """`name` on PATH and in every `/usr/lib/postgresql/<ver>/bin` (Debian keeps several)."""
    found: list[str] = []
    forced = os.environ.get("PGSHIFT_PG_BINDIR")
    if forced:  # an explicit choice (and how tests stand in an old pg_dump)
        tool = Path(forced) / name
        return [str(tool)] if tool.is_file() else []
    on_path = shutil.which(name)
    if on_path:
        found.append(on_path)
    if _DEBIAN_BIN.is_dir():
        for ver in _DEBIAN_BIN.iterdir():
            tool = ver / "bin" / name
            if tool.is_file() and os.access(tool, os.X_OK):
                found.append(str(tool))
    return list(dict.fromkeys(found))


def find_tool(name: str, server_major: int | None) -> tuple[str, tuple[int, int]]:
    """The newest `name`; refuse one older than the server (it cannot dump newer catalogs)."""
    versions = []
    for path in candidates(name):
        try:
            versions.append((tool_version(path), path))
        except (BackupError, OSError):
            continue
    if not versions:
        raise BackupError(
            f"{name} not found on PATH or in {_DEBIAN_BIN}/<version>/bin",
            hint="install the PostgreSQL client tools (postgresql-client)",
        )
    version, path = max(versions)
    if server_major is not None and version[0] < server_major:
        raise PgDumpTooOld(
            f"{path} is version {version[0]}.{version[1]}, older than the server "
            f"(PostgreSQL {server_major})"
        )
    return path, version


def run_tool(args: list[str], db: Database, what: str) -> subprocess.CompletedProcess[str]:
    """Run with `PG*` variables (password included) in the environment, never on argv."""
    env = {**os.environ, **db.libpq_env(), "PGAPPNAME": "pgshift"}
    proc = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = [
            ln for ln in redact(proc.stderr).splitlines() if ln.strip()
        ]
        reason = "; ".join(lines[-3:]) or f"exit code {proc.returncode}"
        raise BackupError(f"{what} failed: {reason}")
    return proc
