"""e2e fixtures: PostgreSQL where the real node's Pods reach it.

The session's server listens on the cluster's node-facing address (the host end of the node's
veth) as well as loopback, and pg_hba admits the node and pod networks; its URLs (and so the
Secrets the tests create) name that address, which the host reaches too.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localcluster.cluster import Cluster
from localcluster.network import NODE_NETWORKS
from localcluster.pytest_plugin import fresh_namespace
from tests.pgserver import PgServer, running_server

#: the image the chart, the kustomize base and the operator's Jobs use (operator config).
IMAGE = "ghcr.io/pgshift/pgshift:0.1.0"


@pytest.fixture(scope="session")
def pg_server(kube_cluster: Cluster) -> Iterator[PgServer]:
    """Overrides tests/conftest.py's: the same server, reachable from Pods."""
    with running_server(host=kube_cluster.host_ip, allow=NODE_NETWORKS) as server:
        yield server


QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart"


def image_pg_dump_version() -> str:
    """`pg_dump --version` of the built image, run in it with buildah (not on the node)."""
    from localcluster import image

    done = image.run_in_image(image.build(say=lambda _: None).reference, ["pg_dump", "--version"])
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture(scope="session")
def migrations_image(kube_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrations image as a user ships one: the quickstart's drizzle folder at /migrations,
    built with buildah on top of the project's image (it has `cp`), imported into the node."""
    from localcluster import image

    base = image.build(say=lambda _: None).reference
    context = tmp_path_factory.mktemp("migrations-image")
    shutil.copytree(QUICKSTART / "drizzle", context / "drizzle")
    (context / "Containerfile").write_text(f"FROM {base}\nCOPY drizzle /migrations\n")
    reference = "registry.example/shop-migrations:1"
    env = image.engine_env(image.cache_dir())
    archive = context / "migrations.tar"
    # no --layers: never a stale cached layer (buildah#4522); the COPY is quick anyway.
    for argv in (
        ["buildah", "bud", "--isolation", "chroot", "--pull=never", "-f",
         str(context / "Containerfile"), "-t", reference, str(context)],
        ["buildah", "push", reference, f"docker-archive:{archive}:{reference}"],
    ):  # fmt: skip
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        assert done.returncode == 0, f"{' '.join(argv[:2])}: {done.stderr[-2000:]}"
    kube_cluster.import_image(archive)
    return reference


# --- the operator as a host process (test_operator.py, test_pod_failures.py) ---------------------

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD = REPO_ROOT / "manifests" / "crd" / "pgshift.dev_migrations.yaml"
PREFIX = "pgs-op-"
#: the operator's log, quoted when a wait fails.
_LOGS: list[Path] = []


def _operator_log(ns: str) -> str:
    if not _LOGS or not _LOGS[-1].is_file():
        return ""
    lines = [line for line in _LOGS[-1].read_text(errors="replace").splitlines() if ns in line]
    return "\n".join(lines[-30:])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Operator:
    """`python -m pgshift.controller` as a child process; restartable."""

    def __init__(self, kubeconfig: Path, log: Path) -> None:
        self.kubeconfig = kubeconfig
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        #: its Prometheus endpoint (PGSHIFT_METRICS), on a port free when the fixture started.
        self.metrics_url = f"http://127.0.0.1:{_free_port()}/metrics"

    def start(self) -> None:
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PGSHIFT_LOG_FORMAT": "plain",
            "PGSHIFT_LIVENESS": "",
            # retries come quickly in tests; the machine's backoff logic is unit-tested.
            "PGSHIFT_RETRY_BACKOFF": "2",
            "PGSHIFT_POLL_SECONDS": "2",
            # an image that cannot be pulled stalls the Migration soon (pod_failures).
            "PGSHIFT_IMAGE_PULL_GRACE": "20",
            "PGSHIFT_METRICS": self.metrics_url,
        }
        # the child writes through its own copy of the descriptor: ours closes at once (left
        # open, it leaked one file per start: a ResourceWarning).
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pgshift.controller", "-n", f"{PREFIX}*"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
            )

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, as when a node dies."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="module")
def operator(kube_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    kube_cluster.kubectl("apply", "-f", str(CRD))
    kube_cluster.kubectl(
        "wait", "--for=condition=Established", "crd/migrations.pgshift.dev", "--timeout=60s"
    )
    op = Operator(kube_cluster.kubeconfig, tmp_path_factory.mktemp("operator") / "operator.log")
    _LOGS.append(op.log)
    op.start()
    try:
        yield op
    finally:
        op.stop()


@pytest.fixture
def ns(kube_cluster: Any, operator: Operator) -> Iterator[str]:
    # the operator watches only `PREFIX*` namespaces: kube_namespace's names are not among them.
    with fresh_namespace(kube_cluster, f"{PREFIX}{uuid.uuid4().hex[:8]}") as name:
        yield name
