"""The run summary (docs/runner.md): what a runner Job reports in its termination message and
`--result-file`, and what the controller and the kubectl plugin read back. PURE (stdlib only).

The engine builds these values and writes them with `write_summary`; every reader goes through
`read_summary`. The wire form (camelCase keys) is the contract between runner images and
operators of different versions, so:

- the summary carries `"schema": SCHEMA_VERSION`; a summary without it is version 1 (the shape
  before the field existed, identical otherwise);
- `read_summary` accepts every version in `READABLE_VERSIONS`, ignores fields it does not know,
  reads a value of the wrong type as absent, and raises `UnknownSummaryVersion` for any other
  version (the controller stalls with reason `SummaryVersionUnknown`, naming both).

Absent and null mean the same to every reader, except the counts: a summary of a run that never
read the tracking table has no `appliedCount` (unknown, not 0), and `counts` is then None.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pgshift.contract.coerce import (
    flag,
    integer,
    mapping,
    mappings,
    opt_int,
    opt_str,
    opt_strings,
    strings,
    text,
)
from pgshift.contract.steps import Phase

#: the version this pgshift writes.
SCHEMA_VERSION = 2
#: the versions this pgshift reads: the current one and the one before (an old runner image
#: reporting to a new operator during an upgrade, and the other way round).
READABLE_VERSIONS = (1, 2)
#: Kubernetes keeps at most 4096 bytes of a termination message.
MAX_SUMMARY_BYTES = 4096
#: what a failure's `statement` keeps of the SQL (status and events show it).
MAX_STATEMENT_CHARS = 200


class UnknownSummaryVersion(ValueError):
    """A summary of a schema version this pgshift cannot read (a newer runner image)."""

    def __init__(self, found: object) -> None:
        self.found = found
        readable = " and ".join(str(v) for v in READABLE_VERSIONS)
        super().__init__(f"runner summary schema {found}; this operator reads {readable}")


# --- parts of a summary -------------------------------------------------------------------------


class StopReason(enum.StrEnum):
    """Why a run stopped (`stopped.reason`)."""

    DONE = "Done"
    TARGET = "Target"
    UNTIL_PHASE = "UntilPhase"
    STOP_BEFORE = "StopBefore"
    NEEDS_APPROVAL = "NeedsApproval"
    FAILED = "Failed"
    INTERRUPTED = "Interrupted"


@dataclass(frozen=True)
class Stopped:
    """Where and why a run stopped (a `StopReason`; read as text, so that a newer runner's
    reason still shows) and the step it stopped at, if any."""

    reason: str
    step: str | None = None
    migration: str | None = None
    phase: str | None = None
    why: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"reason": self.reason}
        for key in ("step", "migration", "phase", "why"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Stopped:
        return cls(
            reason=text(d.get("reason")),
            step=opt_str(d.get("step")),
            migration=opt_str(d.get("migration")),
            phase=opt_str(d.get("phase")),
            why=opt_str(d.get("why")),
        )


@dataclass(frozen=True)
class AppliedStep:
    key: str
    phase: str
    duration_ms: int

    def as_list(self) -> list[Any]:
        return [self.key, self.phase, self.duration_ms]

    @classmethod
    def from_list(cls, value: Any) -> AppliedStep | None:
        if not isinstance(value, (list, tuple)) or not value:
            return None
        rest = [*value[1:3], None, None]
        return cls(key=text(value[0]), phase=text(rest[0]), duration_ms=integer(rest[1]))


@dataclass(frozen=True)
class AppliedMigration:
    """The steps of one migration this run applied (`applied: [{migration, steps}]`)."""

    migration: str
    steps: tuple[AppliedStep, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"migration": self.migration, "steps": [s.as_list() for s in self.steps]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AppliedMigration:
        raw = d.get("steps")
        found = (AppliedStep.from_list(s) for s in (raw if isinstance(raw, list) else ()))
        return cls(migration=text(d.get("migration")), steps=tuple(s for s in found if s))


@dataclass(frozen=True)
class Counts:
    """What the tracking table holds after the run."""

    applied_count: int = 0
    pending_count: int = 0
    pending: tuple[str, ...] = ()
    last_applied: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "appliedCount": self.applied_count,
            "pendingCount": self.pending_count,
            "pending": list(self.pending),
            "lastApplied": self.last_applied,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Counts | None:
        if d.get("appliedCount") is None and d.get("pendingCount") is None:
            return None  # the run never read the tracking table: unknown, not 0
        return cls(
            applied_count=integer(d.get("appliedCount")),
            pending_count=integer(d.get("pendingCount")),
            pending=strings(d.get("pending")),
            last_applied=opt_str(d.get("lastApplied")),
        )


_WHERE = ("migration", "step", "statement", "line", "detail")


@dataclass(frozen=True)
class RunFailure:
    """Why a run failed: the error class (`code`, a `PgshiftError` code or `MigrationFailed`),
    where (migration, step, statement, line), the server's SQLSTATE and texts, and the runner's
    own retry decision (`pgshift.contract.sqlstates`)."""

    code: str
    message: str
    migration: str | None = None
    step: str | None = None
    statement: str | None = None
    line: int | None = None
    sqlstate: str | None = None
    detail: str | None = None
    hint: str | None = None
    retryable: bool = False

    def as_dict(self) -> dict[str, Any]:
        """`code`, `message`, `hint`, `sqlstate`, `retryable` always; where it failed and the
        detail when known (a failure before any migration ran has none of them)."""
        out: dict[str, Any] = {
            "migration": self.migration,
            "step": self.step,
            "statement": (self.statement or "")[:MAX_STATEMENT_CHARS] or None,
            "line": self.line,
            "sqlstate": self.sqlstate,
            "message": self.message,
            "detail": self.detail,
            "hint": self.hint,
            "retryable": self.retryable,
            "code": self.code,
        }
        if all(out[k] is None for k in _WHERE):
            for k in _WHERE:
                del out[k]
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunFailure:
        return cls(
            code=text(d.get("code"), "MigrationFailed"),
            message=text(d.get("message")),
            migration=opt_str(d.get("migration")),
            step=opt_str(d.get("step")),
            statement=opt_str(d.get("statement")),
            line=opt_int(d.get("line")),
            sqlstate=opt_str(d.get("sqlstate")),
            detail=opt_str(d.get("detail")),
            hint=opt_str(d.get("hint")),
            retryable=flag(d.get("retryable")),
        )


@dataclass(frozen=True)
class PlanStep:
    """A pending step of the plan: the gates, backups and approvals are decided on these."""

    key: str
    migration: str
    #: a `Phase` value; kept as text so a newer runner's phase reads without failing.
    phase: str = Phase.EXPAND
    #: a `TxMode` value (transaction | autocommit | batched)
    tx: str = ""
    destructive: bool = False
    tables: tuple[str, ...] = ()
    summary: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "migration": self.migration,
            "phase": self.phase,
            "tx": self.tx,
            "destructive": self.destructive,
            "tables": list(self.tables),
            "summary": self.summary,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PlanStep:
        return cls(
            key=text(d.get("key")),
            migration=text(d.get("migration")),
            phase=text(d.get("phase"), Phase.EXPAND),
            tx=text(d.get("tx")),
            destructive=flag(d.get("destructive")),
            tables=strings(d.get("tables")),
            summary=text(d.get("summary")),
        )


@dataclass(frozen=True)
class FindingCounts:
    error: int = 0
    warning: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"error": self.error, "warning": self.warning}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FindingCounts:
        return cls(error=integer(d.get("error")), warning=integer(d.get("warning")))


@dataclass(frozen=True)
class Finding:
    """A lint finding (safety.model.Finding on the wire)."""

    rule: str
    severity: str
    message: str
    path: str = ""
    line: int = 0
    help: str | None = None
    docs: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "severity": self.severity,
            "message": self.message,
            "path": self.path,
            "line": self.line,
            "help": self.help or None,
            "docs": self.docs or None,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Finding:
        return cls(
            rule=text(d.get("rule")),
            severity=text(d.get("severity")),
            message=text(d.get("message")),
            path=text(d.get("path")),
            line=integer(d.get("line")),
            help=opt_str(d.get("help")),
            docs=opt_str(d.get("docs")),
        )


@dataclass(frozen=True)
class MigrationState:
    name: str
    #: applied | pending | drifted
    state: str
    out_of_order: bool = False

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "state": self.state}
        if self.out_of_order:
            out["outOfOrder"] = True
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MigrationState:
        return cls(
            name=text(d.get("name")),
            state=text(d.get("state")),
            out_of_order=flag(d.get("outOfOrder")),
        )


@dataclass(frozen=True)
class SourceProblem:
    """A disagreement between the source and the tracking table (OutOfOrder, Drift, ...)."""

    code: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SourceProblem:
        return cls(code=text(d.get("code")), message=text(d.get("message")))


def _all(cls: Any, value: Any) -> tuple[Any, ...]:
    return tuple(cls.from_dict(d) for d in mappings(value))


@dataclass(frozen=True)
class LintResult:
    """`lint` (and the lint part of `plan`): finding counts and the findings."""

    findings: FindingCounts = FindingCounts()
    finding_list: tuple[Finding, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "findings": self.findings.as_dict(),
            "findingList": [f.as_dict() for f in self.finding_list],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LintResult:
        return cls(
            findings=FindingCounts.from_dict(mapping(d.get("findings"))),
            finding_list=_all(Finding, d.get("findingList")),
        )


@dataclass(frozen=True)
class PlanResult:
    """`plan`: the pending steps, what `apply` with the same flags would run, the tables the
    destructive steps touch (for `backup --tables`), and the findings."""

    steps: tuple[PlanStep, ...] = ()
    will_run: tuple[str, ...] = ()
    affected_tables: tuple[str, ...] = ()
    findings: FindingCounts = FindingCounts()
    migrations: tuple[MigrationState, ...] = ()
    problems: tuple[SourceProblem, ...] = ()
    finding_list: tuple[Finding, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "steps": [s.as_dict() for s in self.steps],
            "willRun": list(self.will_run),
            "affectedTables": list(self.affected_tables),
            "findings": self.findings.as_dict(),
            "migrations": [m.as_dict() for m in self.migrations],
            "problems": [p.as_dict() for p in self.problems],
            "findingList": [f.as_dict() for f in self.finding_list],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PlanResult:
        return cls(
            steps=_all(PlanStep, d.get("steps")),
            will_run=strings(d.get("willRun")),
            affected_tables=strings(d.get("affectedTables")),
            findings=FindingCounts.from_dict(mapping(d.get("findings"))),
            migrations=_all(MigrationState, d.get("migrations")),
            problems=_all(SourceProblem, d.get("problems")),
            finding_list=_all(Finding, d.get("findingList")),
        )


@dataclass(frozen=True)
class StatusResult:
    """`status`: what the database holds against the source."""

    tracking_table: str = ""
    #: stable | v1 | None (no tracking table yet)
    tracking_form: str | None = None
    migrations: tuple[MigrationState, ...] = ()
    partial_steps: tuple[str, ...] = ()
    problems: tuple[SourceProblem, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "trackingTable": self.tracking_table,
            "trackingForm": self.tracking_form,
            "migrations": [m.as_dict() for m in self.migrations],
            "partialSteps": list(self.partial_steps),
            "problems": [p.as_dict() for p in self.problems],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StatusResult:
        return cls(
            tracking_table=text(d.get("trackingTable")),
            tracking_form=opt_str(d.get("trackingForm")),
            migrations=_all(MigrationState, d.get("migrations")),
            partial_steps=strings(d.get("partialSteps")),
            problems=_all(SourceProblem, d.get("problems")),
        )


@dataclass(frozen=True)
class BackupResult:
    """`backup`: the dump, its checksum and scope (also written beside it as `<file>.json`)."""

    file: str
    sha256: str = ""
    size: int = 0
    #: database | tables
    scope: str = ""
    tables: tuple[str, ...] = ()
    #: asked for, but absent when the dump was taken.
    skipped: tuple[str, ...] = ()
    #: when the dump started, UTC, `YYYY-MM-DDTHH:MM:SSZ`.
    time: str = ""
    #: user@host:port/dbname (never the password).
    database: str = ""
    server_major: int | None = None
    pg_dump: str = ""
    #: older dumps `--keep` removed; None when `--keep` was not given.
    pruned: tuple[str, ...] | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "file": self.file,
            "sha256": self.sha256,
            "size": self.size,
            "scope": self.scope,
            "tables": list(self.tables),
            "skipped": list(self.skipped),
            "time": self.time,
            "database": self.database,
            "serverMajor": self.server_major,
            "pgDump": self.pg_dump,
        }
        if self.pruned is not None:
            out["pruned"] = list(self.pruned)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BackupResult:
        return cls(
            file=text(d.get("file")) or text(d.get("path")),
            sha256=text(d.get("sha256")),
            size=integer(d.get("size")),
            scope=text(d.get("scope")),
            tables=strings(d.get("tables")),
            skipped=strings(d.get("skipped")),
            time=text(d.get("time")) or text(d.get("finishedAt")),
            database=text(d.get("database")),
            server_major=opt_int(d.get("serverMajor")),
            pg_dump=text(d.get("pgDump")),
            pruned=opt_strings(d.get("pruned")),
        )


@dataclass(frozen=True)
class RestoreResult:
    """`restore`: which dump went back, of when, and what it made pending again."""

    file: str
    sha256: str = ""
    clean: bool = False
    database: str = ""
    #: relations the database held before the restore (0 unless --clean).
    relations_before: int = 0
    #: database | tables, and the tables of a table-scoped dump.
    scope: str = ""
    tables: tuple[str, ...] = ()
    #: when the dump was taken (UTC, `YYYY-MM-DDTHH:MM:SSZ`): writes since then are lost.
    backup_time: str = ""
    #: seconds from the dump to the restore.
    age_seconds: int = 0
    #: the id recorded as consumed in the database (`<uid>/<sha256>` from the operator).
    restore_id: str = ""
    #: `schema.table` whose rows pgshift rewrote ("" when the manifest saved none).
    tracking_table: str = ""
    #: migrations applied after the backup: pending again.
    pending_again: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "sha256": self.sha256,
            "clean": self.clean,
            "database": self.database,
            "relationsBefore": self.relations_before,
            "scope": self.scope,
            "tables": list(self.tables),
            "backupTime": self.backup_time,
            "ageSeconds": self.age_seconds,
            "restoreId": self.restore_id,
            "trackingTable": self.tracking_table,
            "pendingAgain": list(self.pending_again),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RestoreResult:
        return cls(
            file=text(d.get("file")),
            sha256=text(d.get("sha256")),
            clean=flag(d.get("clean")),
            database=text(d.get("database")),
            relations_before=integer(d.get("relationsBefore")),
            scope=text(d.get("scope")),
            tables=strings(d.get("tables")),
            backup_time=text(d.get("backupTime")),
            age_seconds=integer(d.get("ageSeconds")),
            restore_id=text(d.get("restoreId")),
            tracking_table=text(d.get("trackingTable")),
            pending_again=strings(d.get("pendingAgain")),
        )


@dataclass(frozen=True)
class DriftItem:
    """One difference between production's schema and the one the migrations build."""

    #: missing | extra | changed
    kind: str
    #: table | column | constraint | index | enum | sequence | function | view | extension
    object_kind: str
    #: qualified: `public.users.avatar`.
    name: str
    #: what differs (`type`, `default`, `nullable`...), for `changed`.
    attribute: str | None
    #: the line a person acts on: `users.avatar: type text in production, ... expected`.
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "objectKind": self.object_kind,
            "name": self.name,
            "attribute": self.attribute,
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DriftItem:
        return cls(
            kind=text(d.get("kind")),
            object_kind=text(d.get("objectKind")),
            name=text(d.get("name")),
            attribute=opt_str(d.get("attribute")),
            message=text(d.get("message")),
        )


@dataclass(frozen=True)
class VerifyResult:
    """`pgshift verify`: production's catalog against the schema the migrations build on an
    empty scratch database."""

    in_sync: bool
    drift: tuple[DriftItem, ...] = ()
    #: drift items an `--ignore` pattern left out.
    ignored: int = 0
    #: objects compared (in scope, in either catalog).
    compared: int = 0
    #: the schemas compared: those the migrations create or put objects in.
    schemas: tuple[str, ...] = ()
    #: the last migration the expected schema was built with (production's last applied).
    expected_up_to: str | None = None
    #: migrations production has not applied (left out of the expected schema).
    pending: int = 0
    #: with a baseline: only objects of the migrations after this one were compared.
    baseline_up_to: str | None = None
    #: scratch databases of killed runs dropped before this one started.
    cleaned: tuple[str, ...] = ()
    #: drizzle-kit's snapshot compared too (`meta/0004_snapshot.json`), when shipped.
    snapshot: str | None = None
    #: production against that snapshot: what the catalog comparison did not already say.
    snapshot_drift: tuple[DriftItem, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "inSync": self.in_sync,
            "snapshot": self.snapshot,
            "snapshotDrift": [d.as_dict() for d in self.snapshot_drift],
            "drift": [d.as_dict() for d in self.drift],
            "ignored": self.ignored,
            "compared": self.compared,
            "schemas": list(self.schemas),
            "expectedUpTo": self.expected_up_to,
            "pending": self.pending,
            "baselineUpTo": self.baseline_up_to,
            "cleaned": list(self.cleaned),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> VerifyResult:
        return cls(
            in_sync=flag(d.get("inSync")),
            drift=_all(DriftItem, d.get("drift")),
            ignored=integer(d.get("ignored")),
            compared=integer(d.get("compared")),
            schemas=strings(d.get("schemas")),
            expected_up_to=opt_str(d.get("expectedUpTo")),
            pending=integer(d.get("pending")),
            baseline_up_to=opt_str(d.get("baselineUpTo")),
            cleaned=strings(d.get("cleaned")),
            snapshot=opt_str(d.get("snapshot")),
            snapshot_drift=_all(DriftItem, d.get("snapshotDrift")),
        )


@dataclass(frozen=True)
class RollbackResult:
    """A rollback to `to` (pgshift rollback), or what one would undo (a plan whose target is
    below what is applied). Every list names migrations, newest first."""

    to: str = ""
    #: applied after `to`: to undo (a plan), or still to undo after this run (a rollback).
    undo: tuple[str, ...] = ()
    #: the migrations whose down file ran and whose tracking row this run deleted.
    undone: tuple[str, ...] = ()
    #: of `undo`: migrations the source ships no down file for (nothing can run).
    missing: tuple[str, ...] = ()
    #: of `undo`: down files with a destructive statement or a lint error (`Allow` does not
    #: cover them: they need the approval).
    destructive: tuple[str, ...] = ()
    #: of `undo`: down files with contract-phase steps (they wait for the contract gate).
    contract: tuple[str, ...] = ()
    #: the step keys of the down files, in the order they run (a plan).
    steps: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "to": self.to,
            "undo": list(self.undo),
            "undone": list(self.undone),
            "missing": list(self.missing),
            "destructive": list(self.destructive),
            "contract": list(self.contract),
            "steps": list(self.steps),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RollbackResult:
        return cls(
            to=text(d.get("to")),
            undo=strings(d.get("undo")),
            undone=strings(d.get("undone")),
            missing=strings(d.get("missing")),
            destructive=strings(d.get("destructive")),
            contract=strings(d.get("contract")),
            steps=strings(d.get("steps")),
        )


# --- the summary --------------------------------------------------------------------------------

_PLAN_KEYS = ("steps", "willRun", "affectedTables")
_STATUS_KEYS = ("trackingTable", "trackingForm", "partialSteps")
_LINT_KEYS = ("findings", "findingList")


@dataclass(frozen=True)
class RunSummary:
    """What one `pgshift` command reports. The command-specific parts are None when the
    command has none (or the summary was cut to its last-resort form)."""

    command: str
    ok: bool = True
    source_digest: str | None = None
    stopped: Stopped | None = None
    applied: tuple[AppliedMigration, ...] = ()
    #: None: the run never read the tracking table (bad input, an early SIGTERM).
    counts: Counts | None = field(default_factory=Counts)
    failure: RunFailure | None = None
    #: the writer cut lists (or strings) to stay within 4 KiB.
    truncated: bool = False
    #: apply: the migrations whose tracking row this run wrote.
    applied_now: tuple[str, ...] | None = None
    #: baseline, mark-applied: the migrations marked applied.
    marked: tuple[str, ...] | None = None
    plan: PlanResult | None = None
    lint: LintResult | None = None
    status: StatusResult | None = None
    backup: BackupResult | None = None
    restore: RestoreResult | None = None
    verify: VerifyResult | None = None
    #: rollback, and a plan whose target is below what is applied.
    rollback: RollbackResult | None = None
    schema: int = SCHEMA_VERSION

    @property
    def findings(self) -> FindingCounts | None:
        """The lint counts of a plan or lint run."""
        part = self.plan or self.lint
        return part.findings if part else None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema": self.schema, "command": self.command, "ok": self.ok}
        if self.counts is not None:
            out["sourceDigest"] = self.source_digest
        out["stopped"] = self.stopped.as_dict() if self.stopped else None
        out["applied"] = [a.as_dict() for a in self.applied]
        if self.counts is not None:
            out.update(self.counts.as_dict())
        out["failure"] = self.failure.as_dict() if self.failure else None
        if self.applied_now is not None:
            out["appliedNow"] = list(self.applied_now)
        if self.marked is not None:
            out["marked"] = list(self.marked)
        for part in (self.plan, self.lint, self.status):
            if part is not None:
                out.update(part.as_dict())
        if self.backup is not None:
            out["backup"] = self.backup.as_dict()
        if self.restore is not None:
            out["restore"] = self.restore.as_dict()
        if self.verify is not None:
            out["verify"] = self.verify.as_dict()
        if self.rollback is not None:
            out["rollback"] = self.rollback.as_dict()
        if self.truncated:
            out["truncated"] = True
        return out

    to_json = as_dict

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunSummary:
        """Any readable version (see `read_summary`, which also checks the version)."""
        stopped = d.get("stopped")
        failure = d.get("failure")
        backup = d.get("backup")
        restore = d.get("restore")
        verify = d.get("verify")
        rollback = d.get("rollback")
        return cls(
            schema=_version(d),
            command=text(d.get("command")),
            ok=flag(d.get("ok"), default=True),
            source_digest=opt_str(d.get("sourceDigest")),
            stopped=Stopped.from_dict(stopped) if isinstance(stopped, Mapping) else None,
            applied=_all(AppliedMigration, d.get("applied")),
            counts=Counts.from_dict(d),
            failure=RunFailure.from_dict(failure) if isinstance(failure, Mapping) else None,
            truncated=flag(d.get("truncated")),
            applied_now=opt_strings(d.get("appliedNow")),
            marked=opt_strings(d.get("marked")),
            plan=PlanResult.from_dict(d) if any(k in d for k in _PLAN_KEYS) else None,
            status=StatusResult.from_dict(d) if any(k in d for k in _STATUS_KEYS) else None,
            lint=(
                LintResult.from_dict(d)
                if not any(k in d for k in (*_PLAN_KEYS, *_STATUS_KEYS))
                and any(k in d for k in _LINT_KEYS)
                else None
            ),
            backup=BackupResult.from_dict(backup) if isinstance(backup, Mapping) else None,
            restore=RestoreResult.from_dict(restore) if isinstance(restore, Mapping) else None,
            verify=VerifyResult.from_dict(verify) if isinstance(verify, Mapping) else None,
            rollback=(
                RollbackResult.from_dict(rollback) if isinstance(rollback, Mapping) else None
            ),
        )


def _version(d: Mapping[str, Any]) -> int:
    raw = d.get("schema")
    if raw is None:
        return 1  # written before the field existed
    if isinstance(raw, int) and not isinstance(raw, bool) and raw in READABLE_VERSIONS:
        return raw
    raise UnknownSummaryVersion(raw)


def read_summary(source: str | bytes | Mapping[str, Any] | RunSummary) -> RunSummary:
    """The one reader of a runner's summary: JSON text (a termination message, a result file)
    or its parsed object. Raises `UnknownSummaryVersion` for a version this pgshift cannot read,
    and ValueError for text that is not a JSON object."""
    if isinstance(source, RunSummary):
        return source
    if isinstance(source, (str, bytes)):
        data = json.loads(source)
        if not isinstance(data, Mapping):
            raise ValueError("a runner summary is a JSON object")
        source = data
    return RunSummary.from_dict(source)


# --- the writer ---------------------------------------------------------------------------------

Clean = Callable[[Any], Any]


def _identity(value: Any) -> Any:
    return value


def write_summary(
    summary: RunSummary | Mapping[str, Any],
    limit: int = MAX_SUMMARY_BYTES,
    *,
    clean: Clean = _identity,
) -> str:
    """The summary as JSON within `limit` bytes (a termination message). `clean` is applied to
    the values before they are serialised (the engine passes its redaction)."""
    data = summary.as_dict() if isinstance(summary, RunSummary) else dict(summary)
    return bounded_json(data, limit, clean=clean)


#: what a controller cannot do without: kept when nothing else fits.
_LAST_RESORT = (
    "schema",
    "command",
    "ok",
    "stopped",
    "appliedCount",
    "pendingCount",
    "lastApplied",
    "truncated",
)
_LAST_RESORT_FAILURE = ("migration", "step", "sqlstate", "code", "retryable")


def bounded_json(
    data: Mapping[str, Any], limit: int = MAX_SUMMARY_BYTES, *, clean: Clean = _identity
) -> str:
    """Serialise within `limit` bytes: trim the longest lists from their end (marking
    `truncated`), then shorten long strings; the scalars a controller needs stay whole."""

    def dump(value: Mapping[str, Any]) -> str:
        # values are cleaned, never the serialised text: the output stays valid JSON.
        return json.dumps(clean(dict(value)), separators=(",", ":"), default=str)

    out = dump(data)
    if len(out.encode()) <= limit:
        return out
    work: dict[str, Any] = json.loads(json.dumps(dict(data), default=str))
    work["truncated"] = True
    # lists at the top and one level down (a part's own lists: `verify.drift`), by where
    # they sit: the holder and its key.
    places: list[tuple[dict[str, Any], str]] = [
        (holder, k)
        for holder in (work, *(v for v in work.values() if isinstance(v, dict)))
        for k, v in holder.items()
        if isinstance(v, list)
    ]
    while len(dump(work).encode()) > limit:
        longest = max(places, key=lambda p: len(json.dumps(p[0][p[1]])), default=None)
        if longest is None or not longest[0][longest[1]]:
            break
        holder, key = longest
        items = holder[key]
        holder[key] = items[: len(items) // 2 if len(items) > 1 else 0]
    for budget in (400, 200, 80):
        if len(dump(work).encode()) <= limit:
            break
        work = _shorten(work, budget)
    out = dump(work)
    if len(out.encode()) > limit:
        keep: dict[str, Any] = {k: work.get(k) for k in _LAST_RESORT if k in work or k != "schema"}
        failure = work.get("failure")
        if isinstance(failure, Mapping) and failure:
            keep["failure"] = {k: failure.get(k) for k in _LAST_RESORT_FAILURE}
        out = dump(keep)
    return out


def _shorten(value: Any, budget: int) -> Any:
    if isinstance(value, str) and len(value) > budget:
        return value[: budget - 1] + "…"
    if isinstance(value, dict):
        return {k: _shorten(v, budget) for k, v in value.items()}
    if isinstance(value, list):
        return [_shorten(v, budget) for v in value]
    return value
