"""When a plan Job may be skipped (issue 15's Constraint), one test per rule, and the
`pgshift.dev/replan` action and the re-plan interval. No cluster: test_decide.py's style."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import pytest

from pgshift.controller.config import Settings
from pgshift.controller.decide import decide, replan_reason
from pgshift.controller.intent import Action, Decision
from pgshift.controller.memory import Memory
from tests.unit.controller.test_decide import (
    DIGEST,
    E1,
    NOW,
    REF,
    finished,
    observe,
    plan_result,
    roundtrip,
    spec,
)

DONE = {"ok": True, "appliedCount": 1, "pendingCount": 0, "lastApplied": "0001_add"}
IMAGE = "registry.example/shop-migrations@sha256:" + "b" * 64


def started(d: Decision) -> Memory:
    """The memory reconcile writes once it created the decision's Job (status.job)."""
    assert d.run is not None
    return roundtrip(d.memory.with_(job_name=f"shop-{d.run.action}", job_action=d.run.action))


def complete(**kw: Any) -> Memory:
    """A Migration taken to Complete by this operator (plan, apply), as status keeps it."""
    d = decide(observe(**kw))
    d = decide(observe(started(d), job=finished(d, plan_result(E1)), **kw))
    assert d.run and d.run.action is Action.APPLY
    d = decide(observe(started(d), job=finished(d, DONE), **kw))
    assert d.run is None and d.reason.value == "Complete", d.message
    return roundtrip(d.memory)


def resume(memory: Memory, **kw: Any) -> Decision:
    """The first reconcile after an operator restart."""
    return decide(observe(memory, resumed=True, **kw))


def test_a_resumed_complete_migration_needs_no_plan_job() -> None:
    d = resume(complete())
    assert d.run is None and d.reason.value == "Complete"


def test_in_a_running_operator_a_complete_migration_needs_no_plan_job() -> None:
    d = decide(observe(complete()))
    assert d.run is None and d.reason.value == "Complete"


def test_a_new_generation_is_always_planned_even_on_resume() -> None:
    d = resume(complete(), ref=replace(REF, generation=2))
    assert d.run and d.run.action is Action.PLAN


def test_another_configmap_digest_on_resume_plans() -> None:
    from pgshift.controller.observe import SourceState

    d = resume(complete(), source=SourceState(digest="sha256:" + "c" * 64))
    assert d.run and d.run.action is Action.PLAN


def test_another_operator_configuration_on_resume_plans() -> None:
    d = resume(complete(), settings=Settings(default_image="ghcr.io/pgshift/pgshift:9.9"))
    assert d.run and d.run.action is Action.PLAN
    assert "operator configuration" in d.message


def test_an_image_source_pinned_by_sha256_may_skip_on_resume() -> None:
    from pgshift.controller.observe import SourceState

    image_spec = spec(source={"image": {"reference": IMAGE}})
    # an image source has no digest before its plan: the plan's own digest is recorded.
    memory = complete(spec=image_spec, source=SourceState())
    assert memory.plan and memory.plan.source == IMAGE
    d = resume(memory, spec=image_spec, source=SourceState())
    assert d.run is None and d.reason.value == "Complete"


def test_an_image_source_by_tag_is_planned_on_resume() -> None:
    from pgshift.controller.observe import SourceState

    tagged = spec(source={"image": {"reference": "registry.example/shop-migrations:v3"}})
    memory = complete(spec=tagged, source=SourceState())
    d = resume(memory, spec=tagged, source=SourceState())
    assert d.run and d.run.action is Action.PLAN
    assert "@sha256" in d.message


@pytest.mark.parametrize(
    "annotation",
    [
        {"pgshift.dev/retry": "1"},
        {"pgshift.dev/replan": "1"},
        {"pgshift.dev/approve": "0001_add"},
        {"pgshift.dev/resume-edited": "0001_add"},
        {"pgshift.dev/mark-applied": "0001_add"},
        {"pgshift.dev/allow-drift": "0001_add"},
        {"pgshift.dev/approve-rollback": "1:0001_add"},
    ],
)
def test_an_action_annotation_pending_on_resume_plans(annotation: dict[str, str]) -> None:
    d = resume(complete(), annotations=annotation)
    # a Job reads the database again (mark-applied's own Job does, without a plan first)
    expected = Action.MARK_APPLIED if "pgshift.dev/mark-applied" in annotation else Action.PLAN
    assert d.run and d.run.action is expected


@pytest.mark.parametrize("last_job", ["backup", "baseline", "mark-applied", "restore", "rollback"])
def test_after_any_job_but_plan_or_apply_a_resume_plans(last_job: str) -> None:
    """A positive list: restore and rollback (added by others) are covered before they exist."""
    memory = complete().with_(job_action=last_job)
    d = resume(memory)
    assert d.run and d.run.action is Action.PLAN
    assert last_job in d.message


def test_a_resumed_migration_asked_to_roll_back_plans_again() -> None:
    """A target below what is applied (awaiting approval, or Deny) is not Complete."""
    from pgshift.controller.memory import RollbackPlan

    memory = complete()
    assert memory.plan is not None
    memory = memory.with_(plan=replace(memory.plan, rollback=RollbackPlan(to="0000_x")))
    assert "rollback" in replan_reason(observe(memory, resumed=True), memory, requested=False)


def test_a_resumed_migration_at_a_gate_plans_again() -> None:
    """Not Complete: what the database holds may have changed while the operator was down."""
    c1 = {"key": "c1-0", "migration": "0003_drop", "phase": "contract", "destructive": True,
          "tables": ["public.users"]}  # fmt: skip
    d = decide(observe())
    d = decide(observe(roundtrip(d.memory), job=finished(d, plan_result(c1))))
    assert d.run is None and d.reason.value == "AwaitingApproval"
    again = decide(observe(roundtrip(d.memory)))
    assert again.run is None  # a running operator trusts its own plan
    d = resume(roundtrip(d.memory))
    assert d.run and d.run.action is Action.PLAN


def test_a_plan_from_before_fingerprints_is_made_again_on_resume() -> None:
    memory = complete()
    assert memory.plan is not None
    old = memory.with_(plan=replace(memory.plan, config="", time=""))
    d = resume(old)
    assert d.run and d.run.action is Action.PLAN


def test_replan_annotation_plans_once() -> None:
    memory = complete()
    d = decide(observe(memory, annotations={"pgshift.dev/replan": "r1"}))
    assert d.run and d.run.action is Action.PLAN
    assert any(e.reason == "ReplanRequested" for e in d.events)
    d = decide(
        observe(roundtrip(d.memory), annotations={"pgshift.dev/replan": "r1"},
                job=finished(d, plan_result()))
    )  # fmt: skip
    assert d.run is None and d.reason.value == "Complete"
    d = decide(observe(roundtrip(d.memory), annotations={"pgshift.dev/replan": "r1"}))
    assert d.run is None and d.events == ()


def test_the_replan_interval_plans_again_and_is_woken_for() -> None:
    memory = complete()
    d = decide(observe(memory))
    assert d.wake_after == pytest.approx(86400.0)
    later = NOW + dt.timedelta(hours=24, seconds=1)
    d = decide(observe(memory, now=later))
    assert d.run and d.run.action is Action.PLAN
    assert "re-plan interval" in d.message
    never = decide(observe(memory, now=later, settings=Settings(replan_interval=0)))
    assert never.run is None and never.wake_after is None


def test_replan_reason_is_empty_without_a_plan() -> None:
    assert replan_reason(observe(), Memory(), requested=False) == ""


def test_the_fingerprint_follows_job_shaping_settings_only() -> None:
    base = Settings()
    assert base.fingerprint == Settings(poll_seconds=1, workers=2).fingerprint
    assert base.fingerprint != Settings(run_as_user=1000).fingerprint
    assert base.fingerprint != Settings(runner_env={"A": "b"}).fingerprint
    assert DIGEST  # the plan above was made for this digest (shared fixture)
