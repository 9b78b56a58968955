"""Least privilege, proven on a real kube-apiserver: the chart's RBAC applied, then asked with
`kubectl auth can-i --as=system:serviceaccount:<namespace>:<serviceaccount>` (docs/rbac.md).

The Deployment is left out of what is applied: these tests are about what the operator's
ServiceAccount may do, not about running it (tests/e2e/test_install.py runs it).
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.e2e

#: (namespace, verb, resource[.group], extra kubectl flags such as --subresource=status)
Check = tuple[str, str, str, tuple[str, ...]]

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "pgshift"


@dataclass(frozen=True)
class Install:
    operator_ns: str
    service_account: str
    watched: tuple[str, ...]
    unwatched: str

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.operator_ns}:{self.service_account}"


def helm() -> Path:
    out = subprocess.run(
        [str(ROOT / "tools" / "install-go-tools.sh")], check=True, capture_output=True, text=True
    )
    return Path(out.stdout.strip().splitlines()[-1]) / "helm"


def render_without_deployment(release: str, namespace: str, *values: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [str(helm()), "template", release, str(CHART), "--namespace", namespace, *values],
        check=True,
        capture_output=True,
        text=True,
    )
    return [d for d in yaml.safe_load_all(out.stdout) if d and d["kind"] != "Deployment"]


def _attributes(ns: str, verb: str, resource: str, extra: tuple[str, ...]) -> dict[str, str]:
    name, _, group = resource.partition(".")
    attrs = {"namespace": ns, "verb": verb, "group": group, "resource": name}
    for flag in extra:
        if flag.startswith("--subresource="):
            attrs["subresource"] = flag.split("=", 1)[1]
    return attrs


def allowed(cluster: Any, user: str, checks: list[Check]) -> dict[Check, bool]:
    """The apiserver's answers for many checks in one call: SubjectAccessReviews, the API that
    `kubectl auth can-i --as=...` asks (same user and groups as the impersonation adds)."""
    _, _, sa_ns, _ = user.split(":", 3)
    groups = ["system:serviceaccounts", f"system:serviceaccounts:{sa_ns}", "system:authenticated"]
    reviews = [
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {"user": user, "groups": groups, "resourceAttributes": _attributes(*check)},
        }
        for check in checks
    ]
    out = cluster.kubectl(
        "create",
        "-f",
        "-",
        "-o",
        "json",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": reviews}),
    )
    # one JSON document per review, one after the other
    items, text, decoder, at = [], out.stdout, json.JSONDecoder(), 0
    while text[at:].strip():
        doc, end = decoder.raw_decode(text, at + (len(text[at:]) - len(text[at:].lstrip())))
        items.extend(doc["items"] if doc.get("kind") == "List" else [doc])
        at = end
    assert len(items) == len(checks)
    return {
        check: bool(item["status"].get("allowed"))
        for check, item in zip(checks, items, strict=True)
    }


def can_i(cluster: Any, user: str, verb: str, resource: str, *extra: str) -> bool:
    """`kubectl auth can-i VERB RESOURCE --as=USER ...`, literally."""
    done = cluster.kubectl("auth", "can-i", verb, resource, f"--as={user}", *extra, check=False)
    assert done.stdout.strip() in ("yes", "no"), done.stderr
    return done.stdout.strip() == "yes"


def install(cluster: Any, objs: list[dict[str, Any]], namespaces: list[str]) -> list[str]:
    """Create the namespaces, apply the objects; return the cluster-scoped ones to delete."""
    for ns in namespaces:
        cluster.kubectl("create", "namespace", ns)
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objs))
    return [
        f"{o['kind'].lower()}/{o['metadata']['name']}"
        for o in objs
        if o["kind"] in ("ClusterRole", "ClusterRoleBinding")
    ]


def uninstall(cluster: Any, cluster_scoped: list[str], namespaces: list[str]) -> None:
    for ref in cluster_scoped:
        cluster.kubectl("delete", ref, "--ignore-not-found", check=False)
    for ns in namespaces:
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


@pytest.fixture(scope="module")
def crd(kube_cluster: Any) -> None:
    """`kubectl auth can-i` resolves resource names through discovery: the kind must exist."""
    kube_cluster.kubectl("apply", "-f", str(CHART / "crds" / "pgshift.dev_migrations.yaml"))
    kube_cluster.kubectl(
        "wait", "--for=condition=Established", "crd/migrations.pgshift.dev", "--timeout=60s"
    )


@pytest.fixture(scope="module")
def scoped(kube_cluster: Any, crd: None) -> Iterator[Install]:
    """The chart with watchNamespaces={shop-like namespace, a second one}."""
    tag = uuid.uuid4().hex[:6]
    it = Install(
        operator_ns=f"pgs-rbac-op-{tag}",
        service_account=f"rbac-{tag}-pgshift",
        watched=(f"pgs-rbac-a-{tag}", f"pgs-rbac-b-{tag}"),
        unwatched=f"pgs-rbac-x-{tag}",
    )
    objs = render_without_deployment(
        f"rbac-{tag}", it.operator_ns, "--set", f"watchNamespaces={{{','.join(it.watched)}}}"
    )
    namespaces = [it.operator_ns, *it.watched, it.unwatched]
    cluster_scoped = install(kube_cluster, objs, namespaces)
    try:
        yield it
    finally:
        uninstall(kube_cluster, cluster_scoped, namespaces)


@pytest.fixture(scope="module")
def clusterwide(kube_cluster: Any, crd: None) -> Iterator[Install]:
    """The chart with its defaults: every namespace."""
    tag = uuid.uuid4().hex[:6]
    it = Install(
        operator_ns=f"pgs-rbac-cw-{tag}",
        service_account=f"rbac-cw-{tag}-pgshift",
        watched=(f"pgs-rbac-any-{tag}",),
        unwatched="",
    )
    objs = render_without_deployment(f"rbac-cw-{tag}", it.operator_ns)
    namespaces = [it.operator_ns, *it.watched]
    cluster_scoped = install(kube_cluster, objs, namespaces)
    try:
        yield it
    finally:
        uninstall(kube_cluster, cluster_scoped, namespaces)


#: (verb, resource, extra flags): what the operator needs in a watched namespace (docs/rbac.md).
NEEDED = [
    ("get", "migrations.pgshift.dev", ()),
    ("list", "migrations.pgshift.dev", ()),
    ("watch", "migrations.pgshift.dev", ()),
    ("patch", "migrations.pgshift.dev", ()),
    ("patch", "migrations.pgshift.dev", ("--subresource=status",)),
    ("create", "jobs.batch", ()),
    ("list", "jobs.batch", ()),
    ("watch", "jobs.batch", ()),
    ("list", "pods", ()),
    ("watch", "pods", ()),
    # backfill progress from a running apply Job's log tail (docs/rbac.md).
    ("get", "pods", ("--subresource=log",)),
    ("get", "configmaps", ()),
    ("list", "configmaps", ()),
    ("watch", "configmaps", ()),
    ("get", "deployments.apps", ()),
    ("list", "replicasets.apps", ()),
    ("create", "events", ()),
]

#: what it must never do, anywhere.
FORBIDDEN = [
    ("get", "secrets", ()),
    ("list", "secrets", ()),
    ("watch", "secrets", ()),
    ("delete", "secrets", ()),
    ("create", "secrets", ()),
    ("update", "secrets", ()),
    ("create", "pods", ()),
    ("create", "pods", ("--subresource=exec",)),
    ("delete", "jobs.batch", ()),
    ("update", "jobs.batch", ()),
    ("update", "deployments.apps", ()),
    ("patch", "deployments.apps", ()),
    ("update", "replicasets.apps", ()),
    ("delete", "replicasets.apps", ()),
    ("create", "roles.rbac.authorization.k8s.io", ()),
    ("create", "rolebindings.rbac.authorization.k8s.io", ()),
    ("escalate", "roles.rbac.authorization.k8s.io", ()),
    ("bind", "roles.rbac.authorization.k8s.io", ()),
    ("bind", "clusterroles.rbac.authorization.k8s.io", ()),
    ("impersonate", "serviceaccounts", ()),
    ("create", "serviceaccounts", ()),
    ("create", "serviceaccounts", ("--subresource=token",)),
    ("delete", "migrations.pgshift.dev", ()),
    ("create", "migrations.pgshift.dev", ()),
]


def checks(
    namespaces: list[str] | tuple[str, ...], table: list[tuple[str, str, tuple[str, ...]]]
) -> list[Check]:
    return [(ns, verb, resource, extra) for ns in namespaces for verb, resource, extra in table]


def test_scoped_operator_can_do_its_job_in_every_listed_namespace(
    kube_cluster: Any, scoped: Install
) -> None:
    answers = allowed(kube_cluster, scoped.user, checks(scoped.watched, NEEDED))
    assert [c for c, ok in answers.items() if not ok] == []


def test_scoped_operator_cannot_touch_an_unlisted_namespace(
    kube_cluster: Any, scoped: Install
) -> None:
    elsewhere = checks([scoped.unwatched, scoped.operator_ns, "default"], NEEDED)
    answers = allowed(kube_cluster, scoped.user, elsewhere)
    assert [c for c, ok in answers.items() if ok] == []


@pytest.mark.parametrize("mode", ["scoped", "clusterwide"])
def test_operator_cannot_read_secrets_or_escalate(
    kube_cluster: Any, mode: str, request: pytest.FixtureRequest
) -> None:
    it: Install = request.getfixturevalue(mode)
    where = [*it.watched, it.operator_ns, "default", ""]  # "" = all namespaces / cluster scope
    cluster_scoped = [
        ("", "create", "clusterrolebindings.rbac.authorization.k8s.io", ()),
        ("", "create", "clusterroles.rbac.authorization.k8s.io", ()),
        ("", "escalate", "clusterroles.rbac.authorization.k8s.io", ()),
        ("", "impersonate", "users", ()),
        ("", "update", "customresourcedefinitions.apiextensions.k8s.io", ()),
        ("", "create", "leases.coordination.k8s.io", ()),
        ("", "delete", "namespaces", ()),
    ]
    answers = allowed(kube_cluster, it.user, checks(where, FORBIDDEN) + cluster_scoped)
    assert [c for c, ok in answers.items() if ok] == []


def test_clusterwide_operator_works_in_any_namespace_and_sees_crds(
    kube_cluster: Any, clusterwide: Install
) -> None:
    answers = allowed(
        kube_cluster,
        clusterwide.user,
        [
            *checks([*clusterwide.watched, "default", ""], NEEDED),
            ("", "watch", "customresourcedefinitions.apiextensions.k8s.io", ()),
        ],
    )
    assert [c for c, ok in answers.items() if not ok] == []
    # kopf does not list namespaces when it watches the whole cluster: not granted
    assert allowed(kube_cluster, clusterwide.user, [("", "list", "namespaces", ())]) == {
        ("", "list", "namespaces", ()): False
    }


def test_scoped_operator_may_list_namespace_names_and_crds_only(
    kube_cluster: Any, scoped: Install
) -> None:
    wanted: list[Check] = [
        ("", "list", "namespaces", ()),
        ("", "watch", "namespaces", ()),
        ("", "watch", "customresourcedefinitions.apiextensions.k8s.io", ()),
    ]
    refused: list[Check] = [
        ("", "delete", "namespaces", ()),
        ("", "create", "namespaces", ()),
        ("", "patch", "namespaces", ()),
    ]
    answers = allowed(kube_cluster, scoped.user, wanted + refused)
    assert [answers[c] for c in wanted] == [True] * len(wanted)
    assert [answers[c] for c in refused] == [False] * len(refused)


def test_the_runner_service_account_can_do_nothing(kube_cluster: Any, scoped: Install) -> None:
    ns = scoped.watched[0]
    runner = f"system:serviceaccount:{ns}:pgshift-runner"
    sa = kube_cluster.get_json("-n", ns, "serviceaccount", "pgshift-runner")
    assert sa["automountServiceAccountToken"] is False
    answers = allowed(
        kube_cluster,
        runner,
        checks(
            [ns],
            [
                ("get", "secrets", ()),
                ("get", "migrations.pgshift.dev", ()),
                ("list", "pods", ()),
                ("get", "configmaps", ()),
                ("create", "jobs.batch", ()),
                ("create", "events", ()),
            ],
        ),
    )
    assert [c for c, ok in answers.items() if ok] == []


def test_kubectl_auth_can_i_says_the_same(kube_cluster: Any, scoped: Install) -> None:
    """The user's own tool, on the questions that matter most."""
    a, x = scoped.watched[0], scoped.unwatched
    assert can_i(kube_cluster, scoped.user, "create", "jobs.batch", "-n", a)
    assert can_i(
        kube_cluster,
        scoped.user,
        "patch",
        "migrations.pgshift.dev",
        "--subresource=status",
        "-n",
        a,
    )
    assert not can_i(kube_cluster, scoped.user, "get", "secrets", "-n", a)
    assert not can_i(kube_cluster, scoped.user, "delete", "secrets", "-n", a)
    assert not can_i(kube_cluster, scoped.user, "create", "jobs.batch", "-n", x)
    assert not can_i(kube_cluster, scoped.user, "bind", "clusterroles.rbac.authorization.k8s.io")
    assert not can_i(
        kube_cluster, scoped.user, "escalate", "roles.rbac.authorization.k8s.io", "-n", a
    )
    assert not can_i(
        kube_cluster, scoped.user, "create", "rolebindings.rbac.authorization.k8s.io", "-n", a
    )
