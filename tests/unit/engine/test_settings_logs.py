import json
import urllib.parse

import pytest

from pgshift.errors import UsageError
from pgshift.logs import redact, secret_forms
from pgshift.settings import parse_duration

PASSWORD = "s3cr@t/p%ss:word"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("2s", 2.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("3", 3.0),
        ("0", 0.0),
        ("1.5s", 1.5),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text, "--lock-wait") == seconds


@pytest.mark.parametrize("text", ["", "5x", "-1s", "ms", "1 2s", "two"])
def test_bad_durations_name_the_option(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_duration(text, "--lock-timeout")
    assert info.value.message.startswith("--lock-timeout:")


def test_redact_removes_the_url_userinfo_and_password_fields() -> None:
    url = f"postgresql://admin:{urllib.parse.quote(PASSWORD, safe='')}@db:5432/app"
    text = f"failed for {url}; kv host=db password={PASSWORD} user=x"
    out = redact(text)
    for form in secret_forms(PASSWORD):
        assert form not in out
    assert "admin" not in out  # the whole userinfo of a URL goes
    assert "postgresql://***@db:5432/app" in out and "password=*** user=x" in out


def test_redact_any_postgres_url_userinfo_even_unregistered() -> None:
    out = redact('see "postgres://bob:hunter2@h/db" and postgresql://h/db')
    assert "hunter2" not in out and "bob" not in out
    assert "postgresql://h/db" in out


def test_structlog_events_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    from pgshift import logs

    url = f"postgresql://u:{urllib.parse.quote(PASSWORD, safe='')}@h/db"
    logs.configure("json")
    logs.get_logger().info("x.y", message=f"boom {url}", nested={"u": [url]})
    line = capsys.readouterr().out.strip().splitlines()[-1]
    data = json.loads(line)
    assert data["event"] == "x.y" and next(iter(data)) == "event"
    assert "***" in data["message"] and data["nested"] == {"u": ["postgresql://***@h/db"]}
    for form in secret_forms(PASSWORD):
        assert form not in line
