"""URL parsing and the pooled-endpoint refusals that need no server."""

import pytest

from pgshift.engine.connect import parse_url
from pgshift.errors import BadDatabaseUrl, PooledConnection

PASSWORD = "s3cr@t/p%ss:word"
ENC = "s3cr%40t%2Fp%25ss%3Aword"


def test_parses_percent_encoded_password() -> None:
    db = parse_url(f"postgresql://admin:{ENC}@db.example:5433/app?sslmode=disable")
    assert db.password == PASSWORD and db.port == 5433 and db.dbname == "app"
    assert PASSWORD not in repr(db) and ENC not in repr(db)
    env = db.libpq_env()
    assert env["PGPASSWORD"] == PASSWORD and env["PGSSLMODE"] == "disable"


@pytest.mark.parametrize(
    "url",
    [
        "",
        "mysql://u:p@h/db",
        "db.example:5432",
        f"postgresql://u:{ENC}@h:port/db",
        f"postgresql://u:{ENC}@h/db?nonsense=1",
    ],
)
def test_bad_urls_are_named_and_redacted(url: str) -> None:
    with pytest.raises(BadDatabaseUrl) as info:
        parse_url(url)
    assert "--database-url" in info.value.message
    assert PASSWORD not in info.value.message and ENC not in info.value.message


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://u:{ENC}@h:5432/db?pgbouncer=true",
        f"postgresql://u:{ENC}@myproxy.proxy-abcdefghij12.us-east-1.rds.amazonaws.com:5432/db",
        f"postgresql://u:{ENC}@ro.endpoint.proxy-abcdefghij12.eu-west-1.rds.amazonaws.com/db",
        f"postgresql://u:{ENC}@ep-cool-name-123456-pooler.us-east-2.aws.neon.tech/db",
        f"postgresql://u:{ENC}@aws-0-eu-central-1.pooler.supabase.com:6543/postgres",
    ],
)
def test_pooled_endpoints_are_refused_before_connecting(url: str) -> None:
    with pytest.raises(PooledConnection) as info:
        parse_url(url)
    assert PASSWORD not in info.value.one_line() and ENC not in info.value.one_line()


def test_direct_rds_host_and_pgbouncer_false_are_fine() -> None:
    parse_url(f"postgresql://u:{ENC}@mydb.abcdefghij12.us-east-1.rds.amazonaws.com:5432/db")
    db = parse_url(f"postgresql://u:{ENC}@h:5432/db?pgbouncer=false&sslmode=require")
    assert db.params["sslmode"] == "require" and "pgbouncer" not in db.params
