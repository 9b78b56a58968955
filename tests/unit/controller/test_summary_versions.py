"""A runner image of another pgshift version reports to this operator (Constraints of issue
10): the previous summary version is read as today, an unknown one stalls with a named reason."""

from __future__ import annotations

import json
from pathlib import Path

from pgshift.controller.decide import decide
from pgshift.controller.intent import Action
from pgshift.controller.status import REASONS, Reason, render
from tests.unit.controller.test_decide import (
    DIGEST,
    E1,
    NOW,
    REF,
    finished,
    observe,
    plan_result,
    step,
)

V1 = Path(__file__).parents[2] / "data" / "summaries" / "v1"


def test_a_summary_of_an_unknown_schema_stalls_naming_both_versions() -> None:
    d = decide(observe())
    d = step(d.memory, job=finished(d, plan_result(E1)))
    assert d.run is not None and d.run.action is Action.APPLY
    newer = {"schema": 99, "command": "apply", "ok": True, "appliedCount": 9, "pendingCount": 0}
    d = step(d.memory, job=finished(d, newer))
    assert d.reason is Reason.SUMMARY_VERSION_UNKNOWN and REASONS[d.reason].stalled
    assert d.run is None
    assert "runner summary schema 99; this operator reads 1 and 2" in d.message
    assert d.memory.failure is not None and not d.memory.failure.retryable
    assert d.memory.applied_count == 0  # nothing of the unreadable summary is believed
    status = render(
        reason=d.reason, message=d.message, memory=d.memory, generation=REF.generation,
        name=REF.name, now=NOW.isoformat(), previous=None,
    )  # fmt: skip
    stalled = {c["type"]: c for c in status["conditions"]}["Stalled"]
    assert stalled["status"] == "True" and stalled["reason"] == "SummaryVersionUnknown"


def test_a_recorded_v1_apply_failure_is_folded_as_today() -> None:
    d = decide(observe())
    d = step(d.memory, job=finished(d, plan_result(E1)))
    # the recorded run's own source: this Migration's digest (another would be a fix forward)
    failed = json.loads((V1 / "apply_failed.json").read_text()) | {"sourceDigest": DIGEST}
    d = step(d.memory, job=finished(d, failed, ok=False))
    f = d.memory.failure
    assert f is not None and (f.code, f.sqlstate, f.migration, f.line) == (
        "MigrationFailed", "23505", "0004_m3", 1,
    )  # fmt: skip
    assert not f.retryable and d.reason is Reason.MIGRATION_FAILED
    assert d.memory.applied_count == 3 and d.memory.pending == ("0004_m3",)
