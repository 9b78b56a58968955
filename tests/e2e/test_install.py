"""Install pgshift as a user would, on the local cluster, and let it work in-cluster.

Helm chart and kustomize base, each: install, the operator's Deployment gets a Pod (on the real
node: the project's image, imported, `IfNotPresent` so never pulled, with the Pod's own
ServiceAccount token, reaching the apiserver through the `kubernetes` Service), and that Pod
reconciles the quickstart
(`examples/quickstart`: drizzle-kit folder as a generated ConfigMap, backup claim, Migration
with `contract.after: Approval`) against a real PostgreSQL database: Ready, approved with
`kubectl pgshift approve`, Complete. No operator runs outside the cluster here.

Each install watches only its own test namespace (prefix `pgs-inst-`), so it never touches
another test's Migrations, and is removed afterwards (the CRD stays: it is shared).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from tests.e2e.conftest import IMAGE

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "pgshift"
QUICKSTART = ROOT / "examples" / "quickstart"
CONTRACT_MIGRATION = "0004_projects_slug_not_null"
WAIT = "300s"
#: the operator's retries and polls come quickly in tests (config.Settings reads these).
FAST = {"PGSHIFT_RETRY_BACKOFF": "2", "PGSHIFT_POLL_SECONDS": "2", "PGSHIFT_LOG_FORMAT": "plain"}


def tools_bin() -> Path:
    out = subprocess.run(
        [str(ROOT / "tools" / "install-go-tools.sh")], check=True, capture_output=True, text=True
    )
    return Path(out.stdout.strip().splitlines()[-1])


def free_port() -> int:
    """Any free port for kopf's probe (the Pod has its own network; any port would do)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def poll(what: Callable[[], Any], message: str, attempts: int = 600) -> Any:
    """Look at the cluster until `what()` is truthy (a bounded number of looks)."""
    for _ in range(attempts):
        value = what()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(message)


def namespace(cluster: Any, name: str) -> None:
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl("wait", "--for=create", "serviceaccount/default", "-n", name, "--timeout=60s")


def running_operator_pod(cluster: Any, ns: str, selector: str) -> dict[str, Any]:
    def pod() -> dict[str, Any] | None:
        pods = cluster.get_json("pods", "-n", ns, "-l", selector)["items"]
        running = [p for p in pods if p.get("status", {}).get("phase") == "Running"]
        return running[0] if running else None

    found = poll(pod, f"no Running operator Pod in {ns} ({selector})")
    assert isinstance(found, dict)
    return found


def plugin(kubeconfig: Path, *args: str) -> str:
    """`kubectl pgshift ...`: kubectl finds the plugin on PATH, as it would for a user."""
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "KUBECONFIG": str(kubeconfig),
    }
    done = subprocess.run(
        ["kubectl", "pgshift", *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def wait_condition(cluster: Any, ns: str, cond: str, operator_log: Callable[[], str]) -> None:
    done = cluster.kubectl(
        "-n", ns, "wait", f"--for=condition={cond}=true", "migration/shop", f"--timeout={WAIT}",
        check=False, timeout=400,
    )  # fmt: skip
    if done.returncode != 0:
        status = cluster.get_json("-n", ns, "migration", "shop").get("status")
        pytest.fail(
            f"{cond} not reached: {done.stderr}\nstatus: {json.dumps(status, indent=1)}\n"
            f"operator log (tail):\n{operator_log()[-4000:]}"
        )


def ship_quickstart_and_complete(
    cluster: Any, app_ns: str, database_url: str, operator_log: Callable[[], str]
) -> None:
    """The user's side: Secret, `kubectl apply -k`-style manifests, wait, approve, wait."""
    cluster.kubectl(
        "-n", app_ns, "create", "secret", "generic", "shop-db",
        f"--from-literal=DATABASE_URL={database_url}",
    )  # fmt: skip
    manifests = cluster.kubectl("kustomize", str(QUICKSTART)).stdout
    cluster.kubectl("-n", app_ns, "apply", "-f", "-", input=manifests)

    # Ready: everything but the contract step at the end, which waits for approval.
    wait_condition(cluster, app_ns, "Ready", operator_log)
    status = cluster.get_json("-n", app_ns, "migration", "shop")["status"]
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions["Complete"] == "False", status
    assert (status.get("gate") or {}).get("migration") == CONTRACT_MIGRATION, status

    kubeconfig = cluster.kubeconfig
    table = plugin(kubeconfig, "status", "-n", app_ns)
    assert "shop" in table.splitlines()[1] and "True" in table.splitlines()[1], table
    detail = plugin(kubeconfig, "status", "shop", "-n", app_ns)
    assert f"kubectl pgshift approve shop {CONTRACT_MIGRATION}" in detail, detail

    plugin(kubeconfig, "approve", "shop", CONTRACT_MIGRATION, "-n", app_ns)
    wait_condition(cluster, app_ns, "Complete", operator_log)

    status = cluster.get_json("-n", app_ns, "migration", "shop")["status"]
    assert status["pendingCount"] == 0
    assert status["appliedVersion"] == CONTRACT_MIGRATION
    assert CONTRACT_MIGRATION in (status.get("actions") or {}).get("approved", []), status
    assert "Phase:        Complete" in plugin(kubeconfig, "status", "shop", "-n", app_ns)
    assert (status.get("lastBackup") or {}).get("path"), status
    assert status["lastBackup"]["path"] in plugin(kubeconfig, "backups", "shop", "-n", app_ns)

    # The database holds what drizzle's migrator expects: one tracking row per migration.
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT count(*) FROM drizzle.__drizzle_migrations").fetchone()
    assert rows == (5,)

    # The RBAC was enough: neither kopf nor pgshift met a refusal on the way.
    log = operator_log()
    for refusal in ("Forbidden", "forbidden", "Not enough permissions", "(403)"):
        assert refusal not in log, log[-4000:]


def pod_log(cluster: Any, ns: str, selector: str) -> Callable[[], str]:
    def read() -> str:
        done = cluster.kubectl("-n", ns, "logs", "-l", selector, "--tail=-1", check=False)
        return done.stdout + done.stderr

    return read


@pytest.fixture
def names() -> Iterator[dict[str, str]]:
    tag = uuid.uuid4().hex[:6]
    yield {"operator": f"pgs-inst-op-{tag}", "app": f"pgs-inst-app-{tag}", "release": f"i{tag}"}


def test_helm_chart_runs_the_operator_in_cluster_to_complete(
    kube_cluster: Any, database_url: str, names: dict[str, str]
) -> None:
    helm = tools_bin() / "helm"
    app_ns, op_ns, release = names["app"], names["operator"], names["release"]
    namespace(kube_cluster, app_ns)  # the chart creates the runner ServiceAccount in it
    extra_env = [{"name": k, "value": v} for k, v in FAST.items()]
    install = subprocess.run(
        [
            str(helm), "install", release, str(CHART), "--namespace", op_ns, "--create-namespace",
            "--kubeconfig", str(kube_cluster.kubeconfig),
            "--set", f"watchNamespaces={{{app_ns}}}",
            "--set", f"operator.probePort={free_port()}",
            "--set-json", f"operator.extraEnv={json.dumps(extra_env)}",
        ],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    selector = f"app.kubernetes.io/instance={release},app.kubernetes.io/component=operator"
    try:
        assert install.returncode == 0, install.stderr
        assert "kubectl pgshift status" in install.stdout  # NOTES.txt
        kube_cluster.kubectl(
            "wait", "--for=condition=Established", "crd/migrations.pgshift.dev", "--timeout=60s"
        )

        pod = running_operator_pod(kube_cluster, op_ns, selector)
        assert pod["spec"]["serviceAccountName"] == f"{release}-pgshift"
        assert pod["spec"]["securityContext"]["runAsUser"] == 65532
        assert pod["spec"]["containers"][0]["command"] == ["pgshift"]
        assert pod["spec"]["containers"][0]["image"] == IMAGE
        assert pod["status"]["containerStatuses"][0]["imageID"]  # a real container ran it

        ship_quickstart_and_complete(
            kube_cluster, app_ns, database_url, pod_log(kube_cluster, op_ns, selector)
        )

        # The Jobs ran as the chart's runner ServiceAccount, without an API token.
        jobs = kube_cluster.get_json("-n", app_ns, "jobs")["items"]
        assert jobs
        for job in jobs:
            spec = job["spec"]["template"]["spec"]
            assert spec["serviceAccountName"] == "pgshift-runner"
            assert spec["automountServiceAccountToken"] is False
        # One operator, in the cluster: the same Pod is still the one running.
        assert (
            running_operator_pod(kube_cluster, op_ns, selector)["metadata"]["uid"]
            == (pod["metadata"]["uid"])
        )
    finally:
        subprocess.run(
            [str(helm), "uninstall", release, "--namespace", op_ns, "--wait",
             "--kubeconfig", str(kube_cluster.kubeconfig)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        for ns in (app_ns, op_ns):
            kube_cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_kustomize_base_runs_the_operator_in_cluster_to_complete(
    kube_cluster: Any, database_url: str, names: dict[str, str], tmp_path: Path
) -> None:
    """`kubectl apply -k` of manifests/base (through an overlay that narrows what it watches to
    this test's namespace, as examples/namespaced-install does, and speeds up retries)."""
    app_ns = names["app"]
    namespace(kube_cluster, app_ns)
    port = free_port()
    env = [{"name": "PGSHIFT_NAMESPACES", "value": app_ns}]
    env += [{"name": "PGSHIFT_LIVENESS", "value": f"http://0.0.0.0:{port}/healthz"}]
    env += [{"name": k, "value": v} for k, v in FAST.items()]
    deployment_patch = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "pgshift", "namespace": "pgshift-system"},
        "spec": {"template": {"spec": {"containers": [{"name": "operator", "env": env}]}}},
    }
    port_patch = [
        {
            "op": "replace",
            "path": "/spec/template/spec/containers/0/ports/0/containerPort",
            "value": port,
        }
    ]
    overlay = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(ROOT / "manifests" / "base", tmp_path)],
        "patches": [
            {"patch": yaml.safe_dump(deployment_patch)},
            {
                "target": {"kind": "Deployment", "name": "pgshift"},
                "patch": yaml.safe_dump(port_patch),
            },
            # watching listed namespaces, kopf lists namespaces (as examples/namespaced-install)
            {
                "target": {"kind": "ClusterRole", "name": "pgshift-discovery"},
                "patch": yaml.safe_dump(
                    [
                        {
                            "op": "add",
                            "path": "/rules/-",
                            "value": {
                                "apiGroups": [""],
                                "resources": ["namespaces"],
                                "verbs": ["get", "list", "watch"],
                            },
                        }
                    ]
                ),
            },
        ],
    }
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(overlay))
    rendered = [
        d for d in yaml.safe_load_all(kube_cluster.kubectl("kustomize", str(tmp_path)).stdout) if d
    ]
    cluster_scoped = [
        f"{d['kind'].lower()}/{d['metadata']['name']}"
        for d in rendered
        if d["kind"] in ("ClusterRole", "ClusterRoleBinding")
    ]
    selector = "app.kubernetes.io/name=pgshift,app.kubernetes.io/component=operator"
    try:
        kube_cluster.kubectl("apply", "-k", str(tmp_path))
        kube_cluster.kubectl(
            "wait", "--for=condition=Established", "crd/migrations.pgshift.dev", "--timeout=60s"
        )
        pod = running_operator_pod(kube_cluster, "pgshift-system", selector)
        assert pod["spec"]["serviceAccountName"] == "pgshift"
        assert pod["spec"]["containers"][0]["image"] == IMAGE
        # the namespace enforces the "restricted" Pod Security Standard: the Pod was admitted
        ns = kube_cluster.get_json("namespace", "pgshift-system")
        assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"

        ship_quickstart_and_complete(
            kube_cluster, app_ns, database_url, pod_log(kube_cluster, "pgshift-system", selector)
        )
    finally:
        kube_cluster.kubectl(
            "-n", "pgshift-system", "delete", "deployment", "pgshift", "--ignore-not-found",
            "--wait=true", "--timeout=120s", check=False, timeout=180,
        )  # fmt: skip
        for ref in cluster_scoped:
            kube_cluster.kubectl("delete", ref, "--ignore-not-found", check=False)
        for ns_name in (app_ns, "pgshift-system"):
            kube_cluster.kubectl("delete", "namespace", ns_name, "--wait=false", check=False)
