"""The Helm chart and the kustomize manifests, rendered offline and read as objects.

`make chart-check` runs helm lint and kubeconform on the same renders; this file asserts what
they mean: one Recreate replica running `pgshift operator` with probes and locked-down security
contexts, the operator's configuration in its environment, least-privilege RBAC (never Secrets,
never wildcards or escalation verbs, nothing outside the listed namespaces when scoped), and the
CRD, the chart and the kustomize base telling the same story.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "pgshift"
ESCALATING_VERBS = {"*", "escalate", "bind", "impersonate"}


@pytest.fixture(scope="module")
def helm() -> Path:
    out = subprocess.run(
        [str(ROOT / "tools" / "install-go-tools.sh")], check=True, capture_output=True, text=True
    )
    return Path(out.stdout.strip().splitlines()[-1]) / "helm"


def render(helm: Path, *values: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [str(helm), "template", "pgshift", str(CHART), "--namespace", "pgshift-system", *values],
        check=True,
        capture_output=True,
        text=True,
    )
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def kustomize(path: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        ["kubectl", "kustomize", str(path)], check=True, capture_output=True, text=True
    )
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def one(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objs if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, (kind, name, [o["metadata"]["name"] for o in found])
    return found[0]


def env_of(deployment: dict[str, Any]) -> dict[str, str]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def all_rules(objs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{o['kind']}/{o['metadata'].get('namespace', '')}/{o['metadata']['name']}", rule)
        for o in objs
        if o["kind"] in ("Role", "ClusterRole")
        for rule in o.get("rules", [])
    ]


def normalized(rules: list[dict[str, Any]]) -> list[tuple[str, str, tuple[str, ...]]]:
    return sorted(
        (group, resource, tuple(sorted(rule["verbs"])))
        for rule in rules
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
    )


def test_the_charts_crd_is_the_crd() -> None:
    src = ROOT / "manifests" / "crd" / "pgshift.dev_migrations.yaml"
    copy = CHART / "crds" / src.name
    assert copy.read_bytes() == src.read_bytes(), "run tools/sync-crds.sh"
    assert sorted(p.name for p in (CHART / "crds").iterdir()) == [src.name]
    assert subprocess.run([str(ROOT / "tools" / "sync-crds.sh"), "--check"]).returncode == 0


def test_one_recreated_replica_runs_pgshift_operator_with_probes(helm: Path) -> None:
    deployment = one(render(helm), "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["pgshift"]
    assert container["args"] == ["operator"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "probes"}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"probes": 8080, "metrics": 9090}
    assert env_of(deployment)["PGSHIFT_LIVENESS"] == "http://0.0.0.0:8080/healthz"
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]


def test_pod_and_container_are_locked_down(helm: Path) -> None:
    pod = one(render(helm), "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_the_operator_reads_its_configuration_from_the_environment(helm: Path) -> None:
    """Names as operator/pgshift/controller/config.py reads them."""
    from pgshift.controller.config import Settings

    objs = render(
        helm,
        "--set",
        "watchNamespaces={shop,billing}",
        "--set",
        "runner.allowedImages={registry.example.com/pgshift:0.2.0}",
        "--set",
        "runner.allowedServiceAccounts={migrator}",
        "--set",
        "image.tag=0.1.1",
    )
    settings = Settings.from_env(env_of(one(objs, "Deployment")))
    assert settings.namespaces == ("shop", "billing")
    assert settings.default_image == "ghcr.io/pgshift/pgshift:0.1.1"
    assert settings.allowed_images == (
        "ghcr.io/pgshift/pgshift:0.1.1",
        "registry.example.com/pgshift:0.2.0",
    )
    assert settings.allowed_service_accounts == ("pgshift-runner", "migrator")
    assert settings.liveness == "http://0.0.0.0:8080/healthz"
    assert settings.log_format == "json"
    assert settings.metrics == "http://0.0.0.0:9090/metrics"


def test_cluster_wide_by_default_with_jobs_on_the_default_service_account(helm: Path) -> None:
    objs = render(helm)
    assert not [o for o in objs if o["kind"] in ("Role", "RoleBinding")]
    one(objs, "ClusterRole", "pgshift")
    binding = one(objs, "ClusterRoleBinding", "pgshift")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "pgshift", "namespace": "pgshift-system"}
    ]
    settings_env = env_of(one(objs, "Deployment"))
    assert settings_env["PGSHIFT_NAMESPACES"] == ""
    assert settings_env["PGSHIFT_SERVICE_ACCOUNT"] == ""  # no runner SA was created anywhere


def test_listed_namespaces_get_a_role_each_and_nothing_cluster_wide(helm: Path) -> None:
    objs = render(helm, "--set", "watchNamespaces={shop,billing}")
    roles = [o for o in objs if o["kind"] == "Role"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["billing", "shop"]
    bindings = [o for o in objs if o["kind"] == "RoleBinding"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["billing", "shop"]
    # the only cluster-wide grant is discovery: CRDs and namespace names
    (cluster_role,) = [o for o in objs if o["kind"] == "ClusterRole"]
    assert normalized(cluster_role["rules"]) == [
        ("", "namespaces", ("get", "list", "watch")),
        ("apiextensions.k8s.io", "customresourcedefinitions", ("get", "list", "watch")),
    ]
    runners = [
        o
        for o in objs
        if o["kind"] == "ServiceAccount" and o["metadata"]["name"] == "pgshift-runner"
    ]
    assert sorted(r["metadata"]["namespace"] for r in runners) == ["billing", "shop"]
    assert all(r["automountServiceAccountToken"] is False for r in runners)
    assert env_of(one(objs, "Deployment"))["PGSHIFT_SERVICE_ACCOUNT"] == "pgshift-runner"


@pytest.mark.parametrize("values", [[], ["--set", "watchNamespaces={shop}"]])
def test_rbac_never_touches_secrets_and_cannot_escalate(helm: Path, values: list[str]) -> None:
    for where, rule in all_rules(render(helm, *values)):
        assert "secrets" not in rule.get("resources", []), where
        assert "*" not in rule.get("resources", []) and "*" not in rule.get("apiGroups", [])
        assert not ESCALATING_VERBS & set(rule["verbs"]), (where, rule)
        assert "rbac.authorization.k8s.io" not in rule.get("apiGroups", []), where
        assert "serviceaccounts/token" not in rule.get("resources", []), where


def test_the_rules_are_what_the_controller_calls(helm: Path) -> None:
    """controller/kube.py lists every API call; kopf adds its own needs (docs/rbac.md)."""
    rules = one(render(helm), "ClusterRole", "pgshift")["rules"]
    assert normalized(rules) == [
        ("", "configmaps", ("get", "list", "watch")),
        ("", "events", ("create",)),
        ("", "pods", ("list", "watch")),
        ("", "pods/log", ("get",)),
        ("apps", "deployments", ("get",)),
        ("apps", "replicasets", ("list",)),
        ("batch", "jobs", ("create", "list", "watch")),
        ("pgshift.dev", "migrations", ("get", "list", "patch", "watch")),
        ("pgshift.dev", "migrations/status", ("patch",)),
    ]


def test_the_kustomize_base_grants_exactly_what_the_chart_grants(helm: Path) -> None:
    chart = render(helm)
    base = kustomize(ROOT / "manifests")
    for name in ("pgshift", "pgshift-discovery"):
        assert normalized(one(base, "ClusterRole", name)["rules"]) == normalized(
            one(chart, "ClusterRole", name)["rules"]
        ), name
    chart_env, base_env = env_of(one(chart, "Deployment")), env_of(one(base, "Deployment"))
    assert sorted(chart_env) == sorted(base_env)
    chart_pod = one(chart, "Deployment")["spec"]["template"]["spec"]
    base_pod = one(base, "Deployment")["spec"]["template"]["spec"]
    assert base_pod["securityContext"] == chart_pod["securityContext"]
    for key in ("command", "args", "securityContext", "ports"):
        assert base_pod["containers"][0][key] == chart_pod["containers"][0][key], key
    one(base, "CustomResourceDefinition", "migrations.pgshift.dev")
    one(base, "Namespace", "pgshift-system")


def test_the_namespaced_example_grants_nothing_cluster_wide_but_discovery() -> None:
    objs = kustomize(ROOT / "manifests" / "examples" / "namespaced-install")
    cluster_roles = [o for o in objs if o["kind"] == "ClusterRole"]
    assert [c["metadata"]["name"] for c in cluster_roles] == ["pgshift-discovery"]
    role = one(objs, "Role", "pgshift")
    assert role["metadata"]["namespace"] == "shop"
    base_rules = one(kustomize(ROOT / "manifests"), "ClusterRole", "pgshift")["rules"]
    assert normalized(role["rules"]) == normalized(base_rules)
    assert env_of(one(objs, "Deployment"))["PGSHIFT_NAMESPACES"] == "shop"


def test_values_schema_refuses_mistakes(helm: Path) -> None:
    for bad in (
        "watchNamespaces={Not_A_Namespace}",
        "operator.logFormat=xml",
        "replicas=2",
        "metrics.path=metrics",
        "metrics.serviceMonitor.interval=often",
    ):
        out = subprocess.run(
            [str(helm), "template", "x", str(CHART), "--set", bad], capture_output=True, text=True
        )
        assert out.returncode != 0, bad
        assert "values don't meet the specifications of the schema" in out.stderr, out.stderr


# --- metrics (docs/metrics.md) ------------------------------------------------------------------


def test_metrics_port_path_service_and_servicemonitor_follow_the_values(helm: Path) -> None:
    from pgshift.controller.config import Settings
    from pgshift.controller.metrics import parse_endpoint

    objs = render(
        helm,
        "--set", "metrics.port=9100",
        "--set", "metrics.path=/prom",
        "--set", "metrics.serviceMonitor.enabled=true",
        "--set", "metrics.serviceMonitor.labels.release=kube-prometheus",
    )  # fmt: skip
    deployment = one(objs, "Deployment")
    endpoint = parse_endpoint(Settings.from_env(env_of(deployment)).metrics)
    assert endpoint is not None and (endpoint.port, endpoint.path) == (9100, "/prom")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert {"name": "metrics", "containerPort": 9100, "protocol": "TCP"} in container["ports"]
    service = one(objs, "Service", "pgshift-metrics")
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9100, "targetPort": "metrics", "protocol": "TCP"}
    ]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    monitor = one(objs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["pgshift-system"]}
    (ep,) = monitor["spec"]["endpoints"]
    assert (ep["port"], ep["path"], ep["interval"]) == ("metrics", "/prom", "30s")


def test_metrics_off_means_no_endpoint_no_port_no_service(helm: Path) -> None:
    objs = render(
        helm, "--set", "metrics.enabled=false", "--set", "metrics.serviceMonitor.enabled=true"
    )
    deployment = one(objs, "Deployment")
    assert env_of(deployment)["PGSHIFT_METRICS"] == ""
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert [p["name"] for p in container["ports"]] == ["probes"]
    assert not [o for o in objs if o["kind"] in ("Service", "ServiceMonitor")]
    assert not [o for o in render(helm) if o["kind"] == "ServiceMonitor"]  # optional: off


def test_the_dashboard_shows_every_series_the_operator_serves(helm: Path) -> None:
    import json

    from pgshift.controller.metrics import Metrics

    objs = render(helm, "--set", "metrics.dashboard.enabled=true")
    configmap = one(objs, "ConfigMap", "pgshift-dashboard")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(configmap["data"]["pgshift.json"])
    assert dashboard == json.loads((CHART / "files" / "grafana-dashboard.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    served = {m.name for m in Metrics().registry.collect()}
    # counters are named without _total in the registry; histograms by their base name.
    missing = [n for n in served if n not in exprs]
    assert not missing, missing
    kustomized = kustomize(ROOT / "manifests")
    base_service = one(kustomized, "Service", "pgshift-metrics")
    assert base_service["spec"]["ports"][0]["port"] == 9090
