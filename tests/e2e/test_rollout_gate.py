"""The Rollout gate (`spec.contract.after: Rollout`) on the local cluster, whose
kube-controller-manager runs the Deployment and ReplicaSet controllers: every rollout, scale
and undo below is the real controllers' work, and the contract step really drops a column.

The gate opens only on a completed rollout of a pod template that none of the Deployment's
ReplicaSets had when the Migration's generation was first observed (operator/pgshift/
controller/rollout.py; the same cases, pure, in tests/unit/controller/test_rollout.py).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from pgshift.controller.config import Settings
from tests.e2e.conftest import Operator
from tests.e2e.test_operator import (
    CREATE,
    DROP,
    conditions,
    configmap,
    get,
    k,
    migration,
    secret,
    spec_for,
    wait_condition,
    wait_phase,
)
from tests.pgserver import PgServer

pytestmark = pytest.mark.e2e

#: the operator polls a Rollout gate every PGSHIFT_POLL_SECONDS (2 s in these tests): a gate
#: still closed after this many polls did not open on what happened before them.
POLLS_WATCHED = 4
POLL_SECONDS = 2


def deployment(name: str, release: str, replicas: int = 1) -> dict[str, Any]:
    """A Deployment whose Pods idle; `release` is in its template, so changing it is a new
    pod template (a new application version) and changing `replicas` is not."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "containers": [
                        {
                            "name": "app",
                            # the image Jobs run: present on a real node too.
                            "image": Settings.from_env().default_image,
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["sleep", "3600"],
                            "env": [{"name": "RELEASE", "value": release}],
                        }
                    ],
                },
            },
        },
    }


def apply_deployment(cluster: Any, ns: str, name: str, release: str, replicas: int = 1) -> None:
    k(cluster, ns, "apply", "-f", "-", input=json.dumps(deployment(name, release, replicas)))
    rolled_out(cluster, ns, name)


def rolled_out(cluster: Any, ns: str, name: str) -> None:
    """`kubectl rollout status` returned and the controller observed the latest generation."""
    k(cluster, ns, "rollout", "status", f"deployment/{name}", "--timeout=120s")
    d = get(cluster, ns, "deployment", name)
    assert d["status"]["observedGeneration"] >= d["metadata"]["generation"]


def column_exists(pg: PgServer, database: str) -> bool:
    return (
        pg.psql(
            "SELECT count(*) FROM information_schema.columns "
            "WHERE table_name = 'items' AND column_name = 'legacy'",
            database,
        )
        == "1"
    )


def gated_migration(cluster: Any, ns: str, url: str, rollout: dict[str, Any]) -> None:
    secret(cluster, ns, url)
    configmap(cluster, ns, "src", {"0001_create.sql": CREATE, "0002_drop.sql": DROP})
    migration(
        cluster,
        ns,
        "app",
        spec_for(
            "src",
            contract={"after": "Rollout", "rollout": rollout},
            safety={"destructive": "Allow"},
        ),
    )


def stays_closed(cluster: Any, ns: str, pg: PgServer, database: str) -> dict[str, Any]:
    """After POLLS_WATCHED polls the gate is still closed and the contract has not run."""
    time.sleep(POLLS_WATCHED * POLL_SECONDS)
    status = get(cluster, ns, "migration", "app")["status"]
    assert status["phase"] == "AwaitingRollout", json.dumps(status, indent=1)
    assert conditions(status)["Ready"]["status"] == "True"
    assert conditions(status)["Complete"]["status"] == "False"
    assert column_exists(pg, database), "the contract step ran"
    return status


def test_kubectl_scale_and_an_hpa_style_replica_patch_do_not_open_the_gate(
    kube_cluster: Any, operator: Operator, ns: str, database_url: str, database_name: str,
    pg_server: PgServer,
) -> None:  # fmt: skip
    apply_deployment(kube_cluster, ns, "web", "1")
    gated_migration(kube_cluster, ns, database_url, {"deployment": "web"})
    status = wait_phase(kube_cluster, ns, "app", "AwaitingRollout")
    hashes = status["rollout"]["knownTemplateHashes"]["web"]
    assert len(hashes) == 1 and status["rollout"]["generation"] == 1
    # kubectl scale: a new Deployment generation, a completed "rollout" of the same template.
    k(kube_cluster, ns, "scale", "deployment/web", "--replicas=2")
    rolled_out(kube_cluster, ns, "web")
    status = stays_closed(kube_cluster, ns, pg_server, database_name)
    assert "scaling or undoing" in conditions(status)["Ready"]["message"]
    # what an HPA does: patch spec.replicas (here down again).
    k(kube_cluster, ns, "patch", "deployment/web", "--type=merge", "-p", '{"spec":{"replicas":1}}')
    rolled_out(kube_cluster, ns, "web")
    stays_closed(kube_cluster, ns, pg_server, database_name)
    # the new application version rolls out: now the gate opens and the contract runs.
    k(kube_cluster, ns, "set", "env", "deployment/web", "RELEASE=2")
    rolled_out(kube_cluster, ns, "web")
    wait_condition(kube_cluster, ns, "app", "Complete")
    assert not column_exists(pg_server, database_name)


def test_rollout_undo_back_to_a_known_template_does_not_open_the_gate(
    kube_cluster: Any, operator: Operator, ns: str, database_url: str, database_name: str,
    pg_server: PgServer,
) -> None:  # fmt: skip
    # release 2 is running, release 1 is kept in the history, when the Migration is applied.
    apply_deployment(kube_cluster, ns, "web", "1")
    apply_deployment(kube_cluster, ns, "web", "2")
    gated_migration(kube_cluster, ns, database_url, {"deployments": ["web"]})
    status = wait_phase(kube_cluster, ns, "app", "AwaitingRollout")
    assert len(status["rollout"]["knownTemplateHashes"]["web"]) == 2
    # rolling back to release 1 completes a rollout, of a template that is not new.
    k(kube_cluster, ns, "rollout", "undo", "deployment/web")
    rolled_out(kube_cluster, ns, "web")
    d = get(kube_cluster, ns, "deployment", "web")
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    stays_closed(kube_cluster, ns, pg_server, database_name)


def test_a_new_template_rolled_out_before_the_gate_opens_it(
    kube_cluster: Any, operator: Operator, ns: str, database_url: str, database_name: str,
    pg_server: PgServer,
) -> None:  # fmt: skip
    apply_deployment(kube_cluster, ns, "web", "1")
    configmap(kube_cluster, ns, "src", {"0001_create.sql": CREATE, "0002_drop.sql": DROP})
    spec = spec_for(
        "src",
        contract={"after": "Rollout", "rollout": {"deployment": "web"}},
        safety={"destructive": "Allow"},
    )
    # no Secret yet: the plan Job waits for it, so the expand step cannot have run when the
    # new release rolls out, yet generation 1 has been observed (and web's templates recorded).
    migration(kube_cluster, ns, "app", spec)
    status = wait_phase(kube_cluster, ns, "app", "SecretNotFound")
    assert len(status["rollout"]["knownTemplateHashes"]["web"]) == 1
    apply_deployment(kube_cluster, ns, "web", "2")
    secret(kube_cluster, ns, database_url)
    # expand runs, the contract step reaches its gate, and release 2 is new: it opens at once.
    wait_condition(kube_cluster, ns, "app", "Complete")
    assert not column_exists(pg_server, database_name)


def test_a_missing_deployment_is_named_while_ready_and_a_later_one_opens_the_gate(
    kube_cluster: Any, operator: Operator, ns: str, database_url: str, database_name: str,
    pg_server: PgServer,
) -> None:  # fmt: skip
    apply_deployment(kube_cluster, ns, "api", "1")
    gated_migration(kube_cluster, ns, database_url, {"deployments": ["api", "web"]})
    status = wait_phase(kube_cluster, ns, "app", "AwaitingRollout")
    ready = conditions(status)["Ready"]
    assert ready["status"] == "True" and conditions(status)["Stalled"]["status"] == "False"
    assert "Deployment web not found (yet)" in ready["message"]
    assert status["rollout"]["notFound"] == ["web"]
    events = get(kube_cluster, ns, "events", "--field-selector", "reason=DeploymentNotFound")
    warnings = [e for e in events["items"] if e["type"] == "Warning"]
    assert warnings and "Deployment web not found (yet)" in warnings[0]["message"]
    # web comes in a later sync wave; api rolls out its new release too: both are new.
    apply_deployment(kube_cluster, ns, "web", "1")
    stays_closed(kube_cluster, ns, pg_server, database_name)  # api still runs a known one
    k(kube_cluster, ns, "set", "env", "deployment/api", "RELEASE=2")
    rolled_out(kube_cluster, ns, "api")
    wait_condition(kube_cluster, ns, "app", "Complete")
    assert not column_exists(pg_server, database_name)
