"""One Pod's life on the local node: volumes, init containers in order, then the containers.

A PodWorker is a thread that owns the Pod's processes and is the only writer of its status.
It polls its processes rather than waiting on them so one thread serves every container and
notices a deletion, a restart due or a deadline within a tenth of a second.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes.client.rest import ApiException

from localcluster import config
from localcluster.agent import env as envs
from localcluster.agent import volumes as vols
from localcluster.agent.images import ImageRoots
from localcluster.agent.kube import Kube
from localcluster.agent.status import ContainerState, now, pod_status, same_status
from localcluster.processes import kill_group

log = logging.getLogger("localcluster.agent")

LAUNCHER = Path(__file__).resolve().parent / "launcher.py"
POLL_SECONDS = 0.1
#: Kubelet's limits: 4096 bytes of termination message, 80 lines / 2048 bytes of log fallback.
MESSAGE_LIMIT = 4096
FALLBACK_LINES = 80
FALLBACK_BYTES = 2048
#: Restart back-off of OnFailure/Always containers: kubelet starts at 10 s; tests want less.
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
GRACE_MAX = 30.0


def pod_path() -> str:
    """PATH of every container: the agent's virtualenv (so ``pgshift`` resolves), PostgreSQL's
    client tools (``pg_dump``), then the usual system folders."""
    return ":".join(
        [
            f"{sys.prefix}/bin",
            str(config.POSTGRES_BIN),
            "/usr/local/sbin",
            "/usr/local/bin",
            "/usr/sbin",
            "/usr/bin",
            "/sbin",
            "/bin",
        ]
    )


def traverse_paths() -> list[str]:
    """Folders a non-root container must be able to cross to run the agent's interpreter."""
    return sorted(
        {
            f"{sys.prefix}/bin",
            sys.base_prefix,
            os.path.dirname(os.path.realpath(sys.executable)),
        }
    )


@dataclass(frozen=True)
class NodeContext:
    """What every PodWorker shares: the API, the node and where Pod files go."""

    kube: Kube
    node_name: str
    pods_dir: Path
    images: ImageRoots
    api_port: int
    cluster_id: str


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    log_file: Any


class PodWorker(threading.Thread):
    def __init__(self, node: NodeContext, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['namespace']}/{meta['name']}", daemon=True)
        self.node = node
        self.pod = pod
        self.namespace: str = meta["namespace"]
        self.pod_name: str = meta["name"]
        self.uid: str = meta["uid"]
        self.dir = node.pods_dir / f"{self.namespace}_{self.pod_name}_{self.uid}"
        spec = pod["spec"]
        self.restart_policy: str = spec.get("restartPolicy", "Always")
        self.init = [
            ContainerState(c["name"], c.get("image", "")) for c in spec.get("initContainers") or []
        ]
        self.main = [ContainerState(c["name"], c.get("image", "")) for c in spec["containers"]]
        for state in self.main:
            state.reason = "PodInitializing" if self.init else "ContainerCreating"
        self.specs = {
            c["name"]: c for c in [*(spec.get("initContainers") or []), *spec["containers"]]
        }
        self.running: dict[str, Running] = {}
        self.restart_at: dict[str, float] = {}
        self.started_at = now()
        self.started_clock = time.monotonic()
        self.deleting = threading.Event()
        self.finished = threading.Event()
        self.last_status: dict[str, Any] | None = None
        self.volumes: dict[str, vols.Volume] = {}

    # -- called by the agent -----------------------------------------------------------------

    def update(self, pod: dict[str, Any]) -> None:
        self.pod = pod
        if pod["metadata"].get("deletionTimestamp"):
            self.deleting.set()

    def log_path(self, container: str) -> Path:
        return self.dir / "logs" / f"{container}.log"

    def state_of(self, container: str) -> ContainerState | None:
        return next((c for c in [*self.init, *self.main] if c.name == container), None)

    def may_write_more(self, container: str) -> bool:
        """False once the container's log can no longer grow (for ``follow``)."""
        state = self.state_of(container)
        if state is None or self.finished.is_set():
            return False
        return container in self.running or container in self.restart_at

    # -- the life of the Pod -----------------------------------------------------------------

    def run(self) -> None:
        try:
            self._live()
        except Exception as error:  # the Pod must end, whatever broke: say why in its status
            log.exception("pod %s/%s failed in the agent", self.namespace, self.pod_name)
            self._kill_all()
            self._report(override_phase="Failed", reason="AgentError", message=str(error)[:1000])
        finally:
            self._kill_all()
            self.finished.set()
            if self.deleting.is_set():
                self.node.kube.delete_pod_now(self.namespace, self.pod_name, self.uid)

    def _live(self) -> None:
        (self.dir / "logs").mkdir(parents=True, exist_ok=True)
        self._report()
        if not self._prepare_volumes():
            return
        for state in self.init:
            if not self._run_init(state):
                return
        for state in self.main:
            state.state, state.reason = "waiting", "ContainerCreating"
        self._run_main()

    def _prepare_volumes(self) -> bool:
        message = ""
        while not self.deleting.is_set():
            try:
                self.volumes = vols.prepare(self.node.kube, self.pod, self.dir, self.node.images)
                return True
            except (vols.VolumeNotReady, envs.ConfigError, ApiException) as error:
                text = error.reason if isinstance(error, ApiException) else str(error)
                if text != message:
                    message = text
                    for state in [*self.init, *self.main][:1]:
                        state.reason, state.message = "ContainerCreating", f"volumes: {text}"
                    self._report()
            time.sleep(0.5)
        return False

    def _run_init(self, state: ContainerState) -> bool:
        """Run one init container to success; False when the Pod ends instead."""
        while True:
            if self.deleting.is_set():
                return False
            if state.name not in self.running and self._due(state.name):
                self._start(state)
            self._collect()
            if state.succeeded:
                return True
            if state.state == "terminated" and state.name not in self.restart_at:
                if self.restart_policy == "Never":
                    self._report()
                    return False
                self._schedule_restart(state)
            self._report()
            time.sleep(POLL_SECONDS)

    def _run_main(self) -> None:
        deadline = self.pod["spec"].get("activeDeadlineSeconds")
        while not self.deleting.is_set():
            if deadline and time.monotonic() - self.started_clock > float(deadline):
                self._kill_all()
                self._collect()
                self._report(
                    override_phase="Failed",
                    reason="DeadlineExceeded",
                    message="Pod was active on the node longer than the specified deadline",
                )
                return
            for state in self.main:
                if (
                    state.state != "terminated"
                    and state.name not in self.running
                    and self._due(state.name)
                ):
                    self._start(state)
            self._collect()
            for state in self.main:
                if self._restarts(state):
                    self._schedule_restart(state)
            self._report()
            if self.last_status and self.last_status["phase"] in ("Succeeded", "Failed"):
                return
            time.sleep(POLL_SECONDS)
        self._kill_all()
        self._collect()
        # Deleted while running: kubelet ends the Pod in a terminal phase so controllers (Job)
        # can count it, Failed unless every container exited 0.
        finished = all(s.state == "terminated" for s in self.main) and all(
            s.succeeded for s in self.main
        )
        for state in self.main:
            if state.state != "terminated":
                state.state, state.reason, state.exit_code = (
                    "terminated",
                    "ContainerStatusUnknown",
                    137,
                )
                state.finished_at = now()
        self._report(override_phase="Succeeded" if finished else "Failed")

    # -- containers --------------------------------------------------------------------------

    def _due(self, name: str) -> bool:
        at = self.restart_at.get(name)
        if at is None or time.monotonic() >= at:
            self.restart_at.pop(name, None)
            return True
        return False

    def _restarts(self, state: ContainerState) -> bool:
        """A main container that ended and that the restart policy starts again."""
        if state.state != "terminated" or state.name in self.restart_at:
            return False
        return self.restart_policy == "Always" or (
            self.restart_policy == "OnFailure" and not state.succeeded
        )

    def _schedule_restart(self, state: ContainerState) -> None:
        delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2**state.restart_count)
        state.last_terminated = state.terminated_dict()
        state.restart_count += 1
        state.state, state.reason = "waiting", "CrashLoopBackOff"
        state.message = (
            f"back-off {delay:.0f}s restarting failed container={state.name} pod={self.pod_name}"
        )
        self.restart_at[state.name] = time.monotonic() + delay

    def _identity(self, container: dict[str, Any]) -> tuple[int, int, list[int]]:
        pod_context = self.pod["spec"].get("securityContext") or {}
        context = {**pod_context, **(container.get("securityContext") or {})}
        uid = int(context.get("runAsUser", 0))  # no image metadata: the "image user" is root
        gid = int(context.get("runAsGroup", 0 if uid == 0 else uid))
        if context.get("runAsNonRoot") and uid == 0:
            raise envs.ConfigError("container has runAsNonRoot and image will run as root")
        groups = [int(g) for g in pod_context.get("supplementalGroups") or []]
        if "fsGroup" in pod_context:
            groups.append(int(pod_context["fsGroup"]))
        return uid, gid, sorted(set(groups))

    def _base_env(self, uid: int) -> dict[str, str]:
        port = str(self.node.api_port)
        return {
            "PATH": pod_path(),
            "HOSTNAME": self.pod_name,
            "HOME": "/root" if uid == 0 else "/",
            # In-cluster clients find the apiserver here; its certificate names 127.0.0.1.
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": port,
            "KUBERNETES_SERVICE_PORT_HTTPS": port,
            "KUBERNETES_PORT": f"tcp://127.0.0.1:{port}",
            config.MARKER_ENV: self.node.cluster_id,
        }

    def _start(self, state: ContainerState) -> None:
        container = self.specs[state.name]
        folder = self.dir / "containers" / state.name
        folder.mkdir(parents=True, exist_ok=True)
        try:
            uid, gid, groups = self._identity(container)
            environment = envs.resolve(self.pod, container, self._base_env(uid), self._read)
        except envs.ConfigError as error:
            state.state, state.reason, state.message = (
                "waiting",
                "CreateContainerConfigError",
                str(error),
            )
            self.restart_at[state.name] = time.monotonic() + 1.0
            return
        termination_log = folder / "termination-log"
        termination_log.write_bytes(b"")
        termination_log.chmod(0o666)
        result = folder / "result.json"
        result.unlink(missing_ok=True)
        root = folder / "root"
        root.mkdir(exist_ok=True)
        mounts = vols.container_mounts(container, self.volumes)
        message_path = container.get("terminationMessagePath") or "/dev/termination-log"
        mounts.append(
            vols.Mount(
                str(termination_log),
                vols.host_target(message_path),
                directory=False,
                read_only=False,
            )
        )
        context = container.get("securityContext") or {}
        spec = {
            "root": str(root),
            "mounts": [m.to_spec() for m in mounts],
            "imageRoot": self.node.images.folder_for(container.get("image")),
            "readOnlyRoot": bool(context.get("readOnlyRootFilesystem")),
            "traverse": traverse_paths(),
            "workingDir": container.get("workingDir"),
            "uid": uid,
            "gid": gid,
            "groups": groups,
            "argv": envs.command_line(container, environment),
            "env": environment,
            "resultFile": str(result),
            "hostname": self.pod_name[:63],
        }
        spec_path = folder / "spec.json"
        spec_path.touch(mode=0o600)
        spec_path.write_text(json.dumps(spec))
        log_path = self.log_path(state.name)
        if state.restart_count and log_path.exists():
            log_path.replace(log_path.with_suffix(".previous.log"))
        log_file = log_path.open("ab")
        process = subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--uts",
                "--propagation",
                "private",
                "--",
                sys.executable,
                "-I",
                "-S",
                str(LAUNCHER),
                str(spec_path),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={config.MARKER_ENV: self.node.cluster_id, "PATH": os.environ.get("PATH", "")},
            start_new_session=True,
        )
        self.running[state.name] = Running(process, log_file)
        state.state, state.reason, state.message = "running", "", ""
        state.started_at = now()
        state.container_id = f"localcluster://{self.uid}/{state.name}/{process.pid}"

    def _read(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.node.kube.read(kind, namespace, name)

    def _collect(self) -> None:
        for name, running in list(self.running.items()):
            code = running.process.poll()
            if code is None:
                continue
            running.log_file.close()
            del self.running[name]
            state = self.state_of(name)
            assert state is not None
            self._terminated(state, code)

    def _terminated(self, state: ContainerState, code: int) -> None:
        folder = self.dir / "containers" / state.name
        exit_code = 128 - code if code < 0 else code  # killed by a signal: 128 + signal
        result = folder / "result.json"
        failure = (
            json.loads(result.read_text()) if result.is_file() and result.stat().st_size else None
        )
        state.state = "terminated"
        state.finished_at = now()
        state.exit_code = exit_code
        if failure:
            # The launcher could not start the command: kubelet reports StartError, 128.
            state.reason, state.message = failure["reason"], failure["message"]
            return
        state.reason = "Completed" if exit_code == 0 else "Error"
        state.message = self._termination_message(state.name, exit_code)

    def _termination_message(self, name: str, exit_code: int) -> str:
        raw = (self.dir / "containers" / name / "termination-log").read_bytes()[:MESSAGE_LIMIT]
        message = raw.decode(errors="replace")
        policy = self.specs[name].get("terminationMessagePolicy", "File")
        if not message and exit_code != 0 and policy == "FallbackToLogsOnError":
            lines = self.log_path(name).read_bytes().splitlines()[-FALLBACK_LINES:]
            message = b"\n".join(lines)[-FALLBACK_BYTES:].decode(errors="replace")
        return message

    def _kill_all(self) -> None:
        grace = self.pod["metadata"].get("deletionGracePeriodSeconds")
        if grace is None:
            grace = self.pod["spec"].get("terminationGracePeriodSeconds", 30)
        for running in self.running.values():
            kill_group(running.process.pid, timeout=min(float(grace), GRACE_MAX))
            with contextlib.suppress(subprocess.TimeoutExpired):
                running.process.wait(timeout=5)
        self.restart_at.clear()

    # -- status ------------------------------------------------------------------------------

    def _report(
        self, *, override_phase: str | None = None, reason: str = "", message: str = ""
    ) -> None:
        status = pod_status(
            self.init,
            self.main,
            self.restart_policy,
            self.started_at,
            override_phase=override_phase,
            reason=reason,
            message=message,
        )
        if same_status(self.last_status, status):
            return
        try:
            self.node.kube.patch_pod_status(self.namespace, self.pod_name, status)
            self.last_status = status
        except ApiException as error:
            if error.status == 404:
                self.deleting.set()
            else:
                # Say what the apiserver refused, once per distinct refusal, not at every poll.
                self.last_status = status
                log.warning(
                    "status of %s/%s refused: %s %s",
                    self.namespace,
                    self.pod_name,
                    error.status,
                    _message(error),
                )

    def remove_files(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _message(error: ApiException) -> str:
    try:
        return str(json.loads(error.body).get("message", error.reason))
    except (TypeError, ValueError):
        return str(error.reason)
