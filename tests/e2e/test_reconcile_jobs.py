"""The controller's Job lookup against the real apiserver (no operator process needed)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest

from pgshift.controller import kube, reconcile
from pgshift.controller.api import LABEL_MANAGED_BY, LABEL_MIGRATION, LABEL_SEQ, MANAGED_BY, Ref
from tests.e2e.conftest import CRD

pytestmark = pytest.mark.e2e


@pytest.fixture
def kube_client(kube_cluster: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """pgshift.controller.kube talking to the local cluster, as the operator does."""
    # the client reads $KUBECONFIG when it is imported: load the cluster's file by name.
    kubernetes.config.load_kube_config(config_file=str(kube_cluster.kubeconfig))
    monkeypatch.setattr(kube, "_configured", True)
    kube_cluster.kubectl("apply", "-f", str(CRD))
    kube_cluster.kubectl(
        "wait", "--for=condition=Established", "crd/migrations.pgshift.dev", "--timeout=60s"
    )
    yield


def test_an_older_running_job_is_waited_for_not_a_type_error(
    kube_cluster: Any, kube_namespace: str, kube_client: None
) -> None:
    """`_job_in_flight` called `_stuck` without its `pull_grace`: with no Job of the current
    sequence and an older one still running, every reconcile raised TypeError (found by mypy)."""
    ns = kube_namespace
    migration = {
        "apiVersion": "pgshift.dev/v1alpha1",
        "kind": "Migration",
        "metadata": {"name": "m", "namespace": ns},
        "spec": {
            "database": {"urlSecretRef": {"name": "db"}},
            "source": {"configMap": {"name": "src"}},
            "backup": {"when": "Never"},
        },
    }
    kube_cluster.kubectl("apply", "-f", "-", input=json.dumps(migration))
    uid = kube_cluster.get_json("migration", "m", "-n", ns)["metadata"]["uid"]
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "m-old-1-apply",
            "namespace": ns,
            "labels": {LABEL_MANAGED_BY: MANAGED_BY, LABEL_MIGRATION: "m", LABEL_SEQ: "1"},
            "ownerReferences": [
                {"apiVersion": "pgshift.dev/v1alpha1", "kind": "Migration", "name": "m",
                 "uid": uid, "controller": True, "blockOwnerDeletion": False}
            ],
        },
        # suspended: no Pod ever starts, and without a Complete/Failed condition it is running.
        "spec": {
            "suspend": True,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "runner", "image": "pgshift:none", "command": ["x"]}],
                }
            },
        },
    }  # fmt: skip
    kube_cluster.kubectl("apply", "-f", "-", input=json.dumps(job))
    state = reconcile._job_in_flight(Ref(ns, "m", uid), seq=2, pull_grace=120.0)
    assert state is not None
    assert state.name == "m-old-1-apply"
