"""Batched backfill: keyset batches over a unique, NOT NULL, indexed key (zero-downtime.md).

Each batch is one transaction that finds its upper key with an index-only
`SELECT key ... WHERE key > $last ORDER BY key OFFSET n-1 LIMIT 1`, updates the range
`key > $last AND key <= $upper`, and writes its checkpoint, so a killed run resumes exactly
after the last committed batch. Batch size follows a target batch time. When the UPDATE's
guard makes it idempotent, a catch-up walk afterwards fixes rows written meanwhile (rows with
keys behind the walk, e.g. uuids).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from pgshift.engine import tracking as trk
from pgshift.engine.lock import lock_timeout_sql
from pgshift.engine.tracking import Checkpoint
from pgshift.errors import BackfillKeyError
from pgshift.safety.model import Backfill
from pgshift.settings import BackfillSettings, Tracking


@dataclass(frozen=True)
class Key:
    table: sql.Composable
    table_name: str
    column: str
    #: SQL type of the key as the catalog formats it, used to cast checkpoints back.
    type_sql: str


@dataclass
class Stats:
    rows: int = 0
    batches: int = 0
    catchup_rows: int = 0
    resumed_from: str | None = None


def resolve_key(conn: psycopg.Connection[Any], backfill: Backfill) -> Key:
    """The named column, or the single-column primary key; it must be unique (a valid,
    non-partial unique index on exactly it, which also makes it indexed) and NOT NULL."""
    schema, name = backfill.table
    table = sql.Identifier(schema, name) if schema else sql.Identifier(name)
    shown = f"{schema}.{name}" if schema else name
    row = conn.execute(
        sql.SQL("SELECT to_regclass({})::oid").format(sql.Literal(table.as_string(conn)))
    ).fetchone()
    oid = row[0] if row else None
    if oid is None:
        raise BackfillKeyError(f"backfill table {shown} does not exist")
    column = backfill.key
    if column is None:
        pk = conn.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY (i.indkey) WHERE i.indrelid = %s AND i.indisprimary",
            (oid,),
        ).fetchall()
        if not pk:
            raise BackfillKeyError(f"backfill table {shown} has no primary key; name a key column")
        if len(pk) > 1:
            raise BackfillKeyError(
                f"backfill table {shown} has a composite primary key "
                f"({', '.join(r[0] for r in pk)}); name one unique key column"
            )
        column = pk[0][0]
    info = conn.execute(
        "SELECT a.attnum, a.attnotnull, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "WHERE a.attrelid = %s AND a.attname = %s AND a.attnum > 0 AND NOT a.attisdropped",
        (oid, column),
    ).fetchone()
    if info is None:
        raise BackfillKeyError(f"backfill key {shown}.{column}: no such column")
    attnum, notnull, type_sql = info
    if not notnull:
        raise BackfillKeyError(
            f"backfill key {shown}.{column} is nullable; the key must be NOT NULL"
        )
    unique = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = %s AND i.indisunique "
        "AND i.indisvalid AND i.indpred IS NULL AND i.indnkeyatts = 1 AND i.indkey[0] = %s)",
        (oid, attnum),
    ).fetchone()
    if not (unique and unique[0]):
        raise BackfillKeyError(
            f"backfill key {shown}.{column} has no unique index of its own; the key must be "
            "unique and indexed"
        )
    return Key(table=table, table_name=shown, column=column, type_sql=type_sql)


def _literal(value: str | None, key: Key) -> sql.Composable:
    # the checkpoint is text; cast it back to the key's own type so the index is used.
    return sql.SQL("{}::{}").format(sql.Literal(value), sql.SQL(key.type_sql))


@dataclass
class _Walk:
    """One walk over the key range: the main walk (checkpointed) or a catch-up walk."""

    conn: psycopg.Connection[Any]
    key: Key
    backfill: Backfill
    settings: BackfillSettings
    lock_timeout: float
    run_batch: Callable[[Callable[[], Any]], Any]

    def batch(
        self,
        last: str | None,
        size: int,
        checkpoint: Callable[[str | None, int, bool], None] | None,
    ) -> tuple[str | None, int, bool]:
        """One transaction: find the upper key, update the range, write the checkpoint.
        Returns (new last key, rows updated, walk finished)."""
        key, bfl, conn = self.key, self.backfill, self.conn
        col = sql.Identifier(key.column)
        guard = (
            sql.SQL("({}) AND ").format(sql.SQL(bfl.where_sql)) if bfl.where_sql else sql.SQL("")
        )
        after = (
            sql.SQL("{} > {} AND ").format(col, _literal(last, key))
            if last is not None
            else sql.SQL("")
        )
        box: dict[str, Any] = {}

        def txn() -> None:
            with conn.transaction():
                conn.execute(lock_timeout_sql(self.lock_timeout))
                # index-only: the n-th key after the last one bounds this batch. The output is
                # aliased: `ORDER BY "id"` would otherwise sort by the text output column
                # ("99999" > "100000") instead of the key.
                row = conn.execute(
                    sql.SQL(
                        "SELECT {col}::text AS pgshift_key FROM {t} WHERE {after}true "
                        "ORDER BY {col} OFFSET {off} LIMIT 1"
                    ).format(col=col, t=key.table, after=after, off=sql.Literal(size - 1))
                ).fetchone()
                done = row is None
                if done:  # fewer than `size` keys remain: this batch takes them all.
                    row = conn.execute(
                        # not max(): uuid has none; a backward index scan works for every type.
                        sql.SQL(
                            "SELECT {col}::text AS pgshift_key FROM {t} WHERE {after}true "
                            "ORDER BY {col} DESC LIMIT 1"
                        ).format(col=col, t=key.table, after=after)
                    ).fetchone()
                upper = row[0] if row else None
                updated = 0
                if upper is not None:
                    cur = conn.execute(
                        sql.SQL("UPDATE {t} SET {set} WHERE {guard}{after}{col} <= {upper}").format(
                            t=key.table,
                            set=sql.SQL(bfl.set_sql),
                            guard=guard,
                            after=after,
                            col=col,
                            upper=_literal(upper, key),
                        )
                    )
                    updated = max(cur.rowcount, 0)
                new_last = upper if upper is not None else last
                if checkpoint is not None:
                    checkpoint(new_last, updated, done)
                box.update(last=new_last, updated=updated, done=done)

        self.run_batch(txn)
        return box["last"], box["updated"], box["done"]

    def anything_left(self) -> bool:
        """Does any row still match the guard? One scan that stops at the first match: much
        cheaper than a catch-up walk (a transaction per batch over every key) that finds
        nothing, which is what a catch-up usually finds."""
        bfl = self.backfill
        if not bfl.where_sql:
            return True
        row = self.conn.execute(
            sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE {})").format(
                self.key.table, sql.SQL(bfl.where_sql)
            )
        ).fetchone()
        return bool(row and row[0])

    def next_size(self, size: int, elapsed: float) -> int:
        # aim the next batch at the target time, changing at most 2x per batch.
        s = self.settings
        factor = min(2.0, max(0.5, s.target_batch_time / max(elapsed, 1e-4)))
        return int(min(s.max_batch_size, max(s.min_batch_size, size * factor)))


def run(
    conn: psycopg.Connection[Any],
    *,
    step: str,
    migration: str,
    backfill: Backfill,
    settings: BackfillSettings,
    tracking: Tracking,
    lock_timeout: float,
    run_batch: Callable[[Callable[[], Any]], Any],
    progress: Callable[[dict[str, Any]], None],
    key: Key | None = None,
) -> Stats:
    """The main walk, resuming after its checkpoint, then (idempotent guard only) the catch-up
    walk, also checkpointed. `run_batch(fn)` runs one batch with the caller's retries; `key`:
    the resolved key, if the caller has it."""
    key = key or resolve_key(conn, backfill)
    walk = _Walk(conn, key, backfill, settings, lock_timeout, run_batch)
    cp = trk.read_checkpoint(conn, tracking, step) or Checkpoint(step, None, 0, 0, False)
    stats = Stats(rows=cp.rows, batches=cp.batches, resumed_from=cp.last_key)
    passes = [False, True] if backfill.idempotent else [False]
    size = settings.initial_batch_size
    last_emit = 0.0
    estimate = estimate_rows(conn, key)
    for in_catchup in passes:
        if cp.walked and not in_catchup:
            continue  # the main walk finished in an earlier run
        last = cp.last_key if cp.walked == in_catchup else None
        if in_catchup and last is None and not walk.anything_left():
            progress(
                {
                    "step": step,
                    "rows": stats.rows,
                    "batches": stats.batches,
                    "lastKey": None,
                    "batchSize": 0,
                    "pass": "catchup",
                    "done": True,
                }
            )
            break

        def checkpoint(
            new_last: str | None, updated: int, done: bool, in_catchup: bool = in_catchup
        ) -> None:
            rows = stats.rows + (0 if in_catchup else updated)
            # after the main walk, the catch-up walk starts over from the first key.
            stored = None if (done and not in_catchup) else new_last
            trk.write_checkpoint(
                conn,
                tracking,
                Checkpoint(step, stored, rows, stats.batches + 1, in_catchup or done),
                migration,
            )

        while True:
            started = time.monotonic()
            last, updated, done = walk.batch(last, size, checkpoint)
            stats.batches += 1
            if in_catchup:
                stats.catchup_rows += updated
            else:
                stats.rows += updated
            now = time.monotonic()
            if done or now - last_emit >= 1.0:
                last_emit = now
                progress(
                    {
                        "step": step,
                        "rows": stats.rows,
                        "batches": stats.batches,
                        "lastKey": last,
                        "batchSize": size,
                        "pass": "catchup" if in_catchup else "walk",
                        "done": done,
                    }
                    # the operator's estimate of time left (docs/operator.md, Progress).
                    | ({"rowsEstimate": estimate} if estimate is not None else {})
                )
            if done:
                break
            size = walk.next_size(size, now - started)
            if settings.batch_pause:
                time.sleep(settings.batch_pause)
        cp = Checkpoint(step, None, stats.rows, stats.batches, True)
    return stats


def estimate_rows(conn: psycopg.Connection[Any], key: Key) -> int | None:
    """The planner's row count of the key's table (pg_class.reltuples: no scan), None when the
    table was never analyzed or vacuumed (-1 since PostgreSQL 14; 0 before, ambiguous)."""
    row = conn.execute(
        sql.SQL("SELECT reltuples::bigint FROM pg_class WHERE oid = {}::regclass").format(
            sql.Literal(key.table.as_string(conn))
        )
    ).fetchone()
    value = int(row[0]) if row and row[0] is not None else -1
    return value if value > 0 else None


def run_unbatched(conn: psycopg.Connection[Any], statement: str, lock_timeout: float) -> int:
    """An UPDATE that pgshift meant to batch but cannot (the table has no single-column primary
    key): as written, in one transaction, its wait for row locks bounded. The UPDATE is
    idempotent (that is why it was to be batched), so a rerun after a failure is harmless."""
    with conn.transaction():
        conn.execute(lock_timeout_sql(lock_timeout))
        cur = conn.execute(statement)  # migration SQL as written
        return max(cur.rowcount, 0)


def catch_up(
    conn: psycopg.Connection[Any],
    *,
    backfill: Backfill,
    settings: BackfillSettings,
    lock_timeout: float,
    run_batch: Callable[[Callable[[], Any]], Any],
    progress: Callable[[dict[str, Any]], None],
) -> int:
    """A final pass of an earlier backfill (before the set-not-null recipe's VALIDATE): rows the
    old application wrote since then. Only with a guard: without one it would redo every row.
    No checkpoint: the guard makes a restarted pass cheap and correct."""
    if not backfill.where_sql:
        return 0
    try:
        key = resolve_key(conn, backfill)
    except BackfillKeyError:
        if backfill.key is not None:
            raise
        # batched as written (no single-column primary key): the remaining rows, as written too.
        # (The NOT VALID check is committed: they are the few old code wrote meanwhile.)
        shown = ".".join(p for p in backfill.table if p)
        table = sql.Identifier(*(p for p in backfill.table if p))
        update = sql.SQL("UPDATE {} SET {} WHERE {}").format(
            table, sql.SQL(backfill.set_sql), sql.SQL(backfill.where_sql)
        )
        rows = run_batch(lambda: run_unbatched(conn, update.as_string(conn), lock_timeout))
        progress({"table": shown, "rows": rows, "batches": 1, "pass": "catchup", "done": True})
        return int(rows)
    walk = _Walk(conn, key, backfill, settings, lock_timeout, run_batch)
    last: str | None = None
    size, rows, batches = settings.initial_batch_size, 0, 0
    # the NOT VALID check is committed, so no new row can match: one scan that finds none
    # ends it (the usual case), else one walk over the keys.
    while walk.anything_left() if batches == 0 else True:
        started = time.monotonic()
        last, updated, done = walk.batch(last, size, None)
        rows += updated
        batches += 1
        if done:
            break
        size = walk.next_size(size, time.monotonic() - started)
    progress(
        {
            "table": walk.key.table_name,
            "rows": rows,
            "batches": batches,
            "pass": "catchup",
            "done": True,
        }
    )
    return rows
