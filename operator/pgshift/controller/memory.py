"""What the operator remembers between reconciles, kept in the resource's status. PURE.

Everything the state machine needs survives an operator restart because it lives in
`status` (`status.progress` for bookkeeping, the rest user-facing); the database's own tables
hold the truth about applied steps, so a lost status only costs a fresh plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from pgshift.contract.coerce import flag, integer, mappings, strings, text
from pgshift.contract.reasons import failure_retryable
from pgshift.contract.summary import PlanStep, RunFailure
from pgshift.controller.rollout import RolloutRecord, record_from_status, record_to_status

#: steps kept in status from a plan; the runner trims its own list to stay under 4 KiB anyway.
MAX_STEPS = 60
MAX_PENDING_NAMES = 20
#: backups remembered in `status.backups` (pruned ones are dropped as the runner reports them).
MAX_BACKUPS = 20


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

    def for_storage(self) -> dict[str, Any]:
        return _drop_empty(asdict(self))

    @classmethod
    def from_storage(cls, d: Mapping[str, Any]) -> Step:
        """A step as `status.progress.plan.steps` stores it (the same keys as the runner's)."""
        return cls.from_plan_step(PlanStep.from_dict(d))


@dataclass(frozen=True)
class RollbackPlan:
    """A plan's answer to a spec.target below what is applied (the contract's
    `RollbackResult`): what a rollback to `to` undoes, newest first, and what holds it."""

    to: str
    undo: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    destructive: tuple[str, ...] = ()
    contract: tuple[str, ...] = ()

    def for_storage(self) -> dict[str, Any]:
        return _drop_empty(asdict(self)) | {"to": self.to}

    @classmethod
    def from_storage(cls, d: Mapping[str, Any] | None) -> RollbackPlan | None:
        if not d:
            return None
        return cls(
            to=text(d.get("to")),
            undo=strings(d.get("undo")),
            missing=strings(d.get("missing")),
            destructive=strings(d.get("destructive")),
            contract=strings(d.get("contract")),
        )


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
    #: spec.target is below what is applied: what a rollback would undo.
    rollback: RollbackPlan | None = None
    #: when the Job it comes from ended, the operator configuration (`Settings.fingerprint`)
    #: and the image reference of an image source it was made under: what decides whether
    #: it still holds after a restart (decide.py, `replan_reason`).
    time: str = ""
    config: str = ""
    source: str = ""

    def for_storage(self) -> dict[str, Any]:
        """`status.progress.plan`: at most MAX_STEPS steps (then `truncated`), no empty values."""
        d = asdict(self)
        d["rollback"] = self.rollback.for_storage() if self.rollback else None
        d["steps"] = [s.for_storage() for s in self.steps[:MAX_STEPS]]
        d["truncated"] = self.truncated or len(self.steps) > MAX_STEPS
        return _drop_empty(d) | {"generation": self.generation}

    @classmethod
    def from_storage(cls, d: Mapping[str, Any] | None) -> Plan | None:
        if not d:
            return None
        return cls(
            generation=integer(d.get("generation")),
            digest=text(d.get("digest")),
            steps=tuple(Step.from_storage(s) for s in mappings(d.get("steps"))),
            pending=strings(d.get("pending")),
            pending_count=integer(d.get("pending_count")),
            applied_count=integer(d.get("applied_count")),
            last_applied=text(d.get("last_applied")),
            affected_tables=strings(d.get("affected_tables")),
            truncated=flag(d.get("truncated")),
            names=strings(d.get("names")),
            rollback=RollbackPlan.from_storage(d.get("rollback")),
            time=text(d.get("time")),
            config=text(d.get("config")),
            source=text(d.get("source")),
        )


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

    @classmethod
    def from_run(
        cls, f: RunFailure, *, job: str, time: str, generation: int, digest: str
    ) -> Failure:
        """The runner's failure as status keeps it (texts cut to what status shows), with the
        retry decision taken again from the contract's one table."""
        sqlstate = f.sqlstate or ""
        return cls(
            code=f.code,
            message=(f.message or "the run failed")[:500],
            retryable=failure_retryable(f.code, sqlstate, f.retryable),
            migration=f.migration or "",
            step=f.step or "",
            statement=(f.statement or "")[:200],
            line=f.line or 0,
            sqlstate=sqlstate,
            detail=(f.detail or "")[:300],
            hint=(f.hint or "")[:300],
            job=job,
            time=time,
            generation=generation,
            digest=digest,
        )

    def for_storage(self) -> dict[str, Any]:
        """`status.failure` (what it failed for goes to `status.progress.failure`)."""
        d = asdict(self)
        d.pop("generation")
        d.pop("digest")
        d = _drop_empty(d)
        d["retryable"] = self.retryable
        return d

    @classmethod
    def from_storage(
        cls, d: Mapping[str, Any] | None, progress: Mapping[str, Any] | None
    ) -> Failure | None:
        if not d:
            return None
        pf = progress or {}
        stored = cls.from_run(
            RunFailure.from_dict(d),
            job=text(d.get("job")),
            time=text(d.get("time")),
            generation=integer(pf.get("generation")),
            digest=text(pf.get("digest")),
        )
        # the decision status holds was taken once (and escalated): it is not taken again.
        return replace(stored, retryable=flag(d.get("retryable")))


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
    #: the last pgshift.dev/replan value acted on.
    replan_seen: str = ""
    #: the pgshift.dev/resume-edited value acted on (a migration name).
    resume_edited: str = ""
    approved: tuple[str, ...] = ()
    #: the pgshift.dev/allow-drift values last acted on (a change plans again).
    allow_drift: tuple[str, ...] = ()
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
    #: `status.rollback`: what a spec.target below what is applied undoes, the approval value
    #: that runs it, and what the last rollback Job undid.
    rollback: Mapping[str, Any] | None = None
    #: the pgshift.dev/approve-rollback value acted on.
    approved_rollback: str = ""
    #: the backups on the claim, newest last (`status.backups`): each path, sha256, size, time,
    #: scope, tables; a backup's pruned files leave the list as the runner reports them.
    backups_kept: tuple[Mapping[str, Any], ...] = ()
    #: the pgshift.dev/restore value acted on (a restore Job started, or refused for good).
    restore_seen: str = ""
    #: why the pgshift.dev/restore value `restore_seen` was refused ("" when it was not).
    restore_refused: str = ""
    #: the last restore (`status.restored`): held in phase Restored until a resume.
    restored: Mapping[str, Any] | None = None
    #: the pgshift.dev/resume value acted on.
    resume_seen: str = ""

    def with_(self, **changes: Any) -> Memory:
        return replace(self, **changes)


def _drop_empty(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v not in (None, "", (), [], {})}


def to_progress(m: Memory) -> dict[str, Any]:
    """`status.progress`: the bookkeeping users need not read."""
    return {
        "seq": m.seq,
        "plan": m.plan.for_storage() if m.plan else None,
        "backups": list(m.backups[-10:]),
        "attempts": m.attempts,
        "notBefore": m.not_before or None,
        "failure": (
            {"generation": m.failure.generation, "digest": m.failure.digest} if m.failure else None
        ),
        "matched": list(m.matched[-50:]) or None,
        "restoreRefused": m.restore_refused or None,
    }


def from_status(status: Mapping[str, Any] | None) -> Memory:
    status = status or {}
    progress = status.get("progress") or {}
    actions = status.get("actions") or {}
    job = status.get("job") or {}
    return Memory(
        seq=int(progress.get("seq", 0)),
        plan=Plan.from_storage(progress.get("plan")),
        backups=tuple(progress.get("backups") or ()),
        attempts=int(progress.get("attempts", 0)),
        not_before=str(progress.get("notBefore") or ""),
        failure=Failure.from_storage(status.get("failure"), progress.get("failure")),
        rollout=record_from_status(status.get("rollout")),
        retry_seen=str(actions.get("retry") or ""),
        replan_seen=str(actions.get("replan") or ""),
        resume_edited=str(actions.get("resumeEdited") or ""),
        approved_rollback=str(actions.get("approvedRollback") or ""),
        rollback=status.get("rollback") or None,
        approved=tuple(actions.get("approved") or ()),
        allow_drift=tuple(actions.get("allowDrift") or ()),
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
        backups_kept=tuple(dict(b) for b in mappings(status.get("backups"))),
        restore_seen=text(actions.get("restore")),
        restore_refused=text(progress.get("restoreRefused")),
        restored=dict(status.get("restored") or {}) or None,
        resume_seen=text(actions.get("resume")),
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
        "failure": m.failure.for_storage() if m.failure else None,
        "actions": _drop_empty(
            {
                "retry": m.retry_seen,
                "replan": m.replan_seen,
                "resumeEdited": m.resume_edited,
                "approved": list(m.approved),
                "allowDrift": list(m.allow_drift),
                "markedApplied": list(m.marked_applied),
                "approvedRollback": m.approved_rollback,
                "restore": m.restore_seen,
                "resume": m.resume_seen,
            }
        )
        or None,
        "job": {"name": m.job_name, "action": m.job_action} if m.job_name else None,
        "rollout": record_to_status(m.rollout) if m.rollout else None,
        "problems": [asdict(p) for p in m.problems] or None,
        "rollback": dict(m.rollback) if m.rollback else None,
        "backups": [dict(b) for b in m.backups_kept[-MAX_BACKUPS:]] or None,
        "restored": dict(m.restored) if m.restored else None,
        "progress": to_progress(m),
    }


__all__ = [
    "Failure",
    "Memory",
    "Plan",
    "Problem",
    "RollbackPlan",
    "Step",
    "from_status",
    "user_status",
]
