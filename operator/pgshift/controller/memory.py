"""What the operator remembers between reconciles, kept in the resource's status. PURE.

Everything the state machine needs survives an operator restart because it lives in
`status` (`status.progress` for bookkeeping, the rest user-facing); the database's own tables
hold the truth about applied steps, so a lost status only costs a fresh plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from pgshift.contract.summary import PlanStep
from pgshift.controller.rollout import RolloutRecord, record_from_status, record_to_status

#: steps kept in status from a plan; the runner trims its own list to stay under 4 KiB anyway.
MAX_STEPS = 60
MAX_PENDING_NAMES = 20


@dataclass(frozen=True)
class Step:
    key: str
    migration: str
    phase: str
    destructive: bool = False
    tables: tuple[str, ...] = ()
    summary: str = ""

    @classmethod
    def from_plan_step(cls, step: PlanStep) -> Step:
        """A pending step of the runner's plan (the contract's `PlanStep`), as status keeps it."""
        return cls(
            key=step.key,
            migration=step.migration,
            phase=step.phase,
            destructive=step.destructive,
            tables=step.tables,
            summary=step.summary[:200],
        )

    @classmethod
    def from_result(cls, d: Mapping[str, Any]) -> Step:
        """A step as `status.progress.plan.steps` stores it (the same keys as the runner's)."""
        return cls.from_plan_step(PlanStep.from_dict(d))


@dataclass(frozen=True)
class Plan:
    """A plan Job's answer, for one generation and one source digest."""

    generation: int
    digest: str
    steps: tuple[Step, ...] = ()
    pending: tuple[str, ...] = ()
    pending_count: int = 0
    applied_count: int = 0
    last_applied: str = ""
    affected_tables: tuple[str, ...] = ()
    #: the runner (or we) cut the step list: gates past the end are unknown.
    truncated: bool = False
    #: every migration of the source, in order (the plan's `migrations` table; may be cut).
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Failure:
    code: str
    message: str
    retryable: bool
    migration: str = ""
    step: str = ""
    statement: str = ""
    line: int = 0
    sqlstate: str = ""
    detail: str = ""
    hint: str = ""
    job: str = ""
    time: str = ""
    #: what it failed for: fixing forward (a new generation or source) clears it.
    generation: int = 0
    digest: str = ""


@dataclass(frozen=True)
class Problem:
    """A name that names nothing (controller/names.py): a Warning Event, `status.problems`."""

    code: str
    name: str
    message: str


@dataclass(frozen=True)
class Memory:
    #: sequence number of the next Job; a Job labelled with it is the one in flight.
    seq: int = 0
    plan: Plan | None = None
    #: backups taken in this run: "<generation>/<digest>/<start|destructive>".
    backups: tuple[str, ...] = ()
    attempts: int = 0
    not_before: str = ""
    failure: Failure | None = None
    #: the pod templates the Rollout gate's Deployments had when this generation was first
    #: observed (`status.rollout`).
    rollout: RolloutRecord | None = None
    retry_seen: str = ""
    #: the pgshift.dev/resume-edited value acted on (a migration name).
    resume_edited: str = ""
    approved: tuple[str, ...] = ()
    marked_applied: tuple[str, ...] = ()
    last_backup: Mapping[str, Any] | None = None
    applied_version: str = ""
    applied_count: int = 0
    pending_count: int = 0
    pending: tuple[str, ...] = ()
    current_step: Mapping[str, Any] | None = None
    job_name: str = ""
    job_action: str = ""
    gate: Mapping[str, str] | None = None
    #: approval values that matched a pending step or migration once: consumed, not unknown,
    #: once that is applied (a step key is not in later plans).
    matched: tuple[str, ...] = ()
    problems: tuple[Problem, ...] = ()

    def with_(self, **changes: Any) -> Memory:
        return replace(self, **changes)


def _drop_empty(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v not in (None, "", (), [], {})}


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    d = asdict(plan)
    d["steps"] = [_drop_empty(s) for s in d["steps"][:MAX_STEPS]]
    d["truncated"] = plan.truncated or len(plan.steps) > MAX_STEPS
    return _drop_empty(d) | {"generation": plan.generation}


def plan_from_dict(d: Mapping[str, Any] | None) -> Plan | None:
    if not d:
        return None
    return Plan(
        generation=int(d.get("generation", 0)),
        digest=str(d.get("digest", "")),
        steps=tuple(Step.from_result(s) for s in d.get("steps") or ()),
        pending=tuple(d.get("pending") or ()),
        pending_count=int(d.get("pending_count", 0)),
        applied_count=int(d.get("applied_count", 0)),
        last_applied=str(d.get("last_applied", "")),
        affected_tables=tuple(d.get("affected_tables") or ()),
        truncated=bool(d.get("truncated", False)),
        names=tuple(str(n) for n in d.get("names") or ()),
    )


def failure_to_status(f: Failure) -> dict[str, Any]:
    d = asdict(f)
    d.pop("generation")
    d.pop("digest")
    d = _drop_empty(d)
    d["retryable"] = f.retryable
    return d


def to_progress(m: Memory) -> dict[str, Any]:
    """`status.progress`: the bookkeeping users need not read."""
    return {
        "seq": m.seq,
        "plan": plan_to_dict(m.plan) if m.plan else None,
        "backups": list(m.backups[-10:]),
        "attempts": m.attempts,
        "notBefore": m.not_before or None,
        "failure": (
            {"generation": m.failure.generation, "digest": m.failure.digest} if m.failure else None
        ),
        "matched": list(m.matched[-50:]) or None,
    }


def from_status(status: Mapping[str, Any] | None) -> Memory:
    status = status or {}
    progress = status.get("progress") or {}
    actions = status.get("actions") or {}
    failure = None
    if status.get("failure"):
        f = dict(status["failure"])
        pf = progress.get("failure") or {}
        failure = Failure(
            code=str(f.get("code", "")),
            message=str(f.get("message", "")),
            retryable=bool(f.get("retryable", False)),
            migration=str(f.get("migration", "")),
            step=str(f.get("step", "")),
            statement=str(f.get("statement", "")),
            line=int(f.get("line", 0) or 0),
            sqlstate=str(f.get("sqlstate", "")),
            detail=str(f.get("detail", "")),
            hint=str(f.get("hint", "")),
            job=str(f.get("job", "")),
            time=str(f.get("time", "")),
            generation=int(pf.get("generation", 0)),
            digest=str(pf.get("digest", "")),
        )
    job = status.get("job") or {}
    return Memory(
        seq=int(progress.get("seq", 0)),
        plan=plan_from_dict(progress.get("plan")),
        backups=tuple(progress.get("backups") or ()),
        attempts=int(progress.get("attempts", 0)),
        not_before=str(progress.get("notBefore") or ""),
        failure=failure,
        rollout=record_from_status(status.get("rollout")),
        retry_seen=str(actions.get("retry") or ""),
        resume_edited=str(actions.get("resumeEdited") or ""),
        approved=tuple(actions.get("approved") or ()),
        marked_applied=tuple(actions.get("markedApplied") or ()),
        last_backup=status.get("lastBackup") or None,
        applied_version=str(status.get("appliedVersion") or ""),
        applied_count=int(status.get("appliedCount") or 0),
        pending_count=int(status.get("pendingCount") or 0),
        pending=tuple(status.get("pending") or ()),
        current_step=status.get("currentStep") or None,
        job_name=str(job.get("name") or ""),
        job_action=str(job.get("action") or ""),
        gate=status.get("gate") or None,
        matched=tuple(progress.get("matched") or ()),
        problems=tuple(
            Problem(str(p.get("code", "")), str(p.get("name", "")), str(p.get("message", "")))
            for p in status.get("problems") or ()
        ),
    )


def user_status(m: Memory) -> dict[str, Any]:
    """The user-facing part of status that comes from memory (conditions are added apart)."""
    return {
        "appliedVersion": m.applied_version or None,
        "appliedCount": m.applied_count,
        "pendingCount": m.pending_count,
        "pending": list(m.pending[:MAX_PENDING_NAMES]) or None,
        "currentStep": dict(m.current_step) if m.current_step else None,
        "gate": dict(m.gate) if m.gate else None,
        "lastBackup": dict(m.last_backup) if m.last_backup else None,
        "failure": failure_to_status(m.failure) if m.failure else None,
        "actions": _drop_empty(
            {
                "retry": m.retry_seen,
                "resumeEdited": m.resume_edited,
                "approved": list(m.approved),
                "markedApplied": list(m.marked_applied),
            }
        )
        or None,
        "job": {"name": m.job_name, "action": m.job_action} if m.job_name else None,
        "rollout": record_to_status(m.rollout) if m.rollout else None,
        "problems": [asdict(p) for p in m.problems] or None,
        "progress": to_progress(m),
    }


__all__ = ["Failure", "Memory", "Plan", "Problem", "Step", "from_status", "user_status"]
