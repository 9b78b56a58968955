"""Conditions, the reason table and the skip-if-unchanged status patch."""

from __future__ import annotations

from pgshift.controller.memory import Failure, Memory
from pgshift.controller.status import Reason, conditions, patch_for, render, strip_none


def by_type(conds: list[dict]) -> dict[str, dict]:  # type: ignore[type-arg]
    return {c["type"]: c for c in conds}


def test_new_resource_is_not_ready_and_reconciling() -> None:
    c = by_type(conditions(Reason.PLANNING, "planning", 1, "T0"))
    assert c["Ready"]["status"] == "False" and c["Reconciling"]["status"] == "True"
    assert c["Stalled"]["status"] == "False" and c["Complete"]["status"] == "False"
    assert all(x["observedGeneration"] == 1 and x["reason"] == "Planning" for x in c.values())


def test_gate_at_the_end_is_ready_but_not_complete() -> None:
    c = by_type(conditions(Reason.AWAITING_APPROVAL, "approve", 2, "T0"))
    assert c["Ready"]["status"] == "True" and c["Complete"]["status"] == "False"
    assert c["Stalled"]["status"] == "False" and c["Reconciling"]["status"] == "False"


def test_blocked_by_gate_is_neither_ready_nor_stalled() -> None:
    c = by_type(conditions(Reason.BLOCKED_BY_GATE, "held", 2, "T0"))
    assert c["Ready"]["status"] == "False" and c["Stalled"]["status"] == "False"


def test_transition_time_moves_only_when_status_changes() -> None:
    first = conditions(Reason.PLANNING, "a", 1, "T0")
    second = by_type(conditions(Reason.APPLYING, "b", 1, "T1", first))
    assert second["Ready"]["lastTransitionTime"] == "T0"
    assert second["Reconciling"]["lastTransitionTime"] == "T0"
    third = by_type(conditions(Reason.COMPLETE, "c", 1, "T2", list(second.values())))
    assert third["Ready"]["lastTransitionTime"] == "T2"
    assert third["Stalled"]["lastTransitionTime"] == "T0"


def _status(reason: Reason, memory: Memory, previous: dict | None = None, now: str = "T0") -> dict:  # type: ignore[type-arg]
    return render(
        reason=reason,
        message="m",
        memory=memory,
        generation=1,
        name="shop",
        now=now,
        previous=previous,
    )


def test_unchanged_status_sends_no_patch() -> None:
    memory = Memory(applied_version="0001", applied_count=1, pending_count=0)
    stored = strip_none(_status(Reason.COMPLETE, memory))
    assert patch_for(stored, _status(Reason.COMPLETE, memory, stored, now="T9")) is None


def test_patch_removes_what_is_gone() -> None:
    failed = Memory(failure=Failure(code="MigrationFailed", message="boom", retryable=False))
    stored = strip_none(_status(Reason.MIGRATION_FAILED, failed))
    assert stored["failure"]["message"] == "boom" and stored["recovery"]
    patch = patch_for(stored, _status(Reason.PLANNING, Memory(), stored))
    assert patch is not None
    assert patch["failure"] is None and patch["recovery"] is None
    assert patch["phase"] == "Planning"


def test_stalled_status_lists_recovery_actions() -> None:
    failed = Memory(
        failure=Failure(code="MigrationFailed", message="boom", retryable=False, migration="0002_x")
    )
    s = _status(Reason.MIGRATION_FAILED, failed)
    text = "\n".join(s["recovery"])
    assert "pgshift.dev/retry" in text and "pgshift.dev/mark-applied=0002_x" in text
    assert s["failure"]["migration"] == "0002_x" and s["failure"]["retryable"] is False
