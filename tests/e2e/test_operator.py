"""The operator on a real cluster (localcluster: a real kubelet, containerd and runc) and a real
PostgreSQL, driven through kubectl as a user would: every Job runs `pgshift` in the project's
image (built from the Dockerfile, imported into the node), as uid 65532 with a read-only root.

The operator itself runs as a host process (`python -m pgshift.controller`, a client of the
apiserver like any other), watching only the namespaces these tests create (`pgs-op-*`), so
it can be killed and restarted mid-Job; the install tests (test_install.py) run it in the image.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import IMAGE, Operator, _operator_log, image_pg_dump_version
from tests.pgserver import PgServer

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "manifests" / "crd" / "pgshift.dev_migrations.yaml"
QUICKSTART = ROOT / "examples" / "quickstart"
WAIT = "180s"
WAIT_SECONDS = 200


# --- helpers ------------------------------------------------------------------------------------


def k(cluster: Any, ns: str, *args: str, check: bool = True, input: str | None = None) -> str:
    return cluster.kubectl("-n", ns, *args, check=check, input=input).stdout


def get(cluster: Any, ns: str, *args: str) -> Any:
    return json.loads(k(cluster, ns, "get", *args, "-o", "json"))


def wait_condition(cluster: Any, ns: str, name: str, cond: str, value: str = "true") -> None:
    done = cluster.kubectl(
        "-n", ns, "wait", f"--for=condition={cond}={value}", f"migration/{name}",
        f"--timeout={WAIT}", check=False, timeout=WAIT_SECONDS,
    )  # fmt: skip
    if done.returncode != 0:
        status = get(cluster, ns, "migration", name).get("status")
        pytest.fail(
            f"{cond}={value} not reached: {done.stderr}\nstatus: {json.dumps(status, indent=1)}"
            f"\noperator: {_operator_log(ns)}"
        )


def wait_phase(cluster: Any, ns: str, name: str, phase: str) -> dict[str, Any]:
    done = cluster.kubectl(
        "-n", ns, "wait", f"--for=jsonpath={{.status.phase}}={phase}", f"migration/{name}",
        f"--timeout={WAIT}", check=False, timeout=WAIT_SECONDS,
    )  # fmt: skip
    status = get(cluster, ns, "migration", name).get("status") or {}
    if done.returncode != 0:
        pytest.fail(
            f"phase {phase} not reached: {done.stderr}\nstatus: {json.dumps(status, indent=1)}"
            f"\noperator: {_operator_log(ns)}"
        )
    return status


def conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status.get("conditions") or []}


def secret(cluster: Any, ns: str, url: str, name: str = "app-db") -> None:
    k(cluster, ns, "create", "secret", "generic", name, f"--from-literal=DATABASE_URL={url}")


def configmap(cluster: Any, ns: str, name: str, files: dict[str, str]) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": files}
    k(cluster, ns, "apply", "-f", "-", input=json.dumps(body))


def migration(cluster: Any, ns: str, name: str, spec: dict[str, Any], check: bool = True) -> str:
    body = {
        "apiVersion": "pgshift.dev/v1alpha1",
        "kind": "Migration",
        "metadata": {"name": name},
        "spec": spec,
    }
    done = cluster.kubectl("-n", ns, "apply", "-f", "-", input=json.dumps(body), check=check)
    return done.stderr


def spec_for(cm: str, *, secret_name: str = "app-db", **over: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "database": {"urlSecretRef": {"name": secret_name}},
        "source": {"configMap": {"name": cm}, "layout": "plain"},
        "backup": {"when": "Never"},
    }
    spec.update(over)
    return spec


def backup_claim(cluster: Any, ns: str, name: str = "backups") -> None:
    body = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    k(cluster, ns, "apply", "-f", "-", input=json.dumps(body))


def jobs(cluster: Any, ns: str) -> list[dict[str, Any]]:
    return get(cluster, ns, "jobs")["items"]


def test_a_wrong_password_stalls_at_once_instead_of_being_retried(
    kube_cluster: Any, operator: Operator, ns: str, database_url: str, pg_server: PgServer
) -> None:
    quoted = urllib.parse.quote(pg_server.password, safe="")
    wrong = database_url.replace(f":{quoted}@", ":not-the-password@")
    secret(kube_cluster, ns, wrong)
    configmap(kube_cluster, ns, "src", {"0001_create.sql": CREATE})
    migration(kube_cluster, ns, "app", spec_for("src"))
    wait_condition(kube_cluster, ns, "app", "Stalled")
    status = get(kube_cluster, ns, "migration", "app")["status"]
    # one Job, no backoff: 28P01 is not retryable (it used to be retried until RetriesExhausted)
    assert status["failure"]["sqlstate"] == "28P01" and status["failure"]["retryable"] is False
    assert conditions(status)["Stalled"]["reason"] != "RetriesExhausted"
    assert len(jobs(kube_cluster, ns)) == 1
    no_secret_anywhere(kube_cluster, ns, pg_server, operator)


def poll(what: Callable[[], Any], message: str, attempts: int = 600) -> Any:
    """Poll the cluster until `what()` is truthy (a bounded number of looks, not a timing)."""
    for _ in range(attempts):
        value = what()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(message)


def no_secret_anywhere(cluster: Any, ns: str, pg: PgServer, operator: Operator) -> None:
    encoded = urllib.parse.quote(pg.password, safe="")
    texts = {
        "migrations": k(cluster, ns, "get", "migrations", "-o", "yaml"),
        "events": k(cluster, ns, "get", "events", "-o", "yaml"),
        "jobs": k(cluster, ns, "get", "jobs", "-o", "yaml"),
        "pods": k(cluster, ns, "get", "pods", "-o", "yaml"),
        "operator log": operator.log.read_text(errors="replace"),
    }
    for job in jobs(cluster, ns):
        texts[f"log {job['metadata']['name']}"] = k(
            cluster, ns, "logs", f"job/{job['metadata']['name']}", check=False
        )
    for where, text in texts.items():
        assert pg.password not in text, where
        assert encoded not in text, where


# --- the quickstart -----------------------------------------------------------------------------


def test_quickstart_complete_with_backup(
    kube_cluster: Any, operator: Operator, ns: str, database_url: str, database_name: str,
    pg_server: PgServer,
) -> None:  # fmt: skip
    secret(kube_cluster, ns, database_url, "shop-db")
    kube_cluster.kubectl("apply", "-k", str(QUICKSTART), "-n", ns)

    # written early: the first status says not ready, working on it.
    first = poll(
        lambda: get(kube_cluster, ns, "migration", "shop").get("status"), "no status written"
    )
    c = conditions(first)
    assert c["Ready"]["status"] == "False" and c["Reconciling"]["status"] == "True"

    wait_condition(kube_cluster, ns, "shop", "Ready")
    status = get(kube_cluster, ns, "migration", "shop")["status"]
    if conditions(status)["Complete"]["status"] != "True":
        gate = status["gate"]
        k(
            kube_cluster,
            ns,
            "annotate",
            "migration/shop",
            f"pgshift.dev/approve={gate['migration']}",
        )
    wait_condition(kube_cluster, ns, "shop", "Complete")
    status = get(kube_cluster, ns, "migration", "shop")["status"]
    assert status["pendingCount"] == 0 and status["appliedCount"] == 5
    assert status["appliedVersion"] == "0004_projects_slug_not_null"

    # the tracking table is what drizzle's migrator expects: one row per journal entry.
    journal = json.loads((QUICKSTART / "drizzle" / "meta" / "_journal.json").read_text())
    rows = pg_server.psql(
        "SELECT created_at FROM drizzle.__drizzle_migrations ORDER BY id", database_name
    ).split()
    assert [int(r) for r in rows] == [e["when"] for e in journal["entries"]]

    # the backup: recorded in status, on the claim, readable by pg_restore.
    backup = status["lastBackup"]
    assert backup["path"].startswith(f"/backups/{ns}/shop/") and backup["path"].endswith(".dump")
    assert len(backup["sha256"]) == 64 and backup["size"] > 0 and backup["time"]
    host = kube_cluster.host_path_for_claim(ns, "shop-db-backups")
    dump = host / backup["path"].removeprefix("/backups/")
    assert dump.is_file() and dump.stat().st_size == backup["size"]
    # a custom-format archive (the runner's own pg_restore --list verified it in the Job: the
    # host's pg_restore 15 cannot read what the image's pg_dump 18 writes).
    assert dump.read_bytes()[:5] == b"PGDMP"
    assert hashlib.sha256(dump.read_bytes()).hexdigest() == backup["sha256"]
    # the backup Job ran the image's pg_dump (its sidecar records the version), not the host's.
    sidecar = json.loads(dump.with_name(dump.name + ".json").read_text())
    assert f"pg_dump (PostgreSQL) {sidecar['pgDump']}" in image_pg_dump_version()

    # kubectl get shows the printer columns.
    table = k(kube_cluster, ns, "get", "migrations")
    header = table.splitlines()[0].split()
    assert header[:5] == ["NAME", "READY", "PHASE", "APPLIED", "PENDING"]
    assert "BACKUP" in header and "AGE" in header
    assert "Complete" in table and "0004_projects_slug_not_null" in table

    events = k(kube_cluster, ns, "get", "events", "--field-selector", "involvedObject.name=shop")
    for reason in ("StartedJob", "Planned", "BackupTaken", "Applied", "Complete"):
        assert reason in events

    # every Job honours the contract in the cluster, too.
    for job in jobs(kube_cluster, ns):
        assert job["spec"]["backoffLimit"] == 0
        assert job["metadata"]["ownerReferences"][0]["kind"] == "Migration"

    no_secret_anywhere(kube_cluster, ns, pg_server, operator)
    metrics_after_the_quickstart(operator, ns, backup["size"])
    watch_shows_the_status(operator, ns, "shop")

    # deleting the Migration leaves the database and the backups alone; no finalizer holds it.
    k(kube_cluster, ns, "delete", "migration", "shop", "--timeout=60s")
    assert pg_server.psql("SELECT count(*) FROM projects", database_name) == "0"
    assert pg_server.psql("SELECT count(*) FROM drizzle.__drizzle_migrations", database_name) == "5"
    assert dump.is_file()


Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(operator: Operator) -> tuple[str, Series]:
    """The operator's metrics endpoint: its text, and its samples read with prometheus_client's
    own parser."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(operator.metrics_url, timeout=10) as resp:
        assert resp.status == 200
        text = resp.read().decode()
    series = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    return text, series


def metrics_after_the_quickstart(operator: Operator, ns: str, backup_size: int) -> None:
    """The series a platform team watches, after the quickstart ran (plan, backup, apply)."""
    text, series = scrape(operator)

    def at_least(name: str, minimum: float, **labels: str) -> None:
        found = series.get((name, tuple(sorted(labels.items()))))
        assert found is not None and found >= minimum, (name, labels, found)

    for action in ("plan", "backup", "apply"):
        at_least("pgshift_jobs_started_total", 1, action=action)
        at_least("pgshift_jobs_finished_total", 1, action=action, outcome="succeeded")
        at_least("pgshift_job_duration_seconds_count", 1, action=action)
    at_least("pgshift_migrations", 1, phase="Complete")
    at_least("pgshift_migration_conditions", 1, condition="Complete", status="True")
    at_least("pgshift_step_duration_seconds_count", 1, phase="expand")
    at_least("pgshift_backups_total", 1, outcome="succeeded")
    at_least("pgshift_backup_bytes_total", backup_size)
    at_least("pgshift_backup_duration_seconds_count", 1)
    at_least("pgshift_backfill_rows_per_second", 0)
    # declared before any happened: a dashboard's queries find them from the start.
    for name in ("pgshift_failures_total", "pgshift_gate_wait_seconds"):
        assert f"# TYPE {name.removesuffix('_total')}" in text, name
    # bounded labels: no namespace, Migration, database or Secret name in any series.
    assert ns not in text and "shop-db" not in text and "postgres" not in text.lower()


def watch_shows_the_status(operator: Operator, ns: str, name: str) -> None:
    """`kubectl pgshift status NAME --watch` prints the detail at once, then waits."""
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "pgshift.kubectl_plugin", "--kubeconfig", str(operator.kubeconfig),
         "-n", ns, "status", name, "--watch"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("Phase:"):
                break
        assert lines and lines[0].startswith("--- "), "".join(lines)
        assert "Complete" in lines[-1], "".join(lines)
        assert proc.poll() is None  # still watching
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


# --- gates --------------------------------------------------------------------------------------

CREATE = "CREATE TABLE items (id bigint PRIMARY KEY, legacy text);\n"
DROP = "-- pgshift:phase=contract\nALTER TABLE items DROP COLUMN legacy;\n"
ADD = "CREATE TABLE extras (id bigint PRIMARY KEY);\n"


def test_contract_waits_for_approval_then_backs_up_and_completes(
    kube_cluster: Any, operator: Operator, ns: str, database_url: str, database_name: str,
    pg_server: PgServer,
) -> None:  # fmt: skip
    secret(kube_cluster, ns, database_url)
    backup_claim(kube_cluster, ns)
    configmap(kube_cluster, ns, "src", {"0001_create.sql": CREATE, "0002_drop.sql": DROP})
    migration(
        kube_cluster, ns, "app",
        spec_for("src", backup={"when": "BeforeDestructive", "volume": {"claimName": "backups"}}),
    )  # fmt: skip

    wait_condition(kube_cluster, ns, "app", "Ready")
    status = get(kube_cluster, ns, "migration", "app")["status"]
    c = conditions(status)
    assert c["Complete"]["status"] == "False" and c["Stalled"]["status"] == "False"
    assert status["phase"] == "AwaitingApproval"
    assert status["gate"]["migration"] == "0002_drop"
    assert "pgshift.dev/approve=0002_drop" in c["Ready"]["message"]
    assert pg_server.psql("SELECT count(*) FROM items", database_name) == "0"
    assert "lastBackup" not in status  # no destructive step ran yet

    k(kube_cluster, ns, "annotate", "migration/app", "pgshift.dev/approve=0002_drop")
    wait_condition(kube_cluster, ns, "app", "Complete")
    status = get(kube_cluster, ns, "migration", "app")["status"]
    assert status["actions"]["approved"] == ["0002_drop"]
    assert status["lastBackup"]["scope"] == "AffectedTables"
    assert status["lastBackup"]["tables"] == ["items"] or status["lastBackup"]["tables"]
    columns = pg_server.psql(
        "SELECT string_agg(column_name, ',') FROM information_schema.columns "
        "WHERE table_name = 'items'",
        database_name,
    )
    assert columns == "id"
    # one Job per step attempt: plan, apply (expand), plan, backup, apply (contract), ...
    names = [j["metadata"]["name"] for j in jobs(kube_cluster, ns)]
    seqs = sorted(int(j["metadata"]["labels"]["pgshift.dev/seq"]) for j in jobs(kube_cluster, ns))
    assert len(names) == len(set(names)) and seqs == list(range(len(seqs)))


def test_expand_behind_a_gated_contract_is_blocked_by_gate(
    kube_cluster: Any, operator: Operator, ns: str, database_url: str
) -> None:
    secret(kube_cluster, ns, database_url)
    # 0002 is harmless SQL made a contract step by spec.overrides alone: the gate proves the
    # overrides reached the runner (a downward-API file in the Job's Pod).
    note = "COMMENT ON TABLE items IS 'v2';\n"
    files = {"0001_create.sql": CREATE, "0002_note.sql": note, "0003_add.sql": ADD}
    configmap(kube_cluster, ns, "src", files)
    migration(
        kube_cluster, ns, "app", spec_for("src", overrides={"0002_note": {"phase": "contract"}})
    )
    status = wait_phase(kube_cluster, ns, "app", "BlockedByGate")
    c = conditions(status)
    assert c["Ready"]["status"] == "False" and c["Stalled"]["status"] == "False"
    assert c["Ready"]["reason"] == "BlockedByGate"
    assert "0003_add" in c["Ready"]["message"] and "approve=0002_note" in c["Ready"]["message"]
    k(kube_cluster, ns, "annotate", "migration/app", "pgshift.dev/approve=0002_note")
    wait_condition(kube_cluster, ns, "app", "Complete")


def test_rollout_gate_opens_when_the_deployment_rolled_out(
    kube_cluster: Any, operator: Operator, ns: str, database_url: str, database_name: str,
    pg_server: PgServer,
) -> None:  # fmt: skip
    # The local cluster runs the Deployment and ReplicaSet controllers: the rollouts are real.
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": IMAGE,
                            "imagePullPolicy": "Never",
                            "command": ["sleep", "3600"],
                        }
                    ]
                },
            },
        },
    }
    k(kube_cluster, ns, "apply", "-f", "-", input=json.dumps(deployment))

    def rolled_out(generation: int) -> None:
        k(kube_cluster, ns, "rollout", "status", "deployment/web", "--timeout=120s")
        assert get(kube_cluster, ns, "deployment", "web")["status"]["observedGeneration"] >= (
            generation
        )

    rolled_out(1)
    secret(kube_cluster, ns, database_url)
    configmap(kube_cluster, ns, "src", {"0001_create.sql": CREATE, "0002_drop.sql": DROP})
    spec = spec_for(
        "src",
        contract={"after": "Rollout", "rollout": {"deployment": "web"}},
        safety={"destructive": "Allow"},
    )
    migration(kube_cluster, ns, "app", spec)
    status = wait_phase(kube_cluster, ns, "app", "AwaitingRollout")
    assert conditions(status)["Ready"]["status"] == "True"
    assert "Deployment web" in conditions(status)["Ready"]["message"]
    # the application's new version rolls out: a new generation, then its rollout completes.
    k(kube_cluster, ns, "set", "env", "deployment/web", "APP_VERSION=2")
    rolled_out(2)
    wait_condition(kube_cluster, ns, "app", "Complete")
    columns = pg_server.psql(
        "SELECT string_agg(column_name, ',') FROM information_schema.columns "
        "WHERE table_name = 'items'",
        database_name,
    )
    assert columns == "id"


# --- failure and recovery -----------------------------------------------------------------------


def test_failed_sql_stalls_then_retry_and_mark_applied_recover(
    kube_cluster: Any, operator: Operator, ns: str, database_url: str, database_name: str,
    pg_server: PgServer,
) -> None:  # fmt: skip
    secret(kube_cluster, ns, database_url)
    bad = "ALTER TABLE missing ADD COLUMN x int;\n"
    configmap(
        kube_cluster,
        ns,
        "src",
        {"0001_create.sql": CREATE, "0002_bad.sql": bad, "0003_add.sql": ADD},
    )
    migration(kube_cluster, ns, "app", spec_for("src"))
    wait_condition(kube_cluster, ns, "app", "Stalled")
    status = get(kube_cluster, ns, "migration", "app")["status"]
    failure = status["failure"]
    assert failure["migration"] == "0002_bad" and failure["sqlstate"] == "42P01"
    assert "missing" in failure["statement"] and failure["retryable"] is False
    assert status["phase"] == "MigrationFailed"
    assert any("pgshift.dev/retry" in r for r in status["recovery"])
    # nothing after the failed migration ran.
    assert pg_server.psql("SELECT to_regclass('extras') IS NULL", database_name) == "t"

    # a human fixes the cause and asks for a retry.
    pg_server.psql("CREATE TABLE missing (id int)", database_name)
    k(kube_cluster, ns, "annotate", "migration/app", "pgshift.dev/retry=1")
    wait_condition(kube_cluster, ns, "app", "Complete")
    assert pg_server.psql("SELECT to_regclass('extras') IS NOT NULL", database_name) == "t"

    # the ConfigMap edited in place: a new migration that fails, recovered with mark-applied.
    configmap(
        kube_cluster, ns, "src",
        {"0001_create.sql": CREATE, "0002_bad.sql": bad, "0003_add.sql": ADD,
         "0004_worse.sql": "ALTER TABLE nowhere ADD COLUMN y int;\n"},
    )  # fmt: skip
    wait_condition(kube_cluster, ns, "app", "Stalled")
    assert (
        get(kube_cluster, ns, "migration", "app")["status"]["failure"]["migration"] == "0004_worse"
    )
    # misspelled first: its own reason naming the value (not SourceDrift), cleared by the fix.
    k(kube_cluster, ns, "annotate", "migration/app", "pgshift.dev/mark-applied=0004_wrose")
    typo = wait_phase(kube_cluster, ns, "app", "UnknownMarkApplied")
    assert typo["failure"]["code"] == "UnknownMarkApplied" and "'0004_wrose'" in (
        conditions(typo)["Stalled"]["message"]
    )
    assert any("pgshift.dev/mark-applied-" in line for line in typo["recovery"])
    k(kube_cluster, ns, "annotate", "--overwrite", "migration/app",
      "pgshift.dev/mark-applied=0004_worse")  # fmt: skip
    wait_condition(kube_cluster, ns, "app", "Complete")
    status = get(kube_cluster, ns, "migration", "app")["status"]
    assert (
        status["actions"]["markedApplied"] == ["0004_wrose", "0004_worse"]
        and status["actions"]["retry"] == "1"
    )


def test_secret_created_late_is_picked_up(
    kube_cluster: Any, operator: Operator, ns: str, database_url: str
) -> None:
    configmap(kube_cluster, ns, "src", {"0001_create.sql": CREATE})
    migration(kube_cluster, ns, "app", spec_for("src"))
    status = wait_phase(kube_cluster, ns, "app", "SecretNotFound")
    c = conditions(status)
    assert c["Reconciling"]["status"] == "True" and c["Stalled"]["status"] == "False"
    assert "app-db" in c["Ready"]["message"]
    secret(kube_cluster, ns, database_url)
    wait_condition(kube_cluster, ns, "app", "Complete")


def test_invalid_resources_are_refused_by_kubectl(
    kube_cluster: Any, operator: Operator, ns: str
) -> None:
    both = spec_for("src")
    both["source"]["image"] = {"reference": "registry.example/migrations:1"}
    err = migration(kube_cluster, ns, "bad", both, check=False)
    assert "set exactly one of spec.source.configMap and spec.source.image" in err
    rollout = spec_for("src", contract={"after": "Rollout"})
    err = migration(kube_cluster, ns, "bad", rollout, check=False)
    assert "spec.contract.rollout.deployments is required" in err
    nobackup = spec_for("src", backup={"when": "Always"})
    err = migration(kube_cluster, ns, "bad", nobackup, check=False)
    assert "spec.backup.volume.claimName is required" in err
    err = migration(kube_cluster, ns, "x" * 64, spec_for("src"), check=False)
    assert "at most 63 characters" in err
    bad_enum = spec_for("src", contract={"after": "Whenever"})
    err = migration(kube_cluster, ns, "bad", bad_enum, check=False)
    assert "Unsupported value" in err and "Approval" in err
    both_rollouts = spec_for(
        "src", contract={"after": "Rollout", "rollout": {"deployment": "a", "deployments": ["b"]}}
    )
    err = migration(kube_cluster, ns, "bad", both_rollouts, check=False)
    assert (
        "set one of spec.contract.rollout.deployments and spec.contract.rollout.deployment" in err
    )
    # durations out of their bounds (lockTimeout 0s would mean no timeout at all).
    for field, value in (
        (
            {"safety": {"lockTimeout": "0s"}},
            "spec.safety.lockTimeout must be between 100ms and 10m",
        ),
        ({"safety": {"lockTimeout": "99999h"}}, "spec.safety.lockTimeout must be between"),
        ({"safety": {"lockWait": "25h"}}, "spec.safety.lockWait must be between 1s and 24h"),
        ({"backfill": {"pause": "2h"}}, "spec.backfill.pause must be between 0s and 1h"),
    ):
        err = migration(kube_cluster, ns, "bad", spec_for("src", **field), check=False)
        assert value in err, (field, err)
    assert not migration(kube_cluster, ns, "fine", spec_for("src", safety={"lockTimeout": "2"}))
    k(kube_cluster, ns, "delete", "migration/fine")
    # kubectl explain teaches the fields, the new ones included.
    explained = kube_cluster.kubectl("explain", "migration.spec.contract").stdout
    assert "Immediately; after a pgshift.dev/approve annotation" in explained
    for path, text in (
        ("migration.spec.contract.rollout.deployments", "the gate waits for all of them"),
        ("migration.spec.safety.lockTimeout", "Between 100ms and 10m"),
        ("migration.status.rollout.knownTemplateHashes", "pod-template-hash"),
        ("migration.status.problems", "Names that name nothing"),
    ):
        # kubectl wraps the text: compare with the line breaks taken out.
        assert text in " ".join(kube_cluster.kubectl("explain", path).stdout.split()), path


def test_names_that_name_nothing_warn_without_stalling_a_complete_migration(
    kube_cluster: Any, operator: Operator, ns: str, database_url: str
) -> None:
    secret(kube_cluster, ns, database_url)
    configmap(kube_cluster, ns, "src", {"0001_create.sql": CREATE})
    migration(kube_cluster, ns, "app", spec_for("src"))
    wait_condition(kube_cluster, ns, "app", "Complete")
    # a typo in an approval, an applied migration approved (kept in git), a mark-applied of
    # nothing: the typos are named, the applied name is consumed silently.
    k(
        kube_cluster, ns, "annotate", "migration/app",
        "pgshift.dev/approve=0002_typo,0001_create", "pgshift.dev/mark-applied=0003_nope",
    )  # fmt: skip
    poll(
        lambda: len(get(kube_cluster, ns, "migration", "app")["status"].get("problems", [])) == 2,
        "both names were never reported in status.problems",
    )
    status = get(kube_cluster, ns, "migration", "app")["status"]
    assert sorted((p["code"], p["name"]) for p in status["problems"]) == [
        ("UnknownApproval", "0002_typo"),
        ("UnknownMarkApplied", "0003_nope"),
    ]
    c = conditions(status)
    assert c["Complete"]["status"] == "True" and c["Stalled"]["status"] == "False"
    assert "0002_typo" in c["Ready"]["message"]
    events = get(kube_cluster, ns, "events")["items"]
    warned = {e["reason"] for e in events if e["type"] == "Warning"}
    assert {"UnknownApproval", "UnknownMarkApplied"} <= warned
    assert not [j for j in jobs(kube_cluster, ns) if "-mark" in j["metadata"]["name"]]


def test_two_migrations_on_one_database(
    kube_cluster: Any, operator: Operator, ns: str, database_url: str, database_name: str,
    pg_server: PgServer,
) -> None:  # fmt: skip
    secret(kube_cluster, ns, database_url)
    configmap(kube_cluster, ns, "a", {"0001_a.sql": "CREATE TABLE a (id int);\n"})
    configmap(kube_cluster, ns, "b", {"0001_b.sql": "CREATE TABLE b (id int);\n"})
    migration(kube_cluster, ns, "first", spec_for("a", tracking={"table": "first_migrations"}))
    migration(kube_cluster, ns, "second", spec_for("b", tracking={"table": "second_migrations"}))
    wait_condition(kube_cluster, ns, "first", "Complete")
    wait_condition(kube_cluster, ns, "second", "Complete")
    assert (
        pg_server.psql(
            "SELECT to_regclass('a') IS NOT NULL AND to_regclass('b') IS NOT NULL", database_name
        )
        == "t"
    )
    # a third one on the same tracking table as the first is refused by the operator.
    migration(kube_cluster, ns, "third", spec_for("a", tracking={"table": "first_migrations"}))
    status = wait_phase(kube_cluster, ns, "third", "TrackingConflict")
    assert conditions(status)["Stalled"]["status"] == "True"
    assert "first" in conditions(status)["Stalled"]["message"]
    # the first one goes (its database stays): the third takes over its tracking table.
    k(kube_cluster, ns, "delete", "migration", "first", "--timeout=60s")
    wait_condition(kube_cluster, ns, "third", "Complete")


# --- robustness ---------------------------------------------------------------------------------


def test_operator_killed_during_a_backfill_adopts_the_job(
    kube_cluster: Any, operator: Operator, ns: str, database_url: str, database_name: str,
    pg_server: PgServer,
) -> None:  # fmt: skip
    pg_server.psql(
        "CREATE TABLE rows (id bigint PRIMARY KEY, v text);"
        "INSERT INTO rows SELECT g, NULL FROM generate_series(1, 4000) g; ANALYZE rows",
        database_name,
    )
    fill = "-- pgshift:backfill key=id\nUPDATE rows SET v = 'x' || id WHERE v IS NULL;\n"
    secret(kube_cluster, ns, database_url)
    configmap(kube_cluster, ns, "src", {"0001_fill.sql": fill})
    # small batches with a pause: the Job runs long enough to kill the operator under it.
    migration(
        kube_cluster, ns, "app",
        spec_for("src", backfill={"targetBatchTime": "1ms", "pause": "100ms"}),
    )  # fmt: skip

    def running_apply() -> bool:
        return any(
            j["metadata"]["labels"].get("pgshift.dev/action") == "apply"
            and not j.get("status", {}).get("conditions")
            and j.get("status", {}).get("active")
            for j in jobs(kube_cluster, ns)
        )

    poll(running_apply, "the apply Job never ran")
    # the figures reach status.currentStep from the Pod's log tail, at most every 10 s.
    changes: list[tuple[float, dict[str, Any]]] = []

    def rate_shown() -> bool:
        step = (get(kube_cluster, ns, "migration", "app").get("status") or {}).get("currentStep")
        if step and step.get("rows") is not None and (not changes or changes[-1][1] != step):
            changes.append((time.monotonic(), step))
        return bool(changes and changes[-1][1].get("rowsPerSecond"))

    poll(rate_shown, "no backfill rate in status.currentStep")
    step = changes[-1][1]
    assert step["phase"] == "backfill" and step["rowsEstimate"] == 4000, step
    assert step["rowsPerSecond"] > 0 and step["etaSeconds"] >= 0 and step["rows"] > 0, step
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(changes)]
    assert all(gap >= 9 for gap in gaps), (gaps, changes)
    operator.kill()
    operator.start()
    wait_condition(kube_cluster, ns, "app", "Complete")
    applies = [
        j
        for j in jobs(kube_cluster, ns)
        if j["metadata"]["labels"]["pgshift.dev/action"] == "apply"
    ]
    assert len(applies) == 1, [j["metadata"]["name"] for j in applies]
    assert pg_server.psql("SELECT count(*) FROM rows WHERE v IS NULL", database_name) == "0"
    assert pg_server.psql("SELECT count(*) FROM rows WHERE v = 'x' || id", database_name) == "4000"


def test_a_restart_plans_no_complete_migration_and_replan_plans_once(
    kube_cluster: Any, operator: Operator, ns: str, database_url: str,
) -> None:  # fmt: skip
    """Issue 15: a restarted operator starts no plan Job for a Migration Complete for the
    same generation, digest and configuration; `pgshift.dev/replan` starts exactly one."""
    secret(kube_cluster, ns, database_url)
    configmap(kube_cluster, ns, "src", {"0001_a.sql": "CREATE TABLE restart_a (id int);\n"})
    migration(kube_cluster, ns, "app", spec_for("src"))
    wait_condition(kube_cluster, ns, "app", "Complete")
    before = {j["metadata"]["name"] for j in jobs(kube_cluster, ns)}
    operator.stop()
    operator.start()
    # the resume has run once every Migration's status is rewritten or left: give it time.
    time.sleep(8)
    assert {j["metadata"]["name"] for j in jobs(kube_cluster, ns)} == before
    k(kube_cluster, ns, "annotate", "migration/app", "pgshift.dev/replan=1")
    poll(lambda: len(jobs(kube_cluster, ns)) > len(before), "no plan Job after replan")
    wait_condition(kube_cluster, ns, "app", "Complete")
    new = [j for j in jobs(kube_cluster, ns) if j["metadata"]["name"] not in before]
    assert [j["metadata"]["labels"]["pgshift.dev/action"] for j in new] == ["plan"]
    status = get(kube_cluster, ns, "migration", "app")["status"]
    assert status["actions"]["replan"] == "1"


def test_image_source_is_copied_by_the_init_container(
    kube_cluster: Any, operator: Operator, ns: str, database_url: str, database_name: str,
    pg_server: PgServer, migrations_image: str,
) -> None:  # fmt: skip
    # a real migrations image (built with buildah, imported into the node): the init container
    # copies its /migrations into the runner's source folder.
    secret(kube_cluster, ns, database_url)
    spec = spec_for("unused", contract={"after": "Immediately"})
    spec["source"] = {"image": {"reference": migrations_image}, "layout": "drizzle"}
    migration(kube_cluster, ns, "app", spec)
    wait_condition(kube_cluster, ns, "app", "Complete")
    assert pg_server.psql("SELECT count(*) FROM drizzle.__drizzle_migrations", database_name) == "5"


def test_unreachable_database_is_retried_with_backoff(
    kube_cluster: Any, operator: Operator, ns: str, database_url: str, pg_server: PgServer
) -> None:
    from tests.pgserver import free_port

    closed = database_url.replace(f":{pg_server.port}/", f":{free_port()}/")
    secret(kube_cluster, ns, closed)
    configmap(kube_cluster, ns, "src", {"0001_create.sql": CREATE})
    migration(kube_cluster, ns, "app", spec_for("src"))
    status = wait_phase(kube_cluster, ns, "app", "DatabaseUnreachable")
    c = conditions(status)
    assert c["Stalled"]["status"] == "False" and c["Reconciling"]["status"] == "True"
    assert status["failure"]["retryable"] is True and status["failure"]["code"] == "Connection"
    no_secret_anywhere(kube_cluster, ns, pg_server, operator)  # connection errors echo URLs
    # the Secret is fixed: the next attempt (a new Job, so a new Pod) reads the new value.
    fixed = k(kube_cluster, ns, "create", "secret", "generic", "app-db", "--dry-run=client",
              "-o", "json", f"--from-literal=DATABASE_URL={database_url}")  # fmt: skip
    k(kube_cluster, ns, "apply", "-f", "-", input=fixed)
    wait_condition(kube_cluster, ns, "app", "Complete")
    assert "failure" not in get(kube_cluster, ns, "migration", "app")["status"]


# --- the kubelet enforces what the Job builder writes -------------------------------------------

PROBE = """
echo "uid=$(id -u) gid=$(id -g)"
touch /probe 2>/dev/null && echo "root writable" || echo "root read-only"
touch /tmp/probe && echo "tmp writable"
test -e /var/run/secrets/kubernetes.io/serviceaccount/token && echo "token" || echo "no token"
cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max
pg_dump --version
"""


def test_the_kubelet_enforces_the_job_security_settings(
    kube_cluster: Any, kube_namespace: str
) -> None:
    """A Job from the operator's own builder (only its command swapped for a probe): uid 65532,
    read-only root, a writable /tmp volume, no ServiceAccount token, the memory limit in force,
    and the image's pg_dump."""
    from pgshift.controller.api import Ref, parse_spec
    from pgshift.controller.config import Settings
    from pgshift.controller.intent import Action, RunJob
    from pgshift.controller.jobs import build_job

    spec = parse_spec(
        {
            "database": {"urlSecretRef": {"name": "app-db"}},
            "source": {"configMap": {"name": "src"}},
            "backup": {"when": "Never"},
            "job": {"resources": {"limits": {"memory": "200Mi", "cpu": "500m"}}},
        }
    )
    ref = Ref(kube_namespace, "probe", "0123456789abcdef", 1)
    job = build_job(ref, spec, Settings(), RunJob(Action.PLAN), 0)
    job["metadata"].pop("ownerReferences")
    container = job["spec"]["template"]["spec"]["containers"][0]
    container["command"] = ["sh", "-c", PROBE]
    assert container["image"] == IMAGE and container["imagePullPolicy"] == "IfNotPresent"
    secret(kube_cluster, kube_namespace, "postgresql://u:p@127.0.0.1:1/db")
    configmap(kube_cluster, kube_namespace, "src", {"0001_create.sql": CREATE})
    k(kube_cluster, kube_namespace, "apply", "-f", "-", input=json.dumps(job))
    name = job["metadata"]["name"]
    kube_cluster.kubectl(
        "-n", kube_namespace, "wait", "--for=condition=complete", f"job/{name}", "--timeout=120s",
        timeout=150,
    )  # fmt: skip
    lines = k(kube_cluster, kube_namespace, "logs", f"job/{name}").splitlines()
    assert lines[:4] == ["uid=65532 gid=65532", "root read-only", "tmp writable", "no token"]
    assert int(lines[4]) == 200 * 1024 * 1024
    assert lines[5] == image_pg_dump_version()
