"""`pgshift restore --from FILE [--clean]`: a dump back into the database, with the way back it
carries (backup/saved.py), under the migration lock.

Everything is checked before anything is touched, each refusal a named error: the manifest
beside the dump and its sha256, the server's major against the dump's, a restore id used
before (`pgshift_restores`), a non-empty database without `--clean`, migrations applied after
the backup that changed objects outside a table-scoped dump, and objects outside the dump that
depend on what `--clean` drops (pgshift never restores with CASCADE). Then pg_restore
(`--exit-on-error --single-transaction`, never writing the tracking schema's pgshift tables or
the tracking table) and, in one more transaction, this Migration's tracking and progress rows
rewritten to the backup's moment and the restore id recorded.

A crash between the two transactions leaves the data at the backup's moment and the tracking
rows as they were: the same restore, run again (with `--clean`), finishes it (the id is
recorded only with the rows).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import psycopg.sql

from pgshift.backup.dump import SIDECAR_SUFFIX, server_major, sha256_of
from pgshift.backup.saved import OWN_TABLES, SavedRows, record_restore, restore_used, rewrite
from pgshift.backup.tools import find_tool, restore_through_psql, run_tool
from pgshift.engine import lock, tracking
from pgshift.engine.connect import Database, check_session, connect
from pgshift.errors import (
    RestoreAlreadyUsed,
    RestoreChecksumMismatch,
    RestoreManifestMissing,
    RestoreNeedsCascade,
    RestoreOutOfScope,
    RestoreServerTooOld,
    RestoreTargetNotEmpty,
    UsageError,
)
from pgshift.migrations.model import Source
from pgshift.settings import Tracking

Emit = Callable[..., None]
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
#: pg_restore --list descriptions of more than one word (the rest of an entry is split on spaces).
_DESCS = (
    "TABLE DATA",
    "SEQUENCE SET",
    "SEQUENCE OWNED BY",
    "FK CONSTRAINT",
    "MATERIALIZED VIEW DATA",
    "MATERIALIZED VIEW",
    "DEFAULT ACL",
    "INDEX ATTACH",
    "TABLE ATTACH",
)
_ENTRY = re.compile(r"^(\d+); \d+ \d+ (.+)$")
RELATION_DESCS = ("TABLE", "VIEW", "MATERIALIZED VIEW")
#: pg_restore from this major on sets `transaction_timeout`, unknown to older servers.
NEWER_SETTINGS_MAJOR = 17


@dataclass(frozen=True)
class TocEntry:
    line: str
    desc: str
    schema: str
    name: str


def parse_toc(listing: str) -> list[TocEntry]:
    """`pg_restore --list`'s entries (PURE). Comment lines are dropped."""
    out: list[TocEntry] = []
    for line in listing.splitlines():
        match = _ENTRY.match(line)
        if not match:
            continue
        rest = match.group(2)
        desc = next((d for d in _DESCS if rest.startswith(d + " ")), rest.split(" ", 1)[0])
        words = rest[len(desc) :].split()
        schema = words[0] if words else ""
        name = words[1] if len(words) > 1 else ""
        out.append(TocEntry(line=line, desc=desc, schema=schema, name=name))
    return out


def is_pgshift_entry(entry: TocEntry, where: Tracking) -> bool:
    """An entry pg_restore must not write: the tracking table, its id sequence, pgshift's own
    tables (a whole-database dump holds them; other Migrations may share them), and the
    tracking schema itself unless it is `public` (PURE)."""
    if entry.desc == "SCHEMA":
        return entry.name == where.schema and where.schema != "public"
    if entry.schema != where.schema:
        return False
    own = {where.table, f"{where.table}_id_seq", *OWN_TABLES}
    return entry.name in own or entry.name.startswith("pgshift_")


def table_key(name: str) -> str:
    """A table name compared across the manifest and the analysis: unquoted, lower case, the
    `public.` schema implied (PURE)."""
    key = name.replace('"', "").strip().lower()
    return key[len("public.") :] if key.startswith("public.") else key


def out_of_scope(
    tables_by_migration: Mapping[str, list[str | None]], dump_tables: list[str]
) -> list[str]:
    """`migration (what)` for each later migration that changed something outside the dump's
    tables; None in a migration's list is a statement on no table pgshift can name (PURE)."""
    inside = {table_key(t) for t in dump_tables}
    out: list[str] = []
    for name, tables in tables_by_migration.items():
        outside = sorted(
            {
                t or "objects other than tables"
                for t in tables
                if t is None or table_key(t) not in inside
            }
        )
        if outside:
            out.append(f"{name} ({', '.join(outside)})")
    return out


def backup_age(backup_time: str, now: dt.datetime) -> int:
    try:
        taken = dt.datetime.strptime(backup_time, TIME_FORMAT).replace(tzinfo=dt.UTC)
    except ValueError:
        return 0
    return max(0, int((now - taken).total_seconds()))


def load_manifest(path: Path) -> dict[str, Any]:
    manifest = path.with_name(path.name + SIDECAR_SUFFIX)
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RestoreManifestMissing(
            f"--from {path}: no manifest {manifest.name} beside it"
        ) from None
    except (OSError, ValueError) as exc:
        raise RestoreManifestMissing(
            f"--from {path}: manifest {manifest.name} unreadable ({exc})"
        ) from None
    if not isinstance(data, dict):
        raise RestoreManifestMissing(f"--from {path}: manifest {manifest.name} is not an object")
    return data


def user_relations(db: Database) -> int:
    with connect(db, application_name="pgshift-restore") as conn:
        return _user_relations(conn)


def _user_relations(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' "
        "AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')"
    ).fetchone()
    return int(row[0]) if row else 0


def dependents(conn: psycopg.Connection[Any], relations: list[tuple[str, str]]) -> list[str]:
    """Views and foreign keys outside the dump that depend on its relations: `--clean` would
    need CASCADE to drop them."""
    oids = []
    for schema, name in relations:
        row = conn.execute(
            "SELECT to_regclass(quote_ident(%s) || '.' || quote_ident(%s))::oid", (schema, name)
        ).fetchone()
        if row and row[0] is not None:
            oids.append(int(row[0]))
    if not oids:
        return []
    rows = conn.execute(
        "SELECT DISTINCT CASE v.relkind WHEN 'm' THEN 'materialized view ' ELSE 'view ' END "
        "|| quote_ident(vn.nspname) || '.' || quote_ident(v.relname) "
        "FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid "
        "JOIN pg_class v ON v.oid = r.ev_class JOIN pg_namespace vn ON vn.oid = v.relnamespace "
        "WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = ANY(%(o)s) "
        "AND v.oid <> ALL(%(o)s) "
        "UNION SELECT 'foreign key ' || quote_ident(con.conname) || ' on ' "
        "|| quote_ident(n.nspname) || '.' || quote_ident(c.relname) "
        "FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE con.contype = 'f' AND con.confrelid = ANY(%(o)s) AND con.conrelid <> ALL(%(o)s) "
        "ORDER BY 1",
        {"o": oids},
    ).fetchall()
    return [str(r[0]) for r in rows]


def _rows_of(saved: SavedRows) -> list[tracking.Row]:
    out = []
    for r in saved.rows:
        created = r.get("created_at")
        out.append(
            tracking.Row(
                id=int(r.get("id") or 0),
                hash=str(r.get("hash") or ""),
                created_at=int(created) if created is not None else None,
                name=str(r["name"]) if r.get("name") is not None else None,
            )
        )
    return out


@dataclass(frozen=True)
class Later:
    """What was applied after the backup: migration names (pending again once restored) and
    tracking rows no migration of the source records."""

    names: list[str]
    unknown: list[str]


def later_than_backup(
    source: Source | None, now_rows: list[tracking.Row], saved: SavedRows
) -> Later:
    from pgshift.engine.state import compare

    then = {(r.id, r.hash) for r in _rows_of(saved)}
    new_rows = [r for r in now_rows if (r.id, r.hash) not in then]
    if source is None:
        return Later(names=[], unknown=[r.name or f"tracking row {r.id}" for r in new_rows])
    applied_then = {m.migration.name for m in compare(source, _rows_of(saved)).applied}
    state_now = compare(source, now_rows)
    names = [m.migration.name for m in state_now.applied if m.migration.name not in applied_then]
    new_ids = {r.id for r in new_rows}
    unknown = [r.name or f"tracking row {r.id}" for r in state_now.unknown_rows if r.id in new_ids]
    return Later(names=names, unknown=unknown)


def tables_of(
    source: Source, names: list[str], overrides: Mapping[str, Any]
) -> dict[str, list[str | None]]:
    """Each named migration's tables, statement by statement (None: a statement on none)."""
    from pgshift.engine.analysis import FileAnalyzer

    analyzer = FileAnalyzer(source, overrides, rewrite=True)
    out: dict[str, list[str | None]] = {}
    for m in source.migrations:
        if m.name in names:
            analysis = analyzer(m, render=False, refuse_control=False)
            out[m.name] = [t for s in analysis.statements for t in (s.tables or (None,))]
    return out


def restore(
    db: Database,
    path: Path,
    *,
    clean: bool,
    emit: Emit,
    source: Source | None = None,
    overrides: Mapping[str, Any] | None = None,
    restore_id: str = "",
    lock_wait: float = 60.0,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> dict[str, Any]:
    if not path.is_file():
        raise UsageError(f"--from {path}: no such file")
    manifest = load_manifest(path)
    sha = sha256_of(path)
    if manifest.get("sha256") != sha:
        raise RestoreChecksumMismatch(
            f"--from {path}: sha256 {sha} differs from its manifest's {manifest.get('sha256')}"
        )
    dumped_major = int(manifest.get("serverMajor") or 0)
    major = server_major(db)
    if dumped_major > major:
        raise RestoreServerTooOld(
            f"--from {path}: taken from PostgreSQL {dumped_major}, {db.display} runs {major}"
        )
    pg_restore, (tool_major, _) = find_tool("pg_restore", None)
    listing = run_tool([pg_restore, "--list", str(path)], db, f"pg_restore --list {path}").stdout
    saved_part = manifest.get("saved")
    saved = SavedRows.from_dict(saved_part) if isinstance(saved_part, Mapping) else None
    where = saved.tracking if saved and saved.schema and saved.table else Tracking()
    entries = parse_toc(listing)
    kept = [e for e in entries if not is_pgshift_entry(e, where)]
    relations = [(e.schema, e.name) for e in kept if e.desc in RELATION_DESCS]
    scope = str(manifest.get("scope") or "")
    dump_tables = [str(t) for t in manifest.get("tables") or []]
    backup_time = str(manifest.get("time") or "")

    conn = connect(db, application_name="pgshift-restore")
    try:
        check_session(conn, db, application_name="pgshift-restore")
        lock.acquire(conn, lock_wait)
        used = restore_used(conn, where, restore_id) if restore_id else None
        if used:
            raise RestoreAlreadyUsed(
                f"restore id {restore_id} was consumed at {used} in {db.display}"
            )
        existing = _user_relations(conn)
        if existing and not clean:
            raise RestoreTargetNotEmpty(f"{db.display} holds {existing} relations")
        later = later_than_backup(
            source, tracking.read_rows(conn, where), saved or SavedRows(where.schema, where.table)
        )
        if scope == "tables":
            changed = (
                out_of_scope(tables_of(source, later.names, overrides or {}), dump_tables)
                if source
                else []
            )
            changed += [f"{u} (not in the source: unknown objects)" for u in later.unknown]
            if changed:
                raise RestoreOutOfScope(
                    f"--from {path} holds only {', '.join(dump_tables) or 'no table'}; applied "
                    f"after it: {'; '.join(changed)}"
                )
        if clean:
            blocking = dependents(conn, relations)
            if blocking:
                raise RestoreNeedsCascade(
                    f"--clean would drop what these depend on: {', '.join(blocking)}"
                )
        if any(e.desc == "SCHEMA" and e.name == where.schema for e in entries):
            # its SCHEMA entry is skipped (--clean would drop it, and other Migrations' tables
            # in it): the tables of the dump that live there still need it.
            conn.execute(
                psycopg.sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                    psycopg.sql.Identifier(where.schema)
                )
            )
        with tempfile.NamedTemporaryFile("w", suffix=".list", delete=False) as chosen:
            chosen.write("".join(e.line + "\n" for e in kept))
        args = [
            pg_restore,
            "--no-password",
            "--no-owner",
            "--exit-on-error",
            "--single-transaction",
            f"--use-list={chosen.name}",
            f"--dbname={db.dbname}",
        ]
        if clean:
            args += ["--clean", "--if-exists"]
        args.append(str(path))
        emit("restore.started", file=str(path), clean=clean, scope=scope, backupTime=backup_time)
        try:
            if tool_major >= NEWER_SETTINGS_MAJOR > major:
                # a newer pg_restore sets what this server lacks: its script through psql.
                psql, _ = find_tool("psql", None)
                script = [a for a in args if not a.startswith(("--dbname=", "--exit-on-error"))]
                restore_through_psql(script, psql, db, "pg_restore")
            else:
                run_tool(args, db, "pg_restore")
        finally:
            Path(chosen.name).unlink(missing_ok=True)
        names = {m.name for m in source.migrations} if source else set()
        with conn.transaction():
            lock.assert_held(conn)
            if saved is not None:
                names |= set(saved.migrations or ())
                rewrite(
                    conn, saved, names, restore_id=restore_id, sha256=sha, backup_time=backup_time
                )
            elif restore_id:  # a manifest from before saved rows: the data only
                record_restore(
                    conn, where, restore_id=restore_id, sha256=sha, backup_time=backup_time
                )
        emit("restore.finished", file=str(path), pendingAgain=later.names)
    finally:
        if not conn.closed:
            with_release(conn)
            conn.close()
    return {
        "file": str(path),
        "sha256": sha,
        "clean": clean,
        "database": db.display,
        "relationsBefore": existing,
        "scope": scope,
        "tables": dump_tables,
        "backupTime": backup_time,
        "ageSeconds": backup_age(backup_time, now()),
        "restoreId": restore_id,
        "trackingTable": f"{where.schema}.{where.table}" if saved else "",
        "pendingAgain": later.names + later.unknown,
    }


def with_release(conn: psycopg.Connection[Any]) -> None:
    with contextlib.suppress(psycopg.Error):  # the session ends right after: the lock goes too
        lock.release(conn)
