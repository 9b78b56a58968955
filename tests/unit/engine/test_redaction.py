"""Redaction by structure (pgshift.logs): URL userinfo, `password=` values, password-named
keys, quoted pieces of a URL in its own parse errors; never the password's substrings
elsewhere, so short and common passwords mangle nothing and JSON stays JSON."""

import json

import pytest

from pgshift import logs
from pgshift.engine.connect import parse_url
from pgshift.engine.result import Failure, Summary, bounded_json
from pgshift.errors import BadDatabaseUrl
from pgshift.logs import redact, redact_url_error, redact_values
from tests.helpers import assert_no_secret

#: URL-special, one character, and common substrings of pgshift's own output.
PASSWORDS = ["r@w/p%ss:w", "s", "e", "a", "1", '"', ":", "result", "pgshift", "status"]


def _url(password: str) -> str:
    from urllib.parse import quote

    return f"postgresql://app:{quote(password, safe='')}@db:5432/shop"


@pytest.mark.parametrize("password", PASSWORDS)
def test_redact_removes_url_userinfo_and_password_fields_and_nothing_else(password: str) -> None:
    text = (
        f"cannot reach {_url(password)}: result status of pgshift step 1; "
        f"dsn host=db password={password} user=app; PGPASSWORD={password} pg_dump"
    )
    out = redact(text)
    assert out == (
        "cannot reach postgresql://***@db:5432/shop: result status of pgshift step 1; "
        "dsn host=db password=*** user=app; PGPASSWORD=*** pg_dump"
    )
    assert_no_secret(out, password, distinctive=False)


@pytest.mark.parametrize("password", PASSWORDS)
def test_json_lines_and_the_summary_stay_valid_json_and_unmangled(
    password: str, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure("json")
    logs.get_logger().info(
        "step.started", message=f"via {_url(password)}", nested={"password": password}
    )
    data = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert data["event"] == "step.started"
    assert data["message"] == "via postgresql://***@db:5432/shop"
    assert data["nested"] == {"password": "***"}
    summary = Summary(
        command="apply",
        ok=False,
        failure=Failure(
            migration="0001_result",
            step="abc-0",
            statement='SELECT "status", \'1\' FROM result',
            line=1,
            sqlstate="42P01",
            message=f'relation "result" does not exist ({_url(password)})',
        ),
    )
    result = json.loads(bounded_json(summary.as_dict()))
    assert result["command"] == "apply" and result["failure"]["migration"] == "0001_result"
    assert result["failure"]["statement"] == 'SELECT "status", \'1\' FROM result'
    assert result["failure"]["message"] == (
        'relation "result" does not exist (postgresql://***@db:5432/shop)'
    )
    assert_no_secret(json.dumps(result), password, distinctive=False)


def test_redact_values_keeps_keys_and_non_strings() -> None:
    assert redact_values({"a": [1, True, None, "postgres://u:p@h/d"], "password": ""}) == {
        "a": [1, True, None, "postgres://***@h/d"],
        "password": "",
    }


def test_a_url_parse_error_blanks_the_quoted_pieces_that_hold_the_password() -> None:
    text = 'invalid percent-encoded token: "p%ss" and invalid sslmode value: "requir"'
    assert redact_url_error(text, ["p%ss"]) == (
        'invalid percent-encoded token: "***" and invalid sslmode value: "requir"'
    )
    assert redact_url_error('bad "x@host/db"', []) == 'bad "***"'


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app:r@w/p%ss:w@db/shop",  # raw @ and / : libpq would read host "w"
        "postgresql://app:p@ss@db/shop",
        "postgresql://app:a/b@db/shop",
    ],
)
def test_a_raw_password_with_at_or_slash_is_refused_without_echoing_it(url: str) -> None:
    with pytest.raises(BadDatabaseUrl) as info:
        parse_url(url)
    # the whole line is ours: no piece (no tail) of the URL in it.
    assert info.value.one_line() == (
        "error[DatabaseUrl]: --database-url / DATABASE_URL: the user or password holds a raw "
        "'@' or '/'; percent-encode them (@ as %40, / as %2F, % as %25, : as %3A) (check "
        "--database-url / DATABASE_URL, the host, port and credentials)"
    )


def test_a_raw_percent_in_the_password_is_named_without_the_password() -> None:
    with pytest.raises(BadDatabaseUrl) as info:
        parse_url("postgresql://app:p%zzword@db/shop")
    line = info.value.one_line()
    assert "zz" not in line and 'invalid percent-encoded token: "***"' in line
