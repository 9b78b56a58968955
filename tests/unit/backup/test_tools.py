"""Choosing pg_dump / pg_restore for a server (backup/tools.py), on tool versions alone."""

from __future__ import annotations

from pgshift.backup.tools import choose

FOUND = [((15, 20), "/usr/lib/postgresql/15/bin/pg_dump"), ((18, 6), "/usr/local/bin/pg_dump"),
         ((16, 15), "/opt/16/pg_dump"), ((16, 9), "/opt/16.9/pg_dump")]  # fmt: skip


def test_the_servers_own_major_is_preferred() -> None:
    assert choose(FOUND, 15) == FOUND[0]
    assert choose(FOUND, 16) == ((16, 15), "/opt/16/pg_dump")  # newest minor of the major


def test_else_the_nearest_newer_major() -> None:
    assert choose(FOUND, 13) == FOUND[0]
    assert choose(FOUND, 17) == FOUND[1]


def test_none_at_least_as_new_as_the_server() -> None:
    assert choose(FOUND[:1], 16) is None
    assert choose([], 16) is None


def test_without_a_server_the_newest() -> None:
    assert choose(FOUND, None) == FOUND[1]
