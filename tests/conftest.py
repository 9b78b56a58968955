"""Fixtures shared by every test: they live here once, not per file."""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Callable, Iterator

import pytest

from localcluster.image import BuiltImage
from localcluster.image import build as build_image
from tests import pgversions
from tests.pgserver import PgServer, running_server

# kube_cluster and kube_namespace: a real local Kubernetes control plane (localcluster/).
pytest_plugins = ["localcluster.pytest_plugin"]

_db_counter = itertools.count()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--pg-major",
        type=int,
        default=None,
        choices=pgversions.MAJORS,
        help="PostgreSQL major of the session's server (default: $PGSHIFT_TEST_PG_MAJOR, "
        f"else {pgversions.DEFAULT_MAJOR}); `make postgres-versions` installs 13-18",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "compat: in the compatibility subset that `make test` runs on every major (13-18)",
    )
    config.addinivalue_line(
        "markers",
        "pg_major(min=None, max=None): runs only when the session's server major is in range",
    )


def session_major(config: pytest.Config) -> int:
    """--pg-major, else $PGSHIFT_TEST_PG_MAJOR, else Debian's 15."""
    chosen = config.getoption("--pg-major")
    if chosen is None:
        env = os.environ.get("PGSHIFT_TEST_PG_MAJOR", "").strip()
        if env and (not env.isdigit() or int(env) not in pgversions.MAJORS):
            majors = ", ".join(map(str, pgversions.MAJORS))
            raise pytest.UsageError(f"PGSHIFT_TEST_PG_MAJOR={env!r}: not one of {majors}")
        chosen = int(env) if env else pgversions.DEFAULT_MAJOR
    return int(chosen)


def pytest_report_header(config: pytest.Config) -> str:
    return f"PostgreSQL major under test: {session_major(config)}"


#: the compatibility subset beyond the files marked `compat` themselves: the tests whose
#: behaviour could differ by major (engine apply/failure, a batched backfill killed and resumed,
#: SIGTERM, every rewrite's equivalence, drizzle interop; backup and restore across majors are
#: in test_postgres_versions.py). Listed here, by node id prefix, so that the subset is one list
#: to read and their files need no edit. Kept small: it runs five times in `make test`.
COMPAT = (
    "tests/integration/engine/test_apply.py::test_failed_migration_has_no_effects_and_reports_where",
    "tests/integration/engine/test_apply.py::test_concurrent_index_and_enum_value_then_use",
    "tests/integration/engine/test_kill_resume.py::test_sigkill_during_a_backfill_resumes",
    "tests/integration/engine/test_kill_resume.py::test_sigterm_cancels_the_running_query",
    "tests/integration/test_rewrite_equivalence.py::",
    "tests/interop/test_drizzle_interop.py::test_pgshift_applies_then_drizzle_applies_nothing[stable]",
    "tests/unit/safety/test_versions.py::",
)
#: tests of behaviour an older major lacks: skipped there, with the documented reason
#: (docs/postgres-versions.md); what that major does instead is tested in
#: tests/integration/engine/test_postgres_versions.py.
LIMITS = {
    "tests/integration/engine/test_kill_resume.py::test_sigkill_during_a_single_transaction": (
        14, "PostgreSQL 13 has no client_connection_check_interval: a killed run's statement "
        "runs to its end (test_sigkill_mid_file_leaves_it_whole_or_absent)"),
    "tests/integration/engine/test_kill_resume.py::test_sigkill_between_the_steps_of_a_file": (
        14, "PostgreSQL 13 has no client_connection_check_interval: a killed run's statement "
        "runs to its end (test_sigkill_mid_file_leaves_it_whole_or_absent)"),
}  # fmt: skip


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    major = session_major(config)
    for item in items:
        if item.nodeid.startswith(COMPAT):
            item.add_marker(pytest.mark.compat)
        for prefix, (since, reason) in LIMITS.items():
            if item.nodeid.startswith(prefix) and major < since:
                item.add_marker(pytest.mark.skip(reason=f"documented limit: {reason}"))
        for mark in item.iter_markers("pg_major"):
            low, high = mark.kwargs.get("min"), mark.kwargs.get("max")
            if (low is not None and major < low) or (high is not None and major > high):
                item.add_marker(pytest.mark.skip(reason=f"not for PostgreSQL {major}"))


@pytest.fixture(scope="session")
def pg_major(request: pytest.FixtureRequest) -> int:
    """The major of the session's server (`pg_server`)."""
    return session_major(request.config)


@pytest.fixture(scope="session")
def pg_server(pg_major: int) -> Iterator[PgServer]:
    """One real PostgreSQL server (of `pg_major`) for the whole session (its own data dir and
    port). Its clients come first on PATH, so `pgshift backup` finds a pg_dump for it as it
    would on a machine with that major's client installed."""
    with running_server(major=pg_major) as server, pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", f"{server.client_bin}{os.pathsep}{os.environ.get('PATH', '')}")
        yield server


@pytest.fixture(scope="session")
def pg_servers() -> Iterator[Callable[[int], PgServer]]:
    """`pg_servers(major)`: a server of that major, started on first use and kept for the
    session (cross-version tests: a dump from 13 restored into 18)."""
    started: dict[int, PgServer] = {}
    with contextlib.ExitStack() as stack:

        def get(major: int) -> PgServer:
            if major not in started:
                started[major] = stack.enter_context(running_server(major=major))
            return started[major]

        yield get


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
