"""Every named failure of pgshift: a class with a stable code, an exit code and a hint.

The CLI catches `PgshiftError` only and prints `error[<code>]: <message>` on one line; anything
else is a bug and keeps its traceback. Input errors exit 2, failed migrations exit 1.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pgshift.contract.sqlstates import is_retryable

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
#: `lint` found error-level findings, `plan` found blocking problems.
EXIT_FINDINGS = 1


class PgshiftError(Exception):
    """Base class: a failure pgshift understands and can explain in one line."""

    code: ClassVar[str] = "Error"
    exit_code: ClassVar[int] = EXIT_BAD_INPUT
    hint: ClassVar[str] = ""
    #: whether another attempt may get past it (the controller retries); see
    #: `pgshift.contract.sqlstates`.
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        sqlstate: str | None = None,
        retryable: bool | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        #: the database's SQLSTATE behind this failure, when there is one.
        self.sqlstate = sqlstate
        if hint is not None:
            self.hint = hint  # type: ignore[misc]
        if retryable is not None:
            self.retryable = retryable

    def one_line(self) -> str:
        text = f"error[{self.code}]: {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return " ".join(text.split())

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "hint": self.hint or None,
            "sqlstate": self.sqlstate,
            "retryable": self.retryable,
        }


# --- bad input: exit 2 -------------------------------------------------------------------------


class UsageError(PgshiftError):
    code = "Usage"


class SourceError(PgshiftError):
    """A migration folder, journal, file or ConfigMap that cannot be read as migrations."""

    code = "Source"


class DirectiveError(SourceError):
    code = "Directive"
    hint = (
        "known directives: phase=expand|backfill|contract, no-transaction, backfill [key=COL], "
        "allow=RULE[,RULE], rewrite=false"
    )


class ParseError(SourceError):
    code = "Parse"


class SyntaxTooNew(SourceError):
    """A statement uses syntax the server's PostgreSQL major lacks (safety/versions.py)."""

    code = "SyntaxTooNew"
    hint = "write it for the server's major or upgrade the server; see docs/postgres-versions.md"


class OverridesError(SourceError):
    code = "Overrides"


class SourceTooLarge(SourceError):
    code = "SourceTooLarge"
    hint = "a ConfigMap holds at most 1 MiB; ship the migrations in an image (spec.source.image)"


class DigestMismatch(SourceError):
    code = "DigestMismatch"
    hint = "the source changed after it was planned; the operator re-plans"


class ConnectionError_(PgshiftError):  # trailing _: avoids shadowing the builtin
    """The connection could not be opened. Retryable or not by its SQLSTATE (`sqlstates`): a
    server starting up or refusing connections comes back; a wrong password or a missing
    database does not."""

    code = "Connection"
    hint = "check --database-url / DATABASE_URL, the host, port and credentials"

    def __init__(self, message: str, *, sqlstate: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("retryable", is_retryable(sqlstate) if sqlstate else False)
        super().__init__(message, sqlstate=sqlstate, **kwargs)


class BadDatabaseUrl(ConnectionError_):
    code = "DatabaseUrl"


class PooledConnection(ConnectionError_):
    code = "PooledConnection"
    hint = (
        "session advisory locks need a session: use a direct URL, not pgbouncer in transaction "
        "mode or RDS Proxy"
    )


# --- the source and the database disagree: exit 2 ----------------------------------------------


class OutOfOrder(PgshiftError):
    code = "OutOfOrder"
    # the raise names the layout's own way (engine/state.py, out_of_order_hint).
    hint = (
        "rename it to sort after the last applied migration (plain, drizzle v1), or "
        "`pgshift mark-applied NAME` if its changes are already in the database, or pass "
        "--allow-out-of-order"
    )


class Drift(PgshiftError):
    code = "Drift"
    hint = (
        "an applied file was edited; restore it, or pass --allow-drift=NAME to accept the "
        "change of that migration"
    )


class UnknownApplied(PgshiftError):
    code = "UnknownApplied"
    hint = (
        "the database is ahead of this source; deploy the newer migrations or pass --allow-unknown"
    )


class UnknownMigration(PgshiftError):
    """An option, approval or override names a migration the source does not have."""

    code = "UnknownMigration"


class UnknownStep(PgshiftError):
    """A step key (`--stop-before`, `--approve`) that no file of the source is cut into."""

    code = "UnknownStep"
    hint = "step keys are listed by `pgshift plan` (STEP column, `steps[].key`)"


class TrackingTableError(PgshiftError):
    code = "TrackingTable"


class TransactionControl(SourceError):
    """BEGIN, ROLLBACK, SAVEPOINT, PREPARE TRANSACTION... in a file (COMMIT cuts a step)."""

    code = "TransactionControl"


class ReleasesLock(SourceError):
    """A file that would release pgshift's advisory lock (pg_advisory_unlock*, DISCARD ALL)."""

    code = "ReleasesLock"
    hint = (
        "remove it; if it releases only a lock of your own, allow it with "
        "-- pgshift:allow=releases-advisory-lock"
    )


class EditedAppliedStep(PgshiftError):
    """--resume-edited, but a step an earlier run applied has other text now."""

    code = "EditedAppliedStep"
    hint = (
        "restore the applied part of the file to finish it, or pass --allow-drift to run the "
        "new file from its first step"
    )


# --- runtime: exit 1 ---------------------------------------------------------------------------


class LockNotAcquired(PgshiftError):
    code = "LockNotAcquired"
    exit_code = EXIT_FAILED
    retryable = True
    hint = "another pgshift run holds the migration lock; wait for it or raise --lock-wait"


class MigrationFailed(PgshiftError):
    code = "MigrationFailed"
    exit_code = EXIT_FAILED


class LockTimeout(MigrationFailed):
    """A statement kept hitting lock_timeout (55P03) or deadlocks (40P01) through its retries."""

    code = "LockTimeout"
    hint = (
        "a long transaction holds a lock this statement needs; find it in pg_stat_activity, "
        "or retry later"
    )


class DatabaseError(PgshiftError):
    """The database refused pgshift's own work (tracking tables, planning queries), outside
    any migration: permissions, a lost connection, a server shutting down."""

    code = "Database"
    exit_code = EXIT_FAILED


class LockLost(PgshiftError):
    """The session no longer holds the migration lock after a step (a statement released it)."""

    code = "LockLost"
    exit_code = EXIT_FAILED
    hint = (
        "a statement of the migration released pgshift's advisory lock (pg_advisory_unlock*, "
        "DISCARD ALL); remove it and rerun to resume"
    )


class Interrupted(PgshiftError):
    """SIGTERM/SIGINT: the running query was cancelled; a rerun resumes where this one stopped."""

    code = "Interrupted"
    exit_code = EXIT_FAILED
    hint = "rerun to resume"
    retryable = True


class BackfillKeyError(PgshiftError):
    """A batched backfill's key is not a unique, NOT NULL, indexed single column."""

    code = "BackfillKey"
    hint = "name a unique, NOT NULL, indexed column with `-- pgshift:backfill key=COL`"


class BackupError(PgshiftError):
    code = "Backup"
    exit_code = EXIT_FAILED


class PgDumpTooOld(BackupError):
    code = "PgDumpTooOld"
    exit_code = EXIT_BAD_INPUT
    hint = "install a pg_dump at least as new as the server"


class RestoreTargetNotEmpty(BackupError):
    code = "RestoreTargetNotEmpty"
    exit_code = EXIT_BAD_INPUT
    hint = "restore into an empty database, or pass --clean"


# --- verification: the scratch target and the replay ---------------------------------------


class ScratchError(PgshiftError):
    """The scratch target (`--scratch-url`) cannot be used: bad input, found before anything
    is created on it."""

    code = "Scratch"


class ScratchIsProduction(ScratchError):
    code = "ScratchIsProduction"
    hint = (
        "point --scratch-url at another server, or at another database of this server "
        "(e.g. /postgres) where the role may create databases"
    )


class ScratchVersionMismatch(ScratchError):
    code = "ScratchVersionMismatch"
    hint = "use a scratch server of production's PostgreSQL major"


class ScratchNoCreateDb(ScratchError):
    code = "ScratchNoCreateDb"
    hint = "ALTER ROLE <role> CREATEDB on the scratch server, or use a role that has it"


class ScratchNotOurs(ScratchError):
    """A database pgshift was asked to drop that it did not create (prefix, owner, marker)."""

    code = "ScratchNotOurs"
    hint = (
        "only scratch databases this tool created (name prefix, owner, marker) are dropped; "
        "drop this one by hand if it is yours"
    )


class ExternalEffects(SourceError):
    """Statements whose effects reach past the database, in a replay on a scratch database."""

    code = "ExternalEffects"
    hint = (
        "a replay on the scratch server would run them there too; pass --allow-external if "
        "that is safe"
    )


class VerifyReplayFailed(PgshiftError):
    """The migrations did not build on an empty scratch database: no expected schema."""

    code = "VerifyReplayFailed"
    exit_code = EXIT_FAILED
    hint = "the source does not apply to an empty database; fix the migration it names"


# --- rollback (pgshift rollback): exit 2, nothing ran ------------------------------------------


class DownFileMissing(PgshiftError):
    """A migration the rollback must undo has no down file: nothing runs."""

    code = "DownFileMissing"
    hint = "add the down file, or restore the backup taken before the migration instead"


class RollbackOrder(PgshiftError):
    """The tracking table applied the migrations to undo in another order than the source's:
    undoing them in reverse file order would not undo them in reverse applied order."""

    code = "RollbackOrder"
    hint = (
        "down files are undone in reverse file order only: undo these by hand, or restore a "
        "backup"
    )


class PartlyApplied(PgshiftError):
    """A migration is partly applied (or partly rolled back from another down file): a rollback
    from the middle of a file would undo steps that never ran."""

    code = "PartlyApplied"
    hint = "finish it first (pgshift apply), or restore the backup taken before it"


class RestoreRefused(BackupError):
    """A restore pgshift will not run: found before anything is touched."""

    code = "RestoreRefused"
    exit_code = EXIT_BAD_INPUT


class RestoreManifestMissing(RestoreRefused):
    code = "RestoreManifestMissing"
    hint = "restore only dumps taken by `pgshift backup`: its manifest `<file>.json` lies beside it"


class RestoreChecksumMismatch(RestoreRefused):
    code = "RestoreChecksumMismatch"
    hint = "the dump changed since it was taken (truncated copy?); copy it again or pick another"


class RestoreServerTooOld(RestoreRefused):
    code = "RestoreServerTooOld"
    hint = "restore into a server at least as new as the one the dump was taken from"


class RestoreNeedsCascade(RestoreRefused):
    code = "RestoreNeedsCascade"
    hint = "drop or move those dependents first (a restore never drops with CASCADE)"


class RestoreOutOfScope(RestoreRefused):
    code = "RestoreOutOfScope"
    hint = (
        "migrations applied after the backup changed objects the dump does not hold: restore a "
        "whole-database backup, or undo those migrations first"
    )


class RestoreAlreadyUsed(RestoreRefused):
    code = "RestoreAlreadyUsed"
    hint = "each restore id restores once; take a new backup, or name it with a new restore id"
