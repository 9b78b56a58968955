"""A rollback through the resource: spec.target below what is applied, down files, the approval
that names exactly what is undone, the whole-database backup first, then a re-apply."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.conftest import Operator
from tests.e2e.test_operator import (
    backup_claim,
    conditions,
    configmap,
    get,
    jobs,
    k,
    migration,
    poll,
    secret,
    spec_for,
    wait_phase,
)
from tests.pgserver import PgServer

pytestmark = pytest.mark.e2e

FILES = {
    "0001_users.sql": "CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL);\n",
    "0002_posts.sql": "CREATE TABLE posts (id bigint PRIMARY KEY, title text);\n",
    "0003_nick.sql": "ALTER TABLE users ADD COLUMN nick text;\n",
    "0004_nick_idx.sql": "CREATE INDEX users_nick ON users (nick);\n",
    # the down files, in the plain layout's names (docs/drizzle.md "Down files").
    "0002_posts.down.sql": "DROP TABLE posts;\n",
    "0003_nick.down.sql": "ALTER TABLE users DROP COLUMN nick;\n",
    "0004_nick_idx.down.sql": "DROP INDEX users_nick;\n",
}
ROWS = "SELECT count(*) FROM drizzle.__drizzle_migrations"


def test_three_migration_rollback_through_spec_target_then_reapply(
    kube_cluster: Any, operator: Operator, ns: str, database_url: str, database_name: str,
    pg_server: PgServer,
) -> None:  # fmt: skip
    def psql(text: str) -> str:
        return pg_server.psql(text, database_name)

    secret(kube_cluster, ns, database_url)
    backup_claim(kube_cluster, ns)
    configmap(kube_cluster, ns, "src", FILES)
    spec = spec_for(
        "src",
        backup={"when": "BeforeDestructive", "volume": {"claimName": "backups"}},
        contract={"after": "Immediately"},
        rollback="RequireApproval",
    )
    migration(kube_cluster, ns, "app", spec)
    wait_phase(kube_cluster, ns, "app", "Complete")
    assert psql(ROWS) == "4"

    # a lowered target alone runs nothing: it waits for the approval naming what is undone.
    migration(kube_cluster, ns, "app", {**spec, "target": "0001_users"})
    status = wait_phase(kube_cluster, ns, "app", "AwaitingRollbackApproval")
    generation = get(kube_cluster, ns, "migration", "app")["metadata"]["generation"]
    rollback = status["rollback"]
    assert rollback["undo"] == ["0004_nick_idx", "0003_nick", "0002_posts"]
    assert rollback["approval"] == f"{generation}:0004_nick_idx"
    assert conditions(status)["Stalled"]["status"] == "False"
    wanted = f"pgshift.dev/approve-rollback={rollback['approval']}"
    assert any(wanted in line for line in status["recovery"])
    assert psql(ROWS) == "4"
    assert not [j for j in jobs(kube_cluster, ns) if "-rollback" in j["metadata"]["name"]]

    k(
        kube_cluster, ns, "annotate", "migration/app",
        f"pgshift.dev/approve-rollback={rollback['approval']}",
    )  # fmt: skip
    status = wait_phase(kube_cluster, ns, "app", "Complete")
    assert status["rollback"]["undone"] == ["0004_nick_idx", "0003_nick", "0002_posts"]
    assert status["actions"]["approvedRollback"] == rollback["approval"]
    assert status["lastBackup"]["scope"] == "Database"  # taken before the first down step
    assert psql(ROWS) == "1"
    assert psql("SELECT to_regclass('posts') IS NULL, to_regclass('users_nick') IS NULL") == "t|t"
    assert psql(
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' "
        "AND column_name = 'nick'"
    ) == "0"
    assert psql("SELECT count(*) FROM drizzle.pgshift_steps") == "0"
    ordered = sorted(
        jobs(kube_cluster, ns), key=lambda j: int(j["metadata"]["labels"]["pgshift.dev/seq"])
    )
    actions = [j["metadata"]["labels"]["pgshift.dev/action"] for j in ordered]
    # the whole-database backup Job right before the one rollback Job.
    assert actions.count("rollback") == 1
    assert actions[actions.index("rollback") - 1] == "backup"

    # forward again: the three re-apply, and the approval (of the old generation) is spent.
    migration(kube_cluster, ns, "app", {**spec, "target": ""})

    def reapplied() -> dict[str, Any] | None:
        status: dict[str, Any] = get(kube_cluster, ns, "migration", "app").get("status") or {}
        done = status.get("phase") == "Complete" and status.get("appliedCount") == 4
        return status if done else None

    status = poll(reapplied, "the three did not re-apply", attempts=900)
    assert status["appliedVersion"] == "0004_nick_idx", json.dumps(status)
    assert psql(ROWS) == "4"
    assert psql("SELECT to_regclass('posts') IS NOT NULL") == "t"
