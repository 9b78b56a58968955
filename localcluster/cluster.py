"""One local cluster: started by a supervisor process, used and stopped through a handle.

``serve`` runs in the supervisor (``python -m localcluster serve --dir D``): it starts the
control plane and the agent, writes ``D/cluster.json`` once ready, and on SIGTERM/SIGINT stops
everything and removes D. ``launch`` starts a supervisor and returns a ``Cluster`` handle;
``Cluster.stop`` asks it to stop and then sweeps for anything left (by the process marker),
so tear-down is complete even if the supervisor was killed.
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

from localcluster import build, config, pki, processes
from localcluster.errors import LocalClusterError

REPO_ROOT = Path(__file__).resolve().parent.parent
INFO_FILE = "cluster.json"
START_TIMEOUT = 120.0
STOP_TIMEOUT = 40.0


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


def serve(workdir: Path, image_roots: dict[str, str] | None = None) -> int:
    """The supervisor: run a cluster in ``workdir`` until SIGTERM or SIGINT."""
    from localcluster.agent.agent import Agent
    from localcluster.agent.kube import Kube
    from localcluster.control_plane import ControlPlane, Endpoints

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    cluster_id = workdir.name
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda *_: stop.set())
    control_plane: ControlPlane | None = None
    agent: Agent | None = None
    if image_roots:
        (workdir / "image-roots.json").write_text(json.dumps(image_roots, indent=2))
    try:
        binaries = build.ensure_binaries()
        keys = pki.make_pki(workdir / "pki")
        ports = [processes.free_port() for _ in range(3)]
        endpoints = Endpoints(ports[0], ports[1], ports[2], secrets.token_hex(24))
        control_plane = ControlPlane(workdir, binaries, keys, endpoints, cluster_id)
        control_plane.start()
        agent = Agent(
            Kube(str(control_plane.kubeconfig)),
            workdir,
            endpoints.api_port,
            cluster_id,
            workdir / "pki",
        )
        agent.start()
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
            ),
        )
        while not stop.wait(1.0):
            control_plane.check_alive()
        return 0
    except Exception as error:
        logging.exception("local cluster failed")
        _write_info(
            workdir,
            ClusterInfo(cluster_id, str(workdir), "", "", 0, os.getpid(), "failed", str(error)),
        )
        return 1
    finally:
        logging.info("stopping the local cluster")
        if agent is not None:
            agent.stop()
            logging.info("agent stopped")
        if control_plane is not None:
            control_plane.stop()
            logging.info("control plane stopped")
        processes.sweep(cluster_id)
        _remove(workdir)


def _write_info(workdir: Path, info: ClusterInfo) -> None:
    temporary = workdir / f"{INFO_FILE}.tmp"
    temporary.write_text(json.dumps(asdict(info), indent=2))
    temporary.replace(workdir / INFO_FILE)


def _remove(workdir: Path) -> None:
    # Volumes may hold files of other uids and read-only modes; root removes them all.
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
    def image_roots(self) -> dict[str, str]:
        from localcluster.agent.images import ImageRoots

        return ImageRoots(self.dir / "image-roots.json").mapping()

    def add_image(self, image: str, folder: Path) -> None:
        """Declare that ``image`` stands for the files of ``folder`` (see docs/localcluster.md)."""
        from localcluster.agent.images import ImageRoots

        ImageRoots(self.dir / "image-roots.json").add(image, folder)

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

    def stop(self) -> None:
        """Stop the supervisor, then kill anything left and remove the cluster's folder."""
        pid = self.info.supervisor_pid
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while self.supervisor_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        processes.sweep(self.info.id)
        _remove(self.dir)


def _check_runs_outside_tmp() -> None:
    """Pods run this checkout's virtualenv, and Pods mount their own /tmp (emptyDir): a
    checkout under /tmp would vanish inside them (`exec: "pgshift": executable file not found`)."""
    tmp = Path(tempfile.gettempdir()).resolve()
    for what, path in (("virtualenv", Path(sys.prefix)), ("checkout", REPO_ROOT)):
        if path.resolve().is_relative_to(tmp):
            raise LocalClusterError(
                f"localcluster: the {what} {path} is under {tmp}, which Pods mount as their own "
                "emptyDir; clone pgshift elsewhere (e.g. /work or $HOME)"
            )


def launch(
    image_roots: dict[str, str] | None = None,
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
    _check_runs_outside_tmp()
    workdir = Path(tempfile.mkdtemp(prefix="localcluster-"))
    (workdir / "logs").mkdir()
    argv = [sys.executable, "-m", "localcluster", "serve", "--dir", str(workdir)]
    if tie_to_parent:
        argv = ["setpriv", "--pdeathsig", "TERM", "--", *argv]
    env = {**os.environ, config.MARKER_ENV: workdir.name}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    if image_roots:
        env[config.IMAGE_ROOTS_ENV] = json.dumps(image_roots)
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
            raise LocalClusterError(f"the local cluster failed to start: {info.error}")
        if process.poll() is not None:
            log_tail = _tail(workdir / "logs" / "supervisor.log")
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
