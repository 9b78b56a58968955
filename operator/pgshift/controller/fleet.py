"""What the operator knows of the whole fleet, kept by watch (kopf indexes), never listed.

A reconcile of one Migration must cost the same with 10 or 10,000 of them in the namespace
(issue 15), so nothing it reads is a list of the fleet: the Migrations sharing a database
(conflict detection), the Jobs of one Migration and the Pods of one Job come from indexes that
kopf keeps up to date from its watch streams. kopf fills every index from a full list before
it calls the first handler, so a resumed operator sees all Migrations before it judges a
conflict. The functions here shape what the indexes hold (small: RSS stays flat in N); the
handlers that register them live in `handlers.py`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pgshift.controller import kube
from pgshift.controller.api import LABEL_MIGRATION, SpecError, parse_spec

#: (namespace, Secret, key, tracking schema, tracking table): one database's tracking table.
TrackingKey = tuple[str, str, str, str, str]


def tracking_key(namespace: str, spec: Mapping[str, Any]) -> TrackingKey | None:
    """Where a Migration records what it applied; None for a spec that cannot be read."""
    try:
        s = parse_spec(spec)
    except SpecError:
        return None
    return (namespace, s.database.name, s.database.key, s.tracking.schema, s.tracking.table)


def migration_entry(
    namespace: str, meta: Mapping[str, Any], spec: Mapping[str, Any]
) -> dict[TrackingKey, tuple[str, str]]:
    """The index entry of one Migration: its tracking key -> (creationTimestamp, name)."""
    if meta.get("deletionTimestamp"):
        return {}
    key = tracking_key(namespace, spec)
    if key is None:
        return {}
    return {key: (str(meta.get("creationTimestamp") or ""), str(meta["name"]))}


_KEPT_META = (
    "name", "uid", "labels", "annotations", "ownerReferences", "creationTimestamp",
    "deletionTimestamp",
)  # fmt: skip


def _slim(body: Mapping[str, Any]) -> dict[str, Any]:
    """A Job or Pod as the controller reads it: metadata without managedFields, and status."""
    meta = body.get("metadata") or {}
    return {
        "metadata": {k: meta[k] for k in _KEPT_META if k in meta},
        "status": dict(body.get("status") or {}),
    }


def job_entry(namespace: str, body: Mapping[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """The index entry of one runner Job: (namespace, Migration) -> the slim Job."""
    labels = (body.get("metadata") or {}).get("labels") or {}
    migration = labels.get(LABEL_MIGRATION)
    return {(namespace, migration): _slim(body)} if migration else {}


def pod_entry(namespace: str, body: Mapping[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """The index entry of one runner Pod: (namespace, Job name) -> the slim Pod."""
    labels = (body.get("metadata") or {}).get("labels") or {}
    job = labels.get("job-name") or labels.get("batch.kubernetes.io/job-name")
    return {(namespace, job): _slim(body)} if job else {}


class Lookup(Protocol):
    """kopf's read-only index: key -> a collection of values (`kopf.Index`)."""

    def __contains__(self, key: object) -> bool: ...

    def __getitem__(self, key: Any) -> Iterable[Any]: ...


def _values(index: Lookup, key: Any) -> list[Any]:
    # read from a worker thread while the loop updates the index: a lookup and one C-level
    # copy of the store (no Python code runs in between, so no size change mid-iteration).
    try:
        return list(index[key])
    except KeyError:
        return []


@dataclass
class Fleet:
    """The indexes, once kopf hands them over (the startup handler); the API until then
    (tests that call the reconcile functions without an operator)."""

    migrations: Lookup | None = None
    jobs: Lookup | None = None
    pods: Lookup | None = None
    #: how often a finished Job's Pods were read from the API (the index lagged behind).
    pod_fallbacks: int = 0

    def sharing(self, key: TrackingKey) -> list[tuple[str, str]]:
        """(creationTimestamp, name) of every Migration with this tracking key."""
        if self.migrations is None:
            found = []
            for other in kube.list_migrations(key[0]):
                entry = migration_entry(key[0], other["metadata"], other.get("spec") or {})
                found += [v for k, v in entry.items() if k == key]
            return found
        return _values(self.migrations, key)

    def jobs_of(self, namespace: str, migration: str) -> list[dict[str, Any]]:
        if self.jobs is None:
            return kube.list_jobs(namespace, migration)
        return _values(self.jobs, (namespace, migration))

    def pods_of(self, namespace: str, job: str, *, finished: bool = False) -> list[dict[str, Any]]:
        """The Pods of a Job. `finished`: the Job is done, so its Pod must show how it ended;
        if the Pod watch lags behind the Job watch, read it from the API once."""
        if self.pods is None:
            return kube.list_job_pods(namespace, job)
        pods = _values(self.pods, (namespace, job))
        if lagging(pods, finished=finished):
            self.pod_fallbacks += 1
            return kube.list_job_pods(namespace, job)
        return pods


def lagging(pods: Iterable[Mapping[str, Any]], *, finished: bool) -> bool:
    """The Job finished but no Pod of it in the index shows how it ended. PURE."""
    return finished and not any(_terminated(p) for p in pods)


#: waiting reasons every Pod passes through: nothing to decide on.
_STARTING = frozenset({"ContainerCreating", "PodInitializing", ""})


def matters(body: Mapping[str, Any]) -> bool:
    """Whether a runner Job's or Pod's event can change a decision. PURE.

    A Job matters once it is finished (Complete or Failed); a Pod once it runs (backfill
    progress), has ended, or waits for a reason other than starting (a missing Secret, an
    image that cannot be pulled: pod_failures.py). The other events of a step (a Job created,
    its Pod created or bound, counts updated, finalizers removed) would each cost a reconcile
    that decides nothing; skipping them keeps the reconciles per step flat.
    """
    status = body.get("status") or {}
    if body.get("kind") == "Job":
        return any(
            c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
    if status.get("phase") in ("Running", "Succeeded", "Failed"):
        return True
    statuses = [*(status.get("initContainerStatuses") or []),
                *(status.get("containerStatuses") or [])]  # fmt: skip
    for cs in statuses:
        state = cs.get("state") or {}
        if state.get("terminated"):
            return True
        if state.get("waiting") and str(state["waiting"].get("reason") or "") not in _STARTING:
            return True
    return False


def _terminated(pod: Mapping[str, Any]) -> bool:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return any((cs.get("state") or {}).get("terminated") for cs in statuses)


#: the operator's one view of the fleet (handlers.py hands kopf's indexes to it at startup).
FLEET = Fleet()
