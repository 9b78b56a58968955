"""The contract between the runner (engine, CLI) and the controller (and the kubectl plugin).
PURE: the standard library only, so both sides, of any two versions, can import it.

- `summary`: the run summary and its parts, `read_summary` / `write_summary` (schema version).
- `progress`: the progress lines and the current step they tell.
- `sqlstates`: the one retry table of SQLSTATEs.
- `reasons`: the `Reason` enum and the mapping from error classes to reasons.
"""

from pgshift.contract.progress import (
    ProgressEvent,
    StepProgress,
    progress_from_log,
    read_events,
)
from pgshift.contract.reasons import (
    FAILURE_REASONS,
    RETRY_REASONS,
    RETRYABLE_CODES,
    SUMMARY_VERSION_UNKNOWN,
    Reason,
    failure_reason,
    failure_retryable,
    retry_reason,
)
from pgshift.contract.sqlstates import connect_failure_sqlstate, is_retryable
from pgshift.contract.summary import (
    MAX_SUMMARY_BYTES,
    READABLE_VERSIONS,
    SCHEMA_VERSION,
    AppliedMigration,
    AppliedStep,
    BackupResult,
    Counts,
    DriftItem,
    Finding,
    FindingCounts,
    LintResult,
    MigrationState,
    PlanResult,
    PlanStep,
    RestoreResult,
    RollbackResult,
    RunFailure,
    RunSummary,
    SourceProblem,
    StatusResult,
    Stopped,
    UnknownSummaryVersion,
    VerifyResult,
    bounded_json,
    read_summary,
    write_summary,
)

__all__ = [
    "FAILURE_REASONS",
    "MAX_SUMMARY_BYTES",
    "READABLE_VERSIONS",
    "RETRYABLE_CODES",
    "RETRY_REASONS",
    "SCHEMA_VERSION",
    "SUMMARY_VERSION_UNKNOWN",
    "AppliedMigration",
    "AppliedStep",
    "BackupResult",
    "Counts",
    "DriftItem",
    "Finding",
    "FindingCounts",
    "LintResult",
    "MigrationState",
    "PlanResult",
    "PlanStep",
    "ProgressEvent",
    "Reason",
    "RestoreResult",
    "RollbackResult",
    "RunFailure",
    "RunSummary",
    "SourceProblem",
    "StatusResult",
    "StepProgress",
    "Stopped",
    "UnknownSummaryVersion",
    "VerifyResult",
    "bounded_json",
    "connect_failure_sqlstate",
    "failure_reason",
    "failure_retryable",
    "is_retryable",
    "progress_from_log",
    "read_events",
    "read_summary",
    "retry_reason",
    "write_summary",
]
