"""The scratch target's pure rules: which database is pgshift's, which is production."""

from __future__ import annotations

import pytest

from pgshift.engine.scratch import (
    ServerIdentity,
    is_ours,
    marker,
    same_database,
    scratch_name,
    url_with_dbname,
)

RUN = "0123456789ab"


def test_ours_needs_the_prefix_the_owner_and_the_marker_of_the_same_run() -> None:
    name = scratch_name(RUN)
    assert is_ours(name, True, marker(RUN))
    assert is_ours(name, True, marker(RUN), run_id=RUN)
    assert not is_ours(name, True, marker(RUN), run_id="ba9876543210")
    assert not is_ours(name, False, marker(RUN))  # another role's
    assert not is_ours(name, True, None)  # no marker
    assert not is_ours(name, True, marker("ba9876543210"))  # another run's marker
    assert not is_ours("app", True, marker(RUN))
    assert not is_ours(scratch_name("not-hex"), True, marker("not-hex"))


def ident(sysid: str | None, host: str, port: int, db: str, major: int = 16) -> ServerIdentity:
    return ServerIdentity(sysid, host, port, None, None, db, major)


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (ident("1", "db.prod", 5432, "app"), ident("1", "10.0.0.5", 5432, "app"), True),
        (ident("1", "db.prod", 5432, "app"), ident("1", "db.prod", 5432, "postgres"), False),
        (ident("1", "db.prod", 5432, "app"), ident("2", "db.prod", 5432, "app"), False),
        # the identifier unreadable (no pg_monitor): host and port decide
        (ident(None, "db.prod", 5432, "app"), ident(None, "db.prod", 5432, "app"), True),
        (ident(None, "db.prod", 5432, "app"), ident("2", "db.other", 5432, "app"), False),
    ],
)
def test_same_database_is_server_and_name(a: ServerIdentity, b: ServerIdentity, same: bool) -> None:
    assert same_database(a, b) is same


def test_the_scratch_url_keeps_everything_but_the_database() -> None:
    url = "postgresql://u:p%40w@h:5433/postgres?sslmode=require"
    assert url_with_dbname(url, "pgshift_scratch_x") == (
        "postgresql://u:p%40w@h:5433/pgshift_scratch_x?sslmode=require"
    )


def test_a_dbname_in_the_query_does_not_send_the_scratch_work_elsewhere() -> None:
    url = "postgresql://u:p@h/postgres?dbname=app&sslmode=require"
    assert url_with_dbname(url, "pgshift_scratch_x") == (
        "postgresql://u:p@h/pgshift_scratch_x?sslmode=require"
    )
