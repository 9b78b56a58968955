"""Every Kubernetes API call the controller makes, in one place (RBAC reads from here).

- migrations: get, list, watch (kopf watches them and keeps the conflict index, fleet.py)
- migrations/status: patch (status and conditions)
- jobs (batch): list, watch, create (run the runner; follow it)
- pods: list, watch (termination message, waiting reasons such as a missing Secret)
- pods/log: get (backfill progress lines of a running apply Job)
- configmaps: get, list, watch (digest of a ConfigMap source; re-plan on an edit in place)
- deployments (apps): get; replicasets (apps): list; pods: list (a Rollout gate: which pod
  template the Deployment runs, which it ran before, and whether old Pods are gone)
- events: create (an Event for every step)

Never Secrets: the runner Pods get the URL through `secretKeyRef`, resolved by the kubelet.
The client is synchronous; callers run it in a thread (`asyncio.to_thread`).
"""

from __future__ import annotations

import datetime as dt
import json
import typing
from collections.abc import Mapping
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from pgshift.controller.api import GROUP, LABEL_MIGRATION, PLURAL, VERSION
from pgshift.controller.rollout import DeploymentView, selector_string, view_of

_configured = False
#: (connect, read) seconds for every call: a hung request must not hold a Migration's lock.
TIMEOUT = (10, 30)


def _ensure_config() -> None:
    global _configured
    if _configured:
        return
    try:
        kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]
    _configured = True


_client: kubernetes.client.ApiClient | None = None
#: HTTP connections kept open to the apiserver: one per reconcile worker thread (handlers.py).
POOL_SIZE = 16


def _api() -> kubernetes.client.ApiClient:
    """One client for every call: a client per call opened a new TLS connection each time
    (a handshake per API call, the largest share of a reconcile's latency)."""
    global _client
    _ensure_config()
    if _client is None:
        config = kubernetes.client.Configuration.get_default_copy()
        config.connection_pool_maxsize = POOL_SIZE
        _client = kubernetes.client.ApiClient(config)
    return _client


def _dict(obj: Any) -> dict[str, Any]:
    """A client model as the API's own JSON (camelCase), like kopf's bodies."""
    serialised = _api().sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]
    return typing.cast(dict[str, Any], serialised)


def not_found(exc: ApiException) -> bool:
    return bool(exc.status == 404)


def get_migration(namespace: str, name: str) -> dict[str, Any] | None:
    api = kubernetes.client.CustomObjectsApi(_api())
    try:
        found = api.get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, _request_timeout=TIMEOUT
        )
        return typing.cast(dict[str, Any], found)  # the client returns the JSON as a dict
    except ApiException as exc:
        if not_found(exc):
            return None
        raise


def list_migrations(namespace: str) -> list[dict[str, Any]]:
    api = kubernetes.client.CustomObjectsApi(_api())
    found = api.list_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, _request_timeout=TIMEOUT
    )
    return list(typing.cast(dict[str, Any], found)["items"])


def patch_status(namespace: str, name: str, patch: Mapping[str, Any]) -> None:
    api = kubernetes.client.CustomObjectsApi(_api())
    # a JSON merge patch: nulls delete, lists are replaced whole.
    api.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        name,
        {"status": dict(patch)},
        _content_type="application/merge-patch+json",
        _request_timeout=TIMEOUT,
    )


def get_configmap_data(namespace: str, name: str) -> dict[str, str] | None:
    found = get_configmap(namespace, name)
    return None if found is None else found[1]


def get_configmap(namespace: str, name: str) -> tuple[str, dict[str, str]] | None:
    """(resourceVersion, data) of a ConfigMap, None when it does not exist."""
    api = kubernetes.client.CoreV1Api(_api())
    try:
        cm = api.read_namespaced_config_map(name, namespace, _request_timeout=TIMEOUT)
    except ApiException as exc:
        if not_found(exc):
            return None
        raise
    version = cm.metadata.resource_version if cm.metadata else ""
    return str(version or ""), dict(cm.data or {})


def get_deployment_view(namespace: str, name: str) -> DeploymentView:
    """A Deployment, its ReplicaSets and the Pods of its selector, for the Rollout gate."""
    apps = kubernetes.client.AppsV1Api(_api())
    core = kubernetes.client.CoreV1Api(_api())
    try:
        d = _dict(apps.read_namespaced_deployment(name, namespace, _request_timeout=TIMEOUT))
        selector = selector_string((d.get("spec") or {}).get("selector"))
        replicasets = apps.list_namespaced_replica_set(
            namespace, label_selector=selector, _request_timeout=TIMEOUT
        )
        pods = core.list_namespaced_pod(
            namespace, label_selector=selector, _request_timeout=TIMEOUT
        )
    except ApiException as exc:
        if not_found(exc):
            return DeploymentView(name=name, exists=False)
        if exc.status == 403:
            # an operator upgraded without its RBAC: say so rather than retry in silence.
            return DeploymentView(
                name=name,
                exists=False,
                problem=f"forbidden ({exc.reason}): the operator needs get on deployments and "
                "list on replicasets and pods (docs/rbac.md)",
            )
        raise
    return view_of(name, d, [_dict(rs) for rs in replicasets.items], [_dict(p) for p in pods.items])


def list_jobs(namespace: str, migration: str) -> list[dict[str, Any]]:
    api = kubernetes.client.BatchV1Api(_api())
    jobs = api.list_namespaced_job(
        namespace, label_selector=f"{LABEL_MIGRATION}={migration}", _request_timeout=TIMEOUT
    )
    return [_dict(j) for j in jobs.items]


def create_job(namespace: str, manifest: Mapping[str, Any]) -> bool:
    """Create the Job; False when it exists already (adopted: the name is deterministic)."""
    api = kubernetes.client.BatchV1Api(_api())
    try:
        # the client takes a plain dict body as well as a V1Job (it serialises either).
        api.create_namespaced_job(namespace, dict(manifest), _request_timeout=TIMEOUT)  # type: ignore[arg-type]
    except ApiException as exc:
        if exc.status == 409:
            return False
        raise
    return True


def list_job_pods(namespace: str, job_name: str) -> list[dict[str, Any]]:
    api = kubernetes.client.CoreV1Api(_api())
    pods = api.list_namespaced_pod(
        namespace, label_selector=f"job-name={job_name}", _request_timeout=TIMEOUT
    )
    return [_dict(p) for p in pods.items]


def read_pod_log(namespace: str, pod: str, container: str, tail_lines: int = 40) -> str:
    api = kubernetes.client.CoreV1Api(_api())
    try:
        return str(
            api.read_namespaced_pod_log(
                pod, namespace, container=container, tail_lines=tail_lines, _request_timeout=TIMEOUT
            )
        )
    except ApiException:
        return ""  # not started yet, or gone: progress is a nicety.


def post_event(body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    """A core/v1 Event on the Migration (what `kubectl describe` shows)."""
    meta = body["metadata"]
    now = dt.datetime.now(dt.UTC)
    api = kubernetes.client.CoreV1Api(_api())
    event = kubernetes.client.CoreV1Event(
        metadata=kubernetes.client.V1ObjectMeta(
            generate_name=f"{meta['name']}.", namespace=meta["namespace"]
        ),
        involved_object=kubernetes.client.V1ObjectReference(
            api_version=body.get("apiVersion"),
            kind=body.get("kind"),
            name=meta["name"],
            namespace=meta["namespace"],
            uid=meta.get("uid"),
        ),
        reason=reason,
        message=message[:1024],
        type=type_,
        first_timestamp=now,
        last_timestamp=now,
        count=1,
        source=kubernetes.client.V1EventSource(component="pgshift"),
        reporting_component="pgshift.dev/operator",
        reporting_instance="pgshift",
    )
    api.create_namespaced_event(meta["namespace"], event, _request_timeout=TIMEOUT)


def parse_termination_message(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        # FallbackToLogsOnError: the log's tail, when the runner died before writing a summary.
        return None
    return value if isinstance(value, dict) else None
