"""What a real kubelet reports about a Job's Pod reaches the Migration's status, named, with
what to do: one test per row of pgshift.controller.pod_failures.TABLE (a real node, the real
image, the operator as in test_operator.py).

Not here: `CreateContainerConfigError` other than a missing Secret (the Job builder's own
settings never trip it; the row is unit-tested in tests/unit/controller/test_pod_failures.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import Operator
from tests.e2e.test_operator import (
    CREATE,
    conditions,
    configmap,
    get,
    k,
    migration,
    poll,
    secret,
    spec_for,
    wait_condition,
    wait_phase,
)
from tests.pgserver import PgServer

pytestmark = pytest.mark.e2e


def stalled_with(cluster: Any, ns: str, reason: str) -> dict[str, Any]:
    status = wait_phase(cluster, ns, "app", reason)
    c = conditions(status)
    assert c["Stalled"]["status"] == "True" and c["Stalled"]["reason"] == reason, status
    return status


def image_source(reference: str, path: str = "/migrations") -> dict[str, Any]:
    spec = spec_for("unused", contract={"after": "Immediately"})
    spec["source"] = {"image": {"reference": reference, "path": path}, "layout": "drizzle"}
    return spec


def test_an_invalid_image_name_stalls_with_image_unavailable(
    kube_cluster: Any, operator: Operator, ns: str, database_url: str
) -> None:
    secret(kube_cluster, ns, database_url)
    migration(kube_cluster, ns, "app", image_source("registry.example/Shop-Migrations:1"))
    status = stalled_with(kube_cluster, ns, "ImageUnavailable")
    message = conditions(status)["Stalled"]["message"]
    assert "InvalidImageName" in message or "Shop-Migrations" in message, message
    assert "spec.source.image" in message
    assert status["failure"]["code"] == "ImageUnavailable"


def test_an_image_that_cannot_be_pulled_reconciles_then_stalls(
    kube_cluster: Any, operator: Operator, ns: str, database_url: str
) -> None:
    secret(kube_cluster, ns, database_url)
    migration(kube_cluster, ns, "app", image_source("registry.example/absent-migrations:1"))

    def waiting() -> bool:
        status = get(kube_cluster, ns, "migration", "app").get("status") or {}
        c = conditions(status)
        return bool(c) and "waits for its image" in c["Ready"]["message"]

    poll(waiting, "never reported the image pull back-off while Reconciling", attempts=900)
    c = conditions(get(kube_cluster, ns, "migration", "app")["status"])
    assert c["Reconciling"]["status"] == "True" and c["Stalled"]["status"] == "False"
    status = stalled_with(kube_cluster, ns, "ImageUnavailable")
    assert "registry.example/absent-migrations:1" in conditions(status)["Stalled"]["message"]


def test_a_failing_init_container_stalls_with_source_unreadable_and_its_log(
    kube_cluster: Any, operator: Operator, ns: str, database_url: str, migrations_image: str
) -> None:
    secret(kube_cluster, ns, database_url)
    migration(kube_cluster, ns, "app", image_source(migrations_image, path="/not-there"))
    status = stalled_with(kube_cluster, ns, "SourceUnreadable")
    message = conditions(status)["Stalled"]["message"]
    assert "/not-there" in message and "No such file or directory" in message, message
    assert "spec.source.image.path" in message
    # one Job, not six JobLost retries.
    assert len(get(kube_cluster, ns, "jobs")["items"]) == 1


def test_oom_killed_resumes_once_then_stalls_with_out_of_memory(
    kube_cluster: Any, operator: Operator, ns: str, database_url: str
) -> None:
    secret(kube_cluster, ns, database_url)
    configmap(kube_cluster, ns, "src", {"0001_create.sql": CREATE})
    spec = spec_for("src", job={"resources": {"limits": {"memory": "24Mi"}}})
    migration(kube_cluster, ns, "app", spec)
    status = stalled_with(kube_cluster, ns, "OutOfMemory")
    assert "spec.job.resources" in conditions(status)["Stalled"]["message"]
    jobs = get(kube_cluster, ns, "jobs")["items"]
    assert len(jobs) == 2, [j["metadata"]["name"] for j in jobs]  # the first, then one resume
    for job in jobs:
        pods = get(kube_cluster, ns, "pods", "-l", f"job-name={job['metadata']['name']}")
        term = pods["items"][0]["status"]["containerStatuses"][0]["state"]["terminated"]
        assert term["reason"] == "OOMKilled"


def test_a_missing_secret_key_is_named_then_picked_up(
    kube_cluster: Any, operator: Operator, ns: str, database_url: str, pg_server: PgServer
) -> None:
    k(kube_cluster, ns, "create", "secret", "generic", "app-db", "--from-literal=OTHER=x")
    configmap(kube_cluster, ns, "src", {"0001_create.sql": CREATE})
    migration(kube_cluster, ns, "app", spec_for("src"))
    status = wait_phase(kube_cluster, ns, "app", "SecretNotFound")
    c = conditions(status)
    assert c["Reconciling"]["status"] == "True" and c["Stalled"]["status"] == "False"
    assert "DATABASE_URL" in c["Ready"]["message"], c["Ready"]["message"]
    fixed = k(kube_cluster, ns, "create", "secret", "generic", "app-db", "--dry-run=client",
              "-o", "json", f"--from-literal=DATABASE_URL={database_url}")  # fmt: skip
    k(kube_cluster, ns, "apply", "-f", "-", input=fixed)
    wait_condition(kube_cluster, ns, "app", "Complete")


def test_a_deadline_resumes_where_the_job_stopped(
    kube_cluster: Any, operator: Operator, ns: str, database_url: str, database_name: str,
    pg_server: PgServer,
) -> None:  # fmt: skip
    # a backfill paced to outlast the shortest deadline (60 s): the first apply Job is stopped
    # by Kubernetes, the next one resumes the batches, and the Migration completes.
    pg_server.psql(
        "CREATE TABLE rows (id bigint PRIMARY KEY, v text);"
        "INSERT INTO rows SELECT g, NULL FROM generate_series(1, 4000) g",
        database_name,
    )
    fill = "-- pgshift:backfill key=id\nUPDATE rows SET v = 'x' || id WHERE v IS NULL;\n"
    secret(kube_cluster, ns, database_url)
    configmap(kube_cluster, ns, "src", {"0001_fill.sql": fill})
    spec = spec_for(
        "src", backfill={"targetBatchTime": "1ms", "pause": "1s"}, job={"activeDeadlineSeconds": 60}
    )
    migration(kube_cluster, ns, "app", spec)
    wait_condition(kube_cluster, ns, "app", "Complete")
    jobs = get(kube_cluster, ns, "jobs")["items"]
    reasons = [
        c.get("reason")
        for j in jobs
        for c in (j.get("status") or {}).get("conditions") or []
        if c.get("type") == "Failed"
    ]
    assert "DeadlineExceeded" in reasons, reasons
    assert pg_server.psql("SELECT count(*) FROM rows WHERE v IS NULL", database_name) == "0"
