"""One reconcile of one Migration: observe, decide (pure), act, write status once.

Every trigger (the Migration changed, one of its Jobs or Pods changed, its ConfigMap changed,
a retry or poll came due) calls `reconcile(namespace, name)`, which reads everything afresh.
A per-Migration lock serializes them, so two triggers never both create a Job; Job names are
deterministic, so a restarted operator finds (adopts) the Job it created before dying.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from kubernetes.client.exceptions import ApiException

from pgshift.controller import kube, pod_failures
from pgshift.controller.api import (
    ANNOTATION_APPROVE,
    ANNOTATION_APPROVE_ROLLBACK,
    ANNOTATION_MARK_APPLIED,
    ANNOTATION_REPLAN,
    ANNOTATION_RESTORE,
    ANNOTATION_RESUME,
    ANNOTATION_RESUME_EDITED,
    ANNOTATION_RETRY,
    LABEL_ACTION,
    LABEL_SEQ,
    ContractAfter,
    MigrationSpec,
    Ref,
    SpecError,
    parse_spec,
)
from pgshift.controller.config import Settings
from pgshift.controller.decide import decide
from pgshift.controller.fleet import FLEET, tracking_key
from pgshift.controller.intent import Action, Event
from pgshift.controller.jobs import build_job, check_choices, job_name, notes_of
from pgshift.controller.memory import Memory, from_status
from pgshift.controller.metrics import METRICS
from pgshift.controller.observe import JobPhase, JobState, Observed, SourceState, iso
from pgshift.controller.progress import progress_from_log
from pgshift.controller.rollout import DeploymentView
from pgshift.controller.status import REASONS, Reason, patch_for, render
from pgshift.errors import PgshiftError
from pgshift.migrations import configmap_problems, read_mapping

log = logging.getLogger("pgshift.controller")

_locks: dict[tuple[str, str], asyncio.Lock] = {}
#: Migrations with a reconcile waiting for their lock: it reads everything afresh when it gets
#: it, so a burst of events (a Job's and its Pod's) costs one more reconcile, not one each.
_queued: set[tuple[str, str]] = set()
#: Migrations this process has reconciled (namespace, name, uid): the first one is a resume.
_seen: set[tuple[str, str, str]] = set()
#: the resume-plan cap (`Settings.resume_plan_limit`): Migrations whose plan was not trusted
#: on a resume and is yet to start, those whose resume plan Job runs, and who waits for a slot.
_resume_due: set[tuple[str, str]] = set()
_resume_running: set[tuple[str, str]] = set()
_resume_waiting: list[tuple[str, str]] = []
_wakeups: dict[tuple[str, str], asyncio.TimerHandle] = {}
_tasks: set[asyncio.Task[None]] = set()
#: (namespace, ConfigMap) -> Migrations reading it: an edit in place re-plans them.
configmap_refs: dict[tuple[str, str], set[str]] = {}


def _lock(key: tuple[str, str]) -> asyncio.Lock:
    return _locks.setdefault(key, asyncio.Lock())


async def reconcile(namespace: str, name: str, settings: Settings) -> None:
    """Never raises: a failure to reach the API is logged and retried later."""
    key = (namespace, name)
    if key in _queued:
        return
    _queued.add(key)
    async with _lock(key):
        _queued.discard(key)
        try:
            wake = await asyncio.to_thread(_reconcile, namespace, name, settings)
        except ApiException as exc:
            if exc.status == 404:  # deleted meanwhile (or its namespace): nothing to do.
                forget(namespace, name)
                return
            log.warning("reconcile of %s/%s: API error %s; retrying", namespace, name, exc.status)
            wake = settings.backoff_seconds
        except Exception:
            log.exception("reconcile of %s/%s failed; retrying", namespace, name)
            wake = settings.backoff_seconds
    if wake is not None:
        schedule(namespace, name, wake, settings)
    _release_resume_slots(settings)


def schedule(namespace: str, name: str, delay: float, settings: Settings) -> None:
    key = (namespace, name)
    loop = asyncio.get_running_loop()
    old = _wakeups.pop(key, None)
    if old is not None:
        old.cancel()

    def fire() -> None:
        _wakeups.pop(key, None)
        task = loop.create_task(reconcile(namespace, name, settings))
        # the loop keeps only weak references to tasks: hold it until it is done.
        _tasks.add(task)
        task.add_done_callback(_tasks.discard)

    _wakeups[key] = loop.call_later(max(1.0, delay), fire)


def forget(namespace: str, name: str) -> None:
    METRICS.forget((namespace, name))
    _log_read_at.pop((namespace, name), None)
    old = _wakeups.pop((namespace, name), None)
    if old is not None:
        old.cancel()
    for keys in (_resume_due, _resume_running):
        keys.discard((namespace, name))
    for names in configmap_refs.values():
        names.discard(name)


# --- synchronous part: API calls in a worker thread ---------------------------------------------


def _release_resume_slots(settings: Settings) -> None:
    """Wake the Migrations waiting for a resume-plan slot, as many as there are free slots."""
    free = settings.resume_plan_limit - len(_resume_running)
    while free > 0 and _resume_waiting:
        namespace, name = _resume_waiting.pop(0)
        schedule(namespace, name, 0, settings)
        free -= 1


def _resume_slot(key: tuple[str, str], observed: Observed, settings: Settings) -> bool:
    """May this plan Job start now? Only resume plans are capped; the others always may."""
    if observed.resumed and observed.memory.seq > 0:  # a restart, not a new Migration
        _resume_due.add(key)
    if key not in _resume_due:
        return True
    if len(_resume_running) >= settings.resume_plan_limit:
        if key not in _resume_waiting:
            _resume_waiting.append(key)
        return False
    _resume_due.discard(key)
    _resume_running.add(key)
    return True


def _reconcile(namespace: str, name: str, settings: Settings) -> float | None:
    body = kube.get_migration(namespace, name)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return None  # gone: its Jobs go with it (owner references); nothing else to do.
    meta = body["metadata"]
    ref = Ref(namespace, name, meta["uid"], int(meta.get("generation") or 1))
    identity = (namespace, name, ref.uid)
    status = body.get("status") or {}
    memory = from_status(status)
    spec: MigrationSpec | None
    try:
        spec = parse_spec(body.get("spec") or {})
        problem = check_choices(spec, settings)
    except SpecError as exc:
        spec, problem = None, str(exc)
    annotations = meta.get("annotations") or {}
    observed = Observed(
        ref=ref,
        spec=spec,
        memory=memory,
        now=dt.datetime.now(dt.UTC),
        settings=settings,
        spec_problem=problem,
        annotations={
            k: v
            for k, v in annotations.items()
            if k
            in (
                ANNOTATION_APPROVE,
                ANNOTATION_RETRY,
                ANNOTATION_MARK_APPLIED,
                ANNOTATION_RESUME_EDITED,
                ANNOTATION_APPROVE_ROLLBACK,
                ANNOTATION_REPLAN,
                ANNOTATION_RESTORE,
                ANNOTATION_RESUME,
            )
        },
        source=_source(namespace, name, spec),
        job=_job_in_flight(ref, memory.seq, settings.image_pull_grace, memory),
        rollout=_rollout(namespace, spec),
        conflict=_conflict(body, spec),
        resumed=identity not in _seen,
    )
    decision = decide(observed)
    memory = decision.memory
    events = list(decision.events)
    key = (namespace, name)
    if observed.job is None or observed.job.phase is not JobPhase.RUNNING:
        _resume_running.discard(key)  # its resume plan (if any) is done: a slot is free
    if (
        decision.run is not None
        and decision.run.action is Action.PLAN
        and not _resume_slot(key, observed, settings)
    ):
        # status says it waits (and drops the untrusted plan); a finished plan wakes it.
        decision = replace(
            decision,
            run=None,
            message=f"{decision.message}; waiting for one of {settings.resume_plan_limit} "
            "plan slots after the operator's restart",
            wake_after=settings.poll_seconds * 4,
        )
    _seen.add(identity)
    if decision.run is not None and spec is not None:
        manifest = build_job(ref, spec, settings, decision.run, memory.seq)
        jname = manifest["metadata"]["name"]
        created = kube.create_job(namespace, manifest)
        if created:
            METRICS.job_started(decision.run.action)
        memory = memory.with_(job_name=jname, job_action=decision.run.action.value)
        verb = "Started" if created else "Adopted"
        events.append(_event("Normal", f"{verb}Job", f"{jname}: {decision.message}"))
    new_status = render(
        reason=decision.reason,
        message=decision.message,
        memory=memory,
        generation=ref.generation,
        name=name,
        now=iso(observed.now),
        previous=status,
        source_digest=observed.source.digest,
    )
    patch = patch_for(status, new_status)
    if patch:
        kube.patch_status(namespace, name, patch)
    METRICS.record(
        (namespace, name),
        before=observed.memory,
        after=memory,
        job=observed.job,
        status=new_status,
        now=time.monotonic(),
    )
    if status.get("phase") != decision.reason.value and decision.run is None:
        stalled = REASONS[decision.reason].stalled
        events.append(_event("Warning" if stalled else "Normal", decision.reason, decision.message))
    for ev in events:
        try:
            kube.post_event(body, ev.type, ev.reason, ev.message)
        except Exception:  # an Event is worth a log line, never a failed reconcile.
            log.warning("could not post event %s on %s/%s", ev.reason, namespace, name)
    # one line per change; repeated reconciles that change nothing stay at debug level.
    level = logging.INFO if patch else logging.DEBUG
    log.log(level, "%s/%s: %s: %s", namespace, name, decision.reason.value, decision.message)
    return decision.wake_after


def _event(type_: str, reason: str, message: str) -> Event:
    return Event(type_, str(reason), message)


def _source(namespace: str, name: str, spec: MigrationSpec | None) -> SourceState:
    if spec is None or not spec.source.config_map:
        return SourceState()
    cm = spec.source.config_map
    configmap_refs.setdefault((namespace, cm), set()).add(name)
    found = kube.get_configmap(namespace, cm)
    if found is None:
        return judge_source(namespace, cm, None, spec.source.layout.value)
    version, data = found
    # reading a source is the CPU of a reconcile: once per ConfigMap version, not per event.
    key = (namespace, cm, version, spec.source.layout.value)
    judged = _judged.get(key)
    if judged is None:
        judged = judge_source(namespace, cm, data, spec.source.layout.value)
        if len(_judged) >= _JUDGED_MAX:
            _judged.pop(next(iter(_judged)))
        _judged[key] = judged
    return judged


#: (namespace, ConfigMap, resourceVersion, layout) -> its judgement; bounded, oldest out first.
_judged: dict[tuple[str, str, str, str], SourceState] = {}
_JUDGED_MAX = 2048


#: what to do about a source too large for a ConfigMap (docs/operator.md, Large sources).
TOO_LARGE_HINT = (
    "; a client-side `kubectl apply` already fails at 256 KiB (it copies the object into its "
    "last-applied annotation): apply it with `kubectl apply --server-side` (kustomize: "
    "`kubectl apply -k DIR --server-side`), and beyond 1 MiB ship the migrations in an image "
    "(spec.source.image)"
)


def judge_source(
    namespace: str, cm: str, data: Mapping[str, str] | None, layout: str
) -> SourceState:
    """A ConfigMap source's digest, or why it cannot be one. PURE."""
    if data is None:
        return SourceState(
            problem=Reason.SOURCE_NOT_FOUND.value,
            message=f"ConfigMap {cm} not found in namespace {namespace}; waiting for it",
        )
    problems = configmap_problems(dict(data))
    if problems:
        too_large = any("exceeds" in p for p in problems)
        hint = TOO_LARGE_HINT if too_large else ""
        return SourceState(
            problem=(Reason.SOURCE_TOO_LARGE if too_large else Reason.INVALID_SOURCE).value,
            message=f"ConfigMap {cm}: " + "; ".join(problems) + hint,
        )
    try:
        source = read_mapping(dict(data), layout, origin=f"configmap:{namespace}/{cm}")
    except PgshiftError as exc:
        return SourceState(problem=Reason.INVALID_SOURCE.value, message=exc.one_line())
    return SourceState(digest=source.digest)


def _job_in_flight(
    ref: Ref, seq: int, pull_grace: float, memory: Memory | None = None
) -> JobState | None:
    jobs = [
        j
        for j in FLEET.jobs_of(ref.namespace, ref.name)
        if any(o.get("uid") == ref.uid for o in j["metadata"].get("ownerReferences") or [])
    ]
    current = [j for j in jobs if j["metadata"].get("labels", {}).get(LABEL_SEQ) == str(seq)]
    if not current:
        # an older Job still running (should not happen): wait for it rather than start another,
        # unless its Pod is stuck for good (already folded as failed: see pod_failures).
        current = [
            j
            for j in jobs
            if _job_phase(j) is JobPhase.RUNNING
            and not _stuck(ref.namespace, j["metadata"]["name"], pull_grace)
        ]
    if not current:
        return None
    job = current[0]
    jmeta = job["metadata"]
    action = Action(jmeta["labels"].get(LABEL_ACTION, Action.PLAN))
    phase = _job_phase(job)
    pods = FLEET.pods_of(ref.namespace, jmeta["name"], finished=phase is not JobPhase.RUNNING)
    result, reason, message = _pod_outcome(pods)
    verdict = pod_failures.classify(
        pods,
        dt.datetime.now(dt.UTC),
        pull_grace=pull_grace,
    )
    if verdict is not None and result is None:
        reason, message = verdict.reason, verdict.message
        if verdict.terminal and phase is JobPhase.RUNNING:
            phase = JobPhase.FAILED  # the Pod will not get further: fold it now
    if phase is JobPhase.FAILED and (verdict is None or result is not None):
        cond: Mapping[str, Any] = next(
            (
                c
                for c in (job.get("status") or {}).get("conditions") or []
                if c.get("type") == "Failed"
            ),
            {},
        )
        reason = cond.get("reason") or reason
        message = message or cond.get("message") or ""
    if phase is JobPhase.RUNNING and jmeta["name"] != job_name(ref, seq, action):
        # adopted an older Job: fold nothing from it, just wait.
        result = None
    progress = None
    if (
        phase is JobPhase.RUNNING
        and action in (Action.APPLY, Action.ROLLBACK)
        # a rollback's down steps are not in the plan's steps: read its log at the bound alone.
        and _log_due(ref, memory if action is Action.APPLY else None)
    ):
        progress = _progress(ref.namespace, pods)
    return JobState(
        name=jmeta["name"],
        action=action,
        phase=phase,
        result=result,
        reason=reason,
        message=message,
        notes=notes_of(job),
        progress=progress,
        seconds=None if phase is JobPhase.RUNNING else run_seconds(job),
    )


#: the least time between two reads of one Migration's runner log (the issue's bound).
LOG_READ_INTERVAL = 10.0
#: (namespace, name) -> when its runner's log was last read (time.monotonic()).
_log_read_at: dict[tuple[str, str], float] = {}


def _log_due(ref: Ref, memory: Memory | None) -> bool:
    """Read the log of this Migration's apply Job now? Only while a backfill step is running or
    still ahead in the plan (progress_wanted), at most every LOG_READ_INTERVAL seconds."""
    if memory is not None and not progress_wanted(memory):
        return False
    key, now = (ref.namespace, ref.name), time.monotonic()
    if now - _log_read_at.get(key, -LOG_READ_INTERVAL) < LOG_READ_INTERVAL:
        return False
    _log_read_at[key] = now
    return True


def progress_wanted(memory: Memory) -> bool:
    """An apply Job's progress is worth reading while its current step is a backfill, or one is
    ahead of the current step in the plan (the log says when it starts). PURE."""
    if memory.plan is None or memory.plan.truncated:
        return True  # no plan known, or steps past the list's end are unknown: look
    steps = memory.plan.steps
    current = (memory.current_step or {}).get("key")
    keys = [s.key for s in steps]
    start = keys.index(current) if current in keys else 0
    return any(s.phase == "backfill" for s in steps[start:])


def run_seconds(job: Mapping[str, Any]) -> float | None:
    """A finished Job's run time: its startTime to its completionTime (or, failed, to its
    Failed condition). PURE."""
    st = job.get("status") or {}
    end = st.get("completionTime") or next(
        (
            c.get("lastTransitionTime")
            for c in st.get("conditions") or []
            if c.get("type") in ("Failed", "Complete") and c.get("status") == "True"
        ),
        None,
    )
    try:
        start = dt.datetime.fromisoformat(str(st["startTime"]))
        stop = dt.datetime.fromisoformat(str(end))
    except (KeyError, TypeError, ValueError):
        return None
    return max(0.0, (stop - start).total_seconds())


def _stuck(namespace: str, job: str, pull_grace: float) -> bool:
    pods = FLEET.pods_of(namespace, job)
    verdict = pod_failures.classify(pods, dt.datetime.now(dt.UTC), pull_grace=pull_grace)
    return verdict is not None and verdict.terminal


def _progress(namespace: str, pods: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The current step and backfill counts from the runner's last progress lines."""
    for pod in pods:
        if (pod.get("status") or {}).get("phase") != "Running":
            continue
        text = kube.read_pod_log(namespace, pod["metadata"]["name"], "runner")
        return progress_from_log(text)
    return None


def _job_phase(job: Mapping[str, Any]) -> JobPhase:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("status") != "True":
            continue
        if cond.get("type") == "Complete":
            return JobPhase.SUCCEEDED
        if cond.get("type") == "Failed":
            return JobPhase.FAILED
    return JobPhase.RUNNING


def _pod_outcome(pods: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, str, str]:
    """The runner's summary (termination message), or why the Pod waits or died."""
    result: dict[str, Any] | None = None
    reason = message = ""
    for pod in pods:
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            state = cs.get("state") or {}
            if state.get("terminated"):
                term = state["terminated"]
                parsed = kube.parse_termination_message(term.get("message"))
                if parsed is not None:
                    result = parsed
                else:
                    reason = term.get("reason") or reason
                    # the log tail (FallbackToLogsOnError): the runner redacts its own output.
                    message = (term.get("message") or "").strip()[-500:] or message
            elif state.get("waiting"):
                waiting = state["waiting"]
                reason = waiting.get("reason") or reason
                message = waiting.get("message") or message
    return result, reason, message


def _rollout(namespace: str, spec: MigrationSpec | None) -> tuple[DeploymentView, ...] | None:
    if spec is None or spec.contract.after is not ContractAfter.ROLLOUT:
        return None
    return tuple(kube.get_deployment_view(namespace, d) for d in spec.contract.rollout_deployments)


def _conflict(body: Mapping[str, Any], spec: MigrationSpec | None) -> str:
    """The older Migration sharing this one's database Secret and tracking table, if any.

    The operator cannot read the Secret, so "same database" means "same Secret and key";
    two Secrets naming one database are caught by the runner's lock instead. Read from the
    watch-kept index (fleet.py), not a list of the namespace: the cost does not grow with N.
    """
    if spec is None:
        return ""
    meta = body["metadata"]
    key = tracking_key(meta["namespace"], body.get("spec") or {})
    if key is None:
        return ""
    me = (meta.get("creationTimestamp") or "", meta["name"])
    older = [other for other in FLEET.sharing(key) if other[1] != meta["name"] and other < me]
    return str(min(older)[1]) if older else ""
