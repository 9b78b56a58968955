"""A failed CREATE UNIQUE INDEX CONCURRENTLY leaves an INVALID index that still rejects
duplicates in new writes: the runner drops it at once, against real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import events, result_of, run_pgshift, write_drizzle_folder

pytestmark = pytest.mark.integration

BASE = "CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL);"


@pytest.mark.parametrize(
    ("statement", "index"),
    [
        ('ALTER TABLE "items" ADD CONSTRAINT "items_name_unique" UNIQUE("name");',
         "items_name_unique"),
        ("CREATE UNIQUE INDEX items_name_key ON items (name);", "items_name_key"),
    ],
    ids=["unique-constraint", "unique-index"],
)
def test_failed_unique_build_is_dropped_at_once(
    tmp_path: Path, database_url: str, psql, statement: str, index: str
) -> None:
    folder = write_drizzle_folder(tmp_path / "m", [BASE])
    assert run_pgshift("apply", "--dir", str(folder), database_url=database_url).returncode == 0
    psql("INSERT INTO items (name) VALUES ('a'), ('b'), ('b')")
    folder = write_drizzle_folder(tmp_path / "m", [BASE, statement])
    proc = run_pgshift(
        "apply", "--dir", str(folder), "--output", "json", database_url=database_url
    )
    assert proc.returncode == 1
    failure = result_of(proc)["failure"]
    assert failure["sqlstate"] == "23505" and failure["migration"] == "0001_m1"
    assert [e["index"] for e in events(proc.stdout, "index.dropInvalid")] == [index]
    # no INVALID index is left to reject the application's duplicates
    assert psql(f"SELECT to_regclass('{index}') IS NULL") == "t"
    psql("INSERT INTO items (name) VALUES ('a')")
    assert psql("SELECT count(*) FROM items WHERE name = 'a'") == "2"
    # fixed data: the rerun builds it
    psql("DELETE FROM items WHERE id IN (SELECT max(id) FROM items GROUP BY name "
         "HAVING count(*) > 1)")
    rerun = run_pgshift("apply", "--dir", str(folder), database_url=database_url)
    assert rerun.returncode == 0, rerun.stderr
    assert psql(
        f"SELECT indisvalid AND indisunique FROM pg_index WHERE indexrelid = '{index}'::regclass"
    ) == "t"
