"""No credential in any output, whatever the password: short (`s`), a common substring of
pgshift's own output (`result`, `status`, `pgshift`, `1`) or URL-special (`r@w/p%ss:w`).

"No leak" (tests/helpers.py `assert_no_secret`): no URL carries userinfo, no `password=` field
a value, every JSON line parses; and the output is the output of the same run under a
distinctive password (`normalized`): nothing around the password is mangled, and nothing of
it is echoed anywhere a distinctive password would not be."""

from __future__ import annotations

import os
import re
import subprocess
import urllib.parse
from pathlib import Path

import psycopg
import pytest

from tests.helpers import assert_no_secret, normalized, run_pgshift, write_drizzle_folder
from tests.pgserver import PgServer

pytestmark = pytest.mark.integration

ROLE = "pgshift_pw"
DISTINCTIVE = "Zq7-distinct-Wv3"
#: URL-special (distinctive: in no form anywhere), then short and common ones.
URL_SPECIAL = "r@w/p%ss:w"
PASSWORDS = [URL_SPECIAL, "s", "e", "1", "result", "status", "pgshift"]
#: the failing file's error names a relation made of those words.
MIGRATIONS = [
    "CREATE TABLE result (id int, status text);",
    "INSERT INTO result_status_pgshift_1 VALUES (1);",
]


def _url(server: PgServer, dbname: str, password: str) -> str:
    quoted = urllib.parse.quote(password, safe="")
    return f"postgresql://{ROLE}:{quoted}@{server.host}:{server.port}/{dbname}"


def _scenario(server: PgServer, work: Path, password: str) -> str:
    """Every failure a user sees, under `password`: a migration failing (error line, progress
    JSON, result file), pg_dump failing (lock timeout) and pg_restore failing (a view where
    the dump has a table). Returns all their output, one after the other."""
    db, other = f"pw{os.getpid()}", f"pw{os.getpid()}_r"
    for name in (db, other):
        server.drop_database(name)
        server.create_database(name)
    server.psql(f"ALTER ROLE {ROLE} PASSWORD '{password.replace(chr(39), chr(39) * 2)}'")
    url = _url(server, db, password)
    folder = write_drizzle_folder(work / "m", MIGRATIONS)
    out: list[str] = []

    def run(*args: str, database_url: str = url) -> subprocess.CompletedProcess[str]:
        proc = run_pgshift(*args, "--output", "json", database_url=database_url)
        out.extend([f"$ {' '.join(args)} -> {proc.returncode}", proc.stdout, proc.stderr])
        return proc

    result = work / "apply.json"
    assert run("apply", "--dir", str(folder), "--result-file", str(result)).returncode == 1
    out.append(result.read_text())
    holder = psycopg.connect(server.url(db))
    try:
        holder.execute("LOCK TABLE result IN ACCESS EXCLUSIVE MODE")
        dump = run("backup", "--to", str(work / "x.dump"), "--lock-wait", "1s")
        assert dump.returncode == 1 and "pg_dump failed" in dump.stderr
    finally:
        holder.close()
    assert run("backup", "--to", str(work / "x.dump")).returncode == 0
    server.psql("CREATE VIEW result AS SELECT 1 AS id", other)
    other_url = _url(server, other, password)
    restore = run("restore", "--from", str(work / "x.dump"), "--clean", database_url=other_url)
    assert restore.returncode == 1 and "pg_restore failed" in restore.stderr
    for name in (db, other):
        server.drop_database(name)
    text = normalized("\n".join(out), work=str(work), port=str(server.port))
    # a dump holds its own time: its checksum and size differ from run to run
    return re.sub(r'"(sha256|size)": "?\w+"?', r'"\1": "<dump>"', text)


@pytest.fixture(scope="module")
def role(pg_server: PgServer) -> str:
    pg_server.psql(f"DROP ROLE IF EXISTS {ROLE}")
    pg_server.psql(f"CREATE ROLE {ROLE} LOGIN SUPERUSER PASSWORD '{DISTINCTIVE}'")
    return ROLE


@pytest.fixture(scope="module")
def baseline(pg_server: PgServer, role: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    text = _scenario(pg_server, tmp_path_factory.mktemp("pw"), DISTINCTIVE)
    assert_no_secret(text, DISTINCTIVE)
    # the scenario shows what it should: each failure named
    assert 'relation "result_status_pgshift_1" does not exist' in text
    assert "statement timeout" in text and '"result" is not a table' in text
    return text


@pytest.mark.parametrize("password", PASSWORDS)
def test_no_output_carries_or_mangles_around_the_password(
    pg_server: PgServer, role: str, baseline: str, tmp_path: Path, password: str
) -> None:
    text = _scenario(pg_server, tmp_path, password)
    assert_no_secret(text, password, distinctive=password == URL_SPECIAL)
    assert text == baseline
