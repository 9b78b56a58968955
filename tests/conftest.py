"""Fixtures shared by every test: they live here once, not per file."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

from localcluster.image import BuiltImage
from localcluster.image import build as build_image
from tests.pgserver import PgServer, running_server

# kube_cluster and kube_namespace: a real local Kubernetes control plane (localcluster/).
pytest_plugins = ["localcluster.pytest_plugin"]

_db_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One real PostgreSQL 15 server for the whole session (its own data dir and port)."""
    with running_server() as server:
        yield server


@pytest.fixture
def database_name(pg_server: PgServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty database per test, dropped afterwards."""
    name = f"t{os.getpid()}_{next(_db_counter)}"
    pg_server.create_database(name)
    yield name
    pg_server.drop_database(name)


@pytest.fixture
def database_url(pg_server: PgServer, database_name: str) -> str:
    """URL of the test's fresh database (the password contains `@/%:`)."""
    return pg_server.url(database_name)


@pytest.fixture(scope="session")
def built_image() -> BuiltImage:
    """The pgshift image, built by `make image` (or here: a warm rebuild takes seconds)."""
    return build_image(say=lambda _line: None)
