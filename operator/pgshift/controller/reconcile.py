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
from collections.abc import Mapping
from typing import Any

from kubernetes.client.exceptions import ApiException

from pgshift.controller import kube, pod_failures
from pgshift.controller.api import (
    ANNOTATION_APPROVE,
    ANNOTATION_MARK_APPLIED,
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
from pgshift.controller.intent import Action, Event
from pgshift.controller.jobs import build_job, check_choices, job_name, notes_of
from pgshift.controller.memory import from_status
from pgshift.controller.observe import JobPhase, JobState, Observed, SourceState, iso
from pgshift.controller.progress import progress_from_log
from pgshift.controller.rollout import DeploymentView
from pgshift.controller.status import REASONS, Reason, patch_for, render
from pgshift.errors import PgshiftError
from pgshift.migrations import configmap_problems, read_mapping

log = logging.getLogger("pgshift.controller")

_locks: dict[tuple[str, str], asyncio.Lock] = {}
_wakeups: dict[tuple[str, str], asyncio.TimerHandle] = {}
_tasks: set[asyncio.Task[None]] = set()
#: (namespace, ConfigMap) -> Migrations reading it: an edit in place re-plans them.
configmap_refs: dict[tuple[str, str], set[str]] = {}


def _lock(key: tuple[str, str]) -> asyncio.Lock:
    return _locks.setdefault(key, asyncio.Lock())


async def reconcile(namespace: str, name: str, settings: Settings) -> None:
    """Never raises: a failure to reach the API is logged and retried later."""
    key = (namespace, name)
    async with _lock(key):
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
    old = _wakeups.pop((namespace, name), None)
    if old is not None:
        old.cancel()
    for names in configmap_refs.values():
        names.discard(name)


# --- synchronous part: API calls in a worker thread ---------------------------------------------


def _reconcile(namespace: str, name: str, settings: Settings) -> float | None:
    body = kube.get_migration(namespace, name)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return None  # gone: its Jobs go with it (owner references); nothing else to do.
    meta = body["metadata"]
    ref = Ref(namespace, name, meta["uid"], int(meta.get("generation") or 1))
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
                ANNOTATION_RESTORE,
                ANNOTATION_RESUME,
            )
        },
        source=_source(namespace, name, spec),
        job=_job_in_flight(ref, memory.seq, settings.image_pull_grace),
        rollout=_rollout(namespace, spec),
        conflict=_conflict(body, spec),
    )
    decision = decide(observed)
    memory = decision.memory
    events = list(decision.events)
    if decision.run is not None and spec is not None:
        manifest = build_job(ref, spec, settings, decision.run, memory.seq)
        jname = manifest["metadata"]["name"]
        created = kube.create_job(namespace, manifest)
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
    data = kube.get_configmap_data(namespace, cm)
    return judge_source(namespace, cm, data, spec.source.layout.value)


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


def _job_in_flight(ref: Ref, seq: int, pull_grace: float) -> JobState | None:
    jobs = [
        j
        for j in kube.list_jobs(ref.namespace, ref.name)
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
    result, reason, message = _pod_outcome(ref.namespace, jmeta["name"])
    verdict = pod_failures.classify(
        kube.list_job_pods(ref.namespace, jmeta["name"]),
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
    if phase is JobPhase.RUNNING and action is Action.APPLY:
        progress = _progress(ref.namespace, jmeta["name"])
    return JobState(
        name=jmeta["name"],
        action=action,
        phase=phase,
        result=result,
        reason=reason,
        message=message,
        notes=notes_of(job),
        progress=progress,
    )


def _stuck(namespace: str, job: str, pull_grace: float) -> bool:
    pods = kube.list_job_pods(namespace, job)
    verdict = pod_failures.classify(pods, dt.datetime.now(dt.UTC), pull_grace=pull_grace)
    return verdict is not None and verdict.terminal


def _progress(namespace: str, job: str) -> dict[str, Any] | None:
    """The current step and backfill counts from the runner's last progress lines."""
    for pod in kube.list_job_pods(namespace, job):
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


def _pod_outcome(namespace: str, job: str) -> tuple[dict[str, Any] | None, str, str]:
    """The runner's summary (termination message), or why the Pod waits or died."""
    result: dict[str, Any] | None = None
    reason = message = ""
    for pod in kube.list_job_pods(namespace, job):
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


def _tracking_key(spec: Mapping[str, Any]) -> tuple[str, str, str, str]:
    try:
        s = parse_spec(spec)
    except SpecError:
        return ("", "", "", "")
    return (s.database.name, s.database.key, s.tracking.schema, s.tracking.table)


def _conflict(body: Mapping[str, Any], spec: MigrationSpec | None) -> str:
    """The older Migration sharing this one's database Secret and tracking table, if any.

    The operator cannot read the Secret, so "same database" means "same Secret and key";
    two Secrets naming one database are caught by the runner's lock instead.
    """
    if spec is None:
        return ""
    meta = body["metadata"]
    mine = (spec.database.name, spec.database.key, spec.tracking.schema, spec.tracking.table)
    me = (meta.get("creationTimestamp") or "", meta["name"])
    for other in kube.list_migrations(meta["namespace"]):
        ometa = other["metadata"]
        if ometa["name"] == meta["name"] or ometa.get("deletionTimestamp"):
            continue
        if _tracking_key(other.get("spec") or {}) != mine:
            continue
        if (ometa.get("creationTimestamp") or "", ometa["name"]) < me:
            return str(ometa["name"])
    return ""
