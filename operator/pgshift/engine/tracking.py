"""drizzle's tracking table, and pgshift's own step-progress and backfill-checkpoint tables.

Shapes (drizzle-compat.md):
- stable: `id SERIAL PRIMARY KEY, hash text NOT NULL, created_at bigint`;
- v1 (drizzle 1.0): the same plus `name text, applied_at timestamptz DEFAULT now()`.
pgshift keeps `pgshift_steps` (a partly applied file's finished steps) and `pgshift_backfill`
(batched backfill checkpoints) beside it, in the tracking schema. Every name is composed with
`sql.Identifier`.

pgshift's own tables carry a schema version (`pgshift_schema`, one row) and are upgraded in
place, under the migration lock, in one transaction (`ensure`):
- 1 (no `pgshift_schema` table): `pgshift_steps (step, migration, hash, done_at)` and
  `pgshift_backfill (step, migration, last_key, rows, batches, walked, updated_at)`;
- 2: both gain `text_hash` (the step's statement-text hash, `steps.step_text_hash`; NULL in
  records older than the upgrade), so a rerun of an edited file can resume (`--resume-edited`).
A database whose version is newer than this pgshift's is refused (TrackingTable).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from pgshift.errors import TrackingTableError
from pgshift.migrations.model import Migration, Source, TrackingForm
from pgshift.settings import Tracking

STEPS_TABLE = "pgshift_steps"
BACKFILL_TABLE = "pgshift_backfill"
SCHEMA_TABLE = "pgshift_schema"
#: the version of pgshift's own tables this code writes (see the module's docstring).
SCHEMA_VERSION = 2


@dataclass(frozen=True)
class Row:
    """One row of drizzle's tracking table."""

    id: int
    hash: str
    created_at: int | None
    #: v1 tables only; None in stable tables or rows written by a stable-line tool.
    name: str | None = None


@dataclass(frozen=True)
class StepRecord:
    """One row of `pgshift_steps`: a finished step of a partly applied file."""

    step: str
    migration: str
    #: the plan version (`steps.plan_version`) the step was cut from.
    hash: str
    #: the step's statement-text hash; None in records made before schema version 2.
    text_hash: str | None


@dataclass(frozen=True)
class Checkpoint:
    step: str
    last_key: str | None
    rows: int
    batches: int
    #: the walk over all keys is finished (only the catch-up pass may remain).
    walked: bool


def _t(tracking: Tracking, table: str | None = None) -> sql.Composed:
    return sql.SQL("{}.{}").format(
        sql.Identifier(tracking.schema), sql.Identifier(table or tracking.table)
    )


def table_columns(
    conn: psycopg.Connection[Any], tracking: Tracking, table: str | None = None
) -> set[str]:
    """Columns of a tracking-schema table; empty when it does not exist."""
    rows = conn.execute(
        "SELECT a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped",
        (tracking.schema, table or tracking.table),
    ).fetchall()
    return {r[0] for r in rows}


def current_form(conn: psycopg.Connection[Any], tracking: Tracking) -> TrackingForm | None:
    cols = table_columns(conn, tracking)
    if not cols:
        return None
    missing = {"id", "hash", "created_at"} - cols
    if missing:
        raise TrackingTableError(
            f"{tracking.schema}.{tracking.table} exists but is not drizzle's tracking table "
            f"(no column {', '.join(sorted(missing))}); "
            "choose another --tracking-schema/--tracking-table"
        )
    # drizzle creates `created_at bigint`; another type (text, made by hand) cannot be compared
    # with the migrations' `when` (and drizzle would compare it wrongly too).
    row = conn.execute(
        "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s AND a.attname = 'created_at'",
        (tracking.schema, tracking.table),
    ).fetchone()
    if row is not None and row[0] not in ("bigint", "integer", "smallint"):
        raise TrackingTableError(
            f"{tracking.schema}.{tracking.table}: column created_at is {row[0]}, drizzle's "
            "tracking table has bigint (fix it with ALTER TABLE ... ALTER COLUMN created_at "
            "TYPE bigint USING created_at::bigint)"
        )
    return TrackingForm.V1 if "name" in cols else TrackingForm.STABLE


def read_rows(conn: psycopg.Connection[Any], tracking: Tracking) -> list[Row]:
    """Every tracking row in id order; [] when the table does not exist (plan mutates nothing)."""
    form = current_form(conn, tracking)
    if form is None:
        return []
    name = sql.SQL("name") if form is TrackingForm.V1 else sql.SQL("NULL::text")
    query = sql.SQL("SELECT id, hash, created_at, {} FROM {} ORDER BY id").format(
        name, _t(tracking)
    )
    return [Row(id=r[0], hash=r[1], created_at=r[2], name=r[3]) for r in conn.execute(query)]


def ensure(conn: psycopg.Connection[Any], tracking: Tracking, source: Source) -> TrackingForm:
    """Create the schema and tables as drizzle would, upgrading a stable table for a v1 source."""
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(tracking.schema)))
    form = current_form(conn, tracking)
    if form is None:
        extra = (
            sql.SQL(", name text, applied_at timestamp with time zone DEFAULT now()")
            if source.tracking_form is TrackingForm.V1
            else sql.SQL("")
        )
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (id SERIAL PRIMARY KEY, hash text NOT NULL, "
                "created_at bigint{})"
            ).format(_t(tracking), extra)
        )
        form = source.tracking_form
    elif form is TrackingForm.STABLE and source.tracking_form is TrackingForm.V1:
        upgrade_to_v1(conn, tracking, source)
        form = TrackingForm.V1
    ensure_own_tables(conn, tracking)
    return form


def schema_version(conn: psycopg.Connection[Any], tracking: Tracking) -> int:
    """The version of pgshift's own tables: 0 none yet, 1 before `pgshift_schema` existed."""
    if table_columns(conn, tracking, SCHEMA_TABLE):
        row = conn.execute(
            sql.SQL("SELECT max(version) FROM {}").format(_t(tracking, SCHEMA_TABLE))
        ).fetchone()
        if row and row[0] is not None:
            return int(row[0])
    return 1 if table_columns(conn, tracking, STEPS_TABLE) else 0


def ensure_own_tables(conn: psycopg.Connection[Any], tracking: Tracking) -> int:
    """Create pgshift's own tables, or upgrade them in place to `SCHEMA_VERSION` (one
    transaction: a failure leaves them as they were). Returns the version found."""
    found = schema_version(conn, tracking)
    if found > SCHEMA_VERSION:
        raise TrackingTableError(
            f"{tracking.schema}.{SCHEMA_TABLE}: pgshift's tables have schema version {found}, "
            f"this pgshift knows up to {SCHEMA_VERSION}",
            hint="run a pgshift at least as new as the one that last applied migrations here",
        )
    if found == SCHEMA_VERSION:
        return found
    with conn.transaction():
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (step text PRIMARY KEY, migration text NOT NULL, "
                "hash text NOT NULL, done_at timestamptz NOT NULL DEFAULT now(), text_hash text)"
            ).format(_t(tracking, STEPS_TABLE))
        )
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (step text PRIMARY KEY, migration text NOT NULL, "
                "last_key text, rows bigint NOT NULL DEFAULT 0, batches bigint NOT NULL DEFAULT 0, "
                "walked boolean NOT NULL DEFAULT false, "
                "updated_at timestamptz NOT NULL DEFAULT now(), text_hash text)"
            ).format(_t(tracking, BACKFILL_TABLE))
        )
        # version 1 -> 2: the statement-text hash of each step (NULL in older records).
        for table in (STEPS_TABLE, BACKFILL_TABLE):
            conn.execute(
                sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS text_hash text").format(
                    _t(tracking, table)
                )
            )
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (one boolean PRIMARY KEY DEFAULT true CHECK (one), "
                "version integer NOT NULL, upgraded_at timestamptz NOT NULL DEFAULT now())"
            ).format(_t(tracking, SCHEMA_TABLE))
        )
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (version) VALUES (%s) ON CONFLICT (one) DO UPDATE "
                "SET version = EXCLUDED.version, upgraded_at = now()"
            ).format(_t(tracking, SCHEMA_TABLE)),
            (SCHEMA_VERSION,),
        )
    return found


def upgrade_to_v1(conn: psycopg.Connection[Any], tracking: Tracking, source: Source) -> None:
    """Upgrade a stable table exactly like drizzle 1.0 (`up-migrations/pg.js`): match every row
    to a migration by `created_at` to the second (the hash breaks ties), else by hash; refuse
    if any row matches nothing; then add `name` and `applied_at` and fill `name` (applied_at
    NULL: the time is unknown). One transaction: a failure leaves the stable table as it was.
    """
    rows = read_rows(conn, tracking)
    matched: list[tuple[int, str]] = []
    unmatched: list[int] = []
    for row in rows:
        m = match_row_to_migration(row, source.migrations)
        if m is None:
            unmatched.append(row.id)
        else:
            matched.append((row.id, m.name))
    if unmatched:
        raise TrackingTableError(
            f"{tracking.schema}.{tracking.table}: cannot upgrade to drizzle 1.0's form: rows "
            f"(ids {', '.join(map(str, unmatched))}) match no migration of this source"
        )
    with conn.transaction():
        conn.execute(
            sql.SQL(
                "ALTER TABLE {} ADD COLUMN IF NOT EXISTS name text, "
                "ADD COLUMN IF NOT EXISTS applied_at timestamp with time zone DEFAULT now()"
            ).format(_t(tracking))
        )
        for row_id, name in matched:
            conn.execute(
                sql.SQL("UPDATE {} SET name = %s, applied_at = NULL WHERE id = %s").format(
                    _t(tracking)
                ),
                (name, row_id),
            )


def match_row_to_migration(row: Row, migrations: tuple[Migration, ...]) -> Migration | None:
    """Which migration a nameless row records, by drizzle 1.0's rule: the migrations whose
    `when` falls in the row's `created_at` second (one: it; several: the one with its hash);
    none: the migration with its hash."""
    if row.created_at is not None:
        second = row.created_at // 1000
        candidates = [m for m in migrations if m.when // 1000 == second]
        if len(candidates) == 1:
            return candidates[0]
        if candidates:
            return next((m for m in candidates if m.hash == row.hash), None)
    return next((m for m in migrations if m.hash == row.hash), None)


def row_record(
    tracking: Tracking,
    migration: Migration,
    form: TrackingForm,
    *,
    clear_steps: bool = True,
    only_if: sql.Composable | None = None,
) -> list[sql.Composed]:
    """The tracking row drizzle would write (a v1 table also gets the folder name), and, with
    `clear_steps`, the DELETE of the file's step records. The one place this SQL is composed:
    `insert_row` executes it, the runner also sends it as text inside a file's one query string
    (`Composed.as_string`). Values are literals quoted by psycopg, never formatted raw.

    `only_if`: an SQL condition (the migration lock still held) checked in the same statement."""
    values = [sql.Literal(migration.hash), sql.Literal(int(migration.when))]
    columns = [sql.SQL("hash"), sql.SQL("created_at")]
    if form is TrackingForm.V1:
        values.append(sql.Literal(migration.name))
        columns.append(sql.SQL("name"))
    out = [
        sql.SQL("INSERT INTO {} ({}) SELECT {} WHERE {}").format(
            _t(tracking),
            sql.SQL(", ").join(columns),
            sql.SQL(", ").join(values),
            only_if if only_if is not None else sql.SQL("true"),
        )
    ]
    if clear_steps:
        # the file is whole now: its partial progress has served its purpose.
        out.append(
            sql.SQL("DELETE FROM {} WHERE migration = {}").format(
                _t(tracking, STEPS_TABLE), sql.Literal(migration.name)
            )
        )
    return out


def row_delete(
    tracking: Tracking,
    migration: Migration,
    form: TrackingForm,
    *,
    only_if: sql.Composable | None = None,
) -> list[sql.Composed]:
    """A rollback's last step of a down file: the DELETE of `migration`'s tracking row (the
    row `row_record` wrote: its hash and `created_at`, and its name in a v1 table when the row
    has one), and of the file's step records (the down file's progress). See `row_record`."""
    match = [
        sql.SQL("hash = {}").format(sql.Literal(migration.hash)),
        sql.SQL("created_at = {}").format(sql.Literal(int(migration.when))),
    ]
    if form is TrackingForm.V1:
        match.append(sql.SQL("(name IS NULL OR name = {})").format(sql.Literal(migration.name)))
    # one row: drizzle's table has no unique key, and a copied row must stay for a person to see.
    return [
        sql.SQL(
            "DELETE FROM {t} WHERE id = (SELECT min(id) FROM {t} WHERE {match}) AND {only_if}"
        ).format(
            t=_t(tracking),
            match=sql.SQL(" AND ").join(match),
            only_if=only_if if only_if is not None else sql.SQL("true"),
        ),
        sql.SQL("DELETE FROM {} WHERE migration = {}").format(
            _t(tracking, STEPS_TABLE), sql.Literal(migration.name)
        ),
    ]


def step_record(
    tracking: Tracking,
    key: str,
    migration: Migration,
    *,
    version: str = "",
    text_hash: str = "",
    only_if: sql.Composable | None = None,
) -> sql.Composed:
    """The `pgshift_steps` record of a finished step (see `row_record`)."""
    return sql.SQL(
        "INSERT INTO {} (step, migration, hash, text_hash) SELECT {}, {}, {}, {} WHERE {} "
        "ON CONFLICT (step) DO UPDATE SET done_at = now()"
    ).format(
        _t(tracking, STEPS_TABLE),
        sql.Literal(key),
        sql.Literal(migration.name),
        sql.Literal(version or migration.hash),
        sql.Literal(text_hash or None),
        only_if if only_if is not None else sql.SQL("true"),
    )


def insert_row(
    conn: psycopg.Connection[Any],
    tracking: Tracking,
    migration: Migration,
    form: TrackingForm,
    *,
    clear_steps: bool = True,
    only_if: sql.Composable | None = None,
    check: bool = True,
) -> bool:
    """Write `row_record`; False (nothing written) when `only_if` does not hold.
    `clear_steps=False` when the file ran whole in this transaction and so recorded no step
    progress to clear. In a pipeline the row count is not known yet (`check=False`): the caller
    knows the backend."""
    insert, *clear = row_record(
        tracking, migration, form, clear_steps=clear_steps, only_if=only_if
    )
    cur = conn.execute(insert)
    if check and cur.rowcount != 1:
        return False
    for query in clear:
        conn.execute(query)
    return True


# --- steps -------------------------------------------------------------------------------------


def done_steps(conn: psycopg.Connection[Any], tracking: Tracking) -> set[str]:
    if not table_columns(conn, tracking, STEPS_TABLE):
        return set()
    rows = conn.execute(sql.SQL("SELECT step FROM {}").format(_t(tracking, STEPS_TABLE))).fetchall()
    return {r[0] for r in rows}


def partial_files(conn: psycopg.Connection[Any], tracking: Tracking) -> dict[str, set[str]]:
    """Migration name -> the file hashes its recorded steps were made from."""
    if not table_columns(conn, tracking, STEPS_TABLE):
        return {}
    out: dict[str, set[str]] = {}
    query = sql.SQL("SELECT migration, hash FROM {}").format(_t(tracking, STEPS_TABLE))
    for name, digest in conn.execute(query):
        out.setdefault(name, set()).add(digest)
    return out


def step_records(conn: psycopg.Connection[Any], tracking: Tracking) -> list[StepRecord]:
    """Every step record; `text_hash` None where the table predates schema version 2 (`plan`
    and `status` read without upgrading)."""
    cols = table_columns(conn, tracking, STEPS_TABLE)
    if not cols:
        return []
    text = sql.SQL("text_hash") if "text_hash" in cols else sql.SQL("NULL::text")
    query = sql.SQL("SELECT step, migration, hash, {} FROM {} ORDER BY step").format(
        text, _t(tracking, STEPS_TABLE)
    )
    return [StepRecord(r[0], r[1], r[2], r[3]) for r in conn.execute(query)]


def checkpoint_text_hashes(
    conn: psycopg.Connection[Any], tracking: Tracking
) -> dict[str, tuple[str, str | None, int]]:
    """Backfill checkpoint step -> (migration, its text hash or None, rows done so far)."""
    cols = table_columns(conn, tracking, BACKFILL_TABLE)
    if not cols:
        return {}
    text = sql.SQL("text_hash") if "text_hash" in cols else sql.SQL("NULL::text")
    query = sql.SQL("SELECT step, migration, {}, rows FROM {}").format(
        text, _t(tracking, BACKFILL_TABLE)
    )
    return {r[0]: (r[1], r[2], int(r[3])) for r in conn.execute(query)}


def tag_checkpoint(
    conn: psycopg.Connection[Any], tracking: Tracking, step: str, migration: str, text_hash: str
) -> None:
    """Before a backfill runs: its checkpoint row carries the step's text hash (a row with no
    progress reads as no checkpoint), so an edited file can tell whether it may resume it."""
    conn.execute(
        sql.SQL(
            "INSERT INTO {} (step, migration, text_hash) VALUES (%s, %s, %s) "
            "ON CONFLICT (step) DO UPDATE SET text_hash = EXCLUDED.text_hash"
        ).format(_t(tracking, BACKFILL_TABLE)),
        (step, migration, text_hash),
    )


def rekey_steps(
    conn: psycopg.Connection[Any],
    tracking: Tracking,
    renames: list[tuple[str, str]],
    version: str,
) -> None:
    """Move step records and checkpoints from their old keys to the keys of the edited file's
    plan (`version`), in one transaction (--resume-edited); a new key "" forgets the old."""
    with conn.transaction():
        for old, new in renames:
            if not new:  # forget it
                for table in (STEPS_TABLE, BACKFILL_TABLE):
                    conn.execute(
                        sql.SQL("DELETE FROM {} WHERE step = %s").format(_t(tracking, table)),
                        (old,),
                    )
                continue
            conn.execute(
                sql.SQL(
                    "INSERT INTO {t} (step, migration, hash, done_at, text_hash) "
                    "SELECT %s, migration, %s, done_at, text_hash FROM {t} WHERE step = %s "
                    "ON CONFLICT (step) DO NOTHING"
                ).format(t=_t(tracking, STEPS_TABLE)),
                (new, version, old),
            )
            conn.execute(
                sql.SQL(
                    "INSERT INTO {t} (step, migration, last_key, rows, batches, walked, "
                    "updated_at, text_hash) SELECT %s, migration, last_key, rows, batches, "
                    "walked, updated_at, text_hash FROM {t} WHERE step = %s "
                    "ON CONFLICT (step) DO NOTHING"
                ).format(t=_t(tracking, BACKFILL_TABLE)),
                (new, old),
            )
            for table in (STEPS_TABLE, BACKFILL_TABLE):
                conn.execute(
                    sql.SQL("DELETE FROM {} WHERE step = %s").format(_t(tracking, table)), (old,)
                )


def forget_other_versions(
    conn: psycopg.Connection[Any], tracking: Tracking, migration: Migration, version: str = ""
) -> int:
    """Drop step records a different version of this file, or of its plan (`plan_version`),
    left (accepted with --allow-drift): they do not describe the steps that will run. Their
    backfill checkpoints go too (keys of another cut could name another statement)."""
    if not table_columns(conn, tracking, STEPS_TABLE):
        return 0
    cur = conn.execute(
        sql.SQL("DELETE FROM {} WHERE migration = %s AND hash <> %s RETURNING step").format(
            _t(tracking, STEPS_TABLE)
        ),
        (migration.name, version or migration.hash),
    )
    forgotten = [r[0] for r in cur.fetchall()]
    if forgotten and table_columns(conn, tracking, BACKFILL_TABLE):
        conn.execute(
            sql.SQL("DELETE FROM {} WHERE step = ANY(%s)").format(_t(tracking, BACKFILL_TABLE)),
            (forgotten,),
        )
    return len(forgotten)


def mark_step(
    conn: psycopg.Connection[Any],
    tracking: Tracking,
    key: str,
    migration: Migration,
    *,
    only_if: sql.Composable | None = None,
    check: bool = True,
    version: str = "",
    text_hash: str = "",
) -> bool:
    """Write `step_record` (inside its transaction); False when `only_if` does not hold."""
    cur = conn.execute(
        step_record(
            tracking, key, migration, version=version, text_hash=text_hash, only_if=only_if
        )
    )
    return not check or cur.rowcount == 1


# --- backfill checkpoints ----------------------------------------------------------------------


def read_checkpoint(
    conn: psycopg.Connection[Any], tracking: Tracking, step: str
) -> Checkpoint | None:
    row = conn.execute(
        sql.SQL("SELECT last_key, rows, batches, walked FROM {} WHERE step = %s").format(
            _t(tracking, BACKFILL_TABLE)
        ),
        (step,),
    ).fetchone()
    if row is None:
        return None
    return Checkpoint(step=step, last_key=row[0], rows=row[1], batches=row[2], walked=row[3])


def write_checkpoint(
    conn: psycopg.Connection[Any], tracking: Tracking, cp: Checkpoint, migration: str
) -> None:
    conn.execute(
        sql.SQL(
            "INSERT INTO {} (step, migration, last_key, rows, batches, walked, updated_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, now()) ON CONFLICT (step) DO UPDATE SET "
            "last_key = EXCLUDED.last_key, rows = EXCLUDED.rows, batches = EXCLUDED.batches, "
            "walked = EXCLUDED.walked, updated_at = now()"
        ).format(_t(tracking, BACKFILL_TABLE)),
        (cp.step, migration, cp.last_key, cp.rows, cp.batches, cp.walked),
    )
