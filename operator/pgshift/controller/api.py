"""The Migration resource as typed values. PURE: parses a resource body, touches nothing.

The CRD (`manifests/crd/pgshift.dev_migrations.yaml`) is the user-facing truth: it defaults and
validates. The defaults here only matter for objects the apiserver did not default (tests, old
objects); `tests/unit/controller/test_crd.py` holds both equal.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

GROUP = "pgshift.dev"
VERSION = "v1alpha1"
PLURAL = "migrations"
KIND = "Migration"
API_VERSION = f"{GROUP}/{VERSION}"

#: annotations users set to act on a resource (DESIGN.md, Actions).
ANNOTATION_RETRY = "pgshift.dev/retry"
ANNOTATION_APPROVE = "pgshift.dev/approve"
ANNOTATION_MARK_APPLIED = "pgshift.dev/mark-applied"
#: finish a partly applied migration whose file was edited, when the steps it already applied
#: are unchanged (the runner's --resume-edited); the value names the migration.
ANNOTATION_RESUME_EDITED = "pgshift.dev/resume-edited"

#: labels on every Job (and so on its Pods).
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "pgshift"
LABEL_MIGRATION = "pgshift.dev/migration"
LABEL_ACTION = "pgshift.dev/action"
LABEL_SEQ = "pgshift.dev/seq"


class Layout(enum.StrEnum):
    AUTO = "auto"
    DRIZZLE = "drizzle"
    DRIZZLE_V1 = "drizzle-v1"
    PLAIN = "plain"


class BackupWhen(enum.StrEnum):
    ALWAYS = "Always"
    BEFORE_DESTRUCTIVE = "BeforeDestructive"
    NEVER = "Never"


class BackupScope(enum.StrEnum):
    DATABASE = "Database"
    AFFECTED_TABLES = "AffectedTables"


class Destructive(enum.StrEnum):
    ALLOW = "Allow"
    REQUIRE_APPROVAL = "RequireApproval"
    DENY = "Deny"


class ContractAfter(enum.StrEnum):
    IMMEDIATELY = "Immediately"
    APPROVAL = "Approval"
    ROLLOUT = "Rollout"


@dataclass(frozen=True)
class SecretKeyRef:
    name: str
    key: str = "DATABASE_URL"


@dataclass(frozen=True)
class SourceSpec:
    #: exactly one of the two is set (the CRD's CEL rule says so).
    config_map: str | None = None
    image: str | None = None
    image_path: str = "/migrations"
    layout: Layout = Layout.AUTO


@dataclass(frozen=True)
class TrackingSpec:
    schema: str = "drizzle"
    table: str = "__drizzle_migrations"


@dataclass(frozen=True)
class BackupSpec:
    when: BackupWhen = BackupWhen.BEFORE_DESTRUCTIVE
    scope: BackupScope = BackupScope.AFFECTED_TABLES
    claim_name: str | None = None
    keep: int = 5


@dataclass(frozen=True)
class SafetySpec:
    lock_timeout: str = "2s"
    lock_wait: str = "5m"
    destructive: Destructive = Destructive.REQUIRE_APPROVAL
    rewrite: bool = True


@dataclass(frozen=True)
class ContractSpec:
    after: ContractAfter = ContractAfter.APPROVAL
    #: `spec.contract.rollout.deployments`, or the older single `deployment`: a Rollout gate
    #: waits for every one of them.
    rollout_deployments: tuple[str, ...] = ()


@dataclass(frozen=True)
class BackfillSpec:
    target_batch_time: str = "200ms"
    pause: str = "0s"


@dataclass(frozen=True)
class JobSpec:
    image: str | None = None
    service_account_name: str | None = None
    active_deadline_seconds: int = 3600
    #: finished Jobs (and their Pods and logs) are deleted by Kubernetes this long after.
    ttl_seconds_after_finished: int = 86400
    resources: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MigrationSpec:
    database: SecretKeyRef
    source: SourceSpec
    tracking: TrackingSpec = TrackingSpec()
    target: str = ""
    baseline_up_to: str = ""
    #: migration name -> directives, passed to the runner as its `--overrides` file.
    overrides: Mapping[str, Any] = field(default_factory=dict)
    backup: BackupSpec = BackupSpec()
    safety: SafetySpec = SafetySpec()
    contract: ContractSpec = ContractSpec()
    backfill: BackfillSpec = BackfillSpec()
    job: JobSpec = JobSpec()
    suspend: bool = False


class SpecError(ValueError):
    """A spec the CRD should have refused (an old CRD, or a hand-made object)."""


def parse_spec(spec: Mapping[str, Any]) -> MigrationSpec:
    """Read `.spec` into typed values, applying the CRD's defaults where missing."""
    try:
        return _parse(spec)
    except (KeyError, TypeError, ValueError) as exc:
        raise SpecError(f"spec is invalid: {exc}") from None


def _parse(spec: Mapping[str, Any]) -> MigrationSpec:
    db = spec.get("database") or {}
    ref = db.get("urlSecretRef") or {}
    if not ref.get("name"):
        raise ValueError("spec.database.urlSecretRef.name is required")
    src = spec.get("source") or {}
    cm = (src.get("configMap") or {}).get("name")
    image = src.get("image") or {}
    if bool(cm) == bool(image.get("reference")):
        raise ValueError("exactly one of spec.source.configMap and spec.source.image is required")
    tracking = spec.get("tracking") or {}
    backup = spec.get("backup") or {}
    safety = spec.get("safety") or {}
    contract = spec.get("contract") or {}
    backfill = spec.get("backfill") or {}
    job = spec.get("job") or {}
    d_src, d_tr, d_bk, d_sf = SourceSpec(), TrackingSpec(), BackupSpec(), SafetySpec()
    d_bf, d_job = BackfillSpec(), JobSpec()
    parsed = MigrationSpec(
        database=SecretKeyRef(name=ref["name"], key=ref.get("key") or SecretKeyRef.key),
        source=SourceSpec(
            config_map=cm or None,
            image=image.get("reference") or None,
            image_path=image.get("path") or d_src.image_path,
            layout=Layout(src.get("layout") or d_src.layout),
        ),
        tracking=TrackingSpec(
            schema=tracking.get("schema") or d_tr.schema,
            table=tracking.get("table") or d_tr.table,
        ),
        target=spec.get("target") or "",
        baseline_up_to=(spec.get("baseline") or {}).get("upTo") or "",
        overrides=dict(spec.get("overrides") or {}),
        backup=BackupSpec(
            when=BackupWhen(backup.get("when") or d_bk.when),
            scope=BackupScope(backup.get("scope") or d_bk.scope),
            claim_name=(backup.get("volume") or {}).get("claimName") or None,
            keep=int(backup.get("keep", d_bk.keep)),
        ),
        safety=SafetySpec(
            lock_timeout=str(safety.get("lockTimeout") or d_sf.lock_timeout),
            lock_wait=str(safety.get("lockWait") or d_sf.lock_wait),
            destructive=Destructive(safety.get("destructive") or d_sf.destructive),
            rewrite=bool(safety.get("rewrite", d_sf.rewrite)),
        ),
        contract=ContractSpec(
            after=ContractAfter(contract.get("after") or ContractSpec.after),
            rollout_deployments=_deployments(contract.get("rollout") or {}),
        ),
        backfill=BackfillSpec(
            target_batch_time=str(backfill.get("targetBatchTime") or d_bf.target_batch_time),
            pause=str(backfill.get("pause") or d_bf.pause),
        ),
        job=JobSpec(
            image=job.get("image") or None,
            service_account_name=job.get("serviceAccountName") or None,
            active_deadline_seconds=int(
                job.get("activeDeadlineSeconds") or d_job.active_deadline_seconds
            ),
            ttl_seconds_after_finished=int(
                job.get("ttlSecondsAfterFinished") or d_job.ttl_seconds_after_finished
            ),
            resources=dict(job.get("resources") or {}),
        ),
        suspend=bool(spec.get("suspend", False)),
    )
    if parsed.contract.after is ContractAfter.ROLLOUT and not parsed.contract.rollout_deployments:
        raise ValueError(
            "spec.contract.rollout.deployments is required when contract.after=Rollout"
        )
    if parsed.backup.when is not BackupWhen.NEVER and not parsed.backup.claim_name:
        raise ValueError("spec.backup.volume.claimName is required unless backup.when=Never")
    return parsed


def _deployments(rollout: Mapping[str, Any]) -> tuple[str, ...]:
    """`deployments` (a list) or the single `deployment` of older specs; the CRD allows one."""
    names = [*(rollout.get("deployments") or ()), rollout.get("deployment") or ""]
    return tuple(dict.fromkeys(str(n) for n in names if n))


@dataclass(frozen=True)
class Ref:
    """Which resource: enough to name its Jobs and own them."""

    namespace: str
    name: str
    uid: str
    generation: int = 1
