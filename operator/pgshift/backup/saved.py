"""The way back a backup carries: this Migration's tracking rows and step-progress rows, saved
in the dump's manifest and written back by pgshift (never by pg_restore: other Migrations may
share the tracking schema), and the table of consumed restore ids.

Rows travel as `row_to_json` objects and come back through `json_populate_record`, so every
column (drizzle's stable and v1 forms, pgshift's own schema versions) round-trips as it was.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Json

from pgshift.engine import tracking as tr
from pgshift.settings import Tracking

#: consumed restore ids, in the tracking schema beside pgshift's other tables.
RESTORES_TABLE = "pgshift_restores"
#: pgshift's own tables in the tracking schema, which pg_restore never writes.
OWN_TABLES = (tr.STEPS_TABLE, tr.BACKFILL_TABLE, tr.SCHEMA_TABLE, RESTORES_TABLE)
#: the step-progress tables whose rows a backup saves, filtered to the Migration's files.
PROGRESS_TABLES = (tr.STEPS_TABLE, tr.BACKFILL_TABLE)


@dataclass(frozen=True)
class SavedRows:
    """What a manifest keeps of the tracking schema at the backup's moment."""

    schema: str
    table: str
    #: the tracking table existed (False on a database no migration has touched yet).
    exists: bool = False
    rows: tuple[Mapping[str, Any], ...] = ()
    #: progress table -> its rows of this Migration's files.
    progress: Mapping[str, tuple[Mapping[str, Any], ...]] = field(default_factory=dict)
    #: the migration names the progress rows were filtered to (None: not filtered, no source).
    migrations: tuple[str, ...] | None = None

    @property
    def tracking(self) -> Tracking:
        return Tracking(schema=self.schema, table=self.table)

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "table": self.table,
            "exists": self.exists,
            "rows": [dict(r) for r in self.rows],
            "progress": {k: [dict(r) for r in v] for k, v in self.progress.items()},
            "migrations": None if self.migrations is None else list(self.migrations),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SavedRows:
        progress = d.get("progress") or {}
        names = d.get("migrations")
        return cls(
            schema=str(d.get("schema") or ""),
            table=str(d.get("table") or ""),
            exists=bool(d.get("exists")),
            rows=tuple(dict(r) for r in d.get("rows") or () if isinstance(r, Mapping)),
            progress={
                str(k): tuple(dict(r) for r in v or () if isinstance(r, Mapping))
                for k, v in progress.items()
                if k in PROGRESS_TABLES
            },
            migrations=None if names is None else tuple(str(n) for n in names),
        )


def _exists(conn: psycopg.Connection[Any], tracking: Tracking, table: str) -> bool:
    return bool(tr.table_columns(conn, tracking, table))


def _json_rows(
    conn: psycopg.Connection[Any], tracking: Tracking, table: str, where: sql.Composable, args: Any
) -> tuple[dict[str, Any], ...]:
    query = sql.SQL("SELECT row_to_json(t) FROM {} t WHERE {} ORDER BY t.step").format(
        tr._t(tracking, table), where
    )
    return tuple(dict(r[0]) for r in conn.execute(query, args))


def read_saved(
    conn: psycopg.Connection[Any], tracking: Tracking, migrations: Sequence[str] | None
) -> SavedRows:
    """This Migration's rows now: its whole tracking table, and the progress rows of its files
    (`migrations`; every progress row when the backup was taken without a source)."""
    exists = _exists(conn, tracking, tracking.table)
    rows: tuple[dict[str, Any], ...] = ()
    if exists:
        query = sql.SQL("SELECT row_to_json(t) FROM {} t ORDER BY t.id").format(tr._t(tracking))
        rows = tuple(dict(r[0]) for r in conn.execute(query))
    progress: dict[str, tuple[dict[str, Any], ...]] = {}
    for table in PROGRESS_TABLES:
        if not _exists(conn, tracking, table):
            continue
        if migrations is None:
            progress[table] = _json_rows(conn, tracking, table, sql.SQL("true"), None)
        else:
            progress[table] = _json_rows(
                conn, tracking, table, sql.SQL("t.migration = ANY(%s)"), (list(migrations),)
            )
    return SavedRows(
        schema=tracking.schema,
        table=tracking.table,
        exists=exists,
        rows=rows,
        progress=progress,
        migrations=None if migrations is None else tuple(migrations),
    )


def restore_used(conn: psycopg.Connection[Any], tracking: Tracking, restore_id: str) -> str | None:
    """When `restore_id` was consumed (UTC text), or None."""
    if not _exists(conn, tracking, RESTORES_TABLE):
        return None
    row = conn.execute(
        sql.SQL(
            "SELECT to_char(restored_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
            "FROM {} WHERE restore_id = %s"
        ).format(tr._t(tracking, RESTORES_TABLE)),
        (restore_id,),
    ).fetchone()
    return str(row[0]) if row else None


def rewrite(
    conn: psycopg.Connection[Any],
    saved: SavedRows,
    names: Collection[str],
    *,
    restore_id: str,
    sha256: str,
    backup_time: str,
) -> None:
    """In the caller's transaction: this Migration's tracking table holds exactly the saved
    rows, the progress rows of `names` (its files) exactly the saved ones of those files, and
    the restore id is recorded as consumed. Other tables and other files' rows are untouched."""
    tracking = saved.tracking
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(tracking.schema)))
    if restore_id:
        record_restore(
            conn, tracking, restore_id=restore_id, sha256=sha256, backup_time=backup_time
        )
    if _exists(conn, tracking, tracking.table):
        conn.execute(sql.SQL("DELETE FROM {}").format(tr._t(tracking)))
    elif saved.rows:
        # the saved rows' columns say which form the table had.
        v1 = any("name" in r for r in saved.rows)
        extra = ", name text, applied_at timestamp with time zone DEFAULT now()" if v1 else ""
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (id SERIAL PRIMARY KEY, hash text NOT NULL, created_at bigint"
                + extra
                + ")"
            ).format(tr._t(tracking))
        )
    if saved.rows:
        insert = sql.SQL(
            "INSERT INTO {t} SELECT * FROM json_populate_record(NULL::{t}, %s::json)"
        ).format(t=tr._t(tracking))
        for row in saved.rows:
            conn.execute(insert, (Json(dict(row)),))
        conn.execute(
            sql.SQL(
                "SELECT setval(pg_get_serial_sequence(%s, 'id'), (SELECT max(id) FROM {}))"
            ).format(tr._t(tracking)),
            (f'"{tracking.schema}"."{tracking.table}"',),
        )
    if any(saved.progress.values()) or names:
        tr.ensure_own_tables(conn, tracking)
    for table in PROGRESS_TABLES:
        if names and _exists(conn, tracking, table):
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE migration = ANY(%s)").format(tr._t(tracking, table)),
                (list(names),),
            )
        insert = sql.SQL(
            "INSERT INTO {t} SELECT * FROM json_populate_record(NULL::{t}, %s::json)"
        ).format(t=tr._t(tracking, table))
        for row in saved.progress.get(table, ()):
            if row.get("migration") in names:
                conn.execute(insert, (Json(dict(row)),))


def record_restore(
    conn: psycopg.Connection[Any],
    tracking: Tracking,
    *,
    restore_id: str,
    sha256: str,
    backup_time: str,
) -> None:
    """The restore id consumed: a second restore with it is refused (`restore_used`), even by a
    re-created Migration, since the record lives in the database."""
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(tracking.schema)))
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (restore_id text PRIMARY KEY, sha256 text NOT NULL, "
            "tracking_table text NOT NULL, backup_time text NOT NULL, "
            "restored_at timestamptz NOT NULL DEFAULT now())"
        ).format(tr._t(tracking, RESTORES_TABLE))
    )
    conn.execute(
        sql.SQL(
            "INSERT INTO {} (restore_id, sha256, tracking_table, backup_time) "
            "VALUES (%s, %s, %s, %s)"
        ).format(tr._t(tracking, RESTORES_TABLE)),
        (restore_id, sha256, f"{tracking.schema}.{tracking.table}", backup_time),
    )
