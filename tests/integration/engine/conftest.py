"""Fixtures for the engine's integration tests (real PostgreSQL, the CLI as a subprocess)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from tests.pgserver import PgServer


@pytest.fixture
def psql(pg_server: PgServer, database_name: str) -> Callable[[str], str]:
    """Run SQL in the test's database through psql; returns its unaligned output."""
    return lambda sql: pg_server.psql(sql, database_name)


@pytest.fixture
def session(database_url: str) -> Iterator[Callable[[], psycopg.Connection[Any]]]:
    """Open extra autocommit sessions (lock holders, readers); all closed afterwards."""
    opened: list[psycopg.Connection[Any]] = []

    def open_one() -> psycopg.Connection[Any]:
        conn = psycopg.connect(database_url, autocommit=True, application_name="test-session")
        opened.append(conn)
        return conn

    yield open_one
    for conn in opened:
        conn.close()
