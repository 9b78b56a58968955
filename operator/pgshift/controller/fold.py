"""Folding a finished Job into memory: its summary read once through the contract
(`pgshift.contract.read_summary`), into counts, the plan, the last backup or the failure (with
when to retry), and the Events that tell of it. PURE."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from pgshift.contract.reasons import SUMMARY_VERSION_UNKNOWN, UNKNOWN_MARK_APPLIED
from pgshift.contract.summary import (
    Counts,
    PlanResult,
    RunFailure,
    RunSummary,
    UnknownSummaryVersion,
    read_summary,
)
from pgshift.controller import pod_failures
from pgshift.controller.hints import operator_hint
from pgshift.controller.intent import Action, Event
from pgshift.controller.memory import (
    MAX_BACKUPS,
    MAX_PENDING_NAMES,
    Failure,
    Memory,
    Plan,
    RollbackPlan,
    Step,
)
from pgshift.controller.names import cut_to_target
from pgshift.controller.observe import JobPhase, JobState, Observed, iso


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
            Event("Warning", f"{job.action.title().replace('-', '')}Failed", describe(failure))
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
        plan = _made_under(plan, obs, job)
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
        kept = {k: v for k, v in backup.items() if v not in (None, "")}
        pruned = set(taken.pruned or ()) if taken else set()
        # status.backups lists what is on the claim: pruned dumps leave it as the runner
        # deletes them (kubectl pgshift backups reads it).
        listed = [b for b in memory.backups_kept if b.get("path") not in pruned | {kept["path"]}]
        return memory.with_(
            last_backup=kept,
            backups=(*memory.backups, *tokens),
            backups_kept=(*listed, kept)[-MAX_BACKUPS:],
        )
    if job.action is Action.RESTORE:
        done = summary.restore if summary else None
        restored = {
            "path": (done.file if done else "") or job.notes.get("path", ""),
            "sha256": (done.sha256 if done else "") or job.notes.get("sha256", ""),
            "backupTime": done.backup_time if done else job.notes.get("backupTime", ""),
            "time": iso(obs.now),
            "scope": done.scope if done else "",
            "tables": list(done.tables) if done and done.tables else None,
            "restoreId": (done.restore_id if done else "") or job.notes.get("restoreId", ""),
            "pendingAgain": list(done.pending_again[:MAX_PENDING_NAMES]) if done else None,
        }
        events.append(
            Event(
                "Normal",
                "Restored",
                f"restored {restored['path']} (taken {restored['backupTime']}); pending again: "
                + (", ".join(done.pending_again) if done and done.pending_again else "none"),
            )
        )
        # what the database holds changed under every plan: the next one starts fresh.
        return memory.with_(
            restored={k: v for k, v in restored.items() if v not in (None, "", [])},
            plan=None,
        )
    if job.action is Action.APPLY:
        applied = [a.migration for a in summary.applied if a.migration] if summary else []
        told = f"applied {len(applied)} migration(s)" + (f" up to {applied[-1]}" if applied else "")
        events.append(Event("Normal", "Applied", told + _stopped(summary)))
        counts = summary.counts if summary else None
        if counts is not None and counts.pending_count == 0 and memory.plan is not None:
            # nothing left: the next plan would be empty, so skip it.
            # The source's names stay known (names that name nothing are still told apart).
            nothing_left = Plan(
                generation=generation,
                digest=digest or memory.plan.digest,
                names=memory.plan.names,
                last_applied=counts.last_applied or memory.plan.last_applied,
                truncated=memory.plan.truncated,
            )
            return memory.with_(plan=_made_under(nothing_left, obs, job))
        return memory.with_(plan=None)
    if job.action is Action.ROLLBACK:
        part = summary.rollback if summary else None
        undone = list(part.undone) if part else []
        told = f"rolled back {len(undone)} migration(s)" + (
            f": {', '.join(undone)}" if undone else ""
        )
        events.append(Event("Normal", "RolledBack", told + _stopped(summary)))
        last = dict(memory.rollback or {})
        return memory.with_(plan=None, rollback={**last, "undone": undone})
    events.append(Event("Normal", "Marked", f"{job.action.value} {job.notes.get('target', '')}"))
    return memory.with_(plan=None)


def _stopped(summary: RunSummary | None) -> str:
    stopped = summary.stopped if summary else None
    return f"; stopped: {stopped.reason}" if stopped and stopped.reason else ""


def _made_under(plan: Plan, obs: Observed, job: JobState) -> Plan:
    """The plan with what it was made under (when, which operator configuration, which image),
    from the notes its Job was created with: decide.py's `replan_reason` reads them."""
    return replace(
        plan,
        time=iso(obs.now),
        config=job.notes.get("config", ""),
        source=job.notes.get("source", ""),
    )


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
        rollback=_rollback_plan(summary),
    )


def _rollback_plan(summary: RunSummary | None) -> RollbackPlan | None:
    """What a rollback to spec.target undoes, when the plan found it below what is applied."""
    part = summary.rollback if summary else None
    if part is None or not part.undo:
        return None
    return RollbackPlan(
        to=part.to,
        undo=part.undo,
        missing=part.missing,
        destructive=part.destructive,
        contract=part.contract,
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
            hint="run a runner image of this operator's version (spec.job.image), then retry",
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
    failure = Failure.from_run(
        f, job=job.name, time=iso(obs.now), generation=generation, digest=digest
    )
    name = job.notes.get("target", "")
    if job.action is Action.MARK_APPLIED and failure.code == "UnknownMigration" and name:
        # the annotation's name, not the source, is wrong: its own reason, which clears when
        # the annotation is fixed or removed (decide.py).
        failure = replace(
            failure,
            code=UNKNOWN_MARK_APPLIED,
            migration=name,
            message=f"pgshift.dev/mark-applied value {name!r} names no migration of the "
            "source; nothing was marked",
        )
    # the runner's hint speaks to CLI users: a Migration's user gets the operator's way.
    return replace(
        failure, hint=operator_hint(failure.code, failure.hint, failure.migration)[:300]
    )


def describe(f: Failure) -> str:
    """A failure in one line: code, migration, SQLSTATE, message."""
    where = f" in {f.migration}" if f.migration else ""
    state = f" (SQLSTATE {f.sqlstate})" if f.sqlstate else ""
    return f"{f.code}{where}{state}: {f.message}"
