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

#: PostgreSQL's client tools (pg_dump, psql) are put on every Pod's PATH.
POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")

#: Every process the cluster starts (control plane and Pod containers) carries this variable
#: with the cluster's id, so a sweep can find anything left behind even if a pid file is lost.
MARKER_ENV = "LOCALCLUSTER_ID"

#: A JSON object (or a path to a JSON file) mapping image references to local folders; see
#: docs/localcluster.md, "Images".
IMAGE_ROOTS_ENV = "LOCALCLUSTER_IMAGE_ROOTS"


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
