"""The run summary contract: every type round-trips through its wire form, unknown fields
are ignored, the previous version (today's recorded summaries) reads, an unknown one is named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pgshift.contract import (
    MAX_SUMMARY_BYTES,
    READABLE_VERSIONS,
    SCHEMA_VERSION,
    AppliedMigration,
    AppliedStep,
    BackupResult,
    Counts,
    DriftItem,
    Finding,
    FindingCounts,
    LintResult,
    MigrationState,
    PlanResult,
    PlanStep,
    RestoreResult,
    RollbackResult,
    RunFailure,
    RunSummary,
    SourceProblem,
    StatusResult,
    Stopped,
    UnknownSummaryVersion,
    VerifyResult,
    bounded_json,
    read_summary,
    write_summary,
)

V1 = Path(__file__).parents[2] / "data" / "summaries" / "v1"

FAILURE = RunFailure(
    code="MigrationFailed",
    message="duplicate key",
    migration="0004_m3",
    step="504b6c8d9ad2-0",
    statement="INSERT INTO users VALUES (1), (1)",
    line=1,
    sqlstate="23505",
    detail="Key (id)=(1) already exists.",
)
FINDING = Finding("ban-drop-column", "warning", "DROP COLUMN users.email", "0003.sql", 2, "h", "d")
MIGRATIONS = (MigrationState("0001_a", "applied"), MigrationState("0002_b", "pending", True))
PARTS: list[Any] = [
    Stopped("StopBefore", step="k-0", migration="0003_m2", phase="contract", why="--stop-before"),
    Stopped("Done"),
    AppliedMigration(
        "0001_a", (AppliedStep("k-0", "expand", 12), AppliedStep("k-1", "backfill", 3))
    ),
    Counts(3, 1, ("0004_m3",), "0003_m2"),
    FAILURE,
    RunFailure(code="UnknownMigration", message="--target nope", hint="h"),
    PlanStep("k-0", "0001_a", "contract", "transaction", True, ("users",), "drop column"),
    FindingCounts(1, 2),
    FINDING,
    MIGRATIONS[1],
    SourceProblem("Drift", "0001_a changed"),
    LintResult(FindingCounts(0, 1), (FINDING,)),
    PlanResult(
        steps=(PlanStep("k-0", "0001_a"),),
        will_run=("k-0",),
        affected_tables=("public.users",),
        findings=FindingCounts(0, 1),
        migrations=MIGRATIONS,
        problems=(SourceProblem("OutOfOrder", "x"),),
        finding_list=(FINDING,),
    ),
    StatusResult("drizzle.__drizzle_migrations", "stable", MIGRATIONS, ("k-0",), ()),
    BackupResult(
        "/backups/a.dump",
        "ab" * 32,
        1856,
        "tables",
        ("users",),
        ("gone",),
        "2026-12-01T21:01:16Z",
        "u@h:5432/db",
        15,
        "15.20",
    ),
    BackupResult("/backups/b.dump", pruned=("old.dump",)),
    RestoreResult("/backups/a.dump", "ab" * 32, True, "u@h:5432/db", 4),
    DriftItem("changed", "column", "public.users.avatar", "type", "users.avatar: type ..."),
    VerifyResult(
        in_sync=False,
        drift=(DriftItem("missing", "index", "public.users.i", None, "users.i: index missing"),),
        ignored=1,
        compared=12,
        schemas=("public",),
        expected_up_to="0004_m4",
        pending=1,
        baseline_up_to="0000_m0",
        cleaned=("pgshift_scratch_0123456789ab",),
    ),
    VerifyResult(in_sync=True),
    RollbackResult(
        "0001_a", ("0004_d",), ("0003_c", "0002_b"), ("0005_e",), ("0004_d",), ("0004_d",),
        ("k-0", "k-1"),
    ),
    RestoreResult(
        "/backups/a.dump",
        scope="tables",
        tables=("users",),
        backup_time="2026-01-01T00:00:00Z",
        age_seconds=60,
        restore_id="uid/" + "ab" * 32,
        tracking_table="drizzle.__drizzle_migrations",
        pending_again=("0002_b",),
    ),
]


@pytest.mark.parametrize("part", PARTS, ids=lambda p: type(p).__name__)
def test_every_part_round_trips_through_its_wire_form(part: Any) -> None:
    wire = json.loads(
        json.dumps(part.as_list() if isinstance(part, AppliedStep) else part.as_dict())
    )
    back = (
        AppliedStep.from_list(wire) if isinstance(part, AppliedStep) else type(part).from_dict(wire)
    )
    assert back == part


SUMMARIES = [
    RunSummary(
        "apply",
        stopped=Stopped("Done"),
        applied=(PARTS[2],),
        counts=PARTS[3],
        applied_now=("0001_a",),
    ),
    RunSummary(
        "apply", ok=False, stopped=Stopped("Failed"), failure=FAILURE, source_digest="sha256:x"
    ),
    RunSummary("apply", ok=False, stopped=Stopped("Failed"), counts=None, failure=PARTS[5]),
    RunSummary("plan", stopped=Stopped("Done"), plan=PARTS[12]),
    RunSummary("lint", lint=PARTS[11], stopped=None),
    RunSummary("status", ok=False, status=PARTS[13]),
    RunSummary("backup", stopped=Stopped("Done"), backup=PARTS[14]),
    RunSummary("restore", stopped=Stopped("Done"), restore=PARTS[16]),
    RunSummary("verify", ok=False, stopped=Stopped("Done"), verify=PARTS[18]),
    RunSummary("baseline", stopped=Stopped("Done"), marked=("0001_a", "0002_b")),
    RunSummary("plan", truncated=True, plan=PlanResult()),
    RunSummary("rollback", stopped=Stopped("Done"), backup=PARTS[14], rollback=PARTS[20]),
]


@pytest.mark.parametrize("summary", SUMMARIES, ids=lambda s: s.command)
def test_every_summary_round_trips_through_write_and_read(summary: RunSummary) -> None:
    text = write_summary(summary)
    assert json.loads(text)["schema"] == SCHEMA_VERSION
    assert read_summary(text) == summary
    assert read_summary(json.loads(text)) == summary


def test_unknown_fields_are_ignored_at_every_level() -> None:
    wire = SUMMARIES[1].as_dict() | {"newTopLevel": {"x": 1}}
    wire["failure"] = wire["failure"] | {"newInFailure": 1}
    wire["stopped"] = wire["stopped"] | {"newInStopped": [1]}
    assert read_summary(wire) == SUMMARIES[1]


def test_values_of_the_wrong_type_read_as_absent() -> None:
    summary = read_summary(
        {"command": "apply", "appliedCount": "x", "pending": "0001", "failure": "boom",
         "steps": [{"key": "k", "tables": "users"}, "junk"], "stopped": []}
    )  # fmt: skip
    assert summary.counts == Counts(0, 0, (), None)
    assert summary.failure is None and summary.stopped is None
    assert summary.plan is not None and summary.plan.steps == (PlanStep("k", ""),)


def test_counts_absent_mean_unknown_and_are_not_written() -> None:
    wire = SUMMARIES[2].as_dict()
    for key in ("appliedCount", "pendingCount", "pending", "lastApplied", "sourceDigest"):
        assert key not in wire
    assert read_summary(wire).counts is None


def test_a_failure_before_any_migration_keeps_the_short_form() -> None:
    assert set(PARTS[5].as_dict()) == {"code", "message", "hint", "sqlstate", "retryable"}
    assert set(FAILURE.as_dict()) == {
        "migration", "step", "statement", "line", "sqlstate", "message", "detail", "hint",
        "retryable", "code",
    }  # fmt: skip


def test_previous_version_is_read_and_current_one_too() -> None:
    assert READABLE_VERSIONS == (SCHEMA_VERSION - 1, SCHEMA_VERSION)
    v1 = {k: v for k, v in SUMMARIES[0].as_dict().items() if k != "schema"}
    assert read_summary(v1).schema == 1
    assert read_summary(v1) == SUMMARIES[0].__class__(**{**SUMMARIES[0].__dict__, "schema": 1})


@pytest.mark.parametrize("version", [99, 0, "2", True, [2]])
def test_an_unknown_version_is_named_with_the_versions_read(version: object) -> None:
    with pytest.raises(UnknownSummaryVersion) as info:
        read_summary({"schema": version, "command": "apply", "ok": True})
    assert info.value.found == version
    assert str(info.value) == f"runner summary schema {version}; this operator reads 1 and 2"


def test_text_that_is_no_object_is_refused() -> None:
    with pytest.raises(ValueError):
        read_summary("[1, 2]")


def test_the_bound_keeps_the_schema_even_in_the_last_resort_form() -> None:
    huge = RunSummary("plan", failure=FAILURE, plan=PlanResult(affected_tables=("t" * 5000,)))
    text = write_summary(huge, limit=600)
    assert len(text.encode()) <= 600
    data = json.loads(text)
    assert data["schema"] == SCHEMA_VERSION and data["truncated"] is True
    back = read_summary(text)
    assert back.truncated and back.failure is not None and back.failure.sqlstate == "23505"


def test_a_long_drift_list_is_cut_within_its_part_not_dropped_with_it() -> None:
    """`verify.drift` sits one level down: the bound halves it, and the part stays."""
    drift = tuple(
        DriftItem("extra", "column", f"public.t.c{i}", None, f"t.c{i}: column in production")
        for i in range(300)
    )
    summary = RunSummary("verify", ok=False, verify=VerifyResult(in_sync=False, drift=drift))
    text = write_summary(summary)
    assert len(text.encode()) <= MAX_SUMMARY_BYTES
    back = read_summary(text)
    assert back.truncated and back.verify is not None and back.verify.in_sync is False
    assert 0 < len(back.verify.drift) < 300
    assert back.verify.drift[0] == drift[0]


def test_bounded_json_cleans_values_not_text() -> None:
    text = bounded_json({"failure": {"message": "secret"}}, clean=lambda d: {"failure": "***"})
    assert json.loads(text) == {"failure": "***"}


# --- summaries of today's shape (schema 1), recorded from a real run ----------------------------


def _recorded(name: str) -> RunSummary:
    return read_summary((V1 / f"{name}.json").read_text())


def test_every_recorded_v1_summary_reads_and_writes_back_the_same_fields() -> None:
    files = sorted(V1.glob("*.json"))
    assert len(files) >= 8
    for path in files:
        raw = json.loads(path.read_text())
        assert "schema" not in raw
        summary = read_summary(raw)
        assert summary.schema == 1
        again = summary.as_dict()
        assert again.pop("schema") == 1
        assert again == raw, path.name  # the typed form loses nothing of today's shape


def test_recorded_plan_has_its_steps_gates_and_tables() -> None:
    s = _recorded("plan")
    assert (
        s.command == "plan" and s.ok and s.counts == Counts(0, 3, ("0001_m0", "0002_m1", "0003_m2"))
    )
    assert s.plan is not None
    assert [(p.migration, p.phase, p.tx, p.destructive) for p in s.plan.steps] == [
        ("0001_m0", "expand", "transaction", False),
        ("0002_m1", "expand", "autocommit", False),
        ("0003_m2", "contract", "transaction", True),
    ]
    assert s.stopped is not None and s.stopped.reason == "StopBefore"
    assert s.stopped.step == s.plan.steps[2].key
    assert s.plan.will_run == tuple(p.key for p in s.plan.steps[:2])
    assert s.plan.affected_tables and s.findings == FindingCounts(0, 1)
    assert [m.name for m in s.plan.migrations] == ["0001_m0", "0002_m1", "0003_m2"]


def test_recorded_applies_have_their_counts_steps_and_failure() -> None:
    stopped = _recorded("apply_stopped")
    assert stopped.applied_now == ("0001_m0", "0002_m1")
    assert [a.migration for a in stopped.applied] == ["0001_m0", "0002_m1"]
    assert stopped.applied[0].steps[0].phase == "expand"
    done = _recorded("apply_done")
    assert done.counts == Counts(3, 0, (), "0003_m2") and done.failure is None
    failed = _recorded("apply_failed")
    assert not failed.ok and failed.stopped is not None and failed.stopped.reason == "Failed"
    assert failed.failure is not None
    assert (failed.failure.code, failed.failure.sqlstate, failed.failure.retryable) == (
        "MigrationFailed", "23505", False,
    )  # fmt: skip
    assert failed.failure.migration == "0004_m3" and failed.failure.line == 1
    bad = _recorded("bad_input")
    assert bad.counts is None and bad.failure is not None
    assert bad.failure.code == "UnknownMigration"


def test_recorded_backup_lint_and_status() -> None:
    backup = _recorded("backup").backup
    assert backup is not None and backup.file.endswith("start.dump")
    assert backup.scope == "tables" and backup.tables == ("users",) and len(backup.sha256) == 64
    assert backup.size > 0 and backup.server_major == 15
    lint = _recorded("lint")
    assert lint.lint is not None and lint.lint.finding_list[0].rule == "ban-drop-column"
    status = _recorded("status").status
    assert status is not None and status.tracking_form == "stable"
    assert [m.state for m in status.migrations] == ["applied"] * 3 + ["pending"]
