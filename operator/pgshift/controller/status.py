"""Conditions and status, from the machine's decision. PURE.

One table maps every reason to the four conditions, so Ready/Complete/Reconciling/Stalled can
never disagree with each other, and kstatus, Argo CD and Flux read the usual convention.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pgshift.controller.memory import Memory, user_status

READY = "Ready"
COMPLETE = "Complete"
RECONCILING = "Reconciling"
STALLED = "Stalled"
CONDITION_TYPES = (READY, COMPLETE, RECONCILING, STALLED)


class Reason(enum.StrEnum):
    # work in progress: a Job runs or is about to.
    PENDING = "Pending"
    PLANNING = "Planning"
    BACKING_UP = "BackingUp"
    APPLYING = "Applying"
    BASELINING = "Baselining"
    MARKING_APPLIED = "MarkingApplied"
    # waiting for something outside pgshift that comes by itself (retried with backoff).
    SECRET_NOT_FOUND = "SecretNotFound"
    SOURCE_NOT_FOUND = "SourceNotFound"
    DATABASE_UNREACHABLE = "DatabaseUnreachable"
    LOCK_BUSY = "LockBusy"
    RETRYING = "Retrying"
    # gates: expected waits for a person or a rollout.
    AWAITING_APPROVAL = "AwaitingApproval"
    AWAITING_ROLLOUT = "AwaitingRollout"
    BLOCKED_BY_GATE = "BlockedByGate"
    SUSPENDED = "Suspended"
    # done.
    COMPLETE = "Complete"
    # a human is needed.
    MIGRATION_FAILED = "MigrationFailed"
    LINT_FAILED = "LintFailed"
    INVALID_SOURCE = "InvalidSource"
    SOURCE_TOO_LARGE = "SourceTooLarge"
    SOURCE_DRIFT = "SourceDrift"
    INVALID_SPEC = "InvalidSpec"
    TRACKING_CONFLICT = "TrackingConflict"
    DESTRUCTIVE_DENIED = "DestructiveDenied"
    BACKUP_FAILED = "BackupFailed"
    JOB_FAILED = "JobFailed"
    RETRIES_EXHAUSTED = "RetriesExhausted"
    # what the kubelet reported about the Job's Pod (controller/pod_failures.py).
    IMAGE_UNAVAILABLE = "ImageUnavailable"
    SOURCE_UNREADABLE = "SourceUnreadable"
    OUT_OF_MEMORY = "OutOfMemory"
    CONTAINER_CONFIG_ERROR = "ContainerConfigError"
    DEADLINE_EXCEEDED = "DeadlineExceeded"


@dataclass(frozen=True)
class Meaning:
    ready: bool
    complete: bool
    reconciling: bool
    stalled: bool


_WORKING = Meaning(ready=False, complete=False, reconciling=True, stalled=False)
_WAITING = Meaning(ready=False, complete=False, reconciling=False, stalled=False)
_AT_GATE = Meaning(ready=True, complete=False, reconciling=False, stalled=False)
_HUMAN = Meaning(ready=False, complete=False, reconciling=False, stalled=True)

#: every reason and what it means for each condition (DESIGN.md, Status).
REASONS: dict[Reason, Meaning] = {
    Reason.PENDING: _WORKING,
    Reason.PLANNING: _WORKING,
    Reason.BACKING_UP: _WORKING,
    Reason.APPLYING: _WORKING,
    Reason.BASELINING: _WORKING,
    Reason.MARKING_APPLIED: _WORKING,
    Reason.SECRET_NOT_FOUND: _WORKING,
    Reason.SOURCE_NOT_FOUND: _WORKING,
    Reason.DATABASE_UNREACHABLE: _WORKING,
    Reason.LOCK_BUSY: _WORKING,
    Reason.RETRYING: _WORKING,
    # only contract steps at the end remain, held by their gate: the application may roll out.
    Reason.AWAITING_APPROVAL: _AT_GATE,
    Reason.AWAITING_ROLLOUT: _AT_GATE,
    # an expand/backfill step is held behind a gated step: not ready, but no failure either.
    Reason.BLOCKED_BY_GATE: _WAITING,
    Reason.SUSPENDED: _WAITING,
    Reason.COMPLETE: Meaning(ready=True, complete=True, reconciling=False, stalled=False),
    Reason.MIGRATION_FAILED: _HUMAN,
    Reason.LINT_FAILED: _HUMAN,
    Reason.INVALID_SOURCE: _HUMAN,
    Reason.SOURCE_TOO_LARGE: _HUMAN,
    Reason.SOURCE_DRIFT: _HUMAN,
    Reason.INVALID_SPEC: _HUMAN,
    Reason.TRACKING_CONFLICT: _HUMAN,
    Reason.DESTRUCTIVE_DENIED: _HUMAN,
    Reason.BACKUP_FAILED: _HUMAN,
    Reason.JOB_FAILED: _HUMAN,
    Reason.RETRIES_EXHAUSTED: _HUMAN,
    Reason.IMAGE_UNAVAILABLE: _HUMAN,
    Reason.SOURCE_UNREADABLE: _HUMAN,
    Reason.OUT_OF_MEMORY: _HUMAN,
    Reason.CONTAINER_CONFIG_ERROR: _HUMAN,
    Reason.DEADLINE_EXCEEDED: _HUMAN,
}

#: runner error codes that are worth another Job by themselves, when the failure carries no
#: SQLSTATE (with one, `pgshift.contract.sqlstates` decides).
RETRYABLE_CODES = frozenset(
    {"Connection", "LockNotAcquired", "DigestMismatch", "DeadlineExceeded", "JobLost"}
)

#: runner error codes -> the reason a failure of that kind stalls with.
FAILURE_REASONS: dict[str, Reason] = {
    "MigrationFailed": Reason.MIGRATION_FAILED,
    "Lint": Reason.LINT_FAILED,
    "Source": Reason.INVALID_SOURCE,
    "Parse": Reason.INVALID_SOURCE,
    "Directive": Reason.INVALID_SOURCE,
    "Overrides": Reason.INVALID_SOURCE,
    "Usage": Reason.INVALID_SOURCE,
    "SourceTooLarge": Reason.SOURCE_TOO_LARGE,
    "Drift": Reason.SOURCE_DRIFT,
    "OutOfOrder": Reason.SOURCE_DRIFT,
    "UnknownApplied": Reason.SOURCE_DRIFT,
    "UnknownMigration": Reason.SOURCE_DRIFT,
    "Backup": Reason.BACKUP_FAILED,
    "PgDumpTooOld": Reason.BACKUP_FAILED,
    "DatabaseUrl": Reason.INVALID_SPEC,
    "PooledConnection": Reason.INVALID_SPEC,
    # a connection refused for good (wrong password 28P01, no such database 3D000): the Secret
    # or the server must change; retryable connection failures wait as DatabaseUnreachable.
    "Connection": Reason.INVALID_SPEC,
    "TransactionControl": Reason.INVALID_SOURCE,
    "ReleasesLock": Reason.INVALID_SOURCE,
    "BackfillKey": Reason.INVALID_SOURCE,
    "UnknownStep": Reason.INVALID_SPEC,
    "EditedAppliedStep": Reason.SOURCE_DRIFT,
    "TrackingTable": Reason.TRACKING_CONFLICT,
    "LockLost": Reason.MIGRATION_FAILED,
    "LockTimeout": Reason.MIGRATION_FAILED,
    "Database": Reason.MIGRATION_FAILED,
    "RestoreTargetNotEmpty": Reason.INVALID_SPEC,
    "SyntaxTooNew": Reason.INVALID_SOURCE,
    "ImageUnavailable": Reason.IMAGE_UNAVAILABLE,
    "SourceUnreadable": Reason.SOURCE_UNREADABLE,
    "OutOfMemory": Reason.OUT_OF_MEMORY,
    "ContainerConfigError": Reason.CONTAINER_CONFIG_ERROR,
    "DeadlineExceeded": Reason.DEADLINE_EXCEEDED,
}

#: retryable runner codes -> the reason shown while waiting to retry.
RETRY_REASONS: dict[str, Reason] = {
    "Connection": Reason.DATABASE_UNREACHABLE,
    "LockNotAcquired": Reason.LOCK_BUSY,
}


def failure_reason(code: str) -> Reason:
    return FAILURE_REASONS.get(code, Reason.JOB_FAILED)


def conditions(
    reason: Reason,
    message: str,
    generation: int,
    now: str,
    previous: list[Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The four conditions; `lastTransitionTime` moves only when a condition's status does."""
    meaning = REASONS[reason]
    wanted = {
        READY: meaning.ready,
        COMPLETE: meaning.complete,
        RECONCILING: meaning.reconciling,
        STALLED: meaning.stalled,
    }
    old = {c.get("type"): c for c in previous or ()}
    out = []
    for ctype in CONDITION_TYPES:
        value = "True" if wanted[ctype] else "False"
        before = old.get(ctype) or {}
        changed = before.get("status") != value
        out.append(
            {
                "type": ctype,
                "status": value,
                "reason": reason.value,
                "message": message[:1024],
                "observedGeneration": generation,
                "lastTransitionTime": now if changed else before.get("lastTransitionTime", now),
            }
        )
    return out


def recovery(reason: Reason, name: str, memory: Memory) -> list[str]:
    """The kubectl commands that apply now."""
    ref = f"migration/{name}"
    out: list[str] = []
    if REASONS[reason].stalled:
        out.append(f"kubectl annotate {ref} pgshift.dev/retry=$(date +%s) --overwrite")
        if memory.failure and memory.failure.migration:
            out.append(
                f"kubectl annotate {ref} pgshift.dev/mark-applied={memory.failure.migration} "
                "--overwrite  # only if you applied it by hand"
            )
            out.append("fix forward: ship a corrected source (a new ConfigMap or image)")
            if reason is Reason.SOURCE_DRIFT:
                out.append(
                    f"kubectl annotate {ref} pgshift.dev/resume-edited="
                    f"{memory.failure.migration} --overwrite  # an edited, partly applied file "
                    "whose applied steps are unchanged"
                )
    if (
        memory.gate
        and reason
        in (
            Reason.AWAITING_APPROVAL,
            Reason.BLOCKED_BY_GATE,
        )
        and memory.gate.get("type") in ("Approval", "Destructive")
    ):
        out.append(
            f"kubectl annotate {ref} pgshift.dev/approve={memory.gate.get('migration')} --overwrite"
        )
    if memory.last_backup and reason in (Reason.MIGRATION_FAILED, Reason.SOURCE_DRIFT):
        out.append(
            f"restore: pgshift restore --from {memory.last_backup.get('path')} "
            f"(claim {memory.last_backup.get('claimName')})"
        )
    return out


def render(
    *,
    reason: Reason,
    message: str,
    memory: Memory,
    generation: int,
    name: str,
    now: str,
    previous: Mapping[str, Any] | None,
    source_digest: str = "",
) -> dict[str, Any]:
    """The whole status, as the merge patch would leave it."""
    previous = previous or {}
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "phase": reason.value,
        "conditions": conditions(
            reason, message, generation, now, list(previous.get("conditions") or [])
        ),
        "sourceDigest": source_digest or (memory.plan.digest if memory.plan else "") or None,
        **user_status(memory),
        "recovery": recovery(reason, name, memory) or None,
    }
    return status


def patch_for(previous: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any] | None:
    """A JSON merge patch turning `previous` into `new`, or None when nothing changed.

    Keys absent from `new` are deleted (null); nulls in `new` mean absent, as the apiserver
    stores them, so an unchanged status compares equal and no patch is sent.
    """
    # through JSON once: tuples become lists, as the apiserver would hand them back.
    patch = _merge_diff(previous or {}, json.loads(json.dumps(strip_none(new))))
    return patch or None


def strip_none(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: strip_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_none(v) for v in value]
    return value


def _merge_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    patch: dict[str, Any] = {k: None for k in old if k not in new}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            # recurse: a merge patch keeps keys it does not mention, so stale ones are nulled.
            sub = _merge_diff(before, value)
            if sub:
                patch[key] = sub
        elif before != value:
            patch[key] = value
    return patch
