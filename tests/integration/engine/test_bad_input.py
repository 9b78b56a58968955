"""Bad input: one line naming the file, entry or option, exit code 2, no traceback, and the
password (raw and percent-encoded) in no output."""

from __future__ import annotations

import contextlib
import json
import urllib.parse
from pathlib import Path

import pytest

from tests.helpers import assert_no_secret, run_pgshift, write_drizzle_folder
from tests.pgserver import PASSWORD, PgServer, free_port

pytestmark = pytest.mark.integration

USERS = "CREATE TABLE users (id serial PRIMARY KEY);"
ENC = urllib.parse.quote(PASSWORD, safe="")


def one_error_line(proc, code: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error[{code}]: "), lines[0]
    assert "Traceback" not in proc.stderr
    assert_no_secret(proc.stdout + proc.stderr, PASSWORD)
    return lines[0]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return write_drizzle_folder(tmp_path / "m", [USERS])


def test_malformed_journal(folder: Path, database_url: str) -> None:
    (folder / "meta" / "_journal.json").write_text('{"entries": [')
    line = one_error_line(
        run_pgshift("apply", "--dir", str(folder), database_url=database_url), "Source"
    )
    assert "_journal.json" in line and "malformed JSON" in line


def test_journal_entry_without_its_file(folder: Path, database_url: str) -> None:
    (folder / "0000_m0.sql").unlink()
    line = one_error_line(
        run_pgshift("plan", "--dir", str(folder), database_url=database_url), "Source"
    )
    assert "entries[0]" in line and "0000_m0.sql is missing" in line


def test_missing_folder(tmp_path: Path, database_url: str) -> None:
    line = one_error_line(
        run_pgshift("apply", "--dir", str(tmp_path / "nope"), database_url=database_url), "Source"
    )
    assert "nope" in line and "--dir" in line


def test_unknown_directive(tmp_path: Path, database_url: str) -> None:
    folder = write_drizzle_folder(tmp_path / "m", ["-- pgshift:phaze=contract\n" + USERS])
    line = one_error_line(
        run_pgshift("apply", "--dir", str(folder), database_url=database_url), "Directive"
    )
    assert "0000_m0.sql:1" in line and "phaze=contract" in line


def test_bad_overrides_file(folder: Path, tmp_path: Path, database_url: str) -> None:
    bad = tmp_path / "o.yaml"
    bad.write_text("0000_m0: {phase: sideways}\n")
    line = one_error_line(
        run_pgshift(
            "plan", "--dir", str(folder), "--overrides", str(bad), database_url=database_url
        ),
        "Overrides",
    )
    assert "0000_m0" in line and "phase" in line


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("mysql://u:{enc}@h/db", "expected postgresql://"),
        ("postgresql://u:{enc}@h:notaport/db", "port"),
        ("postgresql://u:{enc}@h/db?frobnicate=1", "frobnicate"),
        ("not a url at all {raw}", "--database-url"),
    ],
)
def test_bad_url(folder: Path, url: str, needle: str) -> None:
    url = url.format(enc=ENC, raw=PASSWORD)
    line = one_error_line(
        run_pgshift("apply", "--dir", str(folder), database_url=url), "DatabaseUrl"
    )
    assert needle in line and "--database-url" in line


def test_missing_url(folder: Path) -> None:
    line = one_error_line(run_pgshift("plan", "--dir", str(folder)), "DatabaseUrl")
    assert "--database-url / DATABASE_URL is not set" in line


def test_unreachable_database(folder: Path, pg_server: PgServer) -> None:
    url = pg_server.url("postgres").replace(f":{pg_server.port}/", f":{free_port()}/")
    line = one_error_line(
        run_pgshift("apply", "--dir", str(folder), database_url=url), "Connection"
    )
    assert "cannot connect to pgshift_admin@127.0.0.1" in line and "refused" in line


def test_wrong_password(folder: Path, pg_server: PgServer, database_name: str) -> None:
    wrong = "wr@ng/p%ss:" + PASSWORD[::-1]
    url = pg_server.url(database_name, password=wrong)
    proc = run_pgshift("apply", "--dir", str(folder), "--output", "json", database_url=url)
    line = one_error_line(proc, "Connection")
    assert "password authentication failed" in line
    assert_no_secret(proc.stdout + proc.stderr, wrong)


def test_url_on_the_command_line_is_redacted_too(folder: Path, pg_server: PgServer) -> None:
    url = pg_server.url("postgres").replace(f":{pg_server.port}/", f":{free_port()}/")
    proc = run_pgshift("apply", "--dir", str(folder), "--database-url", url, "--output", "json")
    one_error_line(proc, "Connection")


@pytest.mark.parametrize("suffix", ["?pgbouncer=true", "@rds"])
def test_pooled_url(folder: Path, pg_server: PgServer, database_name: str, suffix: str) -> None:
    url = pg_server.url(database_name)
    if suffix == "@rds":
        url = url.replace("@127.0.0.1:", "@app.proxy-abcdefghij12.us-east-1.rds.amazonaws.com:")
    else:
        url += suffix
    line = one_error_line(
        run_pgshift("apply", "--dir", str(folder), database_url=url), "PooledConnection"
    )
    assert "direct URL" in line


def test_pgbouncer_port_with_a_proxy_in_between_is_refused(
    folder: Path, pg_server: PgServer, database_name: str
) -> None:
    """A plain TCP relay on port 6432 stands in for pgbouncer: the server sees the relay's
    address, not ours, on pgbouncer's port. (Skipped when 6432 is taken.)"""
    import socket
    import threading

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("127.0.0.1", 6432))
    except OSError:
        listener.close()  # a skip leaves it otherwise: an unclosed-socket ResourceWarning
        pytest.skip("port 6432 is in use")
    listener.listen(8)

    def pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            # both directions end here: shut down and close (the other thread's recv then
            # fails and it closes again, harmlessly); a socket left to the collector is a
            # ResourceWarning, an error under warnings-as-errors in whatever test runs then.
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def serve() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", pg_server.port))
            threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        url = pg_server.url(database_name).replace(f":{pg_server.port}/", ":6432/")
        line = one_error_line(
            run_pgshift("apply", "--dir", str(folder), database_url=url), "PooledConnection"
        )
        assert "pgbouncer" in line
    finally:
        listener.close()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--lock-wait", "5x"], "--lock-wait: '5x'"),
        (["--lock-timeout", "-1s"], "--lock-timeout"),
        (["--target-batch-time", "0"], "--target-batch-time"),
        (["--lock-retries", "many"], "--lock-retries"),
        (["--until-phase", "later"], "--until-phase"),
        (["--destructive", "Sometimes"], "--destructive"),
        (["--layout", "flat"], "--layout"),
        (["--output", "xml"], "--output"),
        (["--expect-digest", "md5:abc"], "--expect-digest"),
        (["--no-such-flag"], "--no-such-flag"),
    ],
)
def test_bad_option_values(folder: Path, database_url: str, args: list[str], needle: str) -> None:
    proc = run_pgshift("apply", "--dir", str(folder), *args, database_url=database_url)
    line = one_error_line(proc, "Usage" if needle != "--layout" else "Error")
    assert needle in line


def test_result_file_records_bad_input(folder: Path, tmp_path: Path) -> None:
    result = tmp_path / "r.json"
    proc = run_pgshift(
        "apply",
        "--dir",
        str(folder),
        "--result-file",
        str(result),
        database_url=f"postgresql://u:{ENC}@h:1/db?pgbouncer=true",
    )
    one_error_line(proc, "PooledConnection")
    data = json.loads(result.read_text())
    assert data["ok"] is False and data["failure"]["code"] == "PooledConnection"
    assert_no_secret(result.read_text(), PASSWORD)


def test_database_refusing_pgshifts_own_work_is_one_line(
    folder: Path, pg_server: PgServer, database_name: str, psql
) -> None:
    secret = "lim@/%:" + "pw"
    psql(f"CREATE ROLE pgshift_limited LOGIN PASSWORD '{secret}'")
    try:
        url = pg_server.url(database_name, user="pgshift_limited", password=secret)
        proc = run_pgshift("apply", "--dir", str(folder), database_url=url)
        assert proc.returncode == 1
        line = proc.stderr.strip().splitlines()[-1]
        assert line.startswith("error[Database]: pgshift_limited@") and "[42501]" in line
        assert "Traceback" not in proc.stderr
        assert_no_secret(proc.stdout + proc.stderr, secret)
    finally:
        psql("DROP ROLE pgshift_limited")
