"""Names that name nothing (an approval, a mark-applied, spec.target): a Warning Event and an
entry in status.problems, never Stalled when otherwise Complete; a name of something already
applied is consumed silently. Driven through the state machine, no cluster."""

from __future__ import annotations

from typing import Any

from pgshift.controller.decide import decide
from pgshift.controller.intent import Action, Decision
from pgshift.controller.memory import Memory, Plan, Step
from pgshift.controller.names import Match, cut_to_target, match
from pgshift.controller.status import REASONS, Reason
from tests.unit.controller.test_decide import (
    C1,
    DIGEST,
    E1,
    args_of,
    finished,
    observe,
    spec,
    step,
)

APPLIED = ["0000_init", "0001_add"]


def plan_result(
    *steps: dict[str, Any], applied: tuple[str, ...] = tuple(APPLIED)
) -> dict[str, Any]:
    pending = sorted({s["migration"] for s in steps})
    return {
        "command": "plan",
        "ok": True,
        "sourceDigest": DIGEST,
        "steps": list(steps),
        "pending": pending,
        "pendingCount": len(pending),
        "appliedCount": len(applied),
        "lastApplied": applied[-1] if applied else None,
        "migrations": [{"name": n, "state": "applied"} for n in applied]
        + [{"name": n, "state": "pending"} for n in pending],
    }


def planned(result: dict[str, Any], **kw: Any) -> Decision:
    """The first plan Job has finished with `result`; the annotations/spec in `kw` apply."""
    d = decide(observe(**kw))
    assert d.run and d.run.action is Action.PLAN
    return step(d.memory, job=finished(d, result), **kw)


def warnings(d: Decision) -> list[str]:
    return [e.reason for e in d.events if e.type == "Warning"]


def test_an_approval_naming_nothing_warns_and_is_not_stalled_when_complete() -> None:
    ann = {"pgshift.dev/approve": "0003_drpo"}
    d = planned(plan_result(), annotations=ann)
    assert d.reason is Reason.COMPLETE and not REASONS[d.reason].stalled
    assert warnings(d) == ["UnknownApproval"]
    assert [(p.code, p.name) for p in d.memory.problems] == [("UnknownApproval", "0003_drpo")]
    assert "0003_drpo" in d.message
    # reported once, kept in status while the annotation says so.
    again = step(d.memory, annotations=ann)
    assert again.reason is Reason.COMPLETE and warnings(again) == []
    assert again.memory.problems == d.memory.problems
    # the annotation fixed: the entry goes.
    fixed = step(d.memory, annotations={"pgshift.dev/approve": "0001_add"})
    assert fixed.memory.problems == () and warnings(fixed) == []


def test_an_approval_of_an_applied_migration_is_consumed_silently() -> None:
    d = planned(plan_result(), annotations={"pgshift.dev/approve": "0001_add,*"})
    assert d.reason is Reason.COMPLETE and d.memory.problems == () and warnings(d) == []


def test_a_step_key_approved_and_applied_stays_silent_in_the_next_release() -> None:
    ann = {"pgshift.dev/approve": C1["key"]}
    s = spec(safety={"destructive": "Allow"})
    d = planned(plan_result(C1), annotations=ann, spec=s)
    assert d.run and d.run.action is Action.BACKUP and d.memory.problems == ()
    assert C1["key"] in d.memory.matched
    # next release: the key's step is applied and in no plan any more.
    after = step(
        d.memory, annotations=ann, spec=s,
        job=finished(d, plan_result(applied=(*APPLIED, "0003_drop"))),
    )  # fmt: skip
    assert after.memory.problems == () and warnings(after) == []


def test_an_unknown_approval_at_a_gate_is_named_and_not_passed_to_the_runner() -> None:
    ann = {"pgshift.dev/approve": "0003_drpo"}
    d = planned(plan_result(E1, C1), annotations=ann)
    assert d.run and d.run.action is Action.APPLY
    assert "0003_drpo" not in args_of(d) and "--stop-before" in args_of(d)
    assert warnings(d) == ["UnknownApproval"]


def test_a_mark_applied_naming_nothing_runs_no_job_and_is_not_stalled() -> None:
    d = planned(plan_result())
    assert d.reason is Reason.COMPLETE
    m = step(d.memory, annotations={"pgshift.dev/mark-applied": "0009_nope"})
    assert m.run is None and m.reason is Reason.COMPLETE
    assert warnings(m) == ["UnknownMarkApplied"]
    assert m.memory.marked_applied == ("0009_nope",)
    # an applied one: consumed silently, no Job either.
    a = step(d.memory, annotations={"pgshift.dev/mark-applied": "0001_add"})
    assert a.run is None and a.reason is Reason.COMPLETE and warnings(a) == []


def test_a_mark_applied_of_a_pending_migration_runs() -> None:
    d = planned(plan_result(E1, C1, applied=("0000_init",)))
    m = step(d.memory, annotations={"pgshift.dev/mark-applied": "0001_add"})
    assert m.run and m.run.action is Action.MARK_APPLIED


def test_an_unknown_target_is_complete_with_a_warning_when_nothing_is_pending() -> None:
    s = spec(target="0007_typo")
    d = decide(observe(spec=s))
    assert "--target" not in args_of(d)  # the plan lists everything; we cut it
    d = step(d.memory, spec=s, job=finished(d, plan_result()))
    assert d.reason is Reason.COMPLETE and warnings(d) == ["UnknownTarget"]


def test_an_unknown_target_with_pending_migrations_applies_nothing() -> None:
    s = spec(target="0007_typo")
    d = planned(plan_result(E1, C1, applied=("0000_init",)), spec=s)
    assert d.run is None and d.reason is Reason.INVALID_SPEC
    assert "spec.target '0007_typo'" in d.message
    assert warnings(d) == ["UnknownTarget"]


def test_a_known_target_cuts_the_plan_and_the_apply_stops_there() -> None:
    s = spec(target="0001_add")
    d = planned(plan_result(E1, C1, applied=("0000_init",)), spec=s)
    assert d.run and d.run.action is Action.APPLY
    assert d.memory.plan is not None and [st.key for st in d.memory.plan.steps] == ["e1-0"]
    assert "--stop-before" not in args_of(d)
    # an applied target: nothing to do.
    done = planned(plan_result(E1, C1, applied=("0000_init",)), spec=spec(target="0000_init"))
    assert done.reason is Reason.COMPLETE and done.memory.problems == ()


def test_a_cut_summary_leaves_unseen_names_to_the_runner() -> None:
    plan = Plan(generation=1, digest=DIGEST, names=("0000_init",), truncated=True)
    assert match(plan, "0150_late") is Match.UNSURE
    full = Plan(generation=1, digest=DIGEST, names=("0000_init",))
    assert match(full, "0150_late") is Match.NOTHING


def test_cut_to_target_keeps_order() -> None:
    steps = tuple(Step(key=f"k{i}", migration=f"000{i}_m", phase="expand") for i in range(1, 4))
    plan = Plan(
        generation=1, digest=DIGEST, steps=steps,
        pending=tuple(s.migration for s in steps), names=tuple(s.migration for s in steps),
    )  # fmt: skip
    assert [s.key for s in cut_to_target(plan, "0002_m").steps] == ["k1", "k2"]
    assert cut_to_target(plan, "nope") == plan
    assert cut_to_target(plan, "") == plan
    assert Memory().problems == ()


def test_after_the_last_apply_the_names_are_still_known() -> None:
    """The plan after an apply that left nothing pending is not run, but its names stay."""
    s = spec(contract={"after": "Immediately"}, safety={"destructive": "Allow"})
    d = planned(plan_result(E1, applied=("0000_init",)), spec=s)
    assert d.run and d.run.action is Action.APPLY
    done = {"ok": True, "appliedCount": 2, "pendingCount": 0, "lastApplied": "0001_add"}
    d = step(d.memory, spec=s, job=finished(d, done))
    assert d.reason is Reason.COMPLETE
    ann = {"pgshift.dev/approve": "0001_add,0002_typo"}
    a = step(d.memory, spec=s, annotations=ann)
    assert a.reason is Reason.COMPLETE
    assert [p.name for p in a.memory.problems] == ["0002_typo"]
