"""pytest fixtures for tests that need a real Kubernetes: ``kube_cluster``, ``kube_namespace``.

Register with ``pytest_plugins = ["localcluster.pytest_plugin"]`` in tests/conftest.py. The
cluster starts once per session: control plane plus a real node (containerd, kubelet,
kube-proxy in its own network namespace) with the project's image imported (built by
``localcluster.image.build()``, cached; a cold build takes minutes), and is torn down at the end,
also on Ctrl-C; if the session is killed, the kernel stops the cluster's supervisor (see
``launch(tie_to_parent=True)``) and the next ``stop`` of its state cleans what it left.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from localcluster.cluster import Cluster, launch


def node_images() -> list[Path]:
    """The images every test cluster's node gets: the project's, built from its Dockerfile."""
    from localcluster import image

    return [image.build().archive]


@pytest.fixture(scope="session")
def kube_cluster() -> Iterator[Cluster]:
    """A running local cluster: ``.kubeconfig``, ``.kubectl(*args, check=True)``,
    ``.host_path_for_claim(ns, claim)``, ``.import_image(archive)``, ``.host_ip``."""
    cluster = launch(images=node_images(), tie_to_parent=True)
    try:
        yield cluster
    finally:
        cluster.stop()


@contextlib.contextmanager
def fresh_namespace(cluster: Cluster, name: str) -> Iterator[str]:
    """Namespace `name` with its ``default`` ServiceAccount ready; deleted afterwards."""
    cluster.kubectl("create", "namespace", name)
    # ServiceAccount admission rejects Pods until the controller made `default`.
    cluster.kubectl("wait", "--for=create", "serviceaccount/default", "-n", name, "--timeout=30s")
    try:
        yield name
    finally:
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def kube_namespace(kube_cluster: Cluster) -> Iterator[str]:
    """A fresh namespace with its ``default`` ServiceAccount ready; deleted afterwards."""
    with fresh_namespace(kube_cluster, f"t-{uuid.uuid4().hex[:10]}") as name:
        yield name
