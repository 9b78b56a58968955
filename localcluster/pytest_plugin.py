"""pytest fixtures for tests that need a real Kubernetes API: ``kube_cluster``.

Register with ``pytest_plugins = ["localcluster.pytest_plugin"]`` in tests/conftest.py. The
cluster starts once per session (about 5 s with cached binaries; the first run ever builds the
binaries, 8-25 min) and is torn down at the end, also on Ctrl-C; if the session is killed, the
kernel stops the cluster's supervisor (see ``launch(tie_to_parent=True)``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from localcluster.cluster import Cluster, launch


@pytest.fixture(scope="session")
def kube_cluster() -> Iterator[Cluster]:
    """A running local cluster: ``.kubeconfig``, ``.kubectl(*args, check=True)``,
    ``.host_path_for_claim(ns, claim)``, ``.image_roots``, ``.add_image(ref, folder)``."""
    cluster = launch(tie_to_parent=True)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def kube_namespace(kube_cluster: Cluster) -> Iterator[str]:
    """A fresh namespace with its ``default`` ServiceAccount ready; deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    kube_cluster.kubectl("create", "namespace", name)
    # ServiceAccount admission rejects Pods until the controller made `default`.
    kube_cluster.kubectl(
        "wait", "--for=create", "serviceaccount/default", "-n", name, "--timeout=30s"
    )
    try:
        yield name
    finally:
        kube_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
