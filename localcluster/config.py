"""Versions, cache locations and the marker that tags every process of a cluster."""

from __future__ import annotations

import os
from pathlib import Path

#: The Kubernetes release built from source. Keep ``gotools/go.mod`` on the same patch level:
#: ``k8s.io/kubernetes v1.33.N`` and every staging module replaced by ``v0.33.N``.
KUBERNETES_VERSION = "v1.33.13"

#: Where Go and etcd come from when missing: Debian packages (see build.ensure_etcd).
GO_BINARY_CANDIDATES = ("/usr/local/go/bin/go", "/usr/lib/go/bin/go")

GOTOOLS_DIR = Path(__file__).resolve().parent / "gotools"

#: Every process the cluster starts (control plane, node daemons, containerd's shims) carries
#: this variable with the cluster's id, so a sweep can find anything left behind even if a pid
#: file is lost. Containers do not (their environment is the Pod's): they are found by cgroup.
MARKER_ENV = "LOCALCLUSTER_ID"


def cache_root() -> Path:
    """Binaries and Go caches live outside the work tree so a fresh checkout reuses them."""
    if override := os.environ.get("LOCALCLUSTER_CACHE"):
        return Path(override)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "pgshift-localcluster"


def bin_dir(version: str = KUBERNETES_VERSION) -> Path:
    return cache_root() / version / "bin"


def state_file() -> Path:
    """Where ``up`` records the running cluster so ``down`` and ``status`` find it
    (``LOCALCLUSTER_STATE`` overrides it, so tests of the CLI never touch a person's cluster)."""
    override = os.environ.get("LOCALCLUSTER_STATE")
    return Path(override) if override else cache_root() / "up.json"
