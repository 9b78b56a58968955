"""The one mapping from the runner's error classes to the controller's reasons, and whether a
failure is worth another Job. PURE.

The runner reports `failure.code` (a `PgshiftError` code, `MigrationFailed`, `Interrupted`) and
`failure.sqlstate`; the controller stalls with `FAILURE_REASONS[code]`, or waits to retry with
`RETRY_REASONS[code]` (default `Retrying`). The conditions each reason means are the
controller's (`controller/status.py`, `REASONS`).
"""

from __future__ import annotations

import enum

from pgshift.contract.sqlstates import is_retryable


class Reason(enum.StrEnum):
    # work in progress: a Job runs or is about to.
    PENDING = "Pending"
    PLANNING = "Planning"
    BACKING_UP = "BackingUp"
    APPLYING = "Applying"
    BASELINING = "Baselining"
    MARKING_APPLIED = "MarkingApplied"
    ROLLING_BACK = "RollingBack"
    RESTORING = "Restoring"
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
    #: spec.target is below what is applied: the down files wait for
    #: `pgshift.dev/approve-rollback=<generation>:<newest migration undone>`.
    AWAITING_ROLLBACK_APPROVAL = "AwaitingRollbackApproval"
    SUSPENDED = "Suspended"
    # done.
    COMPLETE = "Complete"
    #: spec.target is below what is applied and spec.rollback is Deny: nothing is undone.
    ROLLBACK_DISABLED = "RollbackDisabled"
    #: a restore finished: held until an explicit resume (pgshift.dev/resume).
    RESTORED = "Restored"
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
    #: the runner image wrote a summary of a schema version this operator cannot read.
    SUMMARY_VERSION_UNKNOWN = "SummaryVersionUnknown"
    # what the kubelet reported about the Job's Pod (controller/pod_failures.py).
    IMAGE_UNAVAILABLE = "ImageUnavailable"
    SOURCE_UNREADABLE = "SourceUnreadable"
    OUT_OF_MEMORY = "OutOfMemory"
    CONTAINER_CONFIG_ERROR = "ContainerConfigError"
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    #: a pgshift.dev/mark-applied value that names no migration of the source, while migrations
    #: are pending: nothing runs until the annotation is fixed or removed (the user may have
    #: applied the migration they meant by hand).
    UNKNOWN_MARK_APPLIED = "UnknownMarkApplied"
    #: a rollback cannot run: a down file is missing, or a migration is partly applied.
    ROLLBACK_UNAVAILABLE = "RollbackUnavailable"
    #: a restore pgshift refuses (annotation or runner check): nothing was touched.
    RESTORE_REFUSED = "RestoreRefused"


#: the failure code of a summary this operator cannot read (`UnknownSummaryVersion`).
SUMMARY_VERSION_UNKNOWN = "SummaryVersionUnknown"
#: the failure code of a mark-applied Job whose name the runner found in no migration (the
#: runner's `UnknownMigration`, renamed by the controller: fold.py).
UNKNOWN_MARK_APPLIED = "UnknownMarkApplied"
#: the runner's own SIGTERM: always retryable, the next Job resumes.
INTERRUPTED = "Interrupted"

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
    # a name in spec.overrides or spec.target that names nothing: the spec must change.
    "UnknownMigration": Reason.INVALID_SPEC,
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
    "RestoreTargetNotEmpty": Reason.RESTORE_REFUSED,
    "RestoreRefused": Reason.RESTORE_REFUSED,
    "RestoreManifestMissing": Reason.RESTORE_REFUSED,
    "RestoreChecksumMismatch": Reason.RESTORE_REFUSED,
    "RestoreServerTooOld": Reason.RESTORE_REFUSED,
    "RestoreNeedsCascade": Reason.RESTORE_REFUSED,
    "RestoreOutOfScope": Reason.RESTORE_REFUSED,
    "RestoreAlreadyUsed": Reason.RESTORE_REFUSED,
    "SyntaxTooNew": Reason.INVALID_SOURCE,
    SUMMARY_VERSION_UNKNOWN: Reason.SUMMARY_VERSION_UNKNOWN,
    "ImageUnavailable": Reason.IMAGE_UNAVAILABLE,
    "SourceUnreadable": Reason.SOURCE_UNREADABLE,
    "OutOfMemory": Reason.OUT_OF_MEMORY,
    "ContainerConfigError": Reason.CONTAINER_CONFIG_ERROR,
    "DeadlineExceeded": Reason.DEADLINE_EXCEEDED,
    # verification (`pgshift verify`): the scratch target is the spec's, the replay the source's.
    "Scratch": Reason.INVALID_SPEC,
    "ScratchIsProduction": Reason.INVALID_SPEC,
    "ScratchVersionMismatch": Reason.INVALID_SPEC,
    "ScratchNoCreateDb": Reason.INVALID_SPEC,
    "ScratchNotOurs": Reason.INVALID_SPEC,
    "ExternalEffects": Reason.INVALID_SOURCE,
    "VerifyReplayFailed": Reason.MIGRATION_FAILED,
    UNKNOWN_MARK_APPLIED: Reason.UNKNOWN_MARK_APPLIED,
    "DownFileMissing": Reason.ROLLBACK_UNAVAILABLE,
    "PartlyApplied": Reason.ROLLBACK_UNAVAILABLE,
    "RollbackOrder": Reason.SOURCE_DRIFT,
}

#: retryable runner codes -> the reason shown while waiting to retry.
RETRY_REASONS: dict[str, Reason] = {
    "Connection": Reason.DATABASE_UNREACHABLE,
    "LockNotAcquired": Reason.LOCK_BUSY,
}


def failure_reason(code: str) -> Reason:
    """The reason a failure of this code stalls with (`JobFailed` for a code nobody named)."""
    return FAILURE_REASONS.get(code, Reason.JOB_FAILED)


def retry_reason(code: str) -> Reason:
    """The reason shown while a retryable failure of this code waits for its next Job."""
    return RETRY_REASONS.get(code, Reason.RETRYING)


def failure_retryable(code: str, sqlstate: str | None, runner_says: bool) -> bool:
    """Whether a reported failure is worth another Job: a SQLSTATE decides by the runner's own
    table (a wrong password is never retried, whatever its code); without one, the runner's
    flag or the code."""
    if sqlstate:
        return is_retryable(sqlstate, cancelled_by_us=code == INTERRUPTED)
    return runner_says or code in RETRYABLE_CODES
