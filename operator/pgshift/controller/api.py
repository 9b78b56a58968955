"""The Migration resource as typed values. PURE: parses a resource body, touches nothing.

The CRD (`manifests/crd/pgshift.dev_migrations.yaml`) is the user-facing truth: it defaults and
validates. The spec types below mirror its `spec` one field per CRD property: a field's CRD
path is its name in camelCase unless `crd_path` says otherwise, and `parse_spec` reads every
field through that path, so a new spec field is the CRD property, one field here and the code
that uses it. Defaults a run shares with the CLI come from `pgshift.settings` (the one source);
a default only the operator has is written on its field. They only matter for objects the
apiserver did not default (tests, old objects); `tests/unit/controller/test_crd.py` walks the
CRD schema and these types together and fails when a property, a default or an enum differs.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pgshift.migrations import Layout as Layout
from pgshift.settings import (
    BackfillSettings,
    DestructivePolicy,
    Selection,
    Timeouts,
    Tracking,
    format_duration,
)

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
#: restore a backup: `<metadata.uid>/<backup sha256>` (an annotation only, never a spec field:
#: it names this very object, so a re-created or replayed one cannot restore by itself).
ANNOTATION_RESTORE = "pgshift.dev/restore"
#: leave phase Restored (any new value): the migrations pending again may then re-apply.
ANNOTATION_RESUME = "pgshift.dev/resume"
#: plan again now, though nothing pgshift can see changed (a CLI apply, a restore, a rotated
#: Secret): the value acts once, like retry's.
ANNOTATION_REPLAN = "pgshift.dev/replan"
#: run the down files a `spec.target` below what is applied asks for; the value names exactly
#: what is undone: `<metadata.generation>:<the newest migration undone>`.
ANNOTATION_APPROVE_ROLLBACK = "pgshift.dev/approve-rollback"
#: accept the edit of these applied (or partly applied) migrations' files (the runner's
#: --allow-drift=NAME); it stands while the annotation names them, like an approval in git.
ANNOTATION_ALLOW_DRIFT = "pgshift.dev/allow-drift"
#: every action annotation: a recovery hint may name only these (tests/unit/controller/
#: test_hints.py).
ACTION_ANNOTATIONS = (
    ANNOTATION_RETRY,
    ANNOTATION_APPROVE,
    ANNOTATION_MARK_APPLIED,
    ANNOTATION_RESUME_EDITED,
    ANNOTATION_ALLOW_DRIFT,
    ANNOTATION_APPROVE_ROLLBACK,
    ANNOTATION_REPLAN,
    ANNOTATION_RESTORE,
    ANNOTATION_RESUME,
)

#: labels on every Job (and so on its Pods).
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "pgshift"
LABEL_MIGRATION = "pgshift.dev/migration"
LABEL_ACTION = "pgshift.dev/action"
LABEL_SEQ = "pgshift.dev/seq"


#: `Layout` (migrations) and `DestructivePolicy` (settings) are defined once, where the runner
#: reads them; the spec uses the same values. `Destructive` is the controller's older name.
Destructive = DestructivePolicy


class BackupWhen(enum.StrEnum):
    ALWAYS = "Always"
    BEFORE_DESTRUCTIVE = "BeforeDestructive"
    NEVER = "Never"


class BackupScope(enum.StrEnum):
    DATABASE = "Database"
    AFFECTED_TABLES = "AffectedTables"


class RollbackPolicy(enum.StrEnum):
    """spec.rollback: what a spec.target below what is applied does."""

    #: run the down files whose steps the linter finds non-destructive; others need approval.
    ALLOW = "Allow"
    #: run them once `pgshift.dev/approve-rollback=<generation>:<newest undone>` is set.
    REQUIRE_APPROVAL = "RequireApproval"
    #: never: the Migration reports Complete with a RollbackDisabled message.
    DENY = "Deny"


class ContractAfter(enum.StrEnum):
    IMMEDIATELY = "Immediately"
    APPROVAL = "Approval"
    ROLLOUT = "Rollout"


#: a spec field's metadata: where it is under its parent object in the CRD (dotted, camelCase),
#: and for the rare field that is not one plain value there, the function that reads it.
CRD_PATHS = "pgshift.crd_paths"
CRD_READ = "pgshift.crd_read"

_RUN_TIMEOUTS = Timeouts()
_RUN_BACKFILL = BackfillSettings()
_RUN_SELECTION = Selection()
_RUN_TRACKING = Tracking()


def crd_path(*paths: str, read: Callable[[Mapping[str, Any]], Any] | None = None) -> dict[str, Any]:
    """`field(metadata=crd_path("image.reference"))`: the field lives at that path under its
    parent; several paths and `read` for a field read from more than one property."""
    return {CRD_PATHS: paths, CRD_READ: read}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def field_paths(f: dataclasses.Field[Any]) -> tuple[str, ...]:
    """The CRD paths of one spec field, relative to its parent object."""
    return tuple(f.metadata.get(CRD_PATHS) or (_camel(f.name),))


def _deployments(contract: Mapping[str, Any]) -> tuple[str, ...]:
    """`deployments` (a list) or the single `deployment` of older specs; the CRD allows one."""
    rollout = contract.get("rollout") or {}
    names = [*(rollout.get("deployments") or ()), rollout.get("deployment") or ""]
    return tuple(dict.fromkeys(str(n) for n in names if n))


@dataclass(frozen=True)
class SecretKeyRef:
    name: str
    key: str = "DATABASE_URL"


@dataclass(frozen=True)
class SourceSpec:
    #: exactly one of the two is set (the CRD's CEL rule says so).
    config_map: str | None = field(default=None, metadata=crd_path("configMap.name"))
    image: str | None = field(default=None, metadata=crd_path("image.reference"))
    image_path: str = field(default="/migrations", metadata=crd_path("image.path"))
    #: auto-detect, as the CLI's `--layout` does.
    layout: Layout = Layout.AUTO


@dataclass(frozen=True)
class TrackingSpec:
    schema: str = _RUN_TRACKING.schema
    table: str = _RUN_TRACKING.table


@dataclass(frozen=True)
class BackupSpec:
    when: BackupWhen = BackupWhen.BEFORE_DESTRUCTIVE
    scope: BackupScope = BackupScope.AFFECTED_TABLES
    claim_name: str | None = field(default=None, metadata=crd_path("volume.claimName"))
    keep: int = 5


@dataclass(frozen=True)
class SafetySpec:
    lock_timeout: str = format_duration(_RUN_TIMEOUTS.lock_timeout)
    lock_wait: str = format_duration(_RUN_TIMEOUTS.lock_wait)
    #: stricter than the CLI's Allow: nobody watches an operator's run, so a destructive step
    #: waits for a `pgshift.dev/approve` unless the spec says otherwise.
    destructive: DestructivePolicy = DestructivePolicy.REQUIRE_APPROVAL
    rewrite: bool = _RUN_SELECTION.rewrite


@dataclass(frozen=True)
class ContractSpec:
    after: ContractAfter = ContractAfter.APPROVAL
    #: `spec.contract.rollout.deployments`, or the older single `deployment`: a Rollout gate
    #: waits for every one of them.
    rollout_deployments: tuple[str, ...] = field(
        default=(),
        metadata=crd_path("rollout.deployments", "rollout.deployment", read=_deployments),
    )


@dataclass(frozen=True)
class BackfillSpec:
    target_batch_time: str = format_duration(_RUN_BACKFILL.target_batch_time)
    pause: str = format_duration(_RUN_BACKFILL.batch_pause)


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
    database: SecretKeyRef = field(metadata=crd_path("database.urlSecretRef"))
    source: SourceSpec
    tracking: TrackingSpec = TrackingSpec()
    target: str = ""
    baseline_up_to: str = field(default="", metadata=crd_path("baseline.upTo"))
    #: migration name -> directives, passed to the runner as its `--overrides` file.
    overrides: Mapping[str, Any] = field(default_factory=dict)
    backup: BackupSpec = BackupSpec()
    safety: SafetySpec = SafetySpec()
    contract: ContractSpec = ContractSpec()
    backfill: BackfillSpec = BackfillSpec()
    job: JobSpec = JobSpec()
    suspend: bool = False
    rollback: RollbackPolicy = RollbackPolicy.DENY


class SpecError(ValueError):
    """A spec the CRD should have refused (an old CRD, or a hand-made object)."""


def parse_spec(spec: Mapping[str, Any]) -> MigrationSpec:
    """Read `.spec` into typed values, applying the CRD's defaults where missing."""
    try:
        parsed = read_object(MigrationSpec, spec, "spec")
    except (KeyError, TypeError, ValueError) as exc:
        raise SpecError(f"spec is invalid: {exc}") from None
    # the CRD's cross-field rules (CEL), for objects it did not validate.
    if bool(parsed.source.config_map) == bool(parsed.source.image):
        raise SpecError(
            "spec is invalid: exactly one of spec.source.configMap and spec.source.image "
            "is required"
        )
    if parsed.contract.after is ContractAfter.ROLLOUT and not parsed.contract.rollout_deployments:
        raise SpecError(
            "spec is invalid: spec.contract.rollout.deployments is required when "
            "contract.after=Rollout"
        )
    if parsed.backup.when is not BackupWhen.NEVER and not parsed.backup.claim_name:
        raise SpecError(
            "spec is invalid: spec.backup.volume.claimName is required unless backup.when=Never"
        )
    return parsed


_FIELD_TYPES: dict[type[Any], dict[str, Any]] = {}


def field_types(cls: type[Any]) -> dict[str, Any]:
    """A spec type's field types, resolved once (the module's annotations are strings)."""
    if cls not in _FIELD_TYPES:
        _FIELD_TYPES[cls] = typing.get_type_hints(cls)
    return _FIELD_TYPES[cls]


def _lookup(obj: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path; None when any part is missing or null."""
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


T = typing.TypeVar("T")


def read_object(cls: type[T], obj: Mapping[str, Any], where: str) -> T:
    """One spec type from its CRD object: each field from its path, typed by its annotation,
    its default when the value is missing, null or empty (the CRD's own defaulting)."""
    if not isinstance(obj, Mapping):
        raise TypeError(f"{where}: expected an object, got {type(obj).__name__}")
    spec_type: type[Any] = cls  # a dataclass: every caller passes one of the spec types
    hints = field_types(spec_type)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(spec_type):
        (path, *_) = field_paths(f)
        read = f.metadata.get(CRD_READ)
        raw = read(obj) if read else _lookup(obj, path)
        if raw is None or raw == "" or raw == {} or raw == [] or raw == ():
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                if dataclasses.is_dataclass(hints[f.name]):
                    raw = {}  # a required object: its own required fields name what is missing
                else:
                    raise ValueError(f"{where}.{path} is required")
            else:
                continue
        values[f.name] = _convert(hints[f.name], raw, f"{where}.{path}")
    return cls(**values)


def _convert(kind: Any, raw: Any, where: str) -> Any:
    if dataclasses.is_dataclass(kind):
        return read_object(typing.cast(type[Any], kind), raw, where)
    if typing.get_origin(kind) in (types.UnionType, typing.Union):
        (kind,) = (k for k in typing.get_args(kind) if k is not type(None))
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        try:
            return kind(raw)
        except ValueError:
            allowed = ", ".join(str(e.value) for e in kind)
            raise ValueError(f"{where}: {raw!r} is not one of {allowed}") from None
    if kind is bool:
        return bool(raw)
    if kind is int:
        return int(raw)
    if kind is str:
        return str(raw)
    if typing.get_origin(kind) is tuple:
        return tuple(raw)
    if typing.get_origin(kind) is Mapping:
        return dict(raw)
    raise TypeError(f"{where}: no reader for {kind!r}")  # a spec type this module cannot read


@dataclass(frozen=True)
class Ref:
    """Which resource: enough to name its Jobs and own them."""

    namespace: str
    name: str
    uid: str
    generation: int = 1
