"""Folding a finished Job into memory: its summary read once, into counts, the plan, the last
backup or the failure (with when to retry), and the Events that tell of it. PURE."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from pgshift.contract.sqlstates import is_retryable
from pgshift.controller import pod_failures
from pgshift.controller.intent import Action, Event
from pgshift.controller.memory import Failure, Memory, Plan, Step
from pgshift.controller.names import cut_to_target
from pgshift.controller.observe import JobPhase, JobState, Observed, iso
from pgshift.controller.status import RETRYABLE_CODES


def fold(obs: Observed, memory: Memory, job: JobState, events: list[Event]) -> Memory:
    result = job.result or {}
    generation = int(job.notes.get("generation") or obs.ref.generation)
    digest = str(result.get("sourceDigest") or job.notes.get("digest") or "")
    memory = memory.with_(seq=memory.seq + 1, current_step=None)
    memory = _counts(memory, result)
    ok = job.phase is JobPhase.SUCCEEDED and result.get("ok", True) is not False
    if not ok:
        failure = _failure(obs, job, generation, digest)
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
        plan = _plan_from_result(result, generation, digest)
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
        result = {**result, **(result.get("backup") or {})}
        backup: dict[str, Any] = {
            "path": result.get("file") or result.get("path") or job.notes.get("path", ""),
            "claimName": job.notes.get("claim", ""),
            "size": int(result.get("size") or 0),
            "sha256": str(result.get("sha256") or ""),
            "time": str(result.get("time") or result.get("finishedAt") or iso(obs.now)),
            "scope": job.notes.get("scope", ""),
            "tables": list(result.get("tables") or []) or None,
        }
        tokens = tuple(t for t in job.notes.get("tokens", "").split(",") if t)
        events.append(
            Event(
                "Normal",
                "BackupTaken",
                f"{backup['path']} ({backup['size']} bytes, sha256 {backup['sha256'][:12]})",
            )
        )
        return memory.with_(
            last_backup={k: v for k, v in backup.items() if v not in (None, "")},
            backups=(*memory.backups, *tokens),
        )
    if job.action is Action.APPLY:
        applied = [a.get("migration") for a in result.get("applied") or [] if a.get("migration")]
        stopped = result.get("stopped") or {}
        events.append(
            Event(
                "Normal",
                "Applied",
                f"applied {len(applied)} migration(s)"
                + (f" up to {applied[-1]}" if applied else "")
                + (f"; stopped: {stopped.get('reason')}" if stopped.get("reason") else ""),
            )
        )
        if int(result.get("pendingCount", 1) or 0) == 0 and memory.plan is not None:
            # nothing left: the next plan would be empty, so skip it.
            # The source's names stay known (names that name nothing are still told apart).
            return memory.with_(
                plan=Plan(
                    generation=generation,
                    digest=digest or memory.plan.digest,
                    names=memory.plan.names,
                    last_applied=str(result.get("lastApplied") or memory.plan.last_applied),
                    truncated=memory.plan.truncated,
                )
            )
        return memory.with_(plan=None)
    events.append(Event("Normal", "Marked", f"{job.action.value} {job.notes.get('target', '')}"))
    return memory.with_(plan=None)


def _counts(memory: Memory, result: Mapping[str, Any]) -> Memory:
    if "appliedCount" not in result:
        return memory
    return memory.with_(
        applied_count=int(result.get("appliedCount") or 0),
        pending_count=int(result.get("pendingCount") or 0),
        pending=tuple(result.get("pending") or ()),
        applied_version=str(result.get("lastApplied") or memory.applied_version),
    )


def _plan_from_result(result: Mapping[str, Any], generation: int, digest: str) -> Plan:
    return Plan(
        generation=generation,
        digest=digest,
        steps=tuple(Step.from_result(s) for s in result.get("steps") or ()),
        pending=tuple(result.get("pending") or ()),
        pending_count=int(result.get("pendingCount") or 0),
        applied_count=int(result.get("appliedCount") or 0),
        last_applied=str(result.get("lastApplied") or ""),
        affected_tables=tuple(result.get("affectedTables") or ()),
        truncated=bool(result.get("truncated", False)),
        names=tuple(
            str(m.get("name")) for m in result.get("migrations") or () if isinstance(m, Mapping)
        ),
    )


def _failure(obs: Observed, job: JobState, generation: int, digest: str) -> Failure:
    result = job.result or {}
    f = result.get("failure") or {}
    if not f and not result:
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
    findings = result.get("findings") or {}
    if not f and int(findings.get("error") or 0):
        f = {"code": "Lint", "message": f"{findings['error']} lint error(s): run `pgshift lint`"}
    code = str(f.get("code") or result.get("code") or "MigrationFailed")
    sqlstate = str(f.get("sqlstate") or "")
    # a SQLSTATE decides by the runner's own table (a wrong password is never retried, whatever
    # its code); without one, the runner's flag or the code.
    retryable = (
        is_retryable(sqlstate, cancelled_by_us=code == "Interrupted")
        if sqlstate
        else bool(f.get("retryable")) or code in RETRYABLE_CODES
    )
    return Failure(
        code=code,
        message=str(f.get("message") or result.get("message") or "the run failed")[:500],
        retryable=retryable,
        migration=str(f.get("migration") or ""),
        step=str(f.get("step") or ""),
        statement=str(f.get("statement") or "")[:200],
        line=int(f.get("line") or 0),
        sqlstate=sqlstate,
        detail=str(f.get("detail") or "")[:300],
        hint=str(f.get("hint") or "")[:300],
        job=job.name,
        time=iso(obs.now),
        generation=generation,
        digest=digest,
    )


def describe(f: Failure) -> str:
    """A failure in one line: code, migration, SQLSTATE, message."""
    where = f" in {f.migration}" if f.migration else ""
    state = f" (SQLSTATE {f.sqlstate})" if f.sqlstate else ""
    return f"{f.code}{where}{state}: {f.message}"
