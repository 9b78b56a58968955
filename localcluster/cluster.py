"""One local cluster: started by a supervisor process, used and stopped through a handle.

``serve`` runs in the supervisor (``python -m localcluster serve --dir D``): it creates the
node's network namespace, starts the control plane, the node (containerd, kubelet, kube-proxy)
and the agent (volume provisioner), imports the images it was given, writes ``D/cluster.json``
once the Node is Ready, and on SIGTERM/SIGINT stops everything and removes D. ``launch`` starts a
supervisor and returns a ``Cluster`` handle; ``Cluster.stop`` asks it to stop and then sweeps
for anything left (processes by marker, containers by cgroup, mounts, cgroups, the netns), so
tear-down is complete even if the supervisor was killed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from localcluster import build, config, network, pki, processes
from localcluster.errors import LocalClusterError

REPO_ROOT = Path(__file__).resolve().parent.parent
INFO_FILE = "cluster.json"
START_TIMEOUT = 240.0
STOP_TIMEOUT = 60.0


@dataclass(frozen=True)
class ClusterInfo:
    """What a handle needs to find a running cluster (the content of ``cluster.json``)."""

    id: str
    dir: str
    kubeconfig: str
    server: str
    api_port: int
    supervisor_pid: int
    status: str  # "ready", or "failed" with ``error``
    error: str = ""
    #: the node's network (localcluster.network.NodeNetwork as a dict).
    network: dict[str, Any] | None = None
    #: the node's containerd socket (``ctr --address``).
    containerd_socket: str = ""


NETWORK_FILE = "network.json"
IMAGES_ENV = "LOCALCLUSTER_IMAGES"


def serve(workdir: Path, images: list[Path] | None = None) -> int:
    """The supervisor: run a cluster in ``workdir`` until SIGTERM or SIGINT."""
    from localcluster.agent.agent import Agent
    from localcluster.agent.kube import Kube
    from localcluster.control_plane import ControlPlane, Endpoints
    from localcluster.node import Node, NodeBinaries

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    cluster_id = workdir.name
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda *_: stop.set())
    control_plane: ControlPlane | None = None
    agent: Agent | None = None
    node: Node | None = None
    net: network.NodeNetwork | None = None
    try:
        binaries = build.ensure_binaries()
        net = network.create(workdir)
        net.save(workdir / NETWORK_FILE)
        keys = pki.make_pki(workdir / "pki", extra_ips=(net.host_ip,))
        ports = [processes.free_port() for _ in range(3)]
        endpoints = Endpoints(ports[0], ports[1], ports[2], secrets.token_hex(24), net.host_ip)
        control_plane = ControlPlane(workdir, binaries, keys, endpoints, cluster_id)
        control_plane.start()
        node = Node(
            workdir,
            cluster_id,
            net,
            NodeBinaries(binaries.kubelet, binaries.kube_proxy),
            endpoints.node_server,
            endpoints.admin_token,
            keys.ca_cert,
        )
        node.start(images or [])
        agent = Agent(Kube(str(control_plane.kubeconfig)), workdir)
        agent.start()
        control_plane.wait_node_ready(node.check_alive)
        _write_info(
            workdir,
            ClusterInfo(
                cluster_id,
                str(workdir),
                str(control_plane.kubeconfig),
                endpoints.server,
                endpoints.api_port,
                os.getpid(),
                "ready",
                network=asdict(net),
                containerd_socket=str(node.socket),
            ),
        )
        while not stop.wait(1.0):
            control_plane.check_alive()
            node.check_alive()
        return 0
    except Exception as error:
        logging.exception("local cluster failed")
        _write_info(
            workdir,
            ClusterInfo(cluster_id, str(workdir), "", "", 0, os.getpid(), "failed", str(error)),
        )
        # D goes away below: the reason stays beside it for launch() to report (and remove).
        _failure_file(workdir).write_text(str(error))
        return 1
    finally:
        logging.info("stopping the local cluster")
        if agent is not None:
            agent.stop()
        if node is not None:
            node.stop()
            logging.info("node stopped")
        if control_plane is not None:
            control_plane.stop()
            logging.info("control plane stopped")
        processes.sweep(cluster_id)
        if net is not None:
            from localcluster.node import cleanup_host

            cleanup_host(workdir, cluster_id, net)
        _remove(workdir)


def _failure_file(workdir: Path) -> Path:
    return workdir.with_name(workdir.name + ".failed")


def _write_info(workdir: Path, info: ClusterInfo) -> None:
    temporary = workdir / f"{INFO_FILE}.tmp"
    temporary.write_text(json.dumps(asdict(info), indent=2))
    temporary.replace(workdir / INFO_FILE)


def _remove(workdir: Path) -> None:
    # Volumes may hold files of other uids and read-only modes; root removes them all. Never
    # through a mount left behind (it would delete a Pod's volume source, or worse).
    from localcluster.node import mounts_under

    if not mounts_under(workdir):
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class Cluster:
    """A handle on a running cluster: what tests and ``down``/``status`` use."""

    info: ClusterInfo

    @property
    def kubeconfig(self) -> Path:
        return Path(self.info.kubeconfig)

    @property
    def dir(self) -> Path:
        return Path(self.info.dir)

    @property
    def server(self) -> str:
        return self.info.server

    @property
    def network(self) -> network.NodeNetwork:
        if not self.info.network:
            raise LocalClusterError(f"cluster {self.info.id} has no node network recorded")
        return network.NodeNetwork(**self.info.network)

    @property
    def host_ip(self) -> str:
        """The host end of the node's veth: where Pods reach the apiserver and host services
        (the tests' PostgreSQL listens here)."""
        return self.network.host_ip

    @property
    def node_ip(self) -> str:
        return self.network.node_ip

    @property
    def pod_cidr(self) -> str:
        return self.network.pod_cidr

    def ctr(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """``ctr`` on the node's containerd, in the CRI's ``k8s.io`` namespace."""
        return subprocess.run(
            ["ctr", "--address", self.info.containerd_socket, "-n", "k8s.io", *args],
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def import_image(self, archive: Path) -> None:
        """Import an image archive (docker-archive or OCI) into the node: Pods with
        ``imagePullPolicy: IfNotPresent`` or ``Never`` then run it; nothing is ever pulled."""
        done = self.ctr("images", "import", "--snapshotter", "overlayfs", str(archive))
        if done.returncode != 0:
            raise LocalClusterError(f"ctr images import {archive} failed: {done.stderr.strip()}")

    def images(self) -> list[str]:
        return [line for line in self.ctr("images", "list", "-q").stdout.splitlines() if line]

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["kubectl", f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise LocalClusterError(
                f"kubectl {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}"
            )
        return done

    def get_json(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def host_path_for_claim(self, namespace: str, claim: str, timeout: float = 30) -> Path:
        """The host folder behind a bound PersistentVolumeClaim (waits for the binding)."""
        deadline = time.monotonic() + timeout
        while True:
            pvc = self.get_json("pvc", claim, "-n", namespace)
            volume = pvc.get("spec", {}).get("volumeName")
            if volume and pvc.get("status", {}).get("phase") == "Bound":
                pv = self.get_json("pv", volume)
                return Path(pv["spec"]["hostPath"]["path"])
            if time.monotonic() > deadline:
                raise LocalClusterError(f"claim {namespace}/{claim} is not bound after {timeout} s")
            time.sleep(0.2)

    def supervisor_alive(self) -> bool:
        try:
            os.kill(self.info.supervisor_pid, 0)
        except ProcessLookupError:
            return False
        return not processes.is_zombie(self.info.supervisor_pid)

    def leftover_pids(self) -> list[int]:
        return processes.marked_pids(self.info.id)

    def leftovers(self) -> list[str]:
        """Anything of this cluster still on the host: processes, mounts, cgroups, netns,
        links, log links (empty after ``stop``)."""
        from localcluster import node

        found = [f"process {pid}" for pid in self.leftover_pids()]
        if self.info.network:
            found += node.leftovers(self.dir, self.info.id, self.network)
        return found

    def stop(self) -> None:
        """Stop the supervisor, then kill anything left and remove the cluster's folder."""
        from localcluster import node

        pid = self.info.supervisor_pid
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while self.supervisor_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        net_file = self.dir / NETWORK_FILE
        net = network.NodeNetwork.load(net_file) if net_file.is_file() else None
        if net is None and self.info.network:
            net = self.network
        node.kill_cgroup(f"/localcluster-{self.info.id}")
        processes.sweep(self.info.id)
        if net is not None:
            node.cleanup_host(self.dir, self.info.id, net)
        _remove(self.dir)


def launch(
    images: list[Path] | None = None,
    *,
    tie_to_parent: bool = False,
    timeout: float = START_TIMEOUT,
) -> Cluster:
    """Start a supervisor in its own session and return once the cluster is ready.

    ``tie_to_parent``: the kernel sends the supervisor SIGTERM when the calling thread ends, so
    a test session killed without tear-down still stops its cluster (not for ``up``, whose
    caller exits at once).
    """
    build.ensure_binaries()  # fail here, in the caller's terminal, if something is missing
    if os.geteuid() != 0:
        raise LocalClusterError("a real node needs root (network namespaces, mounts, cgroups)")
    for archive in images or []:
        if not archive.is_file():
            raise LocalClusterError(f"image archive {archive} not found")
    # the node's images, imported once into a cached containerd root (a minute for a new
    # image), here rather than in the supervisor, so the start timeout covers the start only.
    from localcluster import node, pause

    node.ensure_template([pause.ensure_pause_archive(), *(images or [])])
    workdir = Path(tempfile.mkdtemp(prefix="localcluster-"))
    (workdir / "logs").mkdir()
    argv = [sys.executable, "-m", "localcluster", "serve", "--dir", str(workdir)]
    if tie_to_parent:
        argv = ["setpriv", "--pdeathsig", "TERM", "--", *argv]
    env = {**os.environ, config.MARKER_ENV: workdir.name}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    if images:
        env[IMAGES_ENV] = json.dumps([str(a) for a in images])
    with (workdir / "logs" / "supervisor.log").open("ab") as log:
        process = subprocess.Popen(
            argv,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    info_path = workdir / INFO_FILE
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if info_path.is_file():
            info = ClusterInfo(**json.loads(info_path.read_text()))
            if info.status == "ready":
                return Cluster(info)
            Cluster(info).stop()
            _failure_file(workdir).unlink(missing_ok=True)
            raise LocalClusterError(f"the local cluster failed to start: {info.error}")
        if process.poll() is not None:
            failed = _failure_file(workdir)
            log_tail = _tail(workdir / "logs" / "supervisor.log")
            if failed.is_file():
                log_tail = failed.read_text()
                failed.unlink()
            processes.sweep(workdir.name)
            _remove(workdir)
            raise LocalClusterError(f"the local cluster exited {process.returncode}:\n{log_tail}")
        time.sleep(0.1)
    dummy = ClusterInfo(workdir.name, str(workdir), "", "", 0, process.pid, "failed")
    Cluster(dummy).stop()
    raise LocalClusterError(f"the local cluster was not ready after {timeout:.0f} s")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
