"""What differs between PostgreSQL 13 and 18, proven on the session's server (`--pg-major`).

`make test` runs this file (with the rest of the `compat` subset) once per major, 13 through 18.
Each case is a real difference between the majors, not behaviour that holds across them:

- the syntax table (`safety/versions.py`): each feature runs on the majors that have it, fails
  on the ones before, and pgshift refuses it there by name before anything runs;
- DETACH PARTITION ... CONCURRENTLY (14+) through the engine: outside a transaction;
- UNIQUE NULLS NOT DISTINCT (15+) through the engine;
- SET NOT NULL through its rewrite: PostgreSQL 18 records NOT NULL in pg_constraint;
- CREATE INDEX on a partitioned table: CONCURRENTLY is refused by every major (a documented
  limit of the concurrent-index rewrite) and `rewrite=false` is the way through;
- pg_dump / pg_restore: the chosen pg_dump is at least the server's major; a backup restores
  into the same major and into 18 (`\\restrict` in pg_restore's script output).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from pgshift.errors import SyntaxTooNew
from pgshift.safety.versions import FEATURES, GRAMMAR_MAJOR, check_sql
from tests.helpers import result_of, run_pgshift, start_pgshift, wait_for, write_plain_folder
from tests.pgserver import PgServer

pytestmark = [pytest.mark.integration, pytest.mark.compat]


@dataclass(frozen=True)
class Example:
    feature: str
    sql: str
    setup: str = ""


BASE = "CREATE TABLE t (a int, b int); INSERT INTO t VALUES (1, 1);"
PARTED = (
    "CREATE TABLE p (a int) PARTITION BY RANGE (a); "
    "CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (10);"
)
FK = "CREATE TABLE r (a int PRIMARY KEY); INSERT INTO r VALUES (1); " + (
    "ALTER TABLE t ADD CONSTRAINT t_r FOREIGN KEY (a) REFERENCES r (a);"
)
MERGE = "MERGE INTO t USING (SELECT 2 AS a) s ON t.a = s.a "

#: one statement per feature of the table, run on the real server.
EXAMPLES = [
    Example("ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY",
            "ALTER TABLE p DETACH PARTITION p1 CONCURRENTLY", PARTED),
    Example("UNIQUE NULLS NOT DISTINCT", "CREATE UNIQUE INDEX t_a ON t (a) NULLS NOT DISTINCT"),
    Example("MERGE", MERGE + "WHEN NOT MATCHED THEN INSERT VALUES (s.a)"),
    Example("ALTER TABLE ... SET ACCESS METHOD", "ALTER TABLE t SET ACCESS METHOD heap"),
    Example("SQL/JSON constructors and IS JSON", "SELECT JSON_OBJECT('a': 1), '{}' IS JSON"),
    Example("JSON_TABLE and the SQL/JSON query functions",
            "SELECT * FROM JSON_TABLE(jsonb '[{\"a\": 1}]', '$[*]' COLUMNS (a int PATH '$.a')) j"),
    Example("MERGE ... WHEN NOT MATCHED BY SOURCE",
            MERGE + "WHEN NOT MATCHED BY SOURCE THEN DELETE"),
    Example("MERGE ... RETURNING",
            MERGE + "WHEN NOT MATCHED THEN INSERT VALUES (s.a) RETURNING t.a"),
    Example("ALTER TABLE ... ALTER COLUMN ... SET EXPRESSION",
            "ALTER TABLE g ALTER COLUMN b SET EXPRESSION AS (a * 2)",
            "CREATE TABLE g (a int, b int GENERATED ALWAYS AS (a) STORED);"),
    Example("NOT NULL ... NOT VALID", "ALTER TABLE t ADD CONSTRAINT t_a_nn NOT NULL a NOT VALID"),
    Example("virtual generated columns (GENERATED ALWAYS AS (...) [VIRTUAL])",
            "CREATE TABLE v (a int, b int GENERATED ALWAYS AS (a * 2))"),
    Example("NOT ENFORCED constraints",
            "ALTER TABLE t ADD CONSTRAINT t_pos CHECK (a > 0) NOT ENFORCED"),
    Example("temporal keys (WITHOUT OVERLAPS / PERIOD)",
            "CREATE TABLE k (s int4range, r tstzrange, PRIMARY KEY (s, r WITHOUT OVERLAPS))"),
    Example("ALTER CONSTRAINT ... [NOT] ENFORCED / [NO] INHERIT",
            "ALTER TABLE t ALTER CONSTRAINT t_r NOT ENFORCED", FK),
]  # fmt: skip
#: needs a detach interrupted half-way, which a test cannot stage: parsed and refused only.
NOT_RUN = {"ALTER TABLE ... DETACH PARTITION ... FINALIZE"}
SINCE = {f.name: f.since for f in FEATURES}


def test_every_feature_has_an_example() -> None:
    assert {e.feature for e in EXAMPLES} | NOT_RUN == set(SINCE)


def _where(offset: int) -> str:
    return f"example:{offset}"


def test_the_syntax_table_matches_the_server(pg_server: PgServer, database_url: str) -> None:
    """Each feature runs on the majors the table says have it and fails on the others, where
    pgshift refuses it by name (each example in a schema of its own, one database)."""
    major = pg_server.major
    wrong = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        for n, example in enumerate(EXAMPLES):
            since = SINCE[example.feature]
            conn.execute(f"CREATE SCHEMA s{n}; SET search_path = s{n}")  # type: ignore[arg-type]
            conn.execute(BASE + example.setup)  # type: ignore[arg-type]
            try:
                conn.execute(example.sql)  # type: ignore[arg-type]
                ran = True
            except psycopg.Error:
                ran = False
            try:
                check_sql(example.sql, major, _where)
                refused = ""
            except SyntaxTooNew as exc:
                refused = exc.message
            if ran != (major >= since) or bool(refused) == ran:
                wrong.append(f"{example.feature} (since {since}): ran={ran} refused={refused!r}")
            elif refused:
                assert f"the server is PostgreSQL {major}" in refused
    assert not wrong, f"PostgreSQL {major}: " + "; ".join(wrong)


def test_the_grammar_is_at_least_the_server_major(pg_server: PgServer) -> None:
    # pglast's grammar (GRAMMAR_MAJOR) must know every supported major's syntax.
    assert pg_server.major <= GRAMMAR_MAJOR


def apply(folder: Path, url: str) -> tuple[int, dict, str]:
    proc = run_pgshift("apply", "--dir", str(folder), "--output", "json", database_url=url)
    summary = result_of(proc) if proc.returncode in (0, 1) else {}
    return proc.returncode, summary, proc.stderr


def _applied(psql: Callable[[str], str]) -> int:
    if psql("SELECT to_regclass('drizzle.__drizzle_migrations') IS NULL") == "t":
        return 0
    return int(psql("SELECT count(*) FROM drizzle.__drizzle_migrations"))


def test_detach_partition_concurrently_runs_outside_a_transaction(
    tmp_path: Path, database_url: str, psql: Callable[[str], str], pg_major: int
) -> None:
    psql(PARTED + "INSERT INTO p VALUES (1);")
    folder = write_plain_folder(tmp_path / "m", ["ALTER TABLE p DETACH PARTITION p1 CONCURRENTLY;"])
    code, summary, stderr = apply(folder, database_url)
    if pg_major < 14:
        assert code == 2 and stderr.strip().startswith("error[SyntaxTooNew]: ")
        assert "needs PostgreSQL 14" in stderr
        assert psql("SELECT count(*) FROM pg_inherits") == "1"  # nothing ran
        return
    assert code == 0, stderr + json.dumps(summary)
    assert psql("SELECT count(*) FROM pg_inherits") == "0"
    assert psql("SELECT count(*) FROM p1") == "1"


def test_unique_nulls_not_distinct_through_the_engine(
    tmp_path: Path, database_url: str, psql: Callable[[str], str], pg_major: int
) -> None:
    psql("CREATE TABLE u (id int PRIMARY KEY, code text); INSERT INTO u VALUES (1, NULL);")
    folder = write_plain_folder(
        tmp_path / "m", ["CREATE UNIQUE INDEX u_code ON u (code) NULLS NOT DISTINCT;"]
    )
    code, _summary, stderr = apply(folder, database_url)
    if pg_major < 15:
        assert code == 2 and "error[SyntaxTooNew]: " in stderr and "needs PostgreSQL 15" in stderr
        assert psql("SELECT count(*) FROM pg_indexes WHERE indexname = 'u_code'") == "0"
        return
    assert code == 0, stderr
    with psycopg.connect(database_url) as conn, pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("INSERT INTO u VALUES (2, NULL)")


def test_set_not_null_rewrite_and_the_catalog_of_each_major(
    tmp_path: Path, database_url: str, psql: Callable[[str], str], pg_major: int
) -> None:
    psql("CREATE TABLE n (id int PRIMARY KEY, a int); INSERT INTO n SELECT g, g FROM "
         "generate_series(1, 100) g;")  # fmt: skip
    folder = write_plain_folder(tmp_path / "m", ["ALTER TABLE n ALTER COLUMN a SET NOT NULL;"])
    code, _summary, stderr = apply(folder, database_url)
    assert code == 0, stderr
    assert psql("SELECT attnotnull FROM pg_attribute WHERE attrelid = 'n'::regclass "
                "AND attname = 'a'") == "t"  # fmt: skip
    kinds = psql("SELECT string_agg(contype::text, ',' ORDER BY contype) FROM pg_constraint "
                 "WHERE conrelid = 'n'::regclass")  # fmt: skip
    # 18 records NOT NULL as a constraint ('n', for id's primary key and for a); the rewrite's
    # helper CHECK is gone on every major.
    assert kinds == ("n,n,p" if pg_major >= 18 else "p")
    assert _applied(psql) == 1


def test_concurrent_index_on_a_partitioned_table_is_a_documented_limit(
    tmp_path: Path, database_url: str, psql: Callable[[str], str]
) -> None:
    """No major builds an index CONCURRENTLY on a partitioned table: the concurrent-index
    rewrite fails there with the server's message, and `-- pgshift:rewrite=false` builds it."""
    psql(PARTED)
    folder = write_plain_folder(tmp_path / "m", ["CREATE INDEX p_a ON p (a);"])
    code, summary, _stderr = apply(folder, database_url)
    assert code == 1
    assert summary["failure"]["sqlstate"] == "0A000"
    assert "partitioned" in summary["failure"]["message"]
    folder = write_plain_folder(
        tmp_path / "m", ["-- pgshift:rewrite=false\nCREATE INDEX p_a ON p (a);"]
    )
    code, _summary, stderr = apply(folder, database_url)
    assert code == 0, stderr
    assert psql("SELECT count(*) FROM pg_indexes WHERE tablename IN ('p', 'p1')") == "2"


def _backup(url: str, to: Path, env: dict[str, str] | None = None) -> dict:
    proc = run_pgshift("backup", "--to", str(to), "--output", "json", database_url=url, env=env)
    assert proc.returncode == 0, proc.stderr
    return result_of(proc)["backup"]


def test_backup_restores_into_the_same_major_and_into_18(
    tmp_path: Path,
    pg_server: PgServer,
    database_url: str,
    psql: Callable[[str], str],
    pg_servers: Callable[[int], PgServer],
) -> None:
    psql("CREATE TYPE mood AS ENUM ('sad', 'happy'); "
         "CREATE TABLE a (id int PRIMARY KEY, v text NOT NULL, m mood, "
         "CONSTRAINT v_short CHECK (length(v) < 10)); "
         "INSERT INTO a VALUES (1, 'one', 'sad'), (2, 'two', 'happy'); "
         "CREATE INDEX a_v ON a (v);")  # fmt: skip
    dump = tmp_path / "db.dump"
    info = _backup(database_url, dump)
    assert info["serverMajor"] == pg_server.major
    assert int(info["pgDump"].split(".")[0]) >= pg_server.major
    targets = [pg_server] + ([pg_servers(18)] if pg_server.major != 18 else [])
    for target in targets:
        name = f"restored_{tmp_path.name[-12:].replace('-', '_').lower()}"
        target.create_database(name)
        try:
            proc = run_pgshift("restore", "--from", str(dump), database_url=target.url(name))
            assert proc.returncode == 0, f"into {target.major}: {proc.stderr}"
            rows = target.psql("SELECT string_agg(v || ':' || m, ',' ORDER BY id) FROM a", name)
            assert rows == "one:sad,two:happy", target.major
            assert target.psql("SELECT count(*) FROM pg_indexes WHERE indexname = 'a_v'",
                               name) == "1"  # fmt: skip
        finally:
            target.drop_database(name)


def test_pg_restore_script_output_starts_with_restrict(
    tmp_path: Path, pg_server: PgServer, database_url: str, psql: Callable[[str], str]
) -> None:
    """pg_dump/pg_restore since the August 2025 releases (13.22, 14.19, 15.14, 16.10, 17.6, 18)
    fence a script in `\\restrict KEY` ... `\\unrestrict KEY`: a script is for psql only."""
    import subprocess

    psql("CREATE TABLE a (id int)")
    dump = tmp_path / "db.dump"
    _backup(database_url, dump)
    out = subprocess.run(
        [str(pg_server.client_bin / "pg_restore"), "--file=-", str(dump)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    lines = [ln for ln in out.splitlines() if ln.startswith("\\")]
    assert lines[0].startswith("\\restrict ") and lines[-1].startswith("\\unrestrict ")


def test_sigkill_mid_file_leaves_it_whole_or_absent(
    tmp_path: Path, database_url: str, psql: Callable[[str], str], session, pg_major: int
) -> None:
    """A run killed while its one-transaction file runs: 14+ notices within a second
    (client_connection_check_interval) and rolls the file back; 13 has no such check, so the
    statement runs to its end and the file commits whole, tracking row included (documented:
    the migration lock is held until then). Never half a file."""
    slow = "CREATE TABLE a (id int);\nINSERT INTO a VALUES (1);\nSELECT pg_sleep(3);"
    folder = write_plain_folder(tmp_path / "m", [slow])
    watcher = session()
    proc = start_pgshift("apply", "--dir", str(folder), database_url=database_url)
    wait_for(
        lambda: watcher.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgshift' "
            "AND wait_event = 'PgSleep'"
        ).fetchone()[0] == 1,
        "pg_sleep to run",
    )  # fmt: skip
    proc.kill()
    proc.communicate()  # waits, and closes its pipes
    wait_for(
        lambda: watcher.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgshift' "
            "AND datname = current_database()"
        ).fetchone()[0] == 0,
        "the killed run's backend to end",
        limit=30,
    )  # fmt: skip
    whole = pg_major < 14
    assert psql("SELECT to_regclass('a') IS NOT NULL") == ("t" if whole else "f")
    assert _applied(psql) == (1 if whole else 0)
