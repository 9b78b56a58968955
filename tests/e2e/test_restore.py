"""The way back through the resource (issue 12): a destructive migration applied after a
BeforeDestructive + AffectedTables backup, then restored through `pgshift.dev/restore` on the
real cluster. Data, schema, tracking table and status agree with the backup's moment, and the
Migration does not re-apply until `pgshift.dev/resume`."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Operator
from tests.e2e.test_operator import (
    backup_claim,
    configmap,
    get,
    jobs,
    k,
    migration,
    secret,
    spec_for,
    wait_condition,
    wait_phase,
)
from tests.pgserver import PgServer

pytestmark = pytest.mark.e2e

CREATE = (
    "CREATE TABLE items (id bigint PRIMARY KEY, legacy text);\n"
    "INSERT INTO items VALUES (1, 'one'), (2, 'two');\n"
)
DROP = "-- pgshift:phase=contract\nALTER TABLE items DROP COLUMN legacy;\n"


def plugin(cluster: Any, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "KUBECONFIG": str(cluster.kubeconfig),
    }
    return subprocess.run(
        ["kubectl", "pgshift", *args], env=env, capture_output=True, text=True, timeout=240
    )


def test_a_destructive_migration_restored_through_the_annotation(
    kube_cluster: Any, operator: Operator, ns: str, database_url: str, database_name: str,
    pg_server: PgServer, tmp_path: Path,
) -> None:  # fmt: skip
    def sql(text: str) -> str:
        return pg_server.psql(text, database_name)

    legacy = "SELECT count(*) FROM information_schema.columns WHERE column_name = 'legacy'"
    unsuspend, suspend = '{"spec":{"suspend":false}}', '{"spec":{"suspend":true}}'

    secret(kube_cluster, ns, database_url)
    backup_claim(kube_cluster, ns)
    configmap(kube_cluster, ns, "src", {"0001_create.sql": CREATE, "0002_drop.sql": DROP})
    backup = {"when": "BeforeDestructive", "scope": "AffectedTables",
              "volume": {"claimName": "backups"}}  # fmt: skip
    spec = spec_for(
        "src",
        backup=backup,
        contract={"after": "Immediately"},
        safety={"destructive": "Allow"},
    )
    migration(kube_cluster, ns, "app", spec)
    wait_condition(kube_cluster, ns, "app", "Complete")
    body = get(kube_cluster, ns, "migration", "app")
    uid, status = body["metadata"]["uid"], body["status"]
    (taken,) = status["backups"]
    assert taken["scope"] == "AffectedTables" and taken["tables"] == ["items"]
    assert sql(legacy) == "0"
    tracked = sql("SELECT string_agg(hash, ',' ORDER BY id) FROM drizzle.__drizzle_migrations")
    sql("INSERT INTO items VALUES (3)")  # a write after the backup: the restore loses it

    listed = plugin(kube_cluster, "backups", "app", "-n", ns)
    assert listed.returncode == 0, listed.stderr
    assert taken["sha256"] in listed.stdout and taken["path"] in listed.stdout
    copy = tmp_path / "copy.dump"
    got = plugin(kube_cluster, "backups", "get", "app", taken["sha256"][:12], "-o", str(copy),
                 "-n", ns)  # fmt: skip
    assert got.returncode == 0, got.stderr
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == taken["sha256"]

    value = f"{uid}/{taken['sha256']}"
    k(kube_cluster, ns, "annotate", "migration/app", f"pgshift.dev/restore={value}")
    refused = wait_phase(kube_cluster, ns, "app", "RestoreRefused")
    message = next(c["message"] for c in refused["conditions"] if c["type"] == "Ready")
    assert "spec.suspend: true first" in message and f"writes since {taken['time']}" in message

    k(kube_cluster, ns, "patch", "migration/app", "--type=merge", "-p", suspend)
    restored = wait_phase(kube_cluster, ns, "app", "Restored")
    assert restored["restored"]["pendingAgain"] == ["0002_drop"]
    assert restored["restored"]["restoreId"] == value
    message = next(c["message"] for c in restored["conditions"] if c["type"] == "Ready")
    assert f"writes since {taken['time']} are lost" in message and "pgshift.dev/resume" in message
    # the database as of the backup: the column and its data back, the later row gone, the
    # tracking table without 0002_drop, the restore id consumed.
    assert sql("SELECT string_agg(id || ':' || legacy, ',' ORDER BY id) FROM items") == (
        "1:one,2:two"
    )
    assert sql("SELECT string_agg(hash, ',' ORDER BY id) FROM drizzle.__drizzle_migrations") == (
        tracked.split(",")[0]
    )
    assert sql("SELECT restore_id FROM drizzle.pgshift_restores") == value

    # unsuspended, it stays Restored: no Job starts until the resume action.
    before = len(jobs(kube_cluster, ns))
    k(kube_cluster, ns, "patch", "migration/app", "--type=merge", "-p", unsuspend)
    time.sleep(5)
    status = get(kube_cluster, ns, "migration", "app")["status"]
    assert status["phase"] == "Restored" and len(jobs(kube_cluster, ns)) == before
    assert sql(legacy) == "1"

    k(kube_cluster, ns, "annotate", "migration/app", "pgshift.dev/resume=1")
    wait_condition(kube_cluster, ns, "app", "Complete")  # 0002_drop re-applied, as told
    status = get(kube_cluster, ns, "migration", "app")["status"]
    assert "restored" not in status and status["actions"]["resume"] == "1"
