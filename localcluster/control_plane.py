"""etcd, kube-apiserver, kube-controller-manager and kube-scheduler in a private folder.

The flags are envtest's, plus what Pods on a real node need: RBAC, ServiceAccount admission, a
token issuer and keys, the apiserver reachable from the node (bound on every address, advertised
at the host end of the node's veth, so the `kubernetes` Service's endpoint is real), the node
lifecycle controller (it lifts the not-ready taint), and the scheduler.
"""

from __future__ import annotations

import base64
import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from localcluster import processes
from localcluster.build import Binaries
from localcluster.errors import LocalClusterError
from localcluster.pki import Pki

#: Controllers of kube-controller-manager that a single-node test cluster needs. The PV/PVC
#: protection controllers remove the finalizers that admission puts on claims and volumes, so
#: deleting a namespace with claims does not hang.
CONTROLLERS = (
    "job-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "ttl-after-finished-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "persistentvolume-binder-controller",
    "persistentvolume-protection-controller",
    "persistentvolumeclaim-protection-controller",
    # Deployments -> ReplicaSets -> Pods: the operator's own Deployment runs in-cluster in the
    # install e2e tests, and Rollout gates follow a Deployment's rollout.
    "deployment-controller",
    "replicaset-controller",
    # lifts the node.kubernetes.io/not-ready taint once the kubelet reports Ready; without it
    # every Pod stays Pending.
    "node-lifecycle-controller",
    # Pods of a deleted Job or a gone node do not linger.
    "pod-garbage-collector-controller",
)

SERVICE_CIDR = "10.0.0.0/24"


@dataclass
class Endpoints:
    """Where the control plane listens, and the admin credentials."""

    api_port: int
    etcd_port: int
    etcd_peer_port: int
    admin_token: str
    #: where the node reaches the apiserver (the host end of its veth).
    advertise_ip: str = "127.0.0.1"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def node_server(self) -> str:
        return f"https://{self.advertise_ip}:{self.api_port}"


@dataclass
class ControlPlane:
    workdir: Path
    binaries: Binaries
    pki: Pki
    endpoints: Endpoints
    cluster_id: str
    managed: list[processes.Managed] = field(default_factory=list)

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    def start(self, timeout: float = 60.0) -> None:
        logs = self.workdir / "logs"
        logs.mkdir(exist_ok=True)
        self._write_kubeconfig()
        self._start("etcd", self._etcd_argv(), logs)
        self._start("kube-apiserver", self._apiserver_argv(), logs)
        deadline = time.monotonic() + timeout
        self._wait(deadline, "kube-apiserver /readyz", lambda: self._get("/readyz") == "ok")
        self._wait(
            deadline, "namespace default", lambda: self._exists("/api/v1/namespaces/default")
        )
        self._start("kube-controller-manager", self._controller_manager_argv(), logs)
        self._start("kube-scheduler", self._scheduler_argv(), logs)
        # A Pod needs its namespace's ServiceAccount and the root CA ConfigMap: both come from
        # controllers, so their presence in `default` proves the controller manager works.
        self._wait(
            deadline,
            "ServiceAccount default/default",
            lambda: self._exists("/api/v1/namespaces/default/serviceaccounts/default"),
        )
        self._wait(
            deadline,
            "ConfigMap default/kube-root-ca.crt",
            lambda: self._exists("/api/v1/namespaces/default/configmaps/kube-root-ca.crt"),
        )

    def wait_node_ready(self, node_alive: Callable[[], None], timeout: float = 120.0) -> None:
        """The kubelet registered the Node, it is Ready and its not-ready taint is gone."""

        def ready() -> bool:
            node_alive()
            text = self._get("/api/v1/nodes/localcluster")
            if not text:
                return False
            node = json.loads(text)
            conditions = {c["type"]: c["status"] for c in node["status"].get("conditions", [])}
            taints = node.get("spec", {}).get("taints") or []
            return conditions.get("Ready") == "True" and not any(
                t.get("key") == "node.kubernetes.io/not-ready" for t in taints
            )

        self._wait(time.monotonic() + timeout, "Node localcluster Ready", ready)

    def stop(self) -> None:
        # Reverse order: controllers first, etcd last, so nothing logs errors about a lost store.
        for managed in reversed(self.managed):
            managed.stop()
        self.managed.clear()

    def check_alive(self) -> None:
        for managed in self.managed:
            if not managed.alive():
                raise LocalClusterError(
                    f"{managed.name} exited with {managed.process.returncode}; "
                    f"log {managed.log_path}:\n{managed.log_tail()}"
                )

    # -- processes ---------------------------------------------------------------------------

    def _start(self, name: str, argv: list[str], logs: Path) -> None:
        self.managed.append(processes.spawn(name, argv, logs / f"{name}.log", self.cluster_id))

    def _etcd_argv(self) -> list[str]:
        ep = self.endpoints
        client = f"http://127.0.0.1:{ep.etcd_port}"
        peer = f"http://127.0.0.1:{ep.etcd_peer_port}"
        return [
            str(self.binaries.etcd),
            f"--name=localcluster-{self.cluster_id}",
            f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=localcluster-{self.cluster_id}={peer}",
            "--log-level=warn",
        ]

    def _apiserver_argv(self) -> list[str]:
        ep, pki = self.endpoints, self.pki
        tokens = self.workdir / "tokens.csv"
        tokens.write_text(f'{ep.admin_token},admin,admin,"system:masters"\n')
        tokens.chmod(0o600)
        return [
            str(self.binaries.kube_apiserver),
            f"--etcd-servers=http://127.0.0.1:{ep.etcd_port}",
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            f"--tls-cert-file={pki.apiserver_cert}",
            f"--tls-private-key-file={pki.apiserver_key}",
            f"--client-ca-file={pki.ca_cert}",
            f"--token-auth-file={tokens}",
            # every address: kubectl uses 127.0.0.1, the node the host end of its veth (the
            # port is random and the admin token required, so clusters never collide).
            "--bind-address=0.0.0.0",
            f"--advertise-address={ep.advertise_ip}",
            f"--secure-port={ep.api_port}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allow-privileged=true",
            "--authorization-mode=RBAC",
            f"--service-account-issuer={ep.server}/",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.sa_key}",
            # `kubectl logs` goes through the apiserver to the kubelet at the node's address.
            "--kubelet-preferred-address-types=InternalIP",
            "--enable-priority-and-fairness=false",
            "--profiling=false",
            "--v=1",
        ]

    def _controller_manager_argv(self) -> list[str]:
        return [
            str(self.binaries.kube_controller_manager),
            f"--kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            "--secure-port=0",
            f"--controllers={','.join(CONTROLLERS)}",
            f"--service-account-private-key-file={self.pki.sa_key}",
            f"--root-ca-file={self.pki.ca_cert}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # Failed Pods are retried sooner and namespaces are swept faster in tests.
            "--concurrent-job-syncs=5",
            "--v=1",
        ]

    def _scheduler_argv(self) -> list[str]:
        return [
            str(self.binaries.kube_scheduler),
            f"--kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={processes.free_port()}",
            "--v=1",
        ]

    def _write_kubeconfig(self) -> None:
        ca = base64.b64encode(self.pki.ca_cert.read_bytes()).decode()
        document = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "localcluster",
                    "cluster": {"server": self.endpoints.server, "certificate-authority-data": ca},
                }
            ],
            "users": [{"name": "admin", "user": {"token": self.endpoints.admin_token}}],
            "contexts": [
                {"name": "localcluster", "context": {"cluster": "localcluster", "user": "admin"}}
            ],
            "current-context": "localcluster",
        }
        # JSON is YAML: kubectl and the kubernetes client read it as a kubeconfig.
        self.kubeconfig.write_text(json.dumps(document, indent=2) + "\n")
        self.kubeconfig.chmod(0o600)

    # -- readiness ---------------------------------------------------------------------------

    def _ssl(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.pki.ca_cert))

    def _get(self, path: str) -> str | None:
        request = urllib.request.Request(
            self.endpoints.server + path,
            headers={"Authorization": f"Bearer {self.endpoints.admin_token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5, context=self._ssl()) as response:
                return response.read().decode()
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def _exists(self, path: str) -> bool:
        return self._get(path) is not None

    def _wait(self, deadline: float, what: str, ready: Callable[[], bool]) -> None:
        while time.monotonic() < deadline:
            self.check_alive()
            if ready():
                return
            time.sleep(0.2)
        raise LocalClusterError(f"timed out waiting for {what}; logs in {self.workdir / 'logs'}")
