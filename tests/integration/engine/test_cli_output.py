"""What a person sees: text tables, lint, and the JSON summary's shape."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import result_of, run_pgshift, write_drizzle_folder

pytestmark = pytest.mark.integration


def test_text_output_is_a_readable_table(tmp_path: Path, database_url: str) -> None:
    folder = write_drizzle_folder(tmp_path / "m", ["CREATE TABLE u (id int);", "SELECT 1;"])
    plan = run_pgshift("plan", "--dir", str(folder), database_url=database_url)
    assert plan.returncode == 0, plan.stderr
    lines = plan.stdout.splitlines()
    assert lines[0].split() == ["MIGRATION", "STATE"]
    assert lines[2].split() == ["0000_m0", "pending"]
    assert "STEP" in plan.stdout and "applied: 0  pending: 2" in plan.stdout
    applied = run_pgshift("apply", "--dir", str(folder), database_url=database_url)
    assert applied.returncode == 0 and "APPLIED" in applied.stdout
    status = run_pgshift("status", "--dir", str(folder), database_url=database_url)
    assert status.returncode == 0
    assert "applied: 2  pending: 0  last: 0001_m1" in status.stdout


def test_lint_needs_no_database_and_reports_findings(tmp_path: Path) -> None:
    folder = write_drizzle_folder(
        tmp_path / "m", ["CREATE TABLE u (id int, x text);", "ALTER TABLE u DROP COLUMN x;"]
    )
    proc = run_pgshift("lint", "--dir", str(folder), "--output", "json")
    assert proc.returncode in (0, 1), proc.stderr
    data = result_of(proc)
    rules = {f["rule"] for f in data["findingList"]}
    assert "ban-drop-column" in rules
    assert data["findingList"][0]["path"].endswith("0001_m1.sql")
    text = run_pgshift("lint", "--dir", str(folder))
    assert "0001_m1.sql:1: " in text.stdout and "[ban-drop-column]" in text.stdout


def test_plan_json_lists_steps_and_affected_tables(tmp_path: Path, database_url: str) -> None:
    folder = write_drizzle_folder(tmp_path / "m", ["CREATE TABLE u (id int, x text);"])
    assert run_pgshift("apply", "--dir", str(folder), database_url=database_url).returncode == 0
    folder = write_drizzle_folder(
        tmp_path / "m", ["CREATE TABLE u (id int, x text);", "ALTER TABLE u DROP COLUMN x;"]
    )
    data = result_of(
        run_pgshift("plan", "--dir", str(folder), "--output", "json", database_url=database_url)
    )
    (step,) = data["steps"]
    assert step["destructive"] and step["phase"] == "contract" and step["migration"] == "0001_m1"
    assert data["affectedTables"] == ["u"] and data["willRun"] == [step["key"]]
    assert data["migrations"] == [
        {"name": "0000_m0", "state": "applied"},
        {"name": "0001_m1", "state": "pending"},
    ]
