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
from pgshift.contract.reasons import (
    RETRY_REASONS,
    UNKNOWN_MARK_APPLIED,
    Reason,
    failure_reason,
)
from pgshift.controller import pod_failures
from pgshift.controller.api import (
    ANNOTATION_APPROVE_ROLLBACK,
    ANNOTATION_MARK_APPLIED,
    BackupScope,
    BackupWhen,
    ContractAfter,
    Destructive,
    MigrationSpec,
    RollbackPolicy,
)
from pgshift.controller.fold import describe, fold
from pgshift.controller.gates import approvals, at_gate, gate_of, record_rollout
from pgshift.controller.hints import HintContext, hints
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
from pgshift.controller.memory import Failure, Memory, Plan, RollbackPlan
from pgshift.controller.names import UNKNOWN_MARK_APPLIED as UNKNOWN_MARK_PROBLEM
from pgshift.controller.names import UNKNOWN_TARGET, Match, match
from pgshift.controller.observe import JobPhase, JobState, Observed, parse_iso
from pgshift.controller.restores import restore_step
from pgshift.controller.rollout import rolled_back
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
    taken = take_requests(obs, memory, events)
    why = ""
    if obs.job is None and taken.plan is not None:
        why = replan_reason(obs, taken, requested=taken != memory or _unacted(obs, taken))
        if why:
            taken = taken.with_(plan=None)
    memory = record_rollout(obs, taken)
    decision = _decide(obs, memory, events)
    message = decision.message
    if why and decision.run is not None and decision.run.action is Action.PLAN:
        message += f" ({why})"
    if decision.memory.problems and decision.reason is not Reason.INVALID_SPEC:
        message += " | " + "; ".join(p.message for p in decision.memory.problems)
    wake = decision.wake_after
    if decision.run is None and wake is None:
        wake = _replan_due(obs, decision.memory)
    return Decision(
        memory=decision.memory,
        reason=decision.reason,
        message=message,
        run=decision.run,
        wake_after=wake,
        events=tuple(events) + decision.events,
    )


def _unacted(obs: Observed, memory: Memory) -> bool:
    """A mark-applied or approve-rollback value not acted on yet (take_requests records the
    other actions; these two are judged against the plan, so they must not trust a stale one)."""
    mark = obs.annotations.get(ANNOTATION_MARK_APPLIED, "")
    rollback = obs.annotations.get(ANNOTATION_APPROVE_ROLLBACK, "").strip()
    return bool(mark and mark not in memory.marked_applied) or bool(
        rollback and rollback != memory.approved_rollback
    )


def replan_reason(obs: Observed, memory: Memory, *, requested: bool) -> str:
    """Why the plan in memory cannot be used now ("" when it can), so a plan Job runs.

    In a running operator a plan stays good until a new generation, source or action
    (`_decide` and `take_requests` see to those) or until it is `replan_interval` old. On a
    resume (an operator restart), a plan in status is proof only of a Migration that was
    Complete after a plan or apply Job, for the same generation, the same ConfigMap digest or
    `@sha256`-pinned image, under the same operator configuration, with no action pending:
    a positive list, so any other last Job (restore, rollback, ...) plans again.
    docs/operator.md ("When a plan is skipped") says the same in the same order.
    """
    plan = memory.plan
    if plan is None:
        return ""
    interval = obs.settings.replan_interval
    made = parse_iso(plan.time)
    if interval > 0 and made is not None and (obs.now - made).total_seconds() >= interval:
        return f"the last plan is older than the re-plan interval ({interval:.0f} s)"
    if not obs.resumed:
        return ""
    spec = obs.spec
    if requested:
        return "an action annotation is pending"
    if memory.job_action not in (Action.PLAN.value, Action.APPLY.value):
        return f"resumed after a {memory.job_action or 'unknown'} Job"
    if memory.failure or plan.steps or plan.pending or plan.pending_count or plan.truncated:
        return "resumed and not Complete"
    if plan.rollback is not None:
        # a target below what is applied (awaiting approval, or Deny): not Complete either.
        return "resumed with a rollback asked for"
    if plan.generation != obs.ref.generation:
        return "resumed at a new generation"
    if spec is not None and spec.source.image:
        if "@sha256:" not in spec.source.image:
            return "resumed with an image source not pinned by @sha256"
        if plan.source != spec.source.image:
            return "resumed with another image source"
    elif not obs.source.digest or plan.digest != obs.source.digest:
        return "resumed with another ConfigMap digest"
    if plan.config != obs.settings.fingerprint:
        return "resumed under another operator configuration"
    return ""


def _replan_due(obs: Observed, memory: Memory) -> float | None:
    """Seconds until the plan in memory is `replan_interval` old (None: no such plan)."""
    plan = memory.plan
    made = parse_iso(plan.time) if plan else None
    interval = obs.settings.replan_interval
    if made is None or interval <= 0:
        return None
    return max(1.0, interval - (obs.now - made).total_seconds())


def plan_notes(obs: Observed, digest: str) -> dict[str, str]:
    """What a plan or apply Job is made under, as its notes: fold.py records them on the plan."""
    image = obs.spec.source.image if obs.spec else None
    return {
        "generation": str(obs.ref.generation),
        "digest": digest,
        "config": obs.settings.fingerprint,
        "source": image or "",
    }


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
    if (
        memory.failure
        and memory.failure.code == UNKNOWN_MARK_APPLIED
        and memory.failure.migration != mark
    ):
        # the mark-applied that named nothing was fixed or removed: nothing failed any more.
        memory = memory.with_(failure=None, attempts=0, not_before="")
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
            reason = failure_reason(f.code)
            return Decision(memory, reason, _stall_message(f, reason, obs.ref.name, memory))
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
            allow_drift=memory.allow_drift,
            notes=plan_notes(obs, digest_now),
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
    unknown_mark = next((p for p in memory.problems if p.code == UNKNOWN_MARK_PROBLEM), None)
    if unknown_mark is not None and (plan.pending or plan.pending_count):
        # the migration meant may be applied by hand already: run nothing until it is fixed.
        return Decision(
            memory,
            Reason.UNKNOWN_MARK_APPLIED,
            f"{unknown_mark.message}; nothing runs until it names a migration or is removed",
        )
    if plan.rollback is not None and plan.rollback.to == spec.target:
        return _rollback(obs, spec, plan, plan.rollback, memory)
    if memory.rollback and memory.rollback.get("undo"):
        # nothing to undo any more: keep only what the last rollback Job undid.
        undone = memory.rollback.get("undone")
        kept = {"to": memory.rollback.get("to"), "undone": undone} if undone else None
        memory = memory.with_(rollback=kept)
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


#: Jobs that run steps and report them as they go (the Pod log's progress lines).
_STEPPING = frozenset({Action.APPLY, Action.ROLLBACK})


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
    if job.action in _STEPPING and seen is not None:
        # the same step keeps the plan's summary of it; a new step drops the previous one's.
        before = StepProgress.from_dict(memory.current_step)
        memory = memory.with_(current_step=(before.then(seen) if before else seen).as_dict())
    if job.action in _STEPPING:
        # no Kubernetes event marks backfill batches: look at the log again now and then.
        wake = obs.settings.poll_seconds
    if memory.current_step and job.action in _STEPPING:
        step = memory.current_step
        message += f": step {step.get('key')} of {step.get('migration')} ({step.get('phase')})"
        if step.get("rows"):
            message += f", {step.get('rows')} rows backfilled"
    return Decision(memory, ACTION_REASON[job.action], message, wake_after=wake)


def _stall_message(f: Failure, reason: Reason, name: str, memory: Memory) -> str:
    text = describe(f)
    if f.statement:
        text += f" | statement: {f.statement}"
    if f.hint:
        text += f" | hint: {f.hint}"
    # the reason's way out (status.recovery lists the rest).
    lead = hints(reason, HintContext(name=name, failure=f, gate=memory.gate))[0]
    return text + f" | then: {lead}"


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
            allow_drift=memory.allow_drift,
            notes=plan_notes(obs, plan.digest),
        ),
        f"applying {len(runnable)} step(s) from {head.migration} to {last.migration}{later}",
    )


def rollback_approval(generation: int, r: RollbackPlan) -> str:
    """The `pgshift.dev/approve-rollback` value that runs this rollback: it names exactly what
    is undone (this generation's spec.target, down to the newest migration applied)."""
    return f"{generation}:{r.undo[0]}"


def _rollback(
    obs: Observed, spec: MigrationSpec, plan: Plan, r: RollbackPlan, memory: Memory
) -> Decision:
    """spec.target is below what is applied (docs/operator.md, "Rollback"). Only an explicit
    policy runs down files, and a lowered target alone (a git revert, an Argo rollback) never
    does: RequireApproval waits for the approval naming this generation and the newest
    migration undone, Allow needs it too for down files the linter finds destructive."""
    generation = obs.ref.generation
    approval = rollback_approval(generation, r)
    previous = memory.rollback
    memory = memory.with_(
        rollback={
            "to": r.to,
            "undo": list(r.undo),
            "approval": approval,
            "undone": (previous or {}).get("undone") or None,
            "approved": (previous or {}).get("approved") or None,
        },
        gate=None,
        current_step=None,
    )
    what = (
        f"spec.target {r.to} is below what is applied: a rollback undoes {len(r.undo)} "
        f"migration(s), newest first: {', '.join(r.undo)}"
    )
    if spec.rollback is RollbackPolicy.DENY:
        return Decision(
            memory,
            Reason.ROLLBACK_DISABLED,
            f"{what}; spec.rollback is Deny, so nothing is undone and they stay applied (set "
            "spec.rollback to RequireApproval to undo them by their down files)",
        )
    backup = (memory.last_backup or {}).get("path")
    restore = (
        f"restore the backup {backup} instead" if backup else "restore a backup taken before them"
    )
    if r.missing:
        others = f" (also {', '.join(r.missing[1:])})" if r.missing[1:] else ""
        return Decision(
            memory,
            Reason.ROLLBACK_UNAVAILABLE,
            f"{what}; migration {r.missing[0]} has no down file ({r.missing[0]}.down.sql)"
            f"{others}: nothing is undone; add the down file, or {restore}",
        )
    if not spec.backup.claim_name:
        return Decision(
            memory,
            Reason.ROLLBACK_UNAVAILABLE,
            f"{what}; a rollback takes a whole-database backup first: set "
            "spec.backup.volume.claimName",
        )
    given = obs.annotations.get(ANNOTATION_APPROVE_ROLLBACK, "").strip()
    # the value names this rollback; or it approved this one before it stopped part-way (a
    # failure, a kill, a destructive stop): what is left was covered by it.
    covered = (previous or {}).get("approved") or ()
    approved = given == approval or (
        given == memory.approved_rollback
        and given.startswith(f"{generation}:")
        and set(r.undo) <= set(covered)
    )
    why = ""
    if spec.rollback is RollbackPolicy.REQUIRE_APPROVAL:
        why = "spec.rollback is RequireApproval"
    elif r.destructive:
        why = (
            f"the down file(s) of {', '.join(r.destructive)} are destructive (spec.rollback "
            "Allow runs only down files the linter finds non-destructive)"
        )
    elif r.contract and spec.contract.after is ContractAfter.APPROVAL:
        why = f"the down file(s) of {', '.join(r.contract)} have contract steps (contract.after "
        why += "Approval)"
    if why and not approved:
        stale = f" (pgshift.dev/approve-rollback={given} names another rollback)" if given else ""
        return Decision(
            memory,
            Reason.AWAITING_ROLLBACK_APPROVAL,
            f"{what}; {why}: kubectl annotate migration/{obs.ref.name} "
            f"pgshift.dev/approve-rollback={approval} --overwrite{stale}",
        )
    if r.contract and spec.contract.after is ContractAfter.ROLLOUT:
        verdict = rolled_back(obs.rollout or ())
        if not verdict.open:
            return Decision(
                memory,
                Reason.AWAITING_ROLLOUT,
                f"{what}; the down file(s) of {', '.join(r.contract)} have contract steps, which "
                f"wait for the application's rollback: {verdict.message}",
                wake_after=obs.settings.poll_seconds,
            )
    if approved:
        covers = sorted({*covered, *r.undo}) if given == approval else list(covered)
        memory = memory.with_(
            approved_rollback=given, rollback={**(memory.rollback or {}), "approved": covers}
        )
    token = f"{generation}/{plan.digest}/rollback"
    if token not in memory.backups:
        # whatever spec.backup.when says: the way back from a rollback is this backup.
        return _backup(obs, spec, plan, memory, [token], scope=BackupScope.DATABASE)
    return _run(
        memory,
        RunJob(
            Action.ROLLBACK,
            migration=r.to,
            expect_digest=plan.digest,
            # approved: what the approval names runs; Allow: a destructive step stops it.
            destructive=Destructive.ALLOW if approved else Destructive.REQUIRE_APPROVAL,
            notes={"generation": str(generation), "digest": plan.digest, "target": r.to},
        ),
        f"rolling back {len(r.undo)} migration(s) to {r.to}: {', '.join(r.undo)}",
    )


def _backup(
    obs: Observed,
    spec: MigrationSpec,
    plan: Plan,
    memory: Memory,
    tokens: list[str],
    *,
    scope: BackupScope | None = None,
) -> Decision:
    claim = spec.backup.claim_name or ""
    tables: tuple[str, ...] = ()
    scope = scope or spec.backup.scope
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
