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
    assert proc.stderr.strip().splitlines()[-1].startswith("error[BackfillKey]: 0001_m1")
    assert "logs.id is nullable" in result_of(proc)["failure"]["message"]
