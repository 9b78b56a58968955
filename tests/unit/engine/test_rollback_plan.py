"""What a rollback undoes, and what it refuses before anything runs (engine/rollback.py). PURE."""

from __future__ import annotations

import pytest

from pgshift.engine.rollback import down_path, plan_rollback
from pgshift.engine.state import compare
from pgshift.engine.tracking import Row, StepRecord
from pgshift.errors import DownFileMissing, PartlyApplied, RollbackOrder, UsageError
from pgshift.migrations import read_mapping

FILES = {
    "0001_a.sql": "CREATE TABLE a (id int);",
    "0002_b.sql": "CREATE TABLE b (id int);",
    "0003_c.sql": "CREATE TABLE c (id int);",
    "0002_b.down.sql": "DROP TABLE b;",
    "0003_c.down.sql": "DROP TABLE c;",
}


def _state(files: dict[str, str], applied: list[str], ids: list[int] | None = None):  # type: ignore[no-untyped-def]
    source = read_mapping(files, origin="src")
    rows = [
        Row(id=(ids[i] if ids else i + 1), hash=m.hash, created_at=m.when)
        for i, m in enumerate(m for m in source.migrations if m.name in applied)
    ]
    return source, compare(source, rows)


def test_newest_first_with_their_down_files() -> None:
    source, state = _state(FILES, ["0001_a", "0002_b", "0003_c"])
    undo = plan_rollback(source, state, "0001_a", [])
    assert [(u.up.name, u.down.sql) for u in undo] == [
        ("0003_c", "DROP TABLE c;"),
        ("0002_b", "DROP TABLE b;"),
    ]
    assert plan_rollback(source, state, "0003_c", []) == []


def test_a_missing_down_file_is_named_with_the_backup_hint() -> None:
    files = {k: v for k, v in FILES.items() if k != "0002_b.down.sql"}
    source, state = _state(files, ["0001_a", "0002_b", "0003_c"])
    with pytest.raises(DownFileMissing, match=r"src/0002_b\.down\.sql: migration 0002_b") as e:
        plan_rollback(source, state, "0001_a", [], restore_hint="restore /b/x.dump")
    assert e.value.hint == "restore /b/x.dump"


def test_tracking_order_that_disagrees_is_refused() -> None:
    source, state = _state(FILES, ["0001_a", "0002_b", "0003_c"], ids=[1, 3, 2])
    with pytest.raises(RollbackOrder, match=r"row id 2 \(0003_c\) was applied before row id 3"):
        plan_rollback(source, state, "0001_a", [])


def test_partly_applied_files_are_refused_but_the_rollbacks_own_progress_resumes() -> None:
    source, state = _state(FILES, ["0001_a", "0002_b"])
    c = source.get("0003_c")
    assert c is not None
    with pytest.raises(PartlyApplied, match="migration 0003_c is partly applied"):
        plan_rollback(source, state, "0001_a", [StepRecord("x-0", "0003_c", c.hash, None)])
    down = source.down_of("0002_b")
    assert down is not None
    own = StepRecord(f"{down.hash[:12]}-0", "0002_b", down.hash, None)
    assert [u.up.name for u in plan_rollback(source, state, "0001_a", [own])] == ["0002_b"]
    with pytest.raises(PartlyApplied, match="partly rolled back"):
        plan_rollback(source, state, "0001_a", [StepRecord("y-0", "0002_b", "other", None)])


def test_to_must_be_applied() -> None:
    source, state = _state(FILES, ["0001_a"])
    with pytest.raises(UsageError, match="--to 0002_b: that migration is not applied"):
        plan_rollback(source, state, "0002_b", [])


def test_down_paths_per_layout() -> None:
    source = read_mapping({"20250101000000_x.sql": "SELECT 1;"}, origin="src")
    m = source.migrations[0]
    assert down_path(m) == "src/20250101000000_x.down.sql"
    from dataclasses import replace

    assert down_path(replace(m, path="d/20250101000000_x/migration.sql")) == (
        "d/20250101000000_x/down.sql"
    )
