"""A file over a megabyte (issue 14): parsed in batches (safety.statements.batches) and sent as
several query strings of one transaction (engine.runner.QUERY_CHARS): all or nothing still,
the failing statement named by its line, directives and lint as for a small file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import result_of, run_pgshift, write_plain_folder

pytestmark = pytest.mark.integration

ROWS = 12_000  # ~1.3 MB: over safety.statements.BATCHED_ABOVE and runner.QUERY_CHARS


def _seed(bad_at: int | None = None) -> str:
    lines = ["CREATE TABLE seed (id int PRIMARY KEY, note text NOT NULL);"]
    for i in range(ROWS):
        key = 0 if i == bad_at else i + 1  # 0 twice: a duplicate key near the end
        lines.append(f"INSERT INTO seed VALUES ({key}, 'a note; with -- what looks like code');")
        if i == 0:
            lines.append("INSERT INTO seed VALUES (0, $$ a dollar ; quote $$);")
    lines.append("-- pgshift:allow=ban-drop-table\nDROP TABLE IF EXISTS gone; -- trailing\n")
    return "\n".join(lines)


def test_a_large_file_runs_whole_or_not_at_all(tmp_path: Path, database_url: str, psql) -> None:
    bad_at = ROWS - 100
    folder = write_plain_folder(tmp_path / "bad", [_seed(bad_at)])
    proc = run_pgshift("apply", "--dir", str(folder), "--output", "json", database_url=database_url)
    assert proc.returncode == 1, proc.stderr
    failure = result_of(proc)["failure"]
    assert failure["sqlstate"] == "23505" and failure["line"] == bad_at + 3
    assert psql("SELECT to_regclass('seed') IS NULL") == "t"  # every piece rolled back

    good = write_plain_folder(tmp_path / "good", [_seed()])
    proc = run_pgshift("apply", "--dir", str(good), "--output", "json", database_url=database_url)
    assert proc.returncode == 0, proc.stderr
    assert psql("SELECT count(*), max(id) FROM seed") == f"{ROWS + 1}|{ROWS}"
    lint = run_pgshift("lint", "--dir", str(good))
    assert "ban-drop-table" not in lint.stdout  # the directive reached its statement
