"""DESIGN.md's Jobs contract, checked on the built manifests (no cluster needed)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pgshift.controller.api import MigrationSpec, Ref, parse_spec
from pgshift.controller.config import Settings
from pgshift.controller.intent import Action, BackupTarget, RestoreTarget, RunJob
from pgshift.controller.jobs import build_job, check_choices, job_name

SECRET_VALUE = "postgresql://app:hunter2@db:5432/shop"
REF = Ref("shop", "shop", "3f1c9a7e-1111-2222-3333-444455556666", 3)


def spec(**over: Any) -> MigrationSpec:
    body: dict[str, Any] = {
        "database": {"urlSecretRef": {"name": "shop-db", "key": "DATABASE_URL"}},
        "source": {"configMap": {"name": "shop-migrations-7c9f"}},
        "backup": {"volume": {"claimName": "shop-backups"}},
    }
    body.update(over)
    return parse_spec(body)


RUNS = [
    RunJob(Action.PLAN, expect_digest="sha256:abc"),
    RunJob(Action.APPLY, expect_digest="sha256:abc", stop_before="aaa-0"),
    RunJob(Action.BACKUP, backup=BackupTarget(path="/backups/shop/shop/x.dump", keep=5)),
    RunJob(Action.BASELINE, migration="0003_x"),
    RunJob(Action.MARK_APPLIED, migration="0004_y"),
]


@pytest.fixture(params=RUNS, ids=lambda r: r.action.value)
def job(request: pytest.FixtureRequest) -> dict[str, Any]:
    return build_job(REF, spec(), Settings(), request.param, seq=7)


def pod(job: dict[str, Any]) -> dict[str, Any]:
    return job["spec"]["template"]["spec"]


def test_explicit_command_runs_pgshift(job: dict[str, Any]) -> None:
    (container,) = pod(job)["containers"]
    assert container["command"][0] == "pgshift"
    assert container["command"][1] == job["metadata"]["labels"]["pgshift.dev/action"]
    assert "args" not in container
    assert container["command"][-4:] == [
        "--output",
        "json",
        "--result-file",
        "/dev/termination-log",
    ]


def test_no_retries_by_kubernetes(job: dict[str, Any]) -> None:
    assert job["spec"]["backoffLimit"] == 0
    assert pod(job)["restartPolicy"] == "Never"
    assert job["spec"]["activeDeadlineSeconds"] == 3600
    assert job["spec"]["ttlSecondsAfterFinished"] == 86400


def test_name_owner_labels(job: dict[str, Any]) -> None:
    meta = job["metadata"]
    assert len(meta["name"]) < 63
    assert meta["namespace"] == "shop"
    (owner,) = meta["ownerReferences"]
    assert owner == {
        "apiVersion": "pgshift.dev/v1alpha1",
        "kind": "Migration",
        "name": "shop",
        "uid": REF.uid,
        "controller": True,
        "blockOwnerDeletion": False,
    }
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "pgshift"
    assert meta["labels"]["pgshift.dev/migration"] == "shop"
    assert meta["labels"]["pgshift.dev/seq"] == "7"
    assert job["spec"]["template"]["metadata"]["labels"] == meta["labels"]


def test_database_url_only_through_secret_key_ref(job: dict[str, Any]) -> None:
    (container,) = pod(job)["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["DATABASE_URL"] == {
        "name": "DATABASE_URL",
        "valueFrom": {"secretKeyRef": {"name": "shop-db", "key": "DATABASE_URL"}},
    }
    text = json.dumps(job)
    assert "hunter2" not in text and SECRET_VALUE not in text
    assert "--database-url" not in container["command"]


def test_security_contexts(job: dict[str, Any]) -> None:
    p = pod(job)
    assert p["securityContext"]["runAsNonRoot"] is True
    assert p["securityContext"]["runAsUser"] != 0
    assert p["automountServiceAccountToken"] is False
    for c in p["containers"] + p.get("initContainers", []):
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
    mounts = {m["mountPath"]: m["name"] for m in p["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in p["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_termination_message_policy(job: dict[str, Any]) -> None:
    (container,) = pod(job)["containers"]
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_configmap_source_is_mounted_as_files() -> None:
    job = build_job(REF, spec(), Settings(), RUNS[1], seq=1)
    volumes = {v["name"]: v for v in pod(job)["volumes"]}
    assert volumes["source"]["configMap"]["name"] == "shop-migrations-7c9f"
    cmd = pod(job)["containers"][0]["command"]
    assert cmd[cmd.index("--dir") + 1] == "/migrations"
    assert cmd[cmd.index("--expect-digest") + 1] == "sha256:abc"


def test_image_source_is_copied_by_an_init_container() -> None:
    s = spec(
        source={"image": {"reference": "registry/app-migrations@sha256:1", "path": "/drizzle"}}
    )
    job = build_job(REF, s, Settings(), RUNS[0], seq=1)
    (init,) = pod(job)["initContainers"]
    assert init["image"] == "registry/app-migrations@sha256:1"
    assert init["command"] == ["cp", "-R", "/drizzle/.", "/pgshift-source"]
    assert init["volumeMounts"] == [{"name": "source", "mountPath": "/pgshift-source"}]
    volumes = {v["name"]: v for v in pod(job)["volumes"]}
    assert "emptyDir" in volumes["source"]


def test_backup_and_restore_mount_the_claim_and_the_source() -> None:
    """A backup saves its files' progress rows beside the dump, a restore reads what the later
    migrations touched: both need the source (issue 12); a restore reads the claim only."""
    job = build_job(REF, spec(), Settings(), RUNS[2], seq=1)
    volumes = {v["name"]: v for v in pod(job)["volumes"]}
    assert volumes["backups"]["persistentVolumeClaim"]["claimName"] == "shop-backups"
    assert "source" in volumes
    cmd = pod(job)["containers"][0]["command"]
    assert cmd[:4] == ["pgshift", "backup", "--dir", "/migrations"]
    assert cmd[cmd.index("--to") + 1] == "/backups/shop/shop/x.dump"
    sha = "ab" * 32
    target = RestoreTarget("/backups/shop/shop/x.dump", sha256=sha, restore_id=f"uid/{sha}")
    job = build_job(REF, spec(), Settings(), RunJob(Action.RESTORE, restore=target), seq=2)
    (container,) = pod(job)["containers"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["backups"]["readOnly"] is True and mounts["source"]["readOnly"] is True
    assert job["metadata"]["name"].endswith("-2-restore")
    assert pod(job)["automountServiceAccountToken"] is False


def test_overrides_reach_the_runner_as_a_file() -> None:
    s = spec(overrides={"0007_drop": {"phase": "contract", "allow": ["ban-drop-column"]}})
    job = build_job(REF, s, Settings(), RUNS[1], seq=1)
    cmd = pod(job)["containers"][0]["command"]
    assert cmd[cmd.index("--overrides") + 1] == "/etc/pgshift/overrides.json"
    annotations = job["spec"]["template"]["metadata"]["annotations"]
    assert json.loads(annotations["pgshift.dev/overrides"])["0007_drop"]["phase"] == "contract"


def test_mark_applied_names_the_migration_first() -> None:
    job = build_job(REF, spec(), Settings(), RUNS[4], seq=1)
    assert pod(job)["containers"][0]["command"][:3] == ["pgshift", "mark-applied", "0004_y"]


def test_names_are_short_unique_and_deterministic() -> None:
    long = Ref("ns", "a" * 253, "abcdef12-0000", 1)
    names = {job_name(long, seq, a) for seq in range(3) for a in Action}
    assert len(names) == 3 * len(Action)
    assert all(len(n) < 63 and n[0].isalnum() for n in names)
    assert job_name(long, 2, Action.APPLY) == job_name(long, 2, Action.APPLY)
    other_uid = Ref("ns", "a" * 253, "99999999-0000", 1)
    assert job_name(other_uid, 2, Action.APPLY) != job_name(long, 2, Action.APPLY)


def test_image_and_service_account_come_from_the_allowed_lists() -> None:
    settings = Settings(
        images=("registry/pgshift:1",),
        default_image="registry/pgshift:0",
        service_accounts=("migrator",),
    )
    assert check_choices(spec(), settings) == ""
    assert check_choices(spec(job={"image": "registry/pgshift:1"}), settings) == ""
    assert "not allowed" in check_choices(spec(job={"image": "evil/image"}), settings)
    assert "not allowed" in check_choices(spec(job={"serviceAccountName": "admin"}), settings)
    job = build_job(REF, spec(job={"serviceAccountName": "migrator"}), settings, RUNS[0], seq=1)
    assert pod(job)["serviceAccountName"] == "migrator"
    assert pod(job)["containers"][0]["image"] == "registry/pgshift:0"
