"""Job manifests for the runner. PURE: values in, a dict out, tested without a cluster.

Every argument of the runner is rendered here, from the decision's typed intent
(`intent.RunJob`) and the spec: nowhere else builds argv (as CloudNativePG's pkg/specs builds
each Job in one place). tests/unit/controller/test_job_commands.py parses each with the CLI's
own parser.

DESIGN.md's Jobs contract: an explicit `command`, `backoffLimit: 0` (the operator decides what
runs again), a name under 63 characters unique per step attempt (the Migration's sequence
number), owner references and labels, the database URL only through `secretKeyRef`, non-root
and read-only root filesystem, and the image and ServiceAccount the operator allows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from pgshift.controller.api import (
    API_VERSION,
    KIND,
    LABEL_ACTION,
    LABEL_MANAGED_BY,
    LABEL_MIGRATION,
    LABEL_SEQ,
    MANAGED_BY,
    MigrationSpec,
    Ref,
)
from pgshift.controller.config import Settings
from pgshift.controller.intent import BACKUP_ROOT, Action, RunJob

SOURCE_DIR = "/migrations"
#: where the init container copies an image source (the runner sees it at SOURCE_DIR).
COPY_DIR = "/pgshift-source"
OVERRIDES_DIR = "/etc/pgshift"
TERMINATION_LOG = "/dev/termination-log"
NOTE_PREFIX = "pgshift.dev/"
OVERRIDES_ANNOTATION = "pgshift.dev/overrides"
#: room left for the `-xxxxx` suffix the Job controller adds to Pod names (label values ≤ 63).
MAX_NAME = 56

_SHORT = {
    Action.PLAN: "plan",
    Action.APPLY: "apply",
    Action.BACKUP: "backup",
    Action.BASELINE: "baseline",
    Action.MARK_APPLIED: "mark",
    Action.ROLLBACK: "rollback",
    Action.RESTORE: "restore",
}


def job_name(ref: Ref, seq: int, action: Action) -> str:
    """`<migration>-<uid5>-<seq>-<action>`: deterministic, so creating twice finds the first.

    The uid part keeps a re-created Migration of the same name from adopting the old one's
    Jobs while the garbage collector removes them.
    """
    tail = f"-{ref.uid.replace('-', '')[:5]}-{seq}-{_SHORT[action]}"
    head = re.sub(r"[^a-z0-9-]", "-", ref.name.lower())[: MAX_NAME - len(tail)].strip("-.")
    return f"{head or 'm'}{tail}"


def check_choices(spec: MigrationSpec, settings: Settings) -> str:
    """Why the spec's image or ServiceAccount is not allowed ("" when fine)."""
    if spec.job.image and spec.job.image not in settings.allowed_images:
        return (
            f"spec.job.image {spec.job.image!r} is not allowed by the operator; allowed: "
            + ", ".join(settings.allowed_images)
        )
    sa = spec.job.service_account_name
    if sa and sa not in settings.allowed_service_accounts:
        allowed = ", ".join(settings.allowed_service_accounts) or "(only the default)"
        return (
            f"spec.job.serviceAccountName {sa!r} is not allowed by the operator; allowed: {allowed}"
        )
    return ""


def labels(ref: Ref, action: Action, seq: int) -> dict[str, str]:
    return {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_MIGRATION: ref.name,
        LABEL_ACTION: action.value,
        LABEL_SEQ: str(seq),
    }


def _source_args(spec: MigrationSpec) -> list[str]:
    args = [
        "--dir",
        SOURCE_DIR,
        "--layout",
        spec.source.layout.value,
        "--tracking-schema",
        spec.tracking.schema,
        "--tracking-table",
        spec.tracking.table,
    ]
    if spec.overrides:
        args += ["--overrides", f"{OVERRIDES_DIR}/overrides.json"]
    return args


def _run_args(spec: MigrationSpec, action: Action) -> list[str]:
    """Flags that shape a plan or an apply: target, timeouts, batching."""
    if action is Action.RESTORE:
        return ["--lock-wait", spec.safety.lock_wait]
    if action not in (Action.PLAN, Action.APPLY, Action.ROLLBACK):
        return []
    args: list[str] = []
    if spec.target and action is Action.APPLY:
        # the plan Job lists everything: the controller cuts it after the target itself, and
        # tells a target naming nothing from one already applied (controller/names.py).
        args += ["--target", spec.target]
    if spec.target and action is Action.PLAN:
        # a target below what is applied: the plan says what a rollback to it would undo.
        args += ["--rollback-to", spec.target]
    args += [
        "--lock-wait",
        spec.safety.lock_wait,
        "--lock-timeout",
        spec.safety.lock_timeout,
        "--target-batch-time",
        spec.backfill.target_batch_time,
        "--batch-pause",
        spec.backfill.pause,
    ]
    if not spec.safety.rewrite:
        args.append("--no-rewrite")
    return args


def action_args(run: RunJob) -> list[str]:
    """The flags of this one run, from the decision's intent: which steps, which approvals,
    what to back up. (Flags from the spec alone are `_source_args` and `_run_args`.)"""
    if run.action is Action.MARK_APPLIED:
        return [run.migration]
    if run.action is Action.BASELINE:
        return ["--up-to", run.migration]
    if run.action is Action.BACKUP:
        assert run.backup is not None  # RunJob checks it
        args = ["--to", run.backup.path, "--keep", str(run.backup.keep)]
        if run.backup.tables:
            args += ["--tables", *run.backup.tables]  # one flag, many values (nargs="+")
        return args
    if run.action is Action.RESTORE:
        assert run.restore is not None  # RunJob checks it
        # --clean: the Migration's database is never empty; the runner refuses what would
        # need CASCADE, and checks the dump's sha256 against its manifest.
        return ["--from", run.restore.path, "--clean", "--restore-id", run.restore.restore_id]
    args = ["--expect-digest", run.expect_digest] if run.expect_digest else []
    if run.action is Action.ROLLBACK:
        args += ["--to", run.migration]
    if run.stop_before:
        args += ["--stop-before", run.stop_before]
    if run.until is not None:
        args += ["--until-phase", run.until.value]
    if run.destructive is not None:
        args += ["--destructive", run.destructive.value]
    for value in run.approvals:
        args += ["--approve", value]
    if run.resume_edited:
        args.append("--resume-edited")
    # `=`: the flag's value is optional (bare = any file), so it must not be a separate word.
    args += [f"--allow-drift={name}" for name in run.allow_drift]
    return args


def command(spec: MigrationSpec, run: RunJob) -> list[str]:
    """The runner's argv: never the image's entry point."""
    cmd = ["pgshift", run.action.value]
    extra = action_args(run)
    if run.action is Action.MARK_APPLIED:
        cmd, extra = [*cmd, *extra], []  # the positional NAME first
    if run.needs_source:
        cmd += _source_args(spec)
    cmd += _run_args(spec, run.action)
    cmd += extra
    cmd += ["--output", "json", "--result-file", TERMINATION_LOG]
    return cmd


def build_job(
    ref: Ref,
    spec: MigrationSpec,
    settings: Settings,
    run: RunJob,
    seq: int,
) -> dict[str, Any]:
    """The Job for one step attempt."""
    name = job_name(ref, seq, run.action)
    job_labels = labels(ref, run.action, seq)
    notes = {f"{NOTE_PREFIX}{k}": str(v) for k, v in run.notes.items() if v not in (None, "")}
    pod_annotations: dict[str, str] = {}
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}]
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]
    init: list[dict[str, Any]] = []
    image = spec.job.image or settings.default_image

    if run.needs_source:
        if spec.source.config_map:
            # keys as files: `_journal.json` beside `<tag>.sql`, or `<folder>.sql` (DESIGN.md).
            volumes.append(
                {
                    "name": "source",
                    "configMap": {"name": spec.source.config_map, "defaultMode": 0o444},
                }
            )
        else:
            volumes.append({"name": "source", "emptyDir": {"sizeLimit": "256Mi"}})
            init.append(
                {
                    "name": "copy-source",
                    "image": spec.source.image,
                    "imagePullPolicy": "IfNotPresent",
                    # the migrations image's own entry point is not trusted to copy. The
                    # target is not /migrations: that is where images usually keep them.
                    "command": ["cp", "-R", f"{spec.source.image_path.rstrip('/')}/.", COPY_DIR],
                    "volumeMounts": [{"name": "source", "mountPath": COPY_DIR}],
                    # cp's error reaches status (SourceUnreadable) through the Pod's status.
                    "terminationMessagePolicy": "FallbackToLogsOnError",
                    "securityContext": _container_security(),
                    "resources": _resources(spec),
                }
            )
        mounts.append({"name": "source", "mountPath": SOURCE_DIR, "readOnly": True})
        if spec.overrides:
            # spec.overrides reaches the runner as a file without any API access from the Pod:
            # a downward-API volume projects this Pod annotation.
            pod_annotations[OVERRIDES_ANNOTATION] = json.dumps(dict(spec.overrides), sort_keys=True)
            volumes.append(
                {
                    "name": "overrides",
                    "downwardAPI": {
                        "items": [
                            {
                                "path": "overrides.json",
                                "fieldRef": {
                                    "fieldPath": f"metadata.annotations['{OVERRIDES_ANNOTATION}']"
                                },
                            }
                        ]
                    },
                }
            )
            mounts.append({"name": "overrides", "mountPath": OVERRIDES_DIR, "readOnly": True})
    if run.needs_claim:
        volumes.append(
            {"name": "backups", "persistentVolumeClaim": {"claimName": spec.backup.claim_name}}
        )
        # a restore only reads the claim.
        mounts.append(
            {
                "name": "backups",
                "mountPath": BACKUP_ROOT,
                "readOnly": run.action is Action.RESTORE,
            }
        )

    env: list[dict[str, Any]] = [
        {
            "name": "DATABASE_URL",
            "valueFrom": {"secretKeyRef": {"name": spec.database.name, "key": spec.database.key}},
        },
        # libpq tells the server who is connected; pg_stat_activity then names the Job.
        {"name": "PGAPPNAME", "value": f"pgshift/{name}"[:63]},
    ]
    env += [{"name": k, "value": v} for k, v in sorted(settings.runner_env.items())]

    container: dict[str, Any] = {
        "name": "runner",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": command(spec, run),
        "env": env,
        "volumeMounts": mounts,
        "securityContext": _container_security(),
        "resources": _resources(spec),
        "terminationMessagePath": TERMINATION_LOG,
        # a summary when the runner wrote one, else the log's tail says why it died.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        # the runner talks to PostgreSQL only, never to the Kubernetes API.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": settings.run_as_user,
            "runAsGroup": settings.run_as_group,
            "fsGroup": settings.run_as_group,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": volumes,
    }
    sa = spec.job.service_account_name or settings.default_service_account
    if sa:
        pod_spec["serviceAccountName"] = sa
    if init:
        pod_spec["initContainers"] = init
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": ref.namespace,
            "labels": dict(job_labels),
            "annotations": notes,
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": KIND,
                    "name": ref.name,
                    "uid": ref.uid,
                    "controller": True,
                    # no finalizer rights needed on Migrations; deletion never waits for Jobs.
                    "blockOwnerDeletion": False,
                }
            ],
        },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": spec.job.active_deadline_seconds,
            # Kubernetes' ttl-after-finished controller deletes old Jobs, so they never pile up
            # and the operator needs no delete rights; it folds a Job's result long before.
            "ttlSecondsAfterFinished": spec.job.ttl_seconds_after_finished,
            "template": {
                "metadata": {"labels": dict(job_labels), "annotations": pod_annotations},
                "spec": pod_spec,
            },
        },
    }


def _container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _resources(spec: MigrationSpec) -> dict[str, Any]:
    # none unless asked for: the namespace's LimitRange (if any) decides, as for any Pod.
    return dict(spec.job.resources)


def notes_of(job: Mapping[str, Any]) -> dict[str, str]:
    """A Job's `pgshift.dev/*` annotations, without the prefix."""
    annotations = (job.get("metadata") or {}).get("annotations") or {}
    return {
        k[len(NOTE_PREFIX) :]: v
        for k, v in annotations.items()
        if k.startswith(NOTE_PREFIX) and k != OVERRIDES_ANNOTATION
    }
