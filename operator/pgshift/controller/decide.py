"""The state machine of one Migration. PURE: observations in, a decision out.

    plan ─► [backup: Always] ─► apply expand+backfill (stop before the first gated step)
        ─► gate (contract.after: Immediately | Approval | Rollout; destructive approval)
        ─► [backup: before the first destructive step] ─► apply contract ─► plan ─► Complete

Every database action is a Job; the machine only ever decides from a *fresh* plan (one made
for the current generation and source digest, after the last mutating Job), so it never
guesses what the database holds. At most one Job is in flight: the one labelled with
`memory.seq`; a finished one is folded into memory (`fold.py`) before anything else is
decided. A decision carries typed intent (`intent.RunJob`); `jobs.py` renders its argv.
"""

from __future__ import annotations

import datetime as dt
import re

from pgshift.contract.progress import StepProgress
from pgshift.contract.reasons import RETRY_REASONS, Reason, failure_reason
from pgshift.controller import pod_failures
from pgshift.controller.api import (
    ANNOTATION_MARK_APPLIED,
    BackupScope,
    BackupWhen,
    ContractAfter,
    MigrationSpec,
)
from pgshift.controller.fold import describe, fold
from pgshift.controller.gates import approvals, at_gate, gate_of, record_rollout
from pgshift.controller.intent import (
    ACTION_REASON,
    BACKUP_ROOT,
    Action,
    BackupTarget,
    Decision,
    Event,
    RunJob,
    Until,
)
from pgshift.controller.memory import Failure, Memory, Plan
from pgshift.controller.names import UNKNOWN_TARGET, Match, match
from pgshift.controller.observe import JobPhase, JobState, Observed, parse_iso
from pgshift.controller.restores import restore_step
from pgshift.controller.user_requests import (
    approve_values,
    problems,
    take_requests,
    with_problems,
)


def decide(obs: Observed) -> Decision:
    """The next thing to do for this Migration."""
    events: list[Event] = []
    memory = obs.memory
    if obs.job is not None and obs.job.phase is not JobPhase.RUNNING:
        memory = fold(obs, memory, obs.job, events)
    memory = take_requests(obs, memory, events)
    memory = record_rollout(obs, memory)
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


def _decide(obs: Observed, memory: Memory, events: list[Event]) -> Decision:
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
                RunJob(Action.MARK_APPLIED, migration=mark, notes={"target": mark}),
                f"marking {mark} applied",
            )
        # applied already: consumed silently; naming nothing: a problem (below), no Job.
        memory = with_problems(memory, problems(obs, spec, known, memory), events)
    # the restore action and phase Restored hold whatever spec.suspend says (restores.py).
    memory, held = restore_step(obs, spec, memory, events)
    if held is not None:
        return held
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
                f"gave up after {memory.attempts} attempts: {describe(f)}",
            )
        wait_until = parse_iso(memory.not_before)
        if wait_until and obs.now < wait_until:
            return Decision(
                memory,
                RETRY_REASONS.get(f.code, Reason.RETRYING),
                f"attempt {memory.attempts} failed, retrying at {memory.not_before}: "
                + describe(f),
                wake_after=(wait_until - obs.now).total_seconds(),
            )
    plan = memory.plan
    if plan is None or plan.generation != generation or (digest_now and plan.digest != digest_now):
        planning = RunJob(
            Action.PLAN,
            expect_digest=digest_now,
            resume_edited=_resume_edited(memory),
            notes={"generation": str(generation), "digest": digest_now},
        )
        return _run(memory, planning, "planning")
    memory = memory.with_(
        applied_count=plan.applied_count or memory.applied_count,
        pending_count=plan.pending_count,
        pending=plan.pending,
        applied_version=plan.last_applied or memory.applied_version,
    )
    memory = with_problems(memory, problems(obs, spec, plan, memory), events)
    matched = [
        v
        for v in approve_values(obs)
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
                Action.BASELINE,
                migration=spec.baseline_up_to,
                notes={"target": spec.baseline_up_to},
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
    text = describe(f)
    if f.statement:
        text += f" | statement: {f.statement}"
    if f.hint:
        text += f" | hint: {f.hint}"
    return (
        text
        + f" | then: kubectl annotate migration/{name} pgshift.dev/retry=$(date +%s) --overwrite"
    )


def _run(memory: Memory, run: RunJob, message: str) -> Decision:
    return Decision(
        memory.with_(job_action=run.action.value),
        ACTION_REASON[run.action],
        message,
        run=run,
    )


def _resume_edited(memory: Memory) -> str:
    """The migration a resume-edited request named, while it is not applied yet: the runner
    moves the records of its unchanged applied steps to the edited file's keys (or refuses,
    naming the changed step); once it is applied the request has done its work."""
    if memory.resume_edited and (
        memory.plan is None or memory.resume_edited in memory.plan.pending
    ):
        return memory.resume_edited
    return ""


def _next_steps(obs: Observed, spec: MigrationSpec, plan: Plan, memory: Memory) -> Decision:
    steps = plan.steps
    gates = [gate_of(obs, spec, s, memory) for s in steps]
    first = next((i for i, g in enumerate(gates) if g is not None), len(steps))
    if first == 0:
        gate = gates[0]
        assert gate is not None
        return at_gate(obs, spec, plan, memory, gate)
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
    stop_before, until = "", None
    if first < len(steps):
        stop_before = steps[first].key
    elif plan.truncated and spec.contract.after is not ContractAfter.IMMEDIATELY:
        # the plan's list was cut: the runner itself stops at the first unseen contract step.
        until = Until.BACKFILL
    # only names the runner will find: one that names nothing is reported, not passed on.
    passed = tuple(
        v
        for v in approvals(obs, memory)
        if v == "*" or match(plan, v) in (Match.PENDING, Match.UNSURE)
    )
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
    later = f" (then the gate at {steps[first].key})" if first < len(steps) else ""
    return _run(
        memory,
        RunJob(
            Action.APPLY,
            expect_digest=plan.digest,
            stop_before=stop_before,
            until=until,
            destructive=spec.safety.destructive,
            approvals=passed,
            resume_edited=_resume_edited(memory),
            notes={"generation": str(obs.ref.generation), "digest": plan.digest},
        ),
        f"applying {len(runnable)} step(s) from {head.migration} to {last.migration}{later}",
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
        RunJob(
            Action.BACKUP,
            backup=BackupTarget(path=path, keep=spec.backup.keep, scope=scope, tables=tables),
            notes=notes,
        ),
        f"backing up {what} to {path} on claim {claim}",
    )
