"""Build the Kubernetes commands once (control plane and node), and find etcd, Go and kubectl.

The binaries come from the ``k8s.io/kubernetes`` Go module through the pinned tools module in
``gotools/`` (its go.mod explains the replace directives). Binaries and Go's module and build
caches live under the cache root keyed by version, so only the first run pays the cold build.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from localcluster import config
from localcluster.errors import LocalClusterError

CONTROL_PLANE_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
NODE_COMMANDS = ("kubelet", "kube-proxy")
COMMANDS = (*CONTROL_PLANE_COMMANDS, *NODE_COMMANDS)
#: what the node runs besides the built commands (Debian packages; `make system-deps`).
NODE_PROGRAMS = ("containerd", "containerd-shim-runc-v2", "runc", "ctr", "iptables", "nsenter",
                 "ip", "conntrack", "gcc")  # fmt: skip
CNI_PLUGINS = Path("/usr/lib/cni")


@dataclass(frozen=True)
class Binaries:
    """Absolute paths of every program the control plane runs."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubelet: Path
    kube_proxy: Path
    kubectl: Path


def find_go() -> Path:
    for candidate in (shutil.which("go"), *config.GO_BINARY_CANDIDATES):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise LocalClusterError(
        "Go is not installed: install Go >= 1.24 at /usr/local/go (https://go.dev/dl) "
        "or `apt-get install golang-1.24`"
    )


def ensure_etcd() -> Path:
    """Debian's etcd-server (3.4) is enough for kube-apiserver 1.33; install it if missing."""
    found = shutil.which("etcd")
    if found:
        return Path(found)
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise LocalClusterError("etcd is not installed: run `apt-get install etcd-server` as root")
    print("localcluster: installing etcd-server with apt-get", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "etcd-server"]):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
            raise LocalClusterError(f"`{' '.join(argv)}` failed: {' '.join(tail)}")
    found = shutil.which("etcd")
    if not found:
        raise LocalClusterError("etcd-server was installed but `etcd` is not on PATH")
    return Path(found)


def find_kubectl() -> Path:
    found = shutil.which("kubectl")
    if not found:
        raise LocalClusterError("kubectl is not installed: install kubectl 1.32 or 1.33")
    return Path(found)


def _ldflags(version: str) -> str:
    # Without these, /version reports v0.0.0 and kubectl warns about the skew.
    major, minor = version.lstrip("v").split(".")[:2]
    pairs = {
        "k8s.io/component-base/version.gitVersion": version,
        "k8s.io/component-base/version.gitMajor": major,
        "k8s.io/component-base/version.gitMinor": minor,
        "k8s.io/component-base/version.gitTreeState": "clean",
        "k8s.io/client-go/pkg/version.gitVersion": version,
        "k8s.io/client-go/pkg/version.gitMajor": major,
        "k8s.io/client-go/pkg/version.gitMinor": minor,
    }
    return " ".join(["-s", "-w", *(f"-X {key}={value}" for key, value in pairs.items())])


def find_node_programs() -> None:
    """The node's Debian packages are installed (containerd, runc, CNI plugins, iptables ...)."""
    missing = [name for name in NODE_PROGRAMS if not shutil.which(name)]
    if not (CNI_PLUGINS / "bridge").is_file():
        missing.append(f"{CNI_PLUGINS}/bridge")
    if missing:
        raise LocalClusterError(
            f"missing for the node: {', '.join(missing)}: run `make system-deps` (apt-get install "
            "containerd runc containernetworking-plugins iptables conntrack nftables gcc)"
        )


def _missing(out: Path) -> list[str]:
    return [name for name in COMMANDS if not (out / name).is_file()]


def build_kubernetes(version: str = config.KUBERNETES_VERSION, *, quiet: bool = False) -> Path:
    """Return the folder holding the built commands, building those not cached yet."""
    out = config.bin_dir(version)
    if not _missing(out):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    # `make` and a test session may both ask for a build: the second waits for the first.
    with (out.parent / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        missing = _missing(out)
        if not missing:
            return out
        return _build(version, out, missing, quiet=quiet)


def _build(version: str, out: Path, commands: list[str], *, quiet: bool) -> Path:
    go = find_go()
    cache = config.cache_root()
    staging = out.with_name("bin.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    log_path = out.parent / "build.log"
    env = {
        **os.environ,
        "PATH": f"{go.parent}:{os.environ.get('PATH', '')}",
        "GOMODCACHE": str(cache / "go" / "mod"),
        "GOCACHE": str(cache / "go" / "build"),
        # The go.mod pins the language version; never let go fetch another toolchain.
        "GOTOOLCHAIN": "local",
        "CGO_ENABLED": "0",
        "GOFLAGS": "-mod=readonly",
    }
    argv = [
        str(go),
        "build",
        "-p",
        "2",
        "-trimpath",
        "-ldflags",
        _ldflags(version),
        "-o",
        f"{staging}/",
        *(f"k8s.io/kubernetes/cmd/{name}" for name in commands),
    ]
    if not quiet:
        print(
            f"localcluster: building {', '.join(commands)} {version} "
            f"(cold: about 15 min on 2 cores; log: {log_path})",
            file=sys.stderr,
        )
    started = time.monotonic()
    with log_path.open("w") as log:
        done = subprocess.run(
            argv, cwd=config.GOTOOLS_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, check=False
        )
    if done.returncode != 0:
        tail = log_path.read_text().strip().splitlines()[-5:]
        raise LocalClusterError(f"go build failed (see {log_path}): " + " | ".join(tail))
    out.mkdir(exist_ok=True)
    for name in commands:  # one by one: commands built earlier stay
        (staging / name).replace(out / name)
    shutil.rmtree(staging, ignore_errors=True)
    if not quiet:
        print(f"localcluster: built in {time.monotonic() - started:.0f} s: {out}", file=sys.stderr)
    return out


def ensure_binaries(version: str = config.KUBERNETES_VERSION) -> Binaries:
    folder = build_kubernetes(version)
    find_node_programs()
    return Binaries(
        etcd=ensure_etcd(),
        kube_apiserver=folder / "kube-apiserver",
        kube_controller_manager=folder / "kube-controller-manager",
        kube_scheduler=folder / "kube-scheduler",
        kubelet=folder / "kubelet",
        kube_proxy=folder / "kube-proxy",
        kubectl=find_kubectl(),
    )
