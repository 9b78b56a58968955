"""Start and stop the cluster's processes: each in its own process group, tagged with a marker.

Every process gets ``LOCALCLUSTER_ID=<cluster id>`` in its environment, so ``sweep`` can find
and kill anything left behind (after a crash or a SIGKILL of the supervisor) by reading
``/proc/<pid>/environ``, without trusting pid files.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from localcluster import config


def free_port() -> int:
    """A free loopback port chosen by the kernel; never etcd's well-known 2379/2380."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in (2379, 2380):
            return port


@dataclass
class Managed:
    """A long-running process of the control plane."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    _log: IO[bytes] | None = field(default=None, repr=False)

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 3.0) -> None:
        # Short: the cluster's data is thrown away, and kube-apiserver would otherwise wait for
        # its open watches for up to a minute.
        kill_group(self.process.pid, timeout)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=1)
        if self._log is not None:
            self._log.close()


def spawn(name: str, argv: list[str], log_path: Path, cluster_id: str) -> Managed:
    # setpriv --pdeathsig: the kernel kills the process if the supervisor dies, even by SIGKILL,
    # so a crashed test session cannot leave an apiserver running.
    log = log_path.open("ab")
    env = {**os.environ, config.MARKER_ENV: cluster_id}
    process = subprocess.Popen(
        ["setpriv", "--pdeathsig", "KILL", "--", *argv],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    return Managed(name=name, process=process, log_path=log_path, _log=log)


def kill_group(pgid: int, timeout: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL it if anything is left after ``timeout``."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _group_alive(pgid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    # A zombie leader still counts for killpg(0); treat a group of zombies as gone.
    return any(_pgid_of(pid) == pgid and not is_zombie(pid) for pid in _all_pids())


def _all_pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def _stat_fields(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return raw[raw.rfind(")") + 2 :].split()


def _pgid_of(pid: int) -> int:
    fields = _stat_fields(pid)
    return int(fields[2]) if fields else -1


def is_zombie(pid: int) -> bool:
    fields = _stat_fields(pid)
    return not fields or fields[0] == "Z"


def marked_pids(cluster_id: str) -> list[int]:
    """Live processes whose environment carries this cluster's marker."""
    needle = f"{config.MARKER_ENV}={cluster_id}".encode()
    found = []
    for pid in _all_pids():
        if pid == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0") and not is_zombie(pid):
            found.append(pid)
    return found


def sweep(cluster_id: str) -> list[int]:
    """Kill every process left with this cluster's marker; return the pids that were found."""
    pids = marked_pids(cluster_id)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return pids
