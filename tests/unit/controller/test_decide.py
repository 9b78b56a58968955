"""The state machine, driven through whole scenarios and single transitions. No cluster."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import pytest

from pgshift.controller.api import Ref, parse_spec
from pgshift.controller.config import Settings
from pgshift.controller.decide import decide
from pgshift.controller.intent import Action, Decision
from pgshift.controller.jobs import action_args
from pgshift.controller.memory import Memory, from_status, user_status
from pgshift.controller.observe import JobPhase, JobState, Observed, SourceState
from pgshift.controller.rollout import DeploymentView
from pgshift.controller.status import REASONS, Reason, render

NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
DIGEST = "sha256:" + "a" * 64
REF = Ref("shop", "shop", "uid-1", 1)

E1 = {"key": "e1-0", "migration": "0001_add", "phase": "expand", "destructive": False}
B1 = {"key": "b1-0", "migration": "0002_fill", "phase": "backfill", "destructive": False}
C1 = {
    "key": "c1-0",
    "migration": "0003_drop",
    "phase": "contract",
    "destructive": True,
    "tables": ["public.users"],
}
E2 = {"key": "e2-0", "migration": "0004_more", "phase": "expand", "destructive": False}


def spec(**over: Any):  # type: ignore[no-untyped-def]
    body: dict[str, Any] = {
        "database": {"urlSecretRef": {"name": "shop-db"}},
        "source": {"configMap": {"name": "cm"}},
        "backup": {"volume": {"claimName": "backups"}},
    }
    body.update(over)
    return parse_spec(body)


def observe(memory: Memory | None = None, **kw: Any) -> Observed:
    base: dict[str, Any] = {
        "ref": REF,
        "spec": spec(),
        "memory": memory or Memory(),
        "now": NOW,
        "settings": Settings(),
        "source": SourceState(digest=DIGEST),
    }
    base.update(kw)
    return Observed(**base)


def plan_result(*steps: dict[str, Any], applied: int = 0) -> dict[str, Any]:
    pending = sorted({s["migration"] for s in steps})
    return {
        "command": "plan",
        "ok": True,
        "sourceDigest": DIGEST,
        "steps": list(steps),
        "pending": pending,
        "pendingCount": len(pending),
        "appliedCount": applied,
        "lastApplied": "0000_init" if applied else None,
        "affectedTables": sorted(
            {t for s in steps if s.get("destructive") for t in s.get("tables", [])}
        ),
    }


def finished(d: Decision, result: dict[str, Any], ok: bool = True, **kw: Any) -> JobState:
    """The Job the decision asked for, finished with this summary."""
    assert d.run is not None
    return JobState(
        name=f"shop-{d.memory.seq}-{d.run.action.value}",
        action=d.run.action,
        phase=JobPhase.SUCCEEDED if ok else JobPhase.FAILED,
        result=result,
        notes=dict(d.run.notes),
        **kw,
    )


def roundtrip(memory: Memory) -> Memory:
    """Memory survives being written to status and read back (an operator restart)."""
    status = {k: v for k, v in user_status(memory).items() if v is not None}
    return from_status(status)


def step(memory: Memory, **kw: Any) -> Decision:
    return decide(observe(roundtrip(memory), **kw))


def render_status(d: Decision) -> dict[str, Any]:
    """The status this decision writes."""
    return render(
        reason=d.reason, message=d.message, memory=d.memory, generation=1, name="shop",
        now="T0", previous=None,
    )  # fmt: skip


def args_of(d: Decision) -> list[str]:
    """The flags jobs.py renders from the decision's intent (beside the spec's own)."""
    assert d.run is not None
    return action_args(d.run)


# --- whole scenarios ----------------------------------------------------------------------------


def test_approval_flow_from_new_to_complete() -> None:
    d = decide(observe())
    assert d.run and d.run.action is Action.PLAN and d.reason is Reason.PLANNING
    assert args_of(d) == ["--expect-digest", DIGEST]

    d = step(d.memory, job=finished(d, plan_result(E1, B1, C1)))
    assert d.run and d.run.action is Action.APPLY
    args = args_of(d)
    assert args[args.index("--stop-before") + 1] == "c1-0"
    assert d.memory.current_step and d.memory.current_step["key"] == "e1-0"

    d = step(d.memory, job=finished(d, {"ok": True, "appliedCount": 2, "pendingCount": 1}))
    assert d.run and d.run.action is Action.PLAN  # always decide from a fresh plan

    d = step(d.memory, job=finished(d, plan_result(C1, applied=2)))
    assert d.run is None and d.reason is Reason.AWAITING_APPROVAL
    assert REASONS[d.reason].ready and not REASONS[d.reason].complete
    assert d.memory.gate and d.memory.gate["step"] == "c1-0"
    assert "pgshift.dev/approve=0003_drop" in d.message

    # approving: a backup first (destructive step, BeforeDestructive), of the affected tables.
    approve = {"pgshift.dev/approve": "0003_drop"}
    d = step(d.memory, annotations=approve)
    assert d.run and d.run.action is Action.BACKUP and d.reason is Reason.BACKING_UP
    args = args_of(d)
    assert args[args.index("--tables") + 1] == "public.users"
    assert args[1].startswith("/backups/shop/shop/20260102T030405Z-0000_init")
    assert "0003_drop" in d.memory.approved

    result = {
        "ok": True,
        "backup": {"file": args[1], "size": 1234, "sha256": "f" * 64, "time": "t"},
    }
    d = step(d.memory, annotations=approve, job=finished(d, result))
    assert d.memory.last_backup and d.memory.last_backup["sha256"] == "f" * 64
    assert (
        d.memory.last_backup["size"] == 1234 and d.memory.last_backup["scope"] == "AffectedTables"
    )
    assert d.run and d.run.action is Action.APPLY
    assert "--stop-before" not in args_of(d)
    assert args_of(d)[args_of(d).index("--approve") + 1] == "0003_drop"

    done = {"ok": True, "appliedCount": 3, "pendingCount": 0, "lastApplied": "0003_drop"}
    d = step(d.memory, annotations=approve, job=finished(d, done))
    assert d.run is None and d.reason is Reason.COMPLETE
    assert d.memory.applied_version == "0003_drop"
    # the approval acts once: another reconcile changes nothing.
    again = step(d.memory, annotations=approve)
    assert again.run is None and again.reason is Reason.COMPLETE and again.events == ()


def test_a_wildcard_approval_covers_its_generation_only() -> None:
    d = decide(observe())
    d = step(d.memory, job=finished(d, plan_result(C1, applied=2)))
    assert d.reason is Reason.AWAITING_APPROVAL
    wildcard = {"pgshift.dev/approve": "*"}
    d = step(d.memory, annotations=wildcard)
    assert d.run is not None and "*@1" in d.memory.approved

    # a later spec brings a new gated step; the annotation is still "*": it stays shut.
    later = replace(REF, generation=2)
    memory = replace(d.memory, plan=None)
    d = decide(observe(roundtrip(memory), ref=later, annotations=wildcard))
    assert d.run and d.run.action is Action.PLAN
    planned = finished(d, plan_result(C1))
    d = decide(observe(roundtrip(d.memory), ref=later, annotations=wildcard, job=planned))
    assert d.run is None and d.reason is Reason.AWAITING_APPROVAL

    # naming the new generation opens it.
    d = decide(observe(roundtrip(d.memory), ref=later, annotations={"pgshift.dev/approve": "*@2"}))
    assert d.run is not None and d.reason is not Reason.AWAITING_APPROVAL


def test_expand_after_a_gated_contract_is_blocked_by_gate() -> None:
    d = decide(observe())
    d = step(d.memory, job=finished(d, plan_result(C1, E2)))
    assert d.run is None and d.reason is Reason.BLOCKED_BY_GATE
    meaning = REASONS[d.reason]
    assert not meaning.ready and not meaning.stalled
    assert "e2-0" in d.message and "pgshift.dev/approve=0003_drop" in d.message


def test_contract_immediately_expands_then_backs_up_right_before_the_destructive_step() -> None:
    s = spec(contract={"after": "Immediately"}, safety={"destructive": "Allow"})
    d = decide(observe(spec=s))
    d = step(d.memory, spec=s, job=finished(d, plan_result(E1, C1)))
    assert d.run and d.run.action is Action.APPLY
    assert args_of(d)[args_of(d).index("--stop-before") + 1] == "c1-0"
    d = step(d.memory, spec=s, job=finished(d, {"ok": True, "pendingCount": 1}))
    assert d.run and d.run.action is Action.PLAN
    d = step(d.memory, spec=s, job=finished(d, plan_result(C1)))
    assert d.run and d.run.action is Action.BACKUP
    backed_up = {"ok": True, "backup": {"file": "/b", "sha256": "x"}}
    d = step(d.memory, spec=s, job=finished(d, backed_up))
    assert d.run and d.run.action is Action.APPLY and "--stop-before" not in args_of(d)
    d = step(d.memory, spec=s, job=finished(d, {"ok": True, "pendingCount": 0}))
    assert d.reason is Reason.COMPLETE


def test_backup_always_comes_before_anything_is_applied() -> None:
    s = spec(backup={"when": "Always", "scope": "Database", "volume": {"claimName": "b"}})
    d = decide(observe(spec=s))
    d = step(d.memory, spec=s, job=finished(d, plan_result(E1)))
    assert d.run and d.run.action is Action.BACKUP and "--tables" not in args_of(d)
    d = step(d.memory, spec=s, job=finished(d, {"ok": True, "backup": {"file": "/b"}}))
    assert d.run and d.run.action is Action.APPLY


def test_backup_never() -> None:
    s = spec(
        backup={"when": "Never"}, contract={"after": "Immediately"}, safety={"destructive": "Allow"}
    )
    d = decide(observe(spec=s))
    d = step(d.memory, spec=s, job=finished(d, plan_result(C1)))
    assert d.run and d.run.action is Action.APPLY


def web(current: str, hashes: tuple[str, ...], *, generation: int = 1, **kw: Any) -> DeploymentView:
    """Deployment web, rolled out to `current` (2 replicas) unless told otherwise."""
    counts: dict[str, Any] = {"desired": 2, "replicas": 2, "updated": 2, "available": 2}
    counts.update(kw)
    return DeploymentView(
        name="web", exists=True, generation=generation, observed_generation=generation,
        current_hash=current, hashes=hashes, **counts,
    )  # fmt: skip


def test_rollout_gate_opens_on_a_completed_rollout_of_a_new_template() -> None:
    s = spec(contract={"after": "Rollout", "rollout": {"deployment": "web"}})
    before = (web("h1", ("h1",), generation=4),)
    d = decide(observe(spec=s, rollout=before))
    # the first look at generation 1 records the templates web has then.
    assert d.memory.rollout is not None and d.memory.rollout.known == {"web": ("h1",)}
    d = step(d.memory, spec=s, rollout=before, job=finished(d, plan_result(C1)))
    assert d.reason is Reason.AWAITING_ROLLOUT and d.wake_after
    # a scale (a new Deployment generation, the same template): still closed.
    scaled = (web("h1", ("h1",), generation=5, desired=4, replicas=4, updated=4, available=4),)
    assert step(d.memory, spec=s, rollout=scaled).reason is Reason.AWAITING_ROLLOUT
    rolling = (web("h2", ("h1", "h2"), generation=6, updated=1, available=1),)
    assert step(d.memory, spec=s, rollout=rolling).reason is Reason.AWAITING_ROLLOUT
    # a completed rollout opens the contract gate; the destructive step still needs approval.
    rolled = (web("h2", ("h1", "h2"), generation=6),)
    d2 = step(d.memory, spec=s, rollout=rolled)
    assert d2.reason is Reason.AWAITING_APPROVAL
    assert d2.memory.gate is not None and d2.memory.gate["type"] == "Destructive"
    s_allow = replace(
        s,
        safety=replace(
            s.safety, destructive=spec(safety={"destructive": "Allow"}).safety.destructive
        ),
    )
    d3 = step(d.memory, spec=s_allow, rollout=rolled)
    assert d3.run and d3.run.action is Action.BACKUP
    # undone back to the known template before the contract ran: closed again.
    undone = (web("h1", ("h1", "h2"), generation=7),)
    assert step(d.memory, spec=s_allow, rollout=undone).reason is Reason.AWAITING_ROLLOUT


def test_rollout_gate_new_generation_records_again() -> None:
    s = spec(contract={"after": "Rollout", "rollout": {"deployments": ["web"]}})
    rolled = (web("h2", ("h1", "h2")),)
    d = decide(observe(spec=s, rollout=(web("h1", ("h1",)),)))
    d = step(d.memory, spec=s, rollout=rolled, job=finished(d, plan_result(C1)))
    assert d.reason is Reason.AWAITING_APPROVAL  # the Rollout gate opened (h2 is new)
    # generation 2 of the Migration (the next release) is first seen with h2 running.
    ref2 = replace(REF, generation=2)
    d = step(d.memory, spec=s, rollout=rolled, ref=ref2)
    assert d.memory.rollout is not None and d.memory.rollout.generation == 2
    assert d.memory.rollout.known == {"web": ("h1", "h2")}
    d = step(d.memory, spec=s, rollout=rolled, ref=ref2, job=finished(d, plan_result(C1)))
    assert d.reason is Reason.AWAITING_ROLLOUT


def test_rollout_gate_missing_deployment_is_ready_with_a_warning_once() -> None:
    s = spec(
        contract={"after": "Rollout", "rollout": {"deployment": "web"}},
        safety={"destructive": "Allow"},
    )
    missing = (DeploymentView(name="web", exists=False),)
    d = decide(observe(spec=s, rollout=missing))
    d = step(d.memory, spec=s, rollout=missing, job=finished(d, plan_result(C1)))
    assert d.reason is Reason.AWAITING_ROLLOUT and REASONS[d.reason].ready
    assert "Deployment web not found (yet)" in d.message
    warnings = [e for e in d.events if e.type == "Warning"]
    assert [e.reason for e in warnings] == ["DeploymentNotFound"]
    assert "Deployment web not found (yet)" in warnings[0].message
    again = step(d.memory, spec=s, rollout=missing)
    assert again.reason is Reason.AWAITING_ROLLOUT
    assert not [e for e in again.events if e.type == "Warning"]
    # it comes in a later sync wave and rolls out: a template unknown at generation 1.
    d = step(again.memory, spec=s, rollout=(web("h1", ("h1",)),))
    assert d.run and d.run.action is Action.BACKUP


# --- failures, retries, actions -----------------------------------------------------------------


def _failed_apply(retryable: bool = False, code: str = "MigrationFailed") -> Decision:
    d = decide(observe())
    d = step(d.memory, job=finished(d, plan_result(E1)))
    failure = {
        "ok": False,
        "failure": {
            "code": code,
            "migration": "0001_add",
            "step": "e1-0",
            "statement": "ALTER TABLE nope ADD x int",
            "sqlstate": "42P01" if not retryable else "08006",
            "message": 'relation "nope" does not exist',
            "retryable": retryable,
        },
    }
    return step(d.memory, job=finished(d, failure, ok=False))


def test_sql_failure_stalls_with_sqlstate_and_retry_plans_again() -> None:
    d = _failed_apply()
    assert d.run is None and d.reason is Reason.MIGRATION_FAILED
    assert REASONS[d.reason].stalled
    assert d.memory.failure and d.memory.failure.sqlstate == "42P01"
    assert "0001_add" in d.message and "42P01" in d.message
    assert step(d.memory).reason is Reason.MIGRATION_FAILED  # stays until a human acts
    r = step(d.memory, annotations={"pgshift.dev/retry": "1"})
    assert r.run and r.run.action is Action.PLAN and r.memory.retry_seen == "1"
    # the same retry value acts once
    r2 = step(replace(d.memory, retry_seen="1"), annotations={"pgshift.dev/retry": "1"})
    assert r2.reason is Reason.MIGRATION_FAILED


def test_fixing_forward_with_a_new_source_clears_the_failure() -> None:
    d = _failed_apply()
    fixed = step(d.memory, source=SourceState(digest="sha256:" + "b" * 64))
    assert fixed.run and fixed.run.action is Action.PLAN and fixed.memory.failure is None


def test_mark_applied_runs_once() -> None:
    d = _failed_apply()
    m = step(d.memory, annotations={"pgshift.dev/mark-applied": "0001_add"})
    assert m.run and m.run.action is Action.MARK_APPLIED and args_of(m) == ["0001_add"]
    assert m.memory.marked_applied == ("0001_add",)
    after = step(
        m.memory,
        annotations={"pgshift.dev/mark-applied": "0001_add"},
        job=finished(m, {"ok": True}),
    )
    assert after.run and after.run.action is Action.PLAN


def test_retryable_failure_backs_off_then_gives_up() -> None:
    d = _failed_apply(retryable=True, code="Connection")
    assert d.reason is Reason.DATABASE_UNREACHABLE and d.wake_after == 10
    assert not REASONS[d.reason].stalled and REASONS[d.reason].reconciling
    later = step(d.memory, now=NOW + dt.timedelta(seconds=11))
    assert later.run and later.run.action is Action.PLAN
    spent = replace(d.memory, attempts=6)
    assert step(spent).reason is Reason.RETRIES_EXHAUSTED


def test_a_job_without_a_result_is_resumed() -> None:
    d = decide(observe())
    d = step(d.memory, job=finished(d, plan_result(E1)))
    lost = finished(d, {}, ok=False, reason="DeadlineExceeded")
    lost = replace(lost, result=None)
    r = step(d.memory, job=lost)
    assert r.memory.failure and r.memory.failure.retryable and r.reason is Reason.RETRYING


def test_missing_secret_is_reported_while_the_job_waits() -> None:
    d = decide(observe())
    waiting = JobState(
        name="shop-0-plan",
        action=Action.PLAN,
        phase=JobPhase.RUNNING,
        reason="CreateContainerConfigError",
        message='secret "shop-db" not found',
    )
    r = step(d.memory, job=waiting)
    assert r.run is None and r.reason is Reason.SECRET_NOT_FOUND
    assert REASONS[r.reason].reconciling and not REASONS[r.reason].stalled
    assert "shop-db" in r.message


def test_a_new_generation_waits_for_the_running_job_then_replans() -> None:
    d = decide(observe())
    d = step(d.memory, job=finished(d, plan_result(E1)))
    assert d.run is not None
    running = JobState(
        name="shop-1-apply", action=Action.APPLY, phase=JobPhase.RUNNING, notes=dict(d.run.notes)
    )
    gen2 = replace(REF, generation=2)
    w = step(d.memory, ref=gen2, job=running)
    assert w.run is None and w.reason is Reason.APPLYING and "new generation" in w.message
    done = replace(running, phase=JobPhase.SUCCEEDED, result={"ok": True, "pendingCount": 0})
    n = step(w.memory, ref=gen2, job=done)
    assert n.run and n.run.action is Action.PLAN


def test_configmap_edited_in_place_replans() -> None:
    d = decide(observe())
    d = step(d.memory, job=finished(d, plan_result()))
    assert d.reason is Reason.COMPLETE
    edited = step(d.memory, source=SourceState(digest="sha256:" + "c" * 64))
    assert edited.run and edited.run.action is Action.PLAN


def test_baseline_runs_when_its_migration_is_pending() -> None:
    s = spec(baseline={"upTo": "0002_fill"})
    d = decide(observe(spec=s))
    d = step(d.memory, spec=s, job=finished(d, plan_result(E1, B1, E2)))
    assert d.run and d.run.action is Action.BASELINE and args_of(d) == ["--up-to", "0002_fill"]
    d = step(d.memory, spec=s, job=finished(d, {"ok": True}))
    assert d.run and d.run.action is Action.PLAN


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"spec_problem": "spec.job.image 'x' is not allowed"}, Reason.INVALID_SPEC),
        ({"conflict": "other"}, Reason.TRACKING_CONFLICT),
        (
            {"source": SourceState(problem="SourceTooLarge", message="too big")},
            Reason.SOURCE_TOO_LARGE,
        ),
        ({"source": SourceState(problem="InvalidSource", message="bad")}, Reason.INVALID_SOURCE),
        (
            {"source": SourceState(problem="SourceNotFound", message="no cm")},
            Reason.SOURCE_NOT_FOUND,
        ),
        ({"spec": spec(suspend=True)}, Reason.SUSPENDED),
    ],
)
def test_nothing_runs_when(kw: dict[str, Any], reason: Reason) -> None:
    d = decide(observe(**kw))
    assert d.run is None and d.reason is reason


def test_destructive_deny_stalls() -> None:
    s = spec(safety={"destructive": "Deny"}, contract={"after": "Immediately"})
    d = decide(observe(spec=s))
    d = step(d.memory, spec=s, job=finished(d, plan_result(C1)))
    assert d.reason is Reason.DESTRUCTIVE_DENIED and REASONS[d.reason].stalled


def test_every_reason_has_a_meaning() -> None:
    assert set(REASONS) == set(Reason)


def test_backfill_progress_from_the_log_reaches_current_step() -> None:
    from pgshift.controller.progress import progress_from_log

    log = "\n".join(
        [
            '{"event": "lock.acquired"}',
            "not json",
            '{"event": "step.started", "step": "b1-0", "migration": "0002_fill", '
            '"phase": "backfill"}',
            '{"event": "backfill.progress", "step": "b1-0", "rows": 1000, "batches": 1}',
            '{"event": "backfill.progress", "step": "b1-0", "rows": 3000, "batches": 3}',
        ]
    )
    progress = progress_from_log(log)
    assert progress == {
        "key": "b1-0",
        "migration": "0002_fill",
        "phase": "backfill",
        "rows": 3000,
        "batches": 3,
    }
    d = decide(observe())
    d = step(d.memory, job=finished(d, plan_result(E1, B1)))
    running = JobState(
        name="shop-1-apply", action=Action.APPLY, phase=JobPhase.RUNNING, progress=progress
    )
    r = step(d.memory, job=running)
    assert r.memory.current_step == progress
    assert "3000 rows" in r.message and r.wake_after


def test_resume_edited_plans_again_with_the_flag_until_the_migration_is_applied() -> None:
    drift = {
        "ok": False,
        "failure": {
            "code": "Drift",
            "migration": "0001_add",
            "message": "0001_add: partly applied under other text",
            "retryable": False,
        },
    }
    d = decide(observe())
    stalled = step(d.memory, job=finished(d, drift, ok=False))
    assert stalled.reason is Reason.SOURCE_DRIFT and stalled.run is None
    annotations = {"pgshift.dev/resume-edited": "0001_add"}
    again = step(stalled.memory, annotations=annotations)
    assert again.run is not None and again.run.action is Action.PLAN
    assert "--resume-edited" in args_of(again)
    assert any(e.reason == "ResumeEditedRequested" for e in again.events)
    planned = step(again.memory, annotations=annotations, job=finished(again, plan_result(E1)))
    assert planned.run is not None and planned.run.action is Action.APPLY
    assert "--resume-edited" in args_of(planned)
    # once applied, the annotation (still in git) changes nothing
    done = step(planned.memory, annotations=annotations, job=finished(planned, {"ok": True}))
    replanned = step(done.memory, annotations=annotations, job=None)
    later = replanned if replanned.run and replanned.run.action is Action.PLAN else done
    if later.run is not None and later.run.action is Action.PLAN:
        finished_plan = step(
            later.memory,
            annotations=annotations,
            job=finished(later, plan_result(applied=1)),
        )
        assert finished_plan.run is None or "--resume-edited" not in args_of(finished_plan)
    assert step(done.memory, annotations=annotations).memory.resume_edited == "0001_add"


# --- recovery hints that lead out (issue 12) ---------------------------------------------------

_NO_SUCH = {
    "ok": False,
    "failure": {
        "code": "UnknownMigration",
        "message": "mark-applied NAME 0001_ad: no migration of that name in /migrations",
        "retryable": False,
    },
}


def _misspelled_mark() -> Decision:
    """A failed apply (plan unknown), then mark-applied with a typo: the runner judges it."""
    d = _failed_apply()
    typo = {"pgshift.dev/mark-applied": "0001_ad"}
    m = step(d.memory, annotations=typo)
    assert m.run and m.run.action is Action.MARK_APPLIED and args_of(m) == ["0001_ad"]
    return step(m.memory, annotations=typo, job=finished(m, _NO_SUCH, ok=False))


def test_a_misspelled_mark_applied_stalls_with_its_own_reason_naming_the_name() -> None:
    d = _misspelled_mark()
    assert d.reason is Reason.UNKNOWN_MARK_APPLIED and d.run is None  # not SourceDrift
    assert REASONS[d.reason].stalled
    assert "'0001_ad'" in d.message and "pgshift.dev/mark-applied" in d.message
    assert "retry" not in d.message.split("| then:")[1]  # a retry would name nothing again
    again = step(d.memory, annotations={"pgshift.dev/mark-applied": "0001_ad"})
    assert again.reason is Reason.UNKNOWN_MARK_APPLIED and again.run is None


def test_removing_a_misspelled_mark_applied_clears_its_stall() -> None:
    d = _misspelled_mark()
    cleared = step(d.memory, annotations={})
    assert cleared.memory.failure is None and cleared.run and cleared.run.action is Action.PLAN


def test_fixing_a_misspelled_mark_applied_marks_the_right_migration() -> None:
    d = _misspelled_mark()
    fixed = step(d.memory, annotations={"pgshift.dev/mark-applied": "0001_add"})
    assert fixed.memory.failure is None
    assert fixed.run and fixed.run.action is Action.MARK_APPLIED and args_of(fixed) == ["0001_add"]


def test_a_mark_applied_naming_nothing_holds_pending_migrations_until_fixed() -> None:
    d = decide(observe())
    planned = step(d.memory, job=finished(d, plan_result(E1)))
    assert planned.run and planned.run.action is Action.APPLY
    typo = {"pgshift.dev/mark-applied": "0001_ad"}
    held = step(d.memory, annotations=typo, job=finished(d, plan_result(E1)))
    # the user may have applied 0001_add by hand: applying it now would run it twice.
    assert held.run is None and held.reason is Reason.UNKNOWN_MARK_APPLIED
    removed = step(held.memory, annotations={})
    assert removed.run and removed.run.action is Action.APPLY


def test_allow_drift_plans_again_with_the_flag_naming_that_migration() -> None:
    drift = {
        "ok": False,
        "failure": {
            "code": "Drift",
            "migration": "0001_add",
            "message": "0001_add: applied migration changed since it was applied",
            "hint": "restore it, or pass --allow-drift=NAME",
            "retryable": False,
        },
    }
    d = decide(observe())
    stalled = step(d.memory, job=finished(d, drift, ok=False))
    assert stalled.reason is Reason.SOURCE_DRIFT
    # the hint a Migration's user reads names the annotation, never the runner's flag.
    assert stalled.memory.failure and "--allow-drift" not in stalled.memory.failure.hint
    assert "pgshift.dev/allow-drift=0001_add" in stalled.memory.failure.hint
    assert "pgshift.dev/allow-drift=0001_add" in stalled.message
    allow = {"pgshift.dev/allow-drift": "0001_add"}
    again = step(stalled.memory, annotations=allow)
    assert again.run is not None and again.run.action is Action.PLAN
    assert "--allow-drift=0001_add" in args_of(again)
    assert again.memory.allow_drift == ("0001_add",)
    applying = step(again.memory, annotations=allow, job=finished(again, plan_result(E1)))
    assert applying.run and applying.run.action is Action.APPLY
    assert "--allow-drift=0001_add" in args_of(applying)
    # it stands while the annotation says so; removed, the next Jobs run without it.
    later = step(applying.memory, annotations={})
    assert later.run and later.run.action is Action.PLAN and "--allow-drift" not in " ".join(
        args_of(later)
    )


def test_destructive_denied_says_how_to_allow_it_not_only_retry() -> None:
    s = spec(safety={"destructive": "Deny"})
    d = decide(observe(spec=s))
    denied = step(d.memory, spec=s, job=finished(d, plan_result(C1)))
    assert denied.reason is Reason.DESTRUCTIVE_DENIED
    status = render_status(denied)
    text = "\n".join(status["recovery"])
    assert "spec.safety.destructive" in text and "RequireApproval" in text
    assert "pgshift.dev/approve=0003_drop" in text
    assert "pgshift.dev/retry" not in text
