"""The scratch target on real PostgreSQL: never production, only pgshift's own databases dropped.

`ScratchServer` is driven directly (the CLI's runs are in test_verify.py); production is the
test's fresh database, the scratch connection the same server's `postgres` database.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgshift.engine.connect import connect, parse_url
from pgshift.engine.scratch import (
    PREFIX,
    ScratchServer,
    ServerIdentity,
    identity,
    marker,
    new_run_id,
    scratch_name,
)
from pgshift.errors import (
    ScratchIsProduction,
    ScratchNoCreateDb,
    ScratchNotOurs,
    ScratchVersionMismatch,
)
from tests.helpers import (
    run_pgshift,
    scratch_databases,
    start_pgshift,
    wait_for,
    write_drizzle_folder,
)
from tests.pgserver import PgServer

pytestmark = pytest.mark.integration


@pytest.fixture
def production(database_url: str) -> ServerIdentity:
    db = parse_url(database_url)
    conn = connect(db)
    try:
        return identity(conn, db)
    finally:
        conn.close()


@pytest.fixture
def leftovers(pg_server: PgServer) -> Iterator[list[str]]:
    """Databases a test made by hand; dropped afterwards whatever pgshift did."""
    made: list[str] = []
    yield made
    for name in made:
        pg_server.drop_database(name)


def databases(pg_server: PgServer) -> set[str]:
    return set(pg_server.psql("SELECT datname FROM pg_database").split())



def test_the_production_database_is_refused_as_scratch_target(
    database_url: str, production: ServerIdentity
) -> None:
    with pytest.raises(ScratchIsProduction) as caught, ScratchServer(database_url, production):
        pass
    assert "reaches production's database" in caught.value.message
    # the server's own identifier decided (the test role is a superuser)
    assert production.system_identifier and "same system identifier" in caught.value.message


def test_the_production_database_by_another_host_name_is_refused(
    pg_server: PgServer, database_name: str, production: ServerIdentity
) -> None:
    """`localhost` and `127.0.0.1` are one server: the server's identifier says so."""
    url = pg_server.url(database_name).replace("@127.0.0.1:", "@localhost:")
    with pytest.raises(ScratchIsProduction), ScratchServer(url, production):
        pass


def test_verify_with_the_production_url_as_scratch_is_one_line_exit_2(
    tmp_path: Path, database_url: str
) -> None:
    folder = write_drizzle_folder(tmp_path / "m", ["CREATE TABLE t (id int);"])
    proc = run_pgshift(
        "verify", "--dir", str(folder), database_url=database_url,
        env={"SCRATCH_DATABASE_URL": database_url},
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error[ScratchIsProduction]: --scratch-url: ")
    assert "Traceback" not in proc.stderr


def test_a_scratch_database_is_created_marked_checked_and_dropped(
    pg_server: PgServer, production: ServerIdentity
) -> None:
    with ScratchServer(pg_server.url("postgres"), production) as server:
        scratch = server.create()
        assert scratch.name.startswith(PREFIX)
        comment = pg_server.psql(
            f"SELECT shobj_description(oid, 'pg_database') FROM pg_database "
            f"WHERE datname = '{scratch.name}'"
        )
        assert comment == marker(scratch.run_id)
        server.check_created(scratch)
        server.drop(scratch)
    assert scratch.name not in databases(pg_server)


def test_a_leftover_scratch_database_of_a_killed_run_is_dropped_by_the_next_run(
    pg_server: PgServer, tmp_path: Path, database_url: str
) -> None:
    """A verify SIGKILLed while its replay runs (a slow file) leaves its scratch database; the
    next verify drops it by name and marker, then does its own work."""
    folder = write_drizzle_folder(
        tmp_path / "m", ["CREATE TABLE t (id int);", "SELECT pg_sleep(2);"]
    )
    assert run_pgshift("apply", "--dir", str(folder), database_url=database_url).returncode == 0
    env = {"SCRATCH_DATABASE_URL": pg_server.url("postgres")}
    proc = start_pgshift("verify", "--dir", str(folder), database_url=database_url, env=env)
    try:
        wait_for(lambda: scratch_databases(pg_server), "the scratch database", limit=30)
        (killed,) = scratch_databases(pg_server)
    finally:
        proc.kill()
        proc.communicate()
    assert killed in databases(pg_server)
    wait_for(
        lambda: pg_server.psql(
            f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{killed}'"
        ) == "0",
        "the killed run's session to end",
    )
    done = run_pgshift("verify", "--dir", str(folder), database_url=database_url, env=env)
    assert done.returncode == 0, done.stderr
    assert f"dropped a scratch database left by a killed run: {killed}" in done.stdout
    assert scratch_databases(pg_server) == []


def test_never_a_database_without_pgshifts_name_owner_and_marker(
    pg_server: PgServer, production: ServerIdentity, leftovers: list[str]
) -> None:
    run = new_run_id()
    unmarked, wrong_marker, other_owner, plain = (
        scratch_name(new_run_id()), scratch_name(new_run_id()), scratch_name(run), "app_data",
    )
    leftovers.extend([unmarked, wrong_marker, other_owner, plain])
    for name in leftovers:
        pg_server.create_database(name)
    pg_server.psql(f"COMMENT ON DATABASE {wrong_marker} IS '{marker(new_run_id())}'")
    pg_server.psql(f"COMMENT ON DATABASE {plain} IS '{marker(run)}'")
    pg_server.psql(
        f"CREATE ROLE pgshift_other; ALTER DATABASE {other_owner} OWNER TO pgshift_other; "
        f"COMMENT ON DATABASE {other_owner} IS '{marker(run)}'"
    )
    try:
        with ScratchServer(pg_server.url("postgres"), production) as server:
            assert server.clean_leftovers() == []
            for name in leftovers:
                with pytest.raises(ScratchNotOurs):
                    server.drop(name, run)
        assert set(leftovers) <= databases(pg_server)
    finally:
        pg_server.drop_database(other_owner)
        pg_server.psql("DROP ROLE pgshift_other")


def test_a_scratch_database_in_use_by_a_running_verify_is_not_cleaned(
    pg_server: PgServer, production: ServerIdentity
) -> None:
    with ScratchServer(pg_server.url("postgres"), production) as server:
        running = server.create()
        with (
            psycopg.connect(running.url, autocommit=True),
            ScratchServer(pg_server.url("postgres"), production) as other,
        ):
            assert other.clean_leftovers() == []
        server.drop(running)


def test_a_scratch_server_of_another_major_is_a_named_error(
    pg_servers: Any, pg_major: int, production: ServerIdentity
) -> None:
    other_major = 16 if pg_major != 16 else 15
    other = pg_servers(other_major)
    with pytest.raises(ScratchVersionMismatch) as caught, ScratchServer(
        other.url("postgres"), production
    ):
        pass
    assert f"runs PostgreSQL {other_major}, production" in caught.value.message
    assert f"runs {pg_major}" in caught.value.message


def test_a_role_without_createdb_is_a_named_error(
    pg_server: PgServer, production: ServerIdentity
) -> None:
    secret = f"nc{os.getpid()}"
    pg_server.psql(f"CREATE ROLE pgshift_nocreatedb LOGIN PASSWORD '{secret}'")
    try:
        url = pg_server.url("postgres", user="pgshift_nocreatedb", password=secret)
        with pytest.raises(ScratchNoCreateDb) as caught, ScratchServer(url, production):
            pass
        assert "role 'pgshift_nocreatedb' may not create databases" in caught.value.message
    finally:
        pg_server.psql("DROP ROLE pgshift_nocreatedb")
