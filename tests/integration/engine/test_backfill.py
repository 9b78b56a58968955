"""Batched backfills: uuid keys, named keys, key errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import events, result_of, run_pgshift, write_drizzle_folder

pytestmark = pytest.mark.integration


def _apply(folder: Path, url: str, *extra: str):
    return run_pgshift("apply", "--dir", str(folder), "--output", "json", *extra, database_url=url)


def test_uuid_keyed_backfill(tmp_path: Path, database_url: str, psql) -> None:
    base = [
        "CREATE TABLE docs (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), title text NOT NULL, "
        "slug text);"
    ]
    folder = write_drizzle_folder(tmp_path / "m", base)
    assert _apply(folder, database_url).returncode == 0
    psql("INSERT INTO docs (title) SELECT 'Title ' || g FROM generate_series(1, 5000) g")
    folder = write_drizzle_folder(
        tmp_path / "m",
        [*base, "UPDATE docs SET slug = lower(replace(title, ' ', '-')) WHERE slug IS NULL;"],
    )
    proc = _apply(folder, database_url, "--target-batch-time", "5ms")
    assert proc.returncode == 0, proc.stderr
    progress = events(proc.stdout, "backfill.progress")
    walk = [p for p in progress if p["pass"] == "walk"]
    assert walk[-1]["rows"] == 5000 and walk[-1]["done"]
    assert len(walk[-1]["lastKey"]) == 36  # a uuid checkpoint
    assert psql("SELECT count(*) FROM docs WHERE slug IS NULL") == "0"
    assert psql("SELECT max(batches) > 1 FROM drizzle.pgshift_backfill") == "t"
    assert result_of(proc)["applied"][0]["steps"][0][1] == "backfill"


def test_backfill_progress_carries_the_tables_row_estimate_once_analyzed(
    tmp_path: Path, database_url: str, psql
) -> None:
    base = ["CREATE TABLE notes (id bigint PRIMARY KEY, body text);"]
    folder = write_drizzle_folder(tmp_path / "m", base)
    assert _apply(folder, database_url).returncode == 0
    psql("INSERT INTO notes SELECT g, NULL FROM generate_series(1, 3000) g")
    psql("ANALYZE notes")
    folder = write_drizzle_folder(
        tmp_path / "m", [*base, "UPDATE notes SET body = 'x' WHERE body IS NULL;"]
    )
    proc = _apply(folder, database_url, "--target-batch-time", "5ms")
    assert proc.returncode == 0, proc.stderr
    walk = [p for p in events(proc.stdout, "backfill.progress") if p["pass"] == "walk"]
    # reltuples, no scan: the operator's estimate of the time left (contract.progress.eta).
    assert {p.get("rowsEstimate") for p in walk} == {3000}


def test_named_key_and_directive_backfill(tmp_path: Path, database_url: str, psql) -> None:
    base = ["CREATE TABLE items (id bigint PRIMARY KEY, code text NOT NULL UNIQUE, n int);"]
    folder = write_drizzle_folder(tmp_path / "m", base)
    assert _apply(folder, database_url).returncode == 0
    psql(
        "INSERT INTO items SELECT g, 'c' || lpad(g::text, 6, '0'), 0 "
        "FROM generate_series(1, 3000) g"
    )
    # not idempotent (no guard): batched once, no catch-up pass
    folder = write_drizzle_folder(
        tmp_path / "m", [*base, "-- pgshift:backfill key=code\nUPDATE items SET n = n + 1;"]
    )
    proc = _apply(folder, database_url)
    assert proc.returncode == 0, proc.stderr
    assert {p["pass"] for p in events(proc.stdout, "backfill.progress")} == {"walk"}
    assert psql("SELECT min(n), max(n) FROM items") == "1|1"


def test_backfill_key_must_be_unique_not_null_indexed(
    tmp_path: Path, database_url: str, psql
) -> None:
    base = ["CREATE TABLE logs (id int, msg text);"]
    folder = write_drizzle_folder(tmp_path / "m", base)
    assert _apply(folder, database_url).returncode == 0
    psql("INSERT INTO logs VALUES (1, 'a')")
    folder = write_drizzle_folder(
        tmp_path / "m",
        [
            *base,
            "-- pgshift:backfill key=id\nUPDATE logs SET msg = upper(msg) WHERE msg <> upper(msg);",
        ],
    )
    proc = _apply(folder, database_url)
    assert proc.returncode == 2
    # found before the lock, so the line names the file and line (docs/runner.md, bad input)
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("error[BackfillKey]: ") and "0001_m1.sql:2: -- pgshift:backfill" in line
    assert "logs.id is nullable" in result_of(proc)["failure"]["message"]


def test_catch_up_before_validate_fills_rows_old_code_wrote_and_skips_when_none(
    tmp_path: Path, database_url: str, psql
) -> None:
    base = ["CREATE TABLE items (id bigserial PRIMARY KEY, name text NOT NULL, slug text);"]
    fill = "UPDATE items SET slug = 'item-' || id WHERE slug IS NULL;"
    not_null = "ALTER TABLE items ALTER COLUMN slug SET NOT NULL;"
    folder = write_drizzle_folder(tmp_path / "m", base)
    assert _apply(folder, database_url).returncode == 0
    psql("INSERT INTO items (name) SELECT 'n' || g FROM generate_series(1, 3000) g")
    folder = write_drizzle_folder(tmp_path / "m", [*base, fill, not_null])
    first = _apply(folder, database_url, "--target", "0001_m1", "--target-batch-time", "5ms")
    assert first.returncode == 0, first.stderr
    # nothing left after the walk: the catch-up pass is one scan, no batch.
    catchup = [p for p in events(first.stdout, "backfill.progress") if p["pass"] == "catchup"]
    assert catchup == [{**catchup[0], "batchSize": 0, "done": True}]
    # the old application still writes rows without a slug
    psql("INSERT INTO items (name) SELECT 'late' || g FROM generate_series(1, 50) g")
    second = _apply(folder, database_url)
    assert second.returncode == 0, second.stderr
    (before_validate,) = events(second.stdout, "backfill.progress")
    assert before_validate["pass"] == "catchup" and before_validate["rows"] == 50
    assert psql("SELECT count(*) FROM items WHERE slug IS NULL") == "0"
    assert psql(
        "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'items'::regclass "
        "AND attname = 'slug'"
    ) == "t"


@pytest.mark.parametrize(
    "table",
    [
        "CREATE TABLE logs (id int, msg text);",
        "CREATE TABLE logs (a int, b int, msg text, PRIMARY KEY (a, b));",
    ],
    ids=["no-primary-key", "composite-key"],
)
def test_automatic_batching_without_a_single_key_runs_as_written(
    tmp_path: Path, database_url: str, psql, table: str
) -> None:
    cols = "a, b, msg" if "PRIMARY KEY (a, b)" in table else "id, msg"
    folder = write_drizzle_folder(tmp_path / "m", [table])
    assert _apply(folder, database_url).returncode == 0
    psql(f"INSERT INTO logs ({cols}) SELECT g, {'g, ' if 'a, b' in cols else ''}NULL "
         "FROM generate_series(1, 100) g")
    fill = "UPDATE logs SET msg = 'x' WHERE msg IS NULL;"
    not_null = "ALTER TABLE logs ALTER COLUMN msg SET NOT NULL;"
    folder = write_drizzle_folder(tmp_path / "m", [table, fill, not_null])
    proc = _apply(folder, database_url, "--target", "0001_m1")
    assert proc.returncode == 0, proc.stderr
    (unbatched,) = events(proc.stdout, "backfill.unbatched")
    assert "primary key" in unbatched["why"]
    assert not events(proc.stdout, "backfill.progress")
    assert psql("SELECT count(*) FROM logs WHERE msg IS NULL") == "0"
    # old code writes rows meanwhile; the set-not-null recipe's catch-up fills them, unbatched.
    psql(f"INSERT INTO logs ({cols}) SELECT g, {'g, ' if 'a, b' in cols else ''}NULL "
         "FROM generate_series(101, 110) g")
    proc = _apply(folder, database_url)
    assert proc.returncode == 0, proc.stderr
    (caught,) = events(proc.stdout, "backfill.progress")
    assert caught["rows"] == 10 and caught["pass"] == "catchup"
    assert psql("SELECT count(*) FROM logs WHERE msg IS NULL") == "0"


def test_backfill_directive_on_a_table_without_a_key_names_file_and_line(
    tmp_path: Path, database_url: str, psql
) -> None:
    base = ["CREATE TABLE logs (id int, msg text);"]
    folder = write_drizzle_folder(tmp_path / "m", base)
    assert _apply(folder, database_url).returncode == 0
    psql("INSERT INTO logs VALUES (1, 'a')")
    folder = write_drizzle_folder(
        tmp_path / "m", [*base, "-- pgshift:backfill\nUPDATE logs SET msg = upper(msg);"]
    )
    proc = _apply(folder, database_url)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error[BackfillKey]: ")
    assert "0001_m1.sql:2: -- pgshift:backfill: backfill table logs has no primary key" in lines[0]
    assert psql("SELECT msg FROM logs") == "a"
