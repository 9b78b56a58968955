"""The state machine of one Migration. PURE: observations in, a decision out.

    plan ─► [backup: Always] ─► apply expand+backfill (stop before the first gated step)
        ─► gate (contract.after: Immediately | Approval | Rollout; destructive approval)
        ─► [backup: before the first destructive step] ─► apply contract ─► plan ─► Complete

Every database action is a Job; the machine only ever decides from a *fresh* plan (one made
for the current generation and source digest, after the last mutating Job), so it never
guesses what the database holds. At most one Job is in flight: the one labelled with
`memory.seq`; a finished one is folded into memory before anything else is decided.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pgshift.contract.progress import StepProgress
from pgshift.contract.reasons import SUMMARY_VERSION_UNKNOWN
from pgshift.contract.summary import (
    Counts,
    PlanResult,
    RunFailure,
    RunSummary,
    UnknownSummaryVersion,
    read_summary,
)
from pgshift.controller import pod_failures
from pgshift.controller.api import (
    BackupScope,
    BackupWhen,
    ContractAfter,
    Destructive,
    MigrationSpec,
    Ref,
)
from pgshift.controller.config import Settings
from pgshift.controller.memory import Failure, Memory, Plan, Problem, Step
from pgshift.controller.names import (
    UNKNOWN_TARGET,
    Match,
    approval_problems,
    cut_to_target,
    mark_applied_problem,
    match,
    target_problem,
)
from pgshift.controller.rollout import DeploymentView, Verdict, record, replace_missing
from pgshift.controller.rollout import gate as rollout_gate
from pgshift.controller.status import (
    RETRY_REASONS,
    Reason,
    failure_reason,
)

BACKUP_ROOT = "/backups"


class Action(enum.StrEnum):
    PLAN = "plan"
    APPLY = "apply"
    BACKUP = "backup"
    BASELINE = "baseline"
    MARK_APPLIED = "mark-applied"


ACTION_REASON = {
    Action.PLAN: Reason.PLANNING,
    Action.APPLY: Reason.APPLYING,
    Action.BACKUP: Reason.BACKING_UP,
    Action.BASELINE: Reason.BASELINING,
    Action.MARK_APPLIED: Reason.MARKING_APPLIED,
}


class JobPhase(enum.StrEnum):
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


@dataclass(frozen=True)
class JobState:
    """The Job in flight (labelled with the current seq), as observed."""

    name: str
    action: Action
    phase: JobPhase
    #: the runner's JSON summary from the termination message, if any.
    result: Mapping[str, Any] | None = None
    #: why it failed (DeadlineExceeded, BackoffLimitExceeded) or why its Pod waits
    #: (CreateContainerConfigError), with the message Kubernetes gave.
    reason: str = ""
    message: str = ""
    #: what it was created for: the Job's `pgshift.dev/*` annotations.
    notes: Mapping[str, str] = field(default_factory=dict)
    #: the runner's last progress (step key, migration, phase, backfill rows and batches).
    progress: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class SourceState:
    #: the ConfigMap source's digest; "" for an image (known only from the plan).
    digest: str = ""
    #: SourceNotFound | InvalidSource | SourceTooLarge, or "" when fine.
    problem: str = ""
    message: str = ""


@dataclass(frozen=True)
class Observed:
    ref: Ref
    spec: MigrationSpec | None
    memory: Memory
    now: dt.datetime
    settings: Settings = field(default_factory=Settings)
    spec_problem: str = ""
    annotations: Mapping[str, str] = field(default_factory=dict)
    source: SourceState = SourceState()
    job: JobState | None = None
    #: the Rollout gate's Deployments, observed now (None unless contract.after is Rollout).
    rollout: tuple[DeploymentView, ...] | None = None
    #: another Migration using the same database Secret and tracking table.
    conflict: str = ""


@dataclass(frozen=True)
class RunJob:
    action: Action
    #: flags for this action beyond the common ones (source, tracking, output).
    args: tuple[str, ...] = ()
    #: recorded on the Job as `pgshift.dev/<key>` annotations and read back when it finishes.
    notes: Mapping[str, str] = field(default_factory=dict)
    #: mount the source (plan, apply, baseline, mark-applied) or the backup claim (backup).
    needs_source: bool = True


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class Decision:
    memory: Memory
    reason: Reason
    message: str
    run: RunJob | None = None
    #: look again after this many seconds (a retry, a Rollout gate, a missing ConfigMap).
    wake_after: float | None = None
    events: tuple[Event, ...] = ()


def iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(s: str) -> dt.datetime | None:
    try:
        return dt.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return None


def decide(obs: Observed) -> Decision:
    """The next thing to do for this Migration."""
    events: list[Event] = []
    memory = obs.memory
    if obs.job is not None and obs.job.phase is not JobPhase.RUNNING:
        memory = fold(obs, memory, obs.job, events)
    memory = _take_approvals(obs, memory, events)
    memory = _record_rollout(obs, memory)
    decision = _decide(obs, memory, events)
    message = decision.message
    if decision.memory.problems and decision.reason is not Reason.INVALID_SPEC:
        message += " | " + "; ".join(p.message for p in decision.memory.problems)
    return Decision(
        memory=decision.memory,
        reason=decision.reason,
        message=message,
        run=decision.run,
        wake_after=decision.wake_after,
        events=tuple(events) + decision.events,
    )


# --- folding a finished Job into memory --------------------------------------------------------


def read_result(job: JobState) -> RunSummary | UnknownSummaryVersion | None:
    """The Job's summary, read once through the contract: None when it left none, the
    `UnknownSummaryVersion` when a runner image of another version wrote one we cannot read."""
    if not job.result:
        return None
    try:
        return read_summary(job.result)
    except UnknownSummaryVersion as exc:
        return exc


def fold(obs: Observed, memory: Memory, job: JobState, events: list[Event]) -> Memory:
    read = read_result(job)
    summary = read if isinstance(read, RunSummary) else None
    generation = int(job.notes.get("generation") or obs.ref.generation)
    digest = str((summary.source_digest if summary else None) or job.notes.get("digest") or "")
    memory = memory.with_(seq=memory.seq + 1, current_step=None)
    memory = _counts(memory, summary)
    ok = job.phase is JobPhase.SUCCEEDED and summary is not None and summary.ok
    if read is None and job.phase is JobPhase.SUCCEEDED:
        ok = True  # a Job that succeeded without a message: the next plan tells the rest
    if not ok:
        failure = _failure(obs, job, read, generation, digest)
        attempts = memory.attempts + 1 if failure.retryable else memory.attempts
        if failure.retryable:  # a deadline resumes while steps progress; OOM resumes once
            before = memory.failure
            retryable, attempts = pod_failures.escalate(
                failure.code, before.code if before else "", attempts, failure.step,
                before.step if before else "",
            )  # fmt: skip
            failure = replace(failure, retryable=retryable)
        delay = obs.settings.backoff(attempts)
        events.append(
            Event("Warning", f"{job.action.title().replace('-', '')}Failed", _describe(failure))
        )
        return memory.with_(
            failure=failure,
            attempts=attempts,
            not_before=iso(obs.now + dt.timedelta(seconds=delay)) if failure.retryable else "",
            # whatever the database holds now, the next decision starts from a fresh plan.
            plan=None,
        )
    if job.action is Action.PLAN:
        plan = _plan_from_result(summary, generation, digest)
        plan = cut_to_target(plan, obs.spec.target if obs.spec else "")
        events.append(
            Event(
                "Normal",
                "Planned",
                f"{plan.pending_count} pending migration(s), {len(plan.steps)} step(s)"
                + (f": next {plan.steps[0].key} ({plan.steps[0].phase})" if plan.steps else ""),
            )
        )
        return memory.with_(plan=plan)
    memory = memory.with_(attempts=0, not_before="", failure=None)
    if job.action is Action.BACKUP:
        taken = summary.backup if summary else None
        backup = {
            "path": (taken.file if taken else "") or job.notes.get("path", ""),
            "claimName": job.notes.get("claim", ""),
            "size": taken.size if taken else 0,
            "sha256": taken.sha256 if taken else "",
            "time": (taken.time if taken else "") or iso(obs.now),
            "scope": job.notes.get("scope", ""),
            "tables": list(taken.tables) if taken and taken.tables else None,
        }
        tokens = tuple(t for t in job.notes.get("tokens", "").split(",") if t)
        events.append(
            Event(
                "Normal",
                "BackupTaken",
                f"{backup['path']} ({backup['size']} bytes, sha256 {str(backup['sha256'])[:12]})",
            )
        )
        return memory.with_(
            last_backup={k: v for k, v in backup.items() if v not in (None, "")},
            backups=(*memory.backups, *tokens),
        )
    if job.action is Action.APPLY:
        applied = [a.migration for a in summary.applied if a.migration] if summary else []
        stopped = summary.stopped if summary else None
        events.append(
            Event(
                "Normal",
                "Applied",
                f"applied {len(applied)} migration(s)"
                + (f" up to {applied[-1]}" if applied else "")
                + (f"; stopped: {stopped.reason}" if stopped and stopped.reason else ""),
            )
        )
        counts = summary.counts if summary else None
        if counts is not None and counts.pending_count == 0 and memory.plan is not None:
            # nothing left: the next plan would be empty, so skip it.
            # The source's names stay known (names that name nothing are still told apart).
            return memory.with_(
                plan=Plan(
                    generation=generation,
                    digest=digest or memory.plan.digest,
                    names=memory.plan.names,
                    last_applied=counts.last_applied or memory.plan.last_applied,
                    truncated=memory.plan.truncated,
                )
            )
        return memory.with_(plan=None)
    events.append(Event("Normal", "Marked", f"{job.action.value} {job.notes.get('target', '')}"))
    return memory.with_(plan=None)


def _counts(memory: Memory, summary: RunSummary | None) -> Memory:
    counts = summary.counts if summary else None
    if counts is None:  # the run never read the tracking table: keep what we know
        return memory
    return memory.with_(
        applied_count=counts.applied_count,
        pending_count=counts.pending_count,
        pending=counts.pending,
        applied_version=counts.last_applied or memory.applied_version,
    )


def _plan_from_result(summary: RunSummary | None, generation: int, digest: str) -> Plan:
    part = (summary.plan if summary else None) or PlanResult()
    counts = (summary.counts if summary else None) or Counts()
    return Plan(
        generation=generation,
        digest=digest,
        steps=tuple(Step.from_plan_step(s) for s in part.steps),
        pending=counts.pending,
        pending_count=counts.pending_count,
        applied_count=counts.applied_count,
        last_applied=counts.last_applied or "",
        affected_tables=part.affected_tables,
        truncated=bool(summary and summary.truncated),
        names=tuple(m.name for m in part.migrations),
    )


def _failure(
    obs: Observed,
    job: JobState,
    read: RunSummary | UnknownSummaryVersion | None,
    generation: int,
    digest: str,
) -> Failure:
    if isinstance(read, UnknownSummaryVersion):
        # a runner image of another pgshift: nothing it says can be trusted, and another Job
        # of the same image would say the same. A person chooses the image.
        return Failure(
            code=SUMMARY_VERSION_UNKNOWN,
            message=str(read),
            retryable=False,
            hint="run a runner image of this operator's version (spec.image), then retry",
            job=job.name,
            time=iso(obs.now),
            generation=generation,
            digest=digest,
        )
    if read is None:
        # no summary: killed, deadline, or the Pod never ran. The database holds the truth,
        # so another Job resumes where this one stopped (DESIGN.md: a deadline means resume).
        code = "DeadlineExceeded" if job.reason == "DeadlineExceeded" else "JobLost"
        if job.reason in pod_failures.STALL_CODES:  # what the kubelet said (pod_failures.TABLE)
            code = job.reason
        return Failure(
            code=code,
            message=job.message
            or f"Job {job.name} ended without a result ({job.reason or 'no reason'})",
            retryable=code not in pod_failures.STALL_CODES or code == pod_failures.OOM.code,
            # the step it was at: a deadline at the same step again is no progress.
            step=str((obs.memory.current_step or {}).get("key") or ""),
            hint=pod_failures.hint_for(code),
            job=job.name,
            time=iso(obs.now),
            generation=generation,
            digest=digest,
        )
    f = read.failure
    findings = read.findings
    if f is None and findings is not None and findings.error:
        f = RunFailure(code="Lint", message=f"{findings.error} lint error(s): run `pgshift lint`")
    if f is None:
        f = RunFailure(code="MigrationFailed", message="the run failed")
    return Failure.from_run(
        f, job=job.name, time=iso(obs.now), generation=generation, digest=digest
    )


def _describe(f: Failure) -> str:
    where = f" in {f.migration}" if f.migration else ""
    state = f" (SQLSTATE {f.sqlstate})" if f.sqlstate else ""
    return f"{f.code}{where}{state}: {f.message}"


def _record_rollout(obs: Observed, memory: Memory) -> Memory:
    """The first look at a generation records the pod templates its Deployments have then."""
    if obs.spec is None or obs.spec.contract.after is not ContractAfter.ROLLOUT:
        return memory
    if obs.rollout is None or (memory.rollout and memory.rollout.generation == obs.ref.generation):
        return memory
    rec = record(obs.ref.generation, obs.rollout)
    return memory.with_(rollout=rec) if rec is not None else memory


# --- actions (annotations) ---------------------------------------------------------------------


def _values(text: str) -> tuple[str, ...]:
    return tuple(v for v in re.split(r"[,\s]+", text or "") if v)


def _take_approvals(obs: Observed, memory: Memory, events: list[Event]) -> Memory:
    from pgshift.controller.api import (
        ANNOTATION_APPROVE,
        ANNOTATION_RESUME_EDITED,
        ANNOTATION_RETRY,
    )

    # "*" approves what the generation it was first seen at holds, never what a later spec
    # brings (the annotation outlives the spec change): it is kept as "*@<generation>", and a
    # later generation needs a new approval (a name, a key or "*@<generation>").
    # Step keys and migration names name exactly what they approve.
    seen_wildcard = any(v.startswith("*@") for v in memory.approved)
    wildcard = _wildcard(obs)
    values = [
        wildcard if v == "*" else v
        for v in _values(obs.annotations.get(ANNOTATION_APPROVE, ""))
        if not (v == "*" and seen_wildcard)
    ]
    new = [v for v in dict.fromkeys(values) if v not in memory.approved]
    if new:
        memory = memory.with_(approved=(*memory.approved, *new))
        events.append(Event("Normal", "Approved", f"approved: {', '.join(new)}"))
    retry = obs.annotations.get(ANNOTATION_RETRY, "")
    if retry and retry != memory.retry_seen:
        memory = memory.with_(retry_seen=retry, failure=None, attempts=0, not_before="", plan=None)
        events.append(Event("Normal", "RetryRequested", f"retry {retry!r}: planning again"))
    resume = obs.annotations.get(ANNOTATION_RESUME_EDITED, "").strip()
    if resume and resume != memory.resume_edited:
        # like a retry, and the plan and apply Jobs get --resume-edited while `resume` is pending
        memory = memory.with_(
            resume_edited=resume, failure=None, attempts=0, not_before="", plan=None
        )
        events.append(
            Event(
                "Normal",
                "ResumeEditedRequested",
                f"resume-edited {resume!r}: planning again; its applied steps must be unchanged",
            )
        )
    return memory


# --- deciding ----------------------------------------------------------------------------------


def _decide(obs: Observed, memory: Memory, events: list[Event]) -> Decision:
    from pgshift.controller.api import ANNOTATION_APPROVE, ANNOTATION_MARK_APPLIED

    job = obs.job
    if job is not None and job.phase is JobPhase.RUNNING:
        return _while_running(obs, memory, job)
    spec = obs.spec
    if spec is None or obs.spec_problem:
        return Decision(memory, Reason.INVALID_SPEC, obs.spec_problem or "spec is invalid")
    if obs.conflict:
        return Decision(
            memory,
            Reason.TRACKING_CONFLICT,
            f"Migration {obs.conflict} already uses tracking table "
            f"{spec.tracking.schema}.{spec.tracking.table} on the database of Secret "
            f"{spec.database.name}: give one of them another spec.tracking",
        )
    generation = obs.ref.generation
    digest_now = obs.source.digest
    if memory.failure and (
        memory.failure.generation != generation
        or (digest_now and memory.failure.digest and memory.failure.digest != digest_now)
    ):
        # fixed forward: a new spec or source replaces what failed.
        memory = memory.with_(failure=None, attempts=0, not_before="")
    mark = obs.annotations.get(ANNOTATION_MARK_APPLIED, "")
    if mark and mark not in memory.marked_applied:
        memory = memory.with_(marked_applied=(*memory.marked_applied, mark))
        same_source = memory.plan and memory.plan.digest in ("", digest_now or "")
        known = memory.plan if same_source else None
        if known is None or match(known, mark) not in (Match.APPLIED, Match.NOTHING):
            # pending, or not judged here: the runner marks it (or names the error).
            memory = memory.with_(failure=None, attempts=0, not_before="")
            return _run(
                memory,
                RunJob(Action.MARK_APPLIED, (mark,), {"target": mark}),
                f"marking {mark} applied",
            )
        # applied already: consumed silently; naming nothing: a problem (below), no Job.
        memory = _with_problems(memory, _problems(obs, spec, known, memory), events)
    if spec.suspend:
        return Decision(memory, Reason.SUSPENDED, "spec.suspend is true: no new Job starts")
    if obs.source.problem:
        reason = Reason(obs.source.problem)
        wake = obs.settings.poll_seconds if reason is Reason.SOURCE_NOT_FOUND else None
        return Decision(memory, reason, obs.source.message, wake_after=wake)
    if memory.failure:
        f = memory.failure
        if not f.retryable:
            return Decision(memory, failure_reason(f.code), _stall_message(f, obs.ref.name))
        if memory.attempts >= obs.settings.max_attempts:
            return Decision(
                memory,
                Reason.RETRIES_EXHAUSTED,
                f"gave up after {memory.attempts} attempts: {_describe(f)}",
            )
        wait_until = parse_iso(memory.not_before)
        if wait_until and obs.now < wait_until:
            return Decision(
                memory,
                RETRY_REASONS.get(f.code, Reason.RETRYING),
                f"attempt {memory.attempts} failed, retrying at {memory.not_before}: "
                + _describe(f),
                wake_after=(wait_until - obs.now).total_seconds(),
            )
    plan = memory.plan
    if plan is None or plan.generation != generation or (digest_now and plan.digest != digest_now):
        job = _plan_job(spec, generation, digest_now)
        job = replace(job, args=(*job.args, *_resume_edited_args(memory)))
        return _run(memory, job, "planning")
    memory = memory.with_(
        applied_count=plan.applied_count or memory.applied_count,
        pending_count=plan.pending_count,
        pending=plan.pending,
        applied_version=plan.last_applied or memory.applied_version,
    )
    memory = _with_problems(memory, _problems(obs, spec, plan, memory), events)
    matched = [
        v
        for v in _values(obs.annotations.get(ANNOTATION_APPROVE, ""))
        if v not in memory.matched and match(plan, v) is Match.PENDING
    ]
    if matched:
        memory = memory.with_(matched=(*memory.matched, *matched)[-50:])
    if any(p.code == UNKNOWN_TARGET for p in memory.problems) and (
        plan.pending or plan.pending_count
    ):
        problem = next(p for p in memory.problems if p.code == UNKNOWN_TARGET)
        return Decision(memory, Reason.INVALID_SPEC, problem.message)
    if spec.baseline_up_to and (
        spec.baseline_up_to in plan.pending
        or any(s.migration == spec.baseline_up_to for s in plan.steps)
    ):
        return _run(
            memory,
            RunJob(
                Action.BASELINE, ("--up-to", spec.baseline_up_to), {"target": spec.baseline_up_to}
            ),
            f"marking migrations up to {spec.baseline_up_to} applied (baseline)",
        )
    if not plan.steps:
        return Decision(
            memory.with_(gate=None, current_step=None),
            Reason.COMPLETE,
            f"every migration is applied ({memory.applied_version or 'none'})",
        )
    return _next_steps(obs, spec, plan, memory)


def _while_running(obs: Observed, memory: Memory, job: JobState) -> Decision:
    memory = memory.with_(job_name=job.name, job_action=job.action.value)
    if job.reason in pod_failures.IMAGE_PULL_BACKOFF.kubelet:
        return Decision(
            memory,
            ACTION_REASON[job.action],
            f"Job {job.name} ({job.action.value}) waits for its image: {job.message}",
            wake_after=obs.settings.poll_seconds,
        )
    if job.reason == "CreateContainerConfigError" and obs.spec is not None:
        ref = obs.spec.database
        return Decision(
            memory,
            Reason.SECRET_NOT_FOUND,
            f"Job {job.name} waits for Secret {ref.name} (key {ref.key}): "
            f"{job.message or 'not found'}. It starts by itself once the Secret exists.",
        )
    stale = obs.spec is not None and int(job.notes.get("generation") or 0) not in (
        0,
        obs.ref.generation,
    )
    message = f"Job {job.name} ({job.action.value}) is running"
    if stale:
        message += "; the new generation is planned when it finishes"
    wake = None
    seen = StepProgress.from_dict(job.progress)
    if job.action is Action.APPLY and seen is not None:
        # the same step keeps the plan's summary of it; a new step drops the previous one's.
        before = StepProgress.from_dict(memory.current_step)
        memory = memory.with_(current_step=(before.then(seen) if before else seen).as_dict())
    if job.action is Action.APPLY:
        # no Kubernetes event marks backfill batches: look at the log again now and then.
        wake = obs.settings.poll_seconds
    if memory.current_step and job.action is Action.APPLY:
        step = memory.current_step
        message += f": step {step.get('key')} of {step.get('migration')} ({step.get('phase')})"
        if step.get("rows"):
            message += f", {step.get('rows')} rows backfilled"
    return Decision(memory, ACTION_REASON[job.action], message, wake_after=wake)


def _stall_message(f: Failure, name: str) -> str:
    text = _describe(f)
    if f.statement:
        text += f" | statement: {f.statement}"
    if f.hint:
        text += f" | hint: {f.hint}"
    return (
        text
        + f" | then: kubectl annotate migration/{name} pgshift.dev/retry=$(date +%s) --overwrite"
    )


def _problems(obs: Observed, spec: MigrationSpec, plan: Plan, memory: Memory) -> list[Problem]:
    from pgshift.controller.api import ANNOTATION_APPROVE, ANNOTATION_MARK_APPLIED

    found = approval_problems(
        plan, _values(obs.annotations.get(ANNOTATION_APPROVE, "")), memory.matched
    )
    mark = mark_applied_problem(plan, obs.annotations.get(ANNOTATION_MARK_APPLIED, ""))
    target = target_problem(plan, spec.target)
    return [*found, *(p for p in (mark, target) if p is not None)]


def _with_problems(memory: Memory, problems: list[Problem], events: list[Event]) -> Memory:
    """Record the names that name nothing; a Warning Event for each one not reported yet."""
    before = {(p.code, p.name) for p in memory.problems}
    for p in problems:
        if (p.code, p.name) not in before:
            events.append(Event("Warning", p.code, p.message))
    return memory.with_(problems=tuple(problems))


def _run(memory: Memory, run: RunJob, message: str) -> Decision:
    return Decision(
        memory.with_(job_action=run.action.value),
        ACTION_REASON[run.action],
        message,
        run=run,
    )


def _plan_job(spec: MigrationSpec, generation: int, digest: str) -> RunJob:
    args: list[str] = []
    if digest:
        args += ["--expect-digest", digest]
    return RunJob(Action.PLAN, tuple(args), {"generation": str(generation), "digest": digest})


def _resume_edited_args(memory: Memory) -> tuple[str, ...]:
    """--resume-edited while the migration the action named is not applied yet: the runner
    moves the records of its unchanged applied steps to the edited file's keys (or refuses,
    naming the changed step); once it is applied the action has done its work."""
    if memory.resume_edited and (
        memory.plan is None or memory.resume_edited in memory.plan.pending
    ):
        return ("--resume-edited",)
    return ()


def _wildcard(obs: Observed) -> str:
    """How a "*" approval is recorded: for the generation it was given at."""
    return f"*@{obs.ref.generation}"


def _approvals(obs: Observed, memory: Memory) -> tuple[str, ...]:
    """What stands approved now: names and keys, and "*" if given for this generation."""
    named = tuple(v for v in memory.approved if not v.startswith("*"))
    return (*named, "*") if _wildcard(obs) in memory.approved else named


def _approved(step: Step, approved: tuple[str, ...]) -> bool:
    return step.key in approved or step.migration in approved or "*" in approved


def _gate_of(obs: Observed, spec: MigrationSpec, step: Step, memory: Memory) -> str:
    """ "" when the step may run; else Denied | Destructive | Approval | Rollout."""
    if step.destructive and spec.safety.destructive is Destructive.DENY:
        return "Denied"
    if step.phase == "contract":
        after = spec.contract.after
        if after is ContractAfter.APPROVAL and not _approved(step, _approvals(obs, memory)):
            return "Approval"
        if after is ContractAfter.ROLLOUT and not _rollout_open(obs, memory):
            return "Rollout"
    if (
        step.destructive
        and spec.safety.destructive is Destructive.REQUIRE_APPROVAL
        and not _approved(step, _approvals(obs, memory))
    ):
        return "Destructive"
    return ""


def _rollout_verdict(obs: Observed, memory: Memory) -> Verdict:
    rec = memory.rollout
    if rec is not None and rec.generation != obs.ref.generation:
        rec = None  # recorded for another generation: not this spec's baseline.
    return rollout_gate(rec, obs.rollout or ())


def _rollout_open(obs: Observed, memory: Memory) -> bool:
    return _rollout_verdict(obs, memory).open


def _next_steps(obs: Observed, spec: MigrationSpec, plan: Plan, memory: Memory) -> Decision:
    steps = plan.steps
    gates = [_gate_of(obs, spec, s, memory) for s in steps]
    first = next((i for i, g in enumerate(gates) if g), len(steps))
    if first == 0:
        return _at_gate(obs, spec, plan, memory, gates[0])
    runnable = steps[:first]
    memory = memory.with_(gate=None)
    run_token = f"{obs.ref.generation}/{plan.digest}"
    start, before_destructive = f"{run_token}/start", f"{run_token}/destructive"
    d = next((i for i, s in enumerate(runnable) if s.destructive), None)
    want_destructive = (
        spec.backup.when is not BackupWhen.NEVER
        and d is not None
        and before_destructive not in memory.backups
    )
    if spec.backup.when is BackupWhen.ALWAYS and start not in memory.backups:
        # before anything; it also covers a destructive step that comes first.
        tokens = [start] + ([before_destructive] if want_destructive and d == 0 else [])
        return _backup(obs, spec, plan, memory, tokens)
    if want_destructive and d == 0:
        return _backup(obs, spec, plan, memory, [before_destructive])
    if want_destructive and d is not None:
        # apply up to the destructive step first: the backup then holds the backfilled data.
        first, runnable = d, runnable[:d]
    args = ["--expect-digest", plan.digest] if plan.digest else []
    if first < len(steps):
        args += ["--stop-before", steps[first].key]
    elif plan.truncated and spec.contract.after is not ContractAfter.IMMEDIATELY:
        # the plan's list was cut: the runner itself stops at the first unseen contract step.
        args += ["--until-phase", "backfill"]
    args += ["--destructive", spec.safety.destructive.value]
    for value in _approvals(obs, memory):
        # only names the runner will find: one that names nothing is reported, not passed on.
        if value == "*" or match(plan, value) in (Match.PENDING, Match.UNSURE):
            args += ["--approve", value]
    head = runnable[0]
    memory = memory.with_(
        current_step={
            "key": head.key,
            "migration": head.migration,
            "phase": head.phase,
            "summary": head.summary or None,
        }
    )
    last = runnable[-1]
    until = f" (then the gate at {steps[first].key})" if first < len(steps) else ""
    return _run(
        memory,
        RunJob(
            Action.APPLY,
            (*args, *_resume_edited_args(memory)),
            {"generation": str(obs.ref.generation), "digest": plan.digest},
        ),
        f"applying {len(runnable)} step(s) from {head.migration} to {last.migration}{until}",
    )


def _backup(
    obs: Observed, spec: MigrationSpec, plan: Plan, memory: Memory, tokens: list[str]
) -> Decision:
    claim = spec.backup.claim_name or ""
    tables: tuple[str, ...] = ()
    scope = spec.backup.scope
    if scope is BackupScope.AFFECTED_TABLES:
        tables = plan.affected_tables or tuple(
            sorted({t for s in plan.steps if s.destructive for t in s.tables})
        )
        if not tables:
            scope = BackupScope.DATABASE  # nothing known to be affected: keep everything.
    stamp = obs.now.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    version = re.sub(r"[^A-Za-z0-9._-]", "_", plan.last_applied or "empty")[:80]
    folder = f"{BACKUP_ROOT}/{obs.ref.namespace}/{obs.ref.name}"
    path = f"{folder}/{stamp}-{version}.dump"
    args = ["--to", path, "--keep", str(spec.backup.keep)]
    if tables:
        args += ["--tables", *tables]  # one flag, many values (argparse nargs="+")
    notes = {
        "generation": str(obs.ref.generation),
        "digest": plan.digest,
        "path": path,
        "claim": claim,
        "scope": scope.value,
        "tokens": ",".join(tokens),
    }
    what = f"tables {', '.join(tables)}" if tables else "the whole database"
    return _run(
        memory,
        RunJob(Action.BACKUP, tuple(args), notes, needs_source=False),
        f"backing up {what} to {path} on claim {claim}",
    )


def _at_gate(obs: Observed, spec: MigrationSpec, plan: Plan, memory: Memory, gate: str) -> Decision:
    step = plan.steps[0]
    name = obs.ref.name
    if gate == "Denied":
        return Decision(
            memory.with_(
                gate={"type": "Destructive", "step": step.key, "migration": step.migration}
            ),
            Reason.DESTRUCTIVE_DENIED,
            f"step {step.key} of {step.migration} is destructive ({step.summary or step.phase}) "
            "and spec.safety.destructive is Deny",
        )
    wake = None
    events: tuple[Event, ...] = ()
    if gate == "Rollout":
        verdict = _rollout_verdict(obs, memory)
        wake = obs.settings.poll_seconds
        opens = verdict.message
        if memory.rollout is not None:
            gone = [n for n in verdict.missing if n not in memory.rollout.missing]
            events = tuple(
                Event(
                    "Warning",
                    "DeploymentNotFound",
                    f"Deployment {n} not found (yet): the Rollout gate of step {step.key} "
                    "waits for it (it may come in a later sync wave)",
                )
                for n in gone
            )
            memory = memory.with_(rollout=replace_missing(memory.rollout, verdict.missing))
    else:
        opens = (
            f"kubectl annotate migration/{name} pgshift.dev/approve={step.migration} --overwrite"
        )
    what = "destructive step" if gate == "Destructive" else f"{step.phase} step"
    held = f"{what} {step.key} of {step.migration}" + (f" ({step.summary})" if step.summary else "")
    only_contract_left = all(s.phase == "contract" for s in plan.steps)
    memory = memory.with_(
        gate={
            "type": gate,
            "step": step.key,
            "migration": step.migration,
            "message": f"opens on: {opens}",
        },
        current_step=None,
    )
    if only_contract_left:
        reason = Reason.AWAITING_ROLLOUT if gate == "Rollout" else Reason.AWAITING_APPROVAL
        return Decision(
            memory,
            reason,
            f"ready for the new application version; {held} waits for: {opens}",
            wake_after=wake,
            events=events,
        )
    later = next(s for s in plan.steps if s.phase != "contract")
    return Decision(
        memory,
        Reason.BLOCKED_BY_GATE,
        f"{later.phase} step {later.key} of {later.migration} is held behind {held}, "
        f"which waits for: {opens}",
        wake_after=wake,
        events=events,
    )
