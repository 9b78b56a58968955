"""Build kube-apiserver and kube-controller-manager once, and find etcd, Go and kubectl.

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

COMMANDS = ("kube-apiserver", "kube-controller-manager")


@dataclass(frozen=True)
class Binaries:
    """Absolute paths of every program the control plane runs."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
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


def build_kubernetes(version: str = config.KUBERNETES_VERSION, *, quiet: bool = False) -> Path:
    """Return the folder holding the built commands, building them if they are not cached."""
    out = config.bin_dir(version)
    if all((out / name).is_file() for name in COMMANDS):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    # `make` and a test session may both ask for a build: the second waits for the first.
    with (out.parent / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if all((out / name).is_file() for name in COMMANDS):
            return out
        return _build(version, out, quiet=quiet)


def _build(version: str, out: Path, *, quiet: bool) -> Path:
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
        *(f"k8s.io/kubernetes/cmd/{name}" for name in COMMANDS),
    ]
    if not quiet:
        print(
            f"localcluster: building {', '.join(COMMANDS)} {version} "
            f"(cold: about 8 min on 2 cores; log: {log_path})",
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
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    if not quiet:
        print(f"localcluster: built in {time.monotonic() - started:.0f} s: {out}", file=sys.stderr)
    return out


def ensure_binaries(version: str = config.KUBERNETES_VERSION) -> Binaries:
    folder = build_kubernetes(version)
    return Binaries(
        etcd=ensure_etcd(),
        kube_apiserver=folder / "kube-apiserver",
        kube_controller_manager=folder / "kube-controller-manager",
        kubectl=find_kubectl(),
    )
