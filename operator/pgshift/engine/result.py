"""The engine's side of the run summary (docs/runner.md): a `Summary` built up while a command
runs, turned into the typed `pgshift.contract.RunSummary` and written through the contract's
bounded writer (at most 4 KiB: a Job's termination message); failures from driver errors with
their retry decision (the table is `pgshift.contract.sqlstates`).

Imports no psycopg at load time: the CLI writes an `Interrupted` summary even when a SIGTERM
comes while the driver is still being imported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pgshift import signals
from pgshift.contract.sqlstates import is_retryable
from pgshift.contract.summary import (
    MAX_SUMMARY_BYTES,
    AppliedMigration,
    AppliedStep,
    BackupResult,
    Counts,
    LintResult,
    PlanResult,
    RestoreResult,
    RollbackResult,
    RunFailure,
    RunSummary,
    StatusResult,
    Stopped,
    VerifyResult,
    write_summary,
)
from pgshift.logs import redact, redact_values

if TYPE_CHECKING:
    import psycopg


def db_error_retryable(exc: psycopg.Error, *, cancelled_by_us: bool = False) -> bool:
    """The retry table for a driver error: by its SQLSTATE (`cancelled_by_us`, or a SIGTERM
    came: 57014 is the runner's own cancel); without one, a lost connection
    (OperationalError: the server crashed, the network dropped) is retryable, a client-side
    error is not."""
    import psycopg  # loaded already: `exc` is one of its errors

    sqlstate = exc.sqlstate or exc.diag.sqlstate
    if sqlstate:
        # a 57014 after our own SIGTERM is the cancel we asked for: a rerun resumes.
        ours = cancelled_by_us or signals.requested()
        return is_retryable(sqlstate, cancelled_by_us=ours)
    return isinstance(exc, psycopg.OperationalError)


@dataclass(frozen=True)
class Failure:
    migration: str | None
    step: str | None
    statement: str | None
    line: int | None
    sqlstate: str | None
    message: str
    detail: str | None = None
    hint: str | None = None
    retryable: bool = False
    code: str = "MigrationFailed"

    def contract(self) -> RunFailure:
        return RunFailure(
            code=self.code,
            message=self.message,
            migration=self.migration,
            step=self.step,
            statement=self.statement,
            line=self.line,
            sqlstate=self.sqlstate,
            detail=self.detail,
            hint=self.hint,
            retryable=self.retryable,
        )

    def as_dict(self) -> dict[str, Any]:
        return self.contract().as_dict()

    def one_line(self) -> str:
        where = " ".join(
            p
            for p in (
                self.migration or "",
                f"step {self.step}" if self.step else "",
                f"line {self.line}" if self.line else "",
            )
            if p
        )
        state = f" [{self.sqlstate}]" if self.sqlstate else ""
        text = f"error[{self.code}]: {where + ': ' if where else ''}{self.message}{state}"
        if self.hint:
            text += f" (hint: {self.hint})"
        return " ".join(redact(text).split())


def failure_from_db_error(
    exc: psycopg.Error,
    *,
    migration: str | None,
    step: str | None,
    statement: str | None,
    line: int | None,
    code: str = "MigrationFailed",
) -> Failure:
    diag = exc.diag
    sqlstate = exc.sqlstate or diag.sqlstate
    text = str(exc).strip()
    message = diag.message_primary or (text.splitlines()[0] if text else type(exc).__name__)
    return Failure(
        migration=migration,
        step=step,
        statement=statement,
        line=line,
        sqlstate=sqlstate,
        message=redact(message or ""),
        detail=redact(diag.message_detail) if diag.message_detail else None,
        hint=redact(diag.message_hint) if diag.message_hint else None,
        retryable=db_error_retryable(exc),
        code=code,
    )


@dataclass
class StepDone:
    key: str
    migration: str
    phase: str
    duration_ms: int


@dataclass
class Summary:
    """What a command reports, built up while it runs; `contract()` is the typed summary
    (pgshift.contract, docs/runner.md), `bounded_json` the termination message."""

    command: str
    ok: bool = True
    source_digest: str | None = None
    stopped: Stopped | None = None
    applied: list[StepDone] = field(default_factory=list)
    applied_count: int = 0
    pending_count: int = 0
    pending: list[str] = field(default_factory=list)
    last_applied: str | None = None
    failure: Failure | None = None
    #: command-specific parts (pgshift.contract): plan, lint, status, backup, restore...
    applied_now: list[str] | None = None
    marked: list[str] | None = None
    plan: PlanResult | None = None
    lint: LintResult | None = None
    status: StatusResult | None = None
    backup: BackupResult | None = None
    restore: RestoreResult | None = None
    verify: VerifyResult | None = None
    rollback: RollbackResult | None = None
    exit_code: int = 0

    def contract(self) -> RunSummary:
        grouped: dict[str, list[AppliedStep]] = {}
        for s in self.applied:
            grouped.setdefault(s.migration, []).append(AppliedStep(s.key, s.phase, s.duration_ms))
        return RunSummary(
            command=self.command,
            ok=self.ok,
            source_digest=self.source_digest,
            stopped=self.stopped,
            applied=tuple(AppliedMigration(m, tuple(st)) for m, st in grouped.items()),
            counts=Counts(
                self.applied_count, self.pending_count, tuple(self.pending), self.last_applied
            ),
            failure=self.failure.contract() if self.failure else None,
            applied_now=None if self.applied_now is None else tuple(self.applied_now),
            marked=None if self.marked is None else tuple(self.marked),
            plan=self.plan,
            lint=self.lint,
            status=self.status,
            backup=self.backup,
            restore=self.restore,
            verify=self.verify,
            rollback=self.rollback,
        )

    def as_dict(self) -> dict[str, Any]:
        return self.contract().as_dict()

    def bounded_json(self, limit: int = MAX_SUMMARY_BYTES) -> str:
        return bounded_json(self.as_dict(), limit)


def bounded_json(data: Mapping[str, Any], limit: int = MAX_SUMMARY_BYTES) -> str:
    """The contract's bounded writer, with every value redacted before it is serialised."""
    return write_summary(data, limit, clean=redact_values)
