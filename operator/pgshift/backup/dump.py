"""`pgshift backup`: pg_dump custom format, sha256 and size, verified, with a JSON sidecar.

The dump is written to `<file>.partial` and renamed only once `pg_restore --list` reads it,
so a file named `*.dump` is always a complete, readable dump.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from pgshift.backup.retention import to_prune
from pgshift.backup.saved import SavedRows, read_saved
from pgshift.backup.tools import find_tool, run_tool
from pgshift.engine import lock
from pgshift.engine.connect import Database, connect
from pgshift.errors import BackupError, UsageError
from pgshift.settings import Tracking

SIDECAR_SUFFIX = ".json"


def server_major(db: Database) -> int:
    with connect(db, application_name="pgshift-backup") as conn:
        row = conn.execute("SHOW server_version_num").fetchone()
    return int(row[0]) // 10000 if row else 0


def existing_tables(db: Database, tables: list[str]) -> tuple[list[str], list[str]]:
    """`tables` split into those that exist now and those that do not (yet): the affected
    tables of a plan include those its own files create, absent on a fresh database. Patterns
    (`*`, `?`) and names the server cannot resolve are left to pg_dump, as given."""
    present: list[str] = []
    absent: list[str] = []
    with connect(db, application_name="pgshift-backup") as conn:
        for table in tables:
            if any(c in table for c in "*?"):
                present.append(table)
                continue
            try:
                row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
            except psycopg.Error:  # e.g. invalid name syntax: pg_dump names the problem
                present.append(table)
                continue
            (present if row and row[0] else absent).append(table)
    return present, absent


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def dump(
    db: Database,
    to: Path,
    *,
    tables: list[str],
    lock_wait: float,
    keep: int | None,
    emit: Callable[..., None],
    tracking: Tracking | None = None,
    migrations: list[str] | None = None,
    lock_held: bool = False,
) -> dict[str, Any]:
    """The dump and its manifest (`<file>.json`): checksum, scope, server major, and the way
    back (`saved.SavedRows`: this Migration's tracking and progress rows, read under the
    migration lock held for the whole dump, so no pgshift run moves them in between).
    `lock_held`: this process already holds the migration lock on another session (a rollback's
    backup before its first step); taking it again here would wait for ourselves."""
    if keep is not None and keep < 1:
        raise UsageError(f"--keep: {keep} must be at least 1")
    if to.exists() and to.is_dir():
        raise UsageError(f"--to {to}: is a folder; give a file name (e.g. {to}/db.dump)")
    to.parent.mkdir(parents=True, exist_ok=True)
    major = server_major(db)
    pg_dump, version = find_tool("pg_dump", major)
    pg_restore, _ = find_tool("pg_restore", major)
    skipped: list[str] = []
    if tables:
        tables, skipped = existing_tables(db, tables)
    partial = to.with_name(to.name + ".partial")
    args = [
        pg_dump,
        "--format=custom",
        "--no-password",
        f"--lock-wait-timeout={max(1, int(lock_wait * 1000))}",
        f"--file={partial}",
    ]
    for table in tables:
        args.append(f"--table={table}")
    if skipped and not tables:
        # none of the tables exists yet (a fresh database): a valid dump that holds nothing,
        # so a backup before the first migration succeeds; pg_dump refuses `--table`s that
        # match nothing.
        args += ["--schema-only", "--exclude-schema=*"]
    scope = "tables" if tables or skipped else "database"
    started = dt.datetime.now(dt.UTC)
    emit("backup.started", file=str(to), scope=scope, tables=tables, skipped=skipped)
    tracking = tracking or Tracking()
    with connect(db, application_name="pgshift-backup") as conn:
        if not lock_held:
            lock.acquire(conn, lock_wait)
        try:
            saved: SavedRows = read_saved(conn, tracking, migrations)
            run_tool(args, db, "pg_dump")
            # verify: pg_restore must be able to read the table of contents.
            run_tool([pg_restore, "--list", str(partial)], db, "pg_restore --list")
            os.replace(partial, to)
        finally:
            partial.unlink(missing_ok=True)
            if not conn.closed and not lock_held:
                lock.release(conn)
    info: dict[str, Any] = {
        "file": str(to),
        "sha256": sha256_of(to),
        "size": to.stat().st_size,
        "scope": scope,
        "tables": tables,
        #: asked for, but absent when the dump was taken: nothing of theirs to back up.
        "skipped": skipped,
        "time": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "database": db.display,
        "serverMajor": major,
        "pgDump": f"{version[0]}.{version[1]}",
        "trackingTable": f"{tracking.schema}.{tracking.table}",
        #: the way back: written by pgshift after pg_restore (backup/restore.py).
        "saved": saved.as_dict(),
    }
    sidecar = to.with_name(to.name + SIDECAR_SUFFIX)
    # whole or absent: a restore refuses a dump without its manifest (RestoreManifestMissing).
    part = sidecar.with_name(sidecar.name + ".partial")
    part.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    os.replace(part, sidecar)
    emit(
        "backup.finished", file=str(to), size=info["size"], sha256=info["sha256"], skipped=skipped
    )
    info.pop("saved")  # in the manifest only: the summary stays within 4 KiB
    if keep is not None:
        info["pruned"] = prune(to.parent, keep)
        for name in info["pruned"]:
            emit("backup.pruned", file=name)
    return info


def prune(folder: Path, keep: int) -> list[str]:
    """Delete all but the `keep` newest `*.dump` files of `folder` (and their sidecars)."""
    dumps = []
    for f in folder.glob("*.dump"):
        when = f.stat().st_mtime
        sidecar = f.with_name(f.name + SIDECAR_SUFFIX)
        try:
            stamp = json.loads(sidecar.read_text())["time"]
            when = (
                dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()
            )
        except (OSError, ValueError, KeyError, TypeError):
            pass
        dumps.append((str(f), when))
    pruned = to_prune(dumps, keep)
    for name in pruned:
        path = Path(name)
        path.unlink(missing_ok=True)
        path.with_name(path.name + SIDECAR_SUFFIX).unlink(missing_ok=True)
    return pruned


def verify(path: Path, db: Database) -> None:
    if not path.is_file():
        raise BackupError(f"{path}: no such file")
    pg_restore, _ = find_tool("pg_restore", None)
    run_tool([pg_restore, "--list", str(path)], db, f"pg_restore --list {path}")
