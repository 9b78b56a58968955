"""kopf handlers: thin, each one a trigger for `reconcile`. No finalizers on Migrations.

Migrations get create/update/resume and field handlers only (kopf adds no finalizer for
those); progress comes from events of the Jobs and Pods pgshift labels, so deleting a
Migration or uninstalling pgshift never hangs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf

from pgshift.controller import kube
from pgshift.controller.api import (
    ANNOTATION_APPROVE,
    ANNOTATION_APPROVE_ROLLBACK,
    ANNOTATION_MARK_APPLIED,
    ANNOTATION_REPLAN,
    ANNOTATION_RESTORE,
    ANNOTATION_RESUME,
    ANNOTATION_RESUME_EDITED,
    ANNOTATION_RETRY,
    GROUP,
    LABEL_MANAGED_BY,
    LABEL_MIGRATION,
    MANAGED_BY,
    PLURAL,
    VERSION,
)
from pgshift.controller.config import Settings
from pgshift.controller.fleet import (
    FLEET,
    job_entry,
    matters,
    migration_entry,
    pod_entry,
    tracking_key,
)
from pgshift.controller.reconcile import configmap_refs, forget, reconcile

SETTINGS = Settings.from_env()
MIGRATIONS = (GROUP, VERSION, PLURAL)
OURS = {LABEL_MANAGED_BY: MANAGED_BY}


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, **kwargs: Any) -> None:
    """kopf's settings, chosen for a fleet (docs/operator.md, "A fleet on one operator")."""
    # pgshift posts its own Events (one per step); kopf's per-handler chatter stays in logs.
    settings.posting.level = logging.WARNING
    # the apiserver ends quiet watches; reconnect rather than trust a silent stream.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    # handlers only read and create: a failure (API unreachable) is retried soon.
    settings.execution.default_backoff = 10
    settings.networking.request_timeout = 60
    # one kopf worker per object with events (no limit, the default): a reconcile waits on
    # its own Migration's lock, never behind another Migration's. Idle workers go after 5 s
    # (kopf's default) so a quiet fleet holds no task per object.
    settings.queueing.worker_limit = None
    # handlers are async; the only sync ones kopf runs in its executor are none, so its pool
    # stays small. The Kubernetes client is synchronous: reconciles run it in the loop's
    # default executor, sized here (PGSHIFT_WORKERS) instead of Python's min(32, cpus + 4).
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(max_workers=SETTINGS.workers, thread_name_prefix="pgshift-api")
    )
    kube.POOL_SIZE = SETTINGS.workers
    # the indexes kopf keeps by watch (fleet.py): what reconciles read instead of listing.
    FLEET.migrations = kwargs["migrations_by_tracking"]
    FLEET.jobs = kwargs["jobs_by_migration"]
    FLEET.pods = kwargs["pods_by_job"]


@kopf.index(*MIGRATIONS)
async def migrations_by_tracking(
    namespace: str | None, meta: Mapping[str, Any], spec: Mapping[str, Any], **_: Any
) -> dict[Any, Any]:
    return migration_entry(_namespaced(namespace), meta, spec)


@kopf.index("batch", "v1", "jobs", labels=OURS)
async def jobs_by_migration(
    namespace: str | None, body: Mapping[str, Any], **_: Any
) -> dict[Any, Any]:
    return job_entry(_namespaced(namespace), body)


@kopf.index("", "v1", "pods", labels=OURS)
async def pods_by_job(namespace: str | None, body: Mapping[str, Any], **_: Any) -> dict[Any, Any]:
    return pod_entry(_namespaced(namespace), body)


@kopf.on.probe(id="settings")
def probe(**_: Any) -> dict[str, Any]:
    return {"namespaces": list(SETTINGS.namespaces) or "all"}


@kopf.on.resume(*MIGRATIONS)
@kopf.on.create(*MIGRATIONS)
@kopf.on.update(*MIGRATIONS, field="spec")
async def migration_changed(namespace: str | None, name: str, **_: Any) -> None:
    await reconcile(_namespaced(namespace), name, SETTINGS)


@kopf.on.field(*MIGRATIONS, field=("metadata", "annotations", ANNOTATION_APPROVE))
@kopf.on.field(*MIGRATIONS, field=("metadata", "annotations", ANNOTATION_RETRY))
@kopf.on.field(*MIGRATIONS, field=("metadata", "annotations", ANNOTATION_MARK_APPLIED))
@kopf.on.field(*MIGRATIONS, field=("metadata", "annotations", ANNOTATION_RESUME_EDITED))
@kopf.on.field(*MIGRATIONS, field=("metadata", "annotations", ANNOTATION_APPROVE_ROLLBACK))
@kopf.on.field(*MIGRATIONS, field=("metadata", "annotations", ANNOTATION_REPLAN))
@kopf.on.field(*MIGRATIONS, field=("metadata", "annotations", ANNOTATION_RESTORE))
@kopf.on.field(*MIGRATIONS, field=("metadata", "annotations", ANNOTATION_RESUME))
async def action_annotated(namespace: str | None, name: str, **_: Any) -> None:
    # the value is read and recorded by the machine: each value acts once.
    await reconcile(_namespaced(namespace), name, SETTINGS)


@kopf.on.event(*MIGRATIONS)
async def migration_deleted(
    namespace: str | None, name: str, type: str, body: Mapping[str, Any], **_: Any
) -> None:
    # a watch event, not an on.delete handler: no finalizer, and it fires even though the
    # object is already gone. The database and backups are left alone by design.
    if type != "DELETED":
        return
    namespace = _namespaced(namespace)
    forget(namespace, name)
    # one held back by a TrackingConflict with this one may go on now (kopf has already
    # dropped this one from the index).
    key = tracking_key(namespace, body.get("spec") or {})
    for _created, other in FLEET.sharing(key) if key else ():
        await reconcile(namespace, other, SETTINGS)


@kopf.on.event("batch", "v1", "jobs", labels=OURS)
@kopf.on.event("", "v1", "pods", labels=OURS)
async def runner_changed(
    namespace: str | None,
    labels: Mapping[str, str],
    type: str,
    body: Mapping[str, Any],
    **_: Any,
) -> None:
    migration = labels.get(LABEL_MIGRATION)
    if migration and type != "DELETED" and matters(body):
        await reconcile(_namespaced(namespace), migration, SETTINGS)


def _referenced(namespace: str | None, name: str, **_: Any) -> bool:
    return bool(configmap_refs.get((_namespaced(namespace), name)))


@kopf.on.event("", "v1", "configmaps", when=_referenced)
async def source_changed(namespace: str | None, name: str, **_: Any) -> None:
    # a ConfigMap edited in place changes the digest: reconcile re-plans.
    namespace = _namespaced(namespace)
    for migration in sorted(configmap_refs.get((namespace, name), ())):
        await reconcile(namespace, migration, SETTINGS)


def _namespaced(namespace: str | None) -> str:
    """kopf types `namespace` for cluster-scoped resources too; every one watched here is
    namespaced, so None would be a kopf bug, not a case to handle."""
    if namespace is None:
        raise kopf.PermanentError("a namespaced resource arrived without a namespace")
    return namespace
