"""The restore action and phase Restored (controller/restores.py), through `decide`: the
annotation guard, the one Job allowed while suspended, Restored until resumed (issue 12)."""

from __future__ import annotations

from typing import Any

from pgshift.contract.reasons import Reason
from pgshift.controller.decide import decide
from pgshift.controller.intent import Action, Decision
from pgshift.controller.memory import Memory
from pgshift.controller.observe import JobPhase, JobState
from tests.unit.controller.test_decide import (
    C1,
    E1,
    REF,
    finished,
    observe,
    plan_result,
    roundtrip,
    spec,
    step,
)

SHA = "f" * 64
SUSPENDED = spec(suspend=True)


def backed_up() -> Memory:
    """A Migration whose destructive step ran after a backup of its affected tables."""
    d = decide(observe())
    d = step(d.memory, job=finished(d, plan_result(E1, C1)))
    assert d.run is not None and d.run.action is Action.APPLY
    d = step(d.memory, job=finished(d, {"ok": True, "appliedCount": 1, "pendingCount": 1}))
    approve = {"pgshift.dev/approve": "0003_drop"}
    d = step(d.memory, job=finished(d, plan_result(C1, applied=1)), annotations=approve)
    assert d.run is not None and d.run.action is Action.BACKUP
    taken = {
        "file": d.run.backup.path if d.run.backup else "",
        "size": 9,
        "sha256": SHA,
        "time": "2026-01-02T02:04:05Z",
        "scope": "tables",
        "tables": ["public.users"],
    }
    d = step(d.memory, job=finished(d, {"ok": True, "backup": taken}))
    assert d.run is not None and d.run.action is Action.APPLY
    return step(
        d.memory, job=finished(d, {"ok": True, "appliedCount": 2, "pendingCount": 0})
    ).memory


def restore(memory: Memory, value: str, **kw: Any) -> Decision:
    return step(memory, annotations={"pgshift.dev/restore": value}, **kw)


def test_a_restore_runs_while_suspended_then_holds_in_restored_until_resumed() -> None:
    memory = backed_up()
    assert [b["sha256"] for b in roundtrip(memory).backups_kept] == [SHA]
    value = f"{REF.uid}/{SHA}"
    d = restore(memory, value, spec=SUSPENDED)
    assert d.run is not None and d.run.action is Action.RESTORE and d.reason is Reason.RESTORING
    assert d.run.restore is not None and d.run.restore.restore_id == value
    assert "writes since 2026-01-02T02:04:05Z are lost" in d.message and "(1h0m old)" in d.message
    restored = {"file": d.run.restore.path, "sha256": SHA, "pendingAgain": ["0003_drop"]}
    result = {"ok": True, "restore": {**restored, "backupTime": "2026-01-02T02:04:05Z"}}
    done = restore(d.memory, value, spec=SUSPENDED, job=finished(d, result))
    assert done.reason is Reason.RESTORED and done.run is None
    assert "pending again: 0003_drop" in done.message and "pgshift.dev/resume" in done.message
    assert any(e.reason == "Restored" for e in done.events)
    # Restored holds whatever spec.suspend says; the annotation, still there, acts once.
    held = restore(done.memory, value)
    assert held.reason is Reason.RESTORED and held.run is None
    resumed = step(
        held.memory, annotations={"pgshift.dev/restore": value, "pgshift.dev/resume": "1"}
    )
    assert resumed.run is not None and resumed.run.action is Action.PLAN
    assert resumed.memory.restored is None


def test_the_annotation_guard_refuses_another_object_an_unknown_backup_and_no_suspend() -> None:
    memory = backed_up()
    other = restore(memory, f"other-uid/{SHA}", spec=SUSPENDED)
    assert other.reason is Reason.RESTORE_REFUSED and other.run is None
    assert "names object other-uid" in other.message
    assert [e.type for e in other.events] == ["Warning"]
    again = restore(other.memory, f"other-uid/{SHA}", spec=SUSPENDED)
    assert again.reason is Reason.RESTORE_REFUSED and not again.events  # one Warning only
    gone = step(again.memory, spec=SUSPENDED)  # the annotation removed: held by suspend only
    assert gone.reason is Reason.SUSPENDED
    unknown = restore(memory, f"{REF.uid}/{'0' * 64}", spec=SUSPENDED)
    assert unknown.reason is Reason.RESTORE_REFUSED and f"known: {SHA}" in unknown.message
    bare = restore(memory, SHA, spec=SUSPENDED)
    assert (
        bare.reason is Reason.RESTORE_REFUSED and "<metadata.uid>/<backup sha256>" in bare.message
    )
    live = restore(memory, f"{REF.uid}/{SHA}")
    assert live.reason is Reason.RESTORE_REFUSED and live.run is None
    assert "spec.suspend: true first" in live.message and "writes since" in live.message
    # the same value once suspended: it runs.
    later = restore(live.memory, f"{REF.uid}/{SHA}", spec=SUSPENDED)
    assert later.run is not None and later.run.action is Action.RESTORE


def test_a_failed_restore_stalls_while_suspended_and_a_retry_runs_it_again() -> None:
    value = f"{REF.uid}/{SHA}"
    d = restore(backed_up(), value, spec=SUSPENDED)
    failure = {"ok": False, "failure": {"code": "RestoreNeedsCascade", "message": "view v"}}
    failed = restore(d.memory, value, spec=SUSPENDED, job=finished(d, failure, ok=False))
    assert failed.reason is Reason.RESTORE_REFUSED and "view v" in failed.message
    assert failed.run is None
    retried = step(
        failed.memory,
        spec=SUSPENDED,
        annotations={"pgshift.dev/restore": value, "pgshift.dev/retry": "1"},
    )
    assert retried.run is not None and retried.run.action is Action.RESTORE


def test_pruned_backups_leave_status_backups() -> None:
    memory = backed_up()
    old = memory.backups_kept[0]["path"]
    taken = {"file": "/backups/new.dump", "sha256": "e" * 64, "pruned": [old]}
    job = JobState(
        name="shop-9-backup",
        action=Action.BACKUP,
        phase=JobPhase.SUCCEEDED,
        result={"ok": True, "backup": taken},
        notes={"path": "/backups/new.dump", "claim": "b"},
    )
    after = step(memory, job=job)
    assert [b["path"] for b in roundtrip(after.memory).backups_kept] == ["/backups/new.dump"]
