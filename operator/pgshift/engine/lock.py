"""The database-wide migration lock: one session advisory lock, waited for by polling.

Polling `pg_try_advisory_lock` (rather than blocking in `pg_advisory_lock`) lets the wait be
bounded by `--lock-wait`, interrupted by SIGTERM between polls, and lets us name the holder
when we give up.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from pgshift.errors import LockLost, LockNotAcquired, PooledConnection

#: One key for every pgshift run on a database, whatever the tracking schema: two Migration
#: resources with different tracking tables still must not interleave DDL. (The int64 of the
#: ASCII bytes "pgshift!" — fixed, so other tools can recognise it.)
LOCK_KEY = int.from_bytes(b"pgshift!", "big", signed=True)
#: pg_locks shows a bigint key split into classid (high 32 bits) and objid (low 32 bits).
_CLASSID = (LOCK_KEY >> 32) & 0xFFFFFFFF
_OBJID = LOCK_KEY & 0xFFFFFFFF


def lock_timeout_sql(seconds: float, *, local: bool = True) -> sql.Composed:
    """`SET [LOCAL] lock_timeout = '<ms>ms'` (0: no limit)."""
    scope = "SET LOCAL" if local else "SET"
    return sql.SQL(scope + " lock_timeout = {}").format(sql.Literal(f"{int(seconds * 1000)}ms"))


@dataclass(frozen=True)
class Holder:
    pid: int
    application_name: str
    since: str
    state: str

    def describe(self) -> str:
        app = self.application_name or "(no application_name)"
        return f"pid {self.pid} ({app}, {self.state}, since {self.since})"


def try_lock(conn: psycopg.Connection[Any]) -> int | None:
    """The pid of the backend that now holds the lock for us, or None."""
    row = conn.execute("SELECT pg_try_advisory_lock(%s), pg_backend_pid()", (LOCK_KEY,)).fetchone()
    return int(row[1]) if row and row[0] else None


def holder(conn: psycopg.Connection[Any]) -> Holder | None:
    """Who holds the lock now (pid, application_name, since when), from pg_locks."""
    row = conn.execute(
        "SELECT l.pid, coalesce(a.application_name, ''), "
        "coalesce(to_char(coalesce(a.xact_start, a.backend_start) AT TIME ZONE 'UTC', "
        "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '?'), coalesce(a.state, '?') "
        "FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.database = "
        "(SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND l.classid = %s AND l.objid = %s AND l.objsubid = 1 LIMIT 1",
        (_CLASSID, _OBJID),
    ).fetchone()
    if row is None:
        return None
    return Holder(pid=row[0], application_name=row[1], since=row[2], state=row[3])


def acquire(
    conn: psycopg.Connection[Any], wait: float, *, poll: float = 0.5, on_wait: Any = None
) -> tuple[float, int]:
    """Take the lock, polling up to `wait` seconds; returns the seconds waited and the pid of
    the backend that holds it.

    `on_wait(holder)` is called once when the first poll fails, so the log says who we wait for.
    """
    start = time.monotonic()
    told = False
    while True:
        pid = try_lock(conn)
        if pid is not None:
            return time.monotonic() - start, pid
        if not told and on_wait is not None:
            on_wait(holder(conn))
            told = True
        elapsed = time.monotonic() - start
        if elapsed >= wait:
            who = holder(conn)
            by = who.describe() if who else "a session that has since let go"
            raise LockNotAcquired(
                f"migration lock not acquired after {elapsed:.1f}s (--lock-wait): held by {by}",
                holder=who.pid if who else None,
            )
        time.sleep(min(poll, max(0.01, wait - elapsed)))


def release(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))


def held(pid: int) -> sql.Composable:
    """True in a statement run by the backend that took the lock (`pid`): a session lock lives
    as long as its backend, so this is the cheap form of "we still hold it" (pg_locks is not
    cheap). Folded into the statement that records a step: no extra round trip."""
    return sql.SQL("pg_backend_pid() = {}").format(sql.Literal(pid))


NOT_HELD_MESSAGE = (
    "the migration lock is not held by this server backend any more: the connection goes "
    "through a transaction pooler"
)


def assert_held(conn: psycopg.Connection[Any]) -> None:
    """Inside a step's transaction: this backend still holds the lock.

    A transaction pooler may hand the run another backend, where our session lock does not
    exist; then two runs could interleave. Checked in every step, so that is refused.
    """
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND pid = pg_backend_pid() AND classid = %s AND objid = %s AND objsubid = 1)",
        (_CLASSID, _OBJID),
    ).fetchone()
    if not (row and row[0]):
        raise PooledConnection(NOT_HELD_MESSAGE)


#: the SQLSTATE `still_held_sql` raises (a class of its own: no PostgreSQL error has it).
LOST_SQLSTATE = "PGSLK"
_HELD_BY = (
    "EXISTS (SELECT 1 FROM pg_catalog.pg_locks WHERE locktype = 'advisory' AND granted "
    "AND pid = {pid} AND classid = {classid} AND objid = {objid} AND objsubid = 1 AND database = "
    "(SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()))"
)


def lost_message(pid: int) -> str:
    return (
        f"the migration lock is no longer held by this session (backend pid {pid}) after the "
        "step: another pgshift run may have started"
    )


def verify(conn: psycopg.Connection[Any], pid: int) -> None:
    """After a step: the session still holds the migration lock, as pg_locks shows it for our
    backend and key. A statement of the migration can release it (`pg_advisory_unlock_all()`,
    `DISCARD ALL`), and then another run could start: stop (LockLost) before the next step."""
    row = conn.execute(
        sql.SQL("SELECT pg_backend_pid() = {pid}, " + _HELD_BY).format(
            pid=sql.Literal(pid), classid=sql.Literal(_CLASSID), objid=sql.Literal(_OBJID)
        )
    ).fetchone()
    if not (row and row[0]):
        raise PooledConnection(NOT_HELD_MESSAGE)
    if not row[1]:
        raise LockLost(lost_message(pid))


def still_held_sql(pid: int) -> str:
    """`verify` as one statement for a query string that ends in COMMIT: it fails the
    transaction (SQLSTATE `LOST_SQLSTATE`) when the lock is gone, so the step never commits
    without it."""
    held = _HELD_BY.format(pid=int(pid), classid=int(_CLASSID), objid=int(_OBJID))
    return (
        "DO $pgshift$ BEGIN IF NOT " + held + " THEN RAISE EXCEPTION USING ERRCODE = '"
        + LOST_SQLSTATE + "', MESSAGE = 'pgshift: the migration lock was released'; "
        "END IF; END $pgshift$"
    )
