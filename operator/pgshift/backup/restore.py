"""`pgshift restore --from FILE [--clean]`: pg_restore into an empty database (or, with
`--clean`, over the objects the dump holds)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pgshift.backup.dump import sha256_of, verify
from pgshift.backup.tools import find_tool, run_tool
from pgshift.engine.connect import Database, connect
from pgshift.errors import RestoreTargetNotEmpty, UsageError


def user_relations(db: Database) -> int:
    with connect(db, application_name="pgshift-restore") as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' "
            "AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')"
        ).fetchone()
    return int(row[0]) if row else 0


def restore(db: Database, path: Path, *, clean: bool, emit: Callable[..., None]) -> dict[str, Any]:
    if not path.is_file():
        raise UsageError(f"--from {path}: no such file")
    verify(path, db)
    existing = user_relations(db)
    if existing and not clean:
        raise RestoreTargetNotEmpty(f"{db.display} holds {existing} relations")
    pg_restore, _ = find_tool("pg_restore", None)
    args = [
        pg_restore,
        "--no-password",
        "--no-owner",
        "--exit-on-error",
        "--single-transaction",
        f"--dbname={db.dbname}",
    ]
    if clean:
        args += ["--clean", "--if-exists"]
    args.append(str(path))
    emit("restore.started", file=str(path), clean=clean)
    run_tool(args, db, "pg_restore")
    emit("restore.finished", file=str(path))
    return {
        "file": str(path),
        "sha256": sha256_of(path),
        "clean": clean,
        "database": db.display,
        "relationsBefore": existing,
    }
