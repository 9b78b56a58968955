import pytest

from tests.pgserver import PASSWORD, PgServer

pytestmark = pytest.mark.integration


def test_fresh_database_is_reachable_with_a_url_special_password(
    pg_server: PgServer, database_name: str, database_url: str
) -> None:
    assert "%40" in database_url and PASSWORD not in database_url
    assert pg_server.psql("SELECT current_database()", database_name) == database_name
