"""The pure parts of `pgshift restore`: which dump entries pg_restore may write, which later
migrations a table-scoped dump cannot undo, how old a backup is."""

from __future__ import annotations

import datetime as dt

from pgshift.backup.restore import backup_age, is_pgshift_entry, out_of_scope, parse_toc
from pgshift.settings import Tracking

LISTING = """;
; Archive created at 2026-01-01 00:00:00 UTC
;
5; 2615 16385 SCHEMA - drizzle postgres
216; 1259 16386 TABLE drizzle __drizzle_migrations postgres
217; 1259 16390 SEQUENCE drizzle __drizzle_migrations_id_seq postgres
218; 1259 16400 TABLE drizzle pgshift_steps postgres
219; 1259 16410 TABLE drizzle other_app_migrations postgres
220; 1259 16420 TABLE public users postgres
3360; 0 16420 TABLE DATA public users postgres
3210; 2606 16425 CONSTRAINT public users users_pkey postgres
3211; 2606 16430 FK CONSTRAINT public orders orders_user_fkey postgres
"""


def test_pg_restore_never_writes_this_migrations_tracking_or_pgshifts_tables() -> None:
    entries = parse_toc(LISTING)
    assert [e.desc for e in entries][:3] == ["SCHEMA", "TABLE", "SEQUENCE"]
    assert entries[-1].desc == "FK CONSTRAINT" and entries[-1].name == "orders"
    where = Tracking()
    skipped = [e.name for e in entries if is_pgshift_entry(e, where)]
    # another Migration's tracking table in the same schema is its data, restored as any table.
    assert skipped == [
        "drizzle",
        "__drizzle_migrations",
        "__drizzle_migrations_id_seq",
        "pgshift_steps",
    ]
    public = Tracking(schema="public", table="t")
    assert not is_pgshift_entry(entries[0], public)


def test_a_later_migration_outside_the_dumps_tables_is_named() -> None:
    later = {
        "0002_drop": ["users", "public.users"],
        "0003_audit": ["audit", "users"],
        "0004_fn": [None],
    }
    assert out_of_scope(later, ["public.users"]) == [
        "0003_audit (audit)",
        "0004_fn (objects other than tables)",
    ]
    assert out_of_scope({"0002_drop": ['"Users"']}, ["users"]) == []


def test_backup_age_in_seconds() -> None:
    now = dt.datetime(2026, 1, 1, 1, 0, 0, tzinfo=dt.UTC)
    assert backup_age("2026-01-01T00:00:00Z", now) == 3600
    assert backup_age("garbage", now) == 0
