"""The local cluster is a real Kubernetes node: Jobs, volumes, security contexts, RBAC, CRDs,
logs, images, and a tear-down that leaves nothing behind.

Every test runs against the session's ``kube_cluster`` (etcd, kube-apiserver,
kube-controller-manager, kube-scheduler, and a node: containerd + runc, kubelet and kube-proxy
in the node's own network namespace) in its own namespace. Pods run the project's image
(imported by the fixture, never pulled); nothing here runs on the host as a Pod.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from localcluster.cluster import Cluster, ClusterInfo, launch
from localcluster.node import cgroup_hierarchies
from localcluster.pause import PAUSE_IMAGE
from localcluster.processes import marked_pids
from tests.e2e.conftest import IMAGE

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]


def apply(
    cluster: Cluster, namespace: str, manifest: str, *, check: bool = True
) -> subprocess.CompletedProcess[str]:
    # IMAGE: the project's image, which the node has (imported): never pulled.
    manifest = re.sub(r"image: IMAGE(?=[,}])", f"image: {IMAGE}, imagePullPolicy: Never", manifest)
    manifest = re.sub(
        r"^( *)(- )?image: IMAGE$",
        lambda m: f"{m[1]}{m[2] or ''}image: {IMAGE}\n{m[1]}{'  ' if m[2] else ''}"
        "imagePullPolicy: Never",
        manifest,
        flags=re.MULTILINE,
    )
    return cluster.kubectl("apply", "-n", namespace, "-f", "-", input=manifest, check=check)


def pod_of(cluster: Cluster, namespace: str, job: str) -> dict[str, Any]:
    pods = cluster.get_json("pods", "-n", namespace, "-l", f"job-name={job}")["items"]
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    return pods[0]


def wait_pod_done(
    cluster: Cluster, namespace: str, name: str, timeout: float = 120
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pod = cluster.get_json("pod", name, "-n", namespace)
        if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            return pod
        time.sleep(0.5)
    raise AssertionError(f"pod {namespace}/{name} did not finish: {pod.get('status')}")


def terminated(pod: dict[str, Any]) -> dict[str, Any]:
    return pod["status"]["containerStatuses"][0]["state"]["terminated"]


def host_iptables_chains() -> list[str]:
    """KUBE-* and CNI-* chains in the host's own network namespace (kube-proxy and the CNI
    plugins write theirs in the node's namespace only)."""
    found = []
    for table in ("filter", "nat", "mangle"):
        done = subprocess.run(["iptables", "-t", table, "-S"], capture_output=True, text=True)
        found += [
            line for line in done.stdout.splitlines()
            if line.startswith("-N ") and line.split()[1].startswith(("KUBE-", "CNI-"))
        ]  # fmt: skip
    return found


def test_the_node_is_a_kubelet_v1_33_with_containerd_and_pods_get_ips(
    kube_cluster: Cluster, kube_namespace: str
) -> None:
    nodes = kube_cluster.kubectl("get", "nodes", "-o", "wide").stdout
    row = nodes.splitlines()[1].split()
    assert row[0] == "localcluster" and row[1] == "Ready", nodes
    assert row[4].startswith("v1.33."), nodes  # VERSION: the kubelet's
    assert kube_cluster.node_ip in row, nodes  # INTERNAL-IP: the node end of its veth
    assert "containerd://1.6" in nodes, nodes
    node = kube_cluster.get_json("node", "localcluster")
    assert node["status"]["nodeInfo"]["kubeletVersion"].startswith("v1.33.")
    apply(
        kube_cluster,
        kube_namespace,
        """
apiVersion: v1
kind: Pod
metadata: {name: ip}
spec:
  restartPolicy: Never
  containers: [{name: main, image: IMAGE, command: [sh, -c, 'hostname -i']}]
""",
    )
    pod = wait_pod_done(kube_cluster, kube_namespace, "ip")
    wide = kube_cluster.kubectl("get", "pods", "-o", "wide", "-n", kube_namespace).stdout
    ip = pod["status"]["podIP"]
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(kube_cluster.pod_cidr)
    assert ip in wide and "localcluster" in wide, wide
    logs = kube_cluster.kubectl("logs", "-n", kube_namespace, "ip").stdout
    assert logs.split() == [ip]


def test_job_writes_into_its_claim_and_kubectl_logs_prints_its_output(
    kube_cluster: Cluster, kube_namespace: str
) -> None:
    apply(
        kube_cluster,
        kube_namespace,
        """
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: backups}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: batch/v1
kind: Job
metadata: {name: writer}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: IMAGE
        command: [sh, -c, 'echo "dump of $(hostname)" > /backups/dump.sql && echo wrote dump']
        # Guaranteed QoS: the agent's status patches must not touch the qosClass.
        resources: {requests: {cpu: 100m, memory: 64Mi}, limits: {cpu: 100m, memory: 64Mi}}
        volumeMounts: [{name: backups, mountPath: /backups}]
      volumes: [{name: backups, persistentVolumeClaim: {claimName: backups}}]
""",
    )
    kube_cluster.kubectl(
        "wait", "-n", kube_namespace, "--for=condition=complete", "job/writer", "--timeout=60s"
    )
    pod = pod_of(kube_cluster, kube_namespace, "writer")
    folder = kube_cluster.host_path_for_claim(kube_namespace, "backups")
    assert (folder / "dump.sql").read_text() == f"dump of {pod['metadata']['name']}\n"
    logs = kube_cluster.kubectl("logs", "-n", kube_namespace, "job/writer").stdout
    assert logs == "wrote dump\n"


def test_failing_job_ends_failed_after_its_backoff_limit(
    kube_cluster: Cluster, kube_namespace: str
) -> None:
    apply(
        kube_cluster,
        kube_namespace,
        """
apiVersion: batch/v1
kind: Job
metadata: {name: failing}
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: main, image: IMAGE, command: [sh, -c, 'echo boom >&2; exit 4']}
""",
    )
    kube_cluster.kubectl(
        "wait", "-n", kube_namespace, "--for=condition=failed", "job/failing", "--timeout=90s"
    )
    job = kube_cluster.get_json("job", "failing", "-n", kube_namespace)
    assert job["status"]["failed"] == 2  # the first try and one retry
    reasons = {c["type"]: c.get("reason") for c in job["status"]["conditions"]}
    assert reasons["Failed"] == "BackoffLimitExceeded"


def test_secret_env_configmap_volume_and_termination_message_reach_the_pod(
    kube_cluster: Cluster, kube_namespace: str
) -> None:
    apply(
        kube_cluster,
        kube_namespace,
        """
apiVersion: v1
kind: Secret
metadata: {name: shop-db}
stringData: {DATABASE_URL: "postgresql://shop:s3cr%40t@127.0.0.1:5432/shop"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: migrations}
data: {"0001_init.sql": "CREATE TABLE t (id int);"}
---
apiVersion: v1
kind: Pod
metadata: {name: runner, labels: {app: pgshift}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: IMAGE
    workingDir: /migrations
    command: [sh, -c]
    args:
    - >-
      echo "$DATABASE_URL|$POD|$APP|$(cat 0001_init.sql)|$(pwd)";
      echo '{"applied": 1}' > /dev/termination-log
    env:
    - {name: DATABASE_URL, valueFrom: {secretKeyRef: {name: shop-db, key: DATABASE_URL}}}
    - {name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: APP, valueFrom: {fieldRef: {fieldPath: "metadata.labels['app']"}}}
    volumeMounts: [{name: migrations, mountPath: /migrations}]
  volumes: [{name: migrations, configMap: {name: migrations}}]
---
apiVersion: v1
kind: Pod
metadata: {name: fallback}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: IMAGE
    command: [sh, -c, 'echo first; echo last words; exit 2']
    terminationMessagePolicy: FallbackToLogsOnError
""",
    )
    pod = wait_pod_done(kube_cluster, kube_namespace, "runner")
    assert pod["status"]["phase"] == "Succeeded"
    assert terminated(pod)["message"] == '{"applied": 1}\n'
    logs = kube_cluster.kubectl("logs", "-n", kube_namespace, "runner").stdout
    assert logs == (
        "postgresql://shop:s3cr%40t@127.0.0.1:5432/shop|runner|pgshift"
        "|CREATE TABLE t (id int);|/migrations\n"
    )
    failed = wait_pod_done(kube_cluster, kube_namespace, "fallback")
    assert failed["status"]["phase"] == "Failed"
    assert terminated(failed) | {"exitCode": 2, "reason": "Error"} == terminated(failed)
    assert terminated(failed)["message"].strip() == "first\nlast words"


def test_non_root_read_only_pod_runs_as_its_uid_and_writes_only_to_volumes(
    kube_cluster: Cluster, kube_namespace: str
) -> None:
    apply(
        kube_cluster,
        kube_namespace,
        """
apiVersion: v1
kind: Pod
metadata: {name: locked}
spec:
  restartPolicy: Never
  securityContext: {runAsUser: 1000, runAsGroup: 1000, runAsNonRoot: true}
  containers:
  - name: main
    image: IMAGE
    command: [sh, -c]
    args:
    - |
      echo "uid=$(id -u) gid=$(id -g)"
      for target in /tmp/x /etc/x /x; do touch "$target" 2>/dev/null && echo "wrote $target"; done
      touch /scratch/ok && echo "wrote /scratch"
      python -c 'import kubernetes, sys; print("venv", sys.prefix)'
      command -v pgshift; command -v pg_dump; echo "$HOME"
    securityContext: {readOnlyRootFilesystem: true, allowPrivilegeEscalation: false}
    volumeMounts: [{name: scratch, mountPath: /scratch}]
  volumes: [{name: scratch, emptyDir: {}}]
""",
    )
    pod = wait_pod_done(kube_cluster, kube_namespace, "locked")
    logs = kube_cluster.kubectl("logs", "-n", kube_namespace, "locked").stdout.splitlines()
    assert pod["status"]["phase"] == "Succeeded", logs
    # the image's own venv and client, not the host's: the host is never the image.
    assert logs[:3] == ["uid=1000 gid=1000", "wrote /scratch", "venv /opt/pgshift"]
    assert logs[3:] == ["/opt/pgshift/bin/pgshift", "/usr/local/bin/pg_dump", "/tmp"]


IN_CLUSTER_LIST = """
from kubernetes import client, config
config.load_incluster_config()
try:
    pods = client.CoreV1Api().list_namespaced_pod(open(
        "/var/run/secrets/kubernetes.io/serviceaccount/namespace").read())
    print("listed", len(pods.items))
except client.ApiException as error:
    print("refused", error.status, error.reason)
"""


def test_in_cluster_rbac_is_enforced(kube_cluster: Cluster, kube_namespace: str) -> None:
    script = json.dumps(IN_CLUSTER_LIST)
    apply(
        kube_cluster,
        kube_namespace,
        f"""
apiVersion: v1
kind: ServiceAccount
metadata: {{name: lister}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: pod-lister}}
rules: [{{apiGroups: [""], resources: [pods], verbs: [list]}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: lister}}
subjects: [{{kind: ServiceAccount, name: lister, namespace: {kube_namespace}}}]
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-lister}}
---
apiVersion: v1
kind: Pod
metadata: {{name: allowed}}
spec:
  restartPolicy: Never
  serviceAccountName: lister
  securityContext: {{runAsUser: 1000}}
  containers: [{{name: main, image: IMAGE, command: [python, -c, {script}]}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: denied}}
spec:
  restartPolicy: Never
  securityContext: {{runAsUser: 1000}}
  containers: [{{name: main, image: IMAGE, command: [python, -c, {script}]}}]
""",
    )
    for name in ("allowed", "denied"):
        wait_pod_done(kube_cluster, kube_namespace, name)
    allowed = kube_cluster.kubectl("logs", "-n", kube_namespace, "allowed").stdout
    denied = kube_cluster.kubectl("logs", "-n", kube_namespace, "denied").stdout
    assert allowed.startswith("listed ")
    assert denied == "refused 403 Forbidden\n"


CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.e2e.localcluster.dev}
spec:
  group: e2e.localcluster.dev
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1, maximum: 10}
          status:
            type: object
            properties:
              conditions:
                type: array
                items:
                  type: object
                  properties:
                    type: {type: string}
                    status: {type: string}
                    reason: {type: string}
"""


def test_crd_schema_rejects_invalid_objects_and_wait_reads_status_conditions(
    kube_cluster: Cluster, kube_namespace: str
) -> None:
    kube_cluster.kubectl("apply", "-f", "-", input=CRD)
    kube_cluster.kubectl(
        "wait", "--for=condition=Established", "crd/widgets.e2e.localcluster.dev", "--timeout=30s"
    )
    widget = "apiVersion: e2e.localcluster.dev/v1\nkind: Widget\nmetadata: {name: w}\n"
    refused = apply(kube_cluster, kube_namespace, widget + "spec: {size: 11}\n", check=False)
    assert refused.returncode != 0
    assert "spec.size: Invalid value: 11: spec.size in body should be less than or equal to 10" in (
        refused.stderr
    )
    apply(kube_cluster, kube_namespace, widget + "spec: {size: 3}\n")
    status = {"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Done"}]}}
    kube_cluster.kubectl(
        "patch",
        "-n",
        kube_namespace,
        "widget/w",
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(status),
    )
    kube_cluster.kubectl(
        "wait", "-n", kube_namespace, "--for=condition=Ready", "widget/w", "--timeout=10s"
    )


def test_logs_follow_streams_until_the_container_ends_and_tail_lines_cuts(
    kube_cluster: Cluster, kube_namespace: str
) -> None:
    apply(
        kube_cluster,
        kube_namespace,
        """
apiVersion: v1
kind: Pod
metadata: {name: progress}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: IMAGE
    command: [sh, -c, 'for i in 1 2 3 4 5 6; do echo "{\\"step\\": $i}"; sleep 0.3; done']
""",
    )
    kube_cluster.kubectl(
        "wait",
        "-n",
        kube_namespace,
        "--for=jsonpath={.status.phase}=Running",
        "pod/progress",
        "--timeout=30s",
    )
    followed = kube_cluster.kubectl("logs", "-n", kube_namespace, "-f", "progress").stdout
    assert [json.loads(line)["step"] for line in followed.splitlines()] == [1, 2, 3, 4, 5, 6]
    tail = kube_cluster.kubectl("logs", "-n", kube_namespace, "--tail=2", "progress").stdout
    assert tail == '{"step": 5}\n{"step": 6}\n'


def test_a_missing_command_fails_the_pod_with_start_error(
    kube_cluster: Cluster, kube_namespace: str
) -> None:
    apply(
        kube_cluster,
        kube_namespace,
        """
apiVersion: v1
kind: Pod
metadata: {name: nocmd}
spec:
  restartPolicy: Never
  containers: [{name: main, image: IMAGE, command: [no-such-tool, --version]}]
""",
    )
    state = terminated(wait_pod_done(kube_cluster, kube_namespace, "nocmd"))
    assert (state["reason"], state["exitCode"]) == ("StartError", 128)
    assert 'exec: "no-such-tool": executable file not found in $PATH' in state["message"]


def _pod_pids(cluster: Cluster, pod_uid: str) -> set[int]:
    """Processes in the Pod's cgroups (under the cluster's own cgroup root)."""
    root = f"localcluster-{cluster.info.id}"
    pids: set[int] = set()
    for hierarchy in cgroup_hierarchies():
        for procs in (hierarchy / root).rglob("cgroup.procs"):
            if f"pod{pod_uid}" in str(procs):
                pids.update(int(x) for x in procs.read_text().split())
    return pids


def test_deleting_a_running_pod_kills_its_processes(
    kube_cluster: Cluster, kube_namespace: str
) -> None:
    apply(
        kube_cluster,
        kube_namespace,
        """
apiVersion: v1
kind: Pod
metadata: {name: sleeper}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 5
  containers: [{name: main, image: IMAGE, command: [sh, -c, 'sleep 300 & wait']}]
""",
    )
    kube_cluster.kubectl(
        "wait", "-n", kube_namespace, "--for=jsonpath={.status.phase}=Running", "pod/sleeper",
        "--timeout=60s",
    )  # fmt: skip
    uid = kube_cluster.get_json("pod", "sleeper", "-n", kube_namespace)["metadata"]["uid"]
    assert len(_pod_pids(kube_cluster, uid)) >= 3  # pause, sh, sleep
    kube_cluster.kubectl("delete", "-n", kube_namespace, "pod/sleeper", "--timeout=60s")
    assert _pod_pids(kube_cluster, uid) == set()


def test_init_container_copies_files_out_of_a_migrations_image(
    kube_cluster: Cluster, kube_namespace: str, migrations_image: str
) -> None:
    apply(
        kube_cluster,
        kube_namespace,
        f"""
apiVersion: v1
kind: Pod
metadata: {{name: copier}}
spec:
  restartPolicy: Never
  initContainers:
  - name: copy
    image: {migrations_image}
    imagePullPolicy: Never
    command: [cp, -r, /migrations/., /work/]
    volumeMounts: [{{name: work, mountPath: /work}}]
  - name: second
    image: IMAGE
    command: [sh, -c, 'test ! -e /migrations && echo "no image files here"']
  containers:
  - name: main
    image: IMAGE
    command: [sh, -c, 'ls /work/ && head -c 40 /work/meta/_journal.json']
    volumeMounts: [{{name: work, mountPath: /work}}]
  volumes: [{{name: work, emptyDir: {{}}}}]
""",
    )
    pod = wait_pod_done(kube_cluster, kube_namespace, "copier")
    assert pod["status"]["phase"] == "Succeeded", pod["status"]
    second = kube_cluster.kubectl("logs", "-n", kube_namespace, "copier", "-c", "second").stdout
    assert second == "no image files here\n"
    main = kube_cluster.kubectl("logs", "-n", kube_namespace, "copier", "-c", "main").stdout
    assert "0000_" in main and "meta" in main, main


def test_a_deployment_rolls_out_and_its_pods_restart_when_they_exit(
    kube_cluster: Cluster, kube_namespace: str
) -> None:
    apply(
        kube_cluster,
        kube_namespace,
        """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  strategy: {type: Recreate}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: IMAGE, command: [sh, -c, 'echo started; sleep 1; exit 1']}
""",
    )
    kube_cluster.kubectl(
        "rollout", "status", "-n", kube_namespace, "deployment/web", "--timeout=90s"
    )
    deadline = time.monotonic() + 90  # the kubelet's restart back-off starts at 10 s
    restarts = 0
    while time.monotonic() < deadline:
        pods = kube_cluster.get_json("pods", "-n", kube_namespace, "-l", "app=web")["items"]
        statuses = pods[0]["status"].get("containerStatuses") if pods else None
        restarts = statuses[0]["restartCount"] if statuses else 0
        if restarts >= 1 and statuses[0].get("lastState", {}).get("terminated"):
            break
        time.sleep(1)
    assert restarts >= 1
    last = pods[0]["status"]["containerStatuses"][0]["lastState"]["terminated"]
    assert (last["exitCode"], last["reason"]) == (1, "Error")
    logs = kube_cluster.kubectl("logs", "-n", kube_namespace, "deployment/web")
    assert logs.stdout == "started\n"


def test_two_clusters_run_at_once_and_stopping_one_leaves_nothing_of_it(
    kube_cluster: Cluster, kube_namespace: str
) -> None:
    """One cluster never breaks another: own netns, bridge, pod CIDR, cgroups, containerd."""
    second = launch(tie_to_parent=True)  # no image but the pause one: it is enough to run
    try:
        ours, theirs = kube_cluster.network, second.network
        assert ours.netns != theirs.netns and ours.bridge != theirs.bridge
        assert ours.pod_cidr != theirs.pod_cidr and ours.host_ip != theirs.host_ip
        for cluster, ns in ((kube_cluster, kube_namespace), (second, "default")):
            cluster.kubectl(
                "run", "lingering", "-n", ns, f"--image={PAUSE_IMAGE}",
                "--image-pull-policy=Never", "--restart=Never",
            )  # fmt: skip
        for cluster, ns in ((kube_cluster, kube_namespace), (second, "default")):
            cluster.kubectl(
                "wait", "-n", ns, "--for=jsonpath={.status.phase}=Running", "pod/lingering",
                "--timeout=90s",
            )  # fmt: skip
            ip = cluster.get_json("pod", "lingering", "-n", ns)["status"]["podIP"]
            assert ipaddress.ip_address(ip) in ipaddress.ip_network(cluster.pod_cidr)
        # supervisor, etcd, apiserver, kcm, scheduler, containerd, kubelet, kube-proxy, shim
        assert len(marked_pids(second.info.id)) >= 9
    finally:
        second.stop()
    assert second.leftovers() == []
    assert not second.dir.exists()
    assert host_iptables_chains() == []
    # the session's cluster did not notice: its node is Ready, its Pod still runs.
    pod = kube_cluster.get_json("pod", "lingering", "-n", kube_namespace)
    assert pod["status"]["phase"] == "Running"
    node = kube_cluster.get_json("node", "localcluster")
    assert {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"] == "True"


def test_up_status_down_through_the_command_line(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "LOCALCLUSTER_STATE": str(tmp_path / "up.json"),
        "PYTHONPATH": str(REPO_ROOT),
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "localcluster", *args],
            env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip

    missing = run("up", "--image", str(tmp_path / "nope.tar"))
    assert missing.returncode == 2, missing.stderr
    assert "nope.tar not found" in missing.stderr and not (tmp_path / "up.json").exists()
    up = run("up")
    assert up.returncode == 0, up.stderr
    kubeconfig = up.stdout.strip().removeprefix("export KUBECONFIG=")
    state = json.loads((tmp_path / "up.json").read_text())
    try:
        assert run("status").returncode == 0
        again = run("up")  # the same state: refused, the first cluster untouched
        assert again.returncode == 2 and "already up" in again.stderr, again.stderr
        nodes = subprocess.run(
            ["kubectl", f"--kubeconfig={kubeconfig}", "get", "nodes"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert "localcluster   Ready" in nodes
    finally:
        down = run("down")
    assert down.returncode == 0, down.stderr
    assert Cluster(ClusterInfo(**state)).leftovers() == []
    assert not Path(state["dir"]).exists()
    assert run("status").returncode == 1
