"""What a Migration's user can do next, for every reason: the one table of recovery hints. PURE.

Operator users act through the resource (spec fields, `pgshift.dev/*` annotations, kubectl),
not through the runner's flags, so a hint here never names a `pgshift` CLI flag: where the
runner's own hint does (`--allow-drift`, `--lock-wait`...), `OPERATOR_HINTS` says the same
thing the operator's way, and `fold.py` stores that one in `status.failure.hint`.
`tests/unit/controller/test_hints.py` fails when a reason has no hint, or a hint names an
annotation, a spec or status field, a kubectl plugin verb or a flag that does not exist.

A new reason gets its row in `REASON_HINTS`; a new runner code whose hint names a CLI flag
gets its row in `OPERATOR_HINTS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pgshift.contract.reasons import UNKNOWN_MARK_APPLIED, Reason
from pgshift.controller import pod_failures
from pgshift.controller.api import (
    ANNOTATION_ALLOW_DRIFT,
    ANNOTATION_APPROVE,
    ANNOTATION_MARK_APPLIED,
    ANNOTATION_RESUME_EDITED,
    ANNOTATION_RETRY,
)
from pgshift.controller.memory import Failure

__all__ = [
    "OPERATOR_HINTS",
    "QUIET",
    "REASON_HINTS",
    "HintContext",
    "hints",
    "operator_hint",
]


@dataclass(frozen=True)
class HintContext:
    """What a hint may name: the Migration, its failure, its gate."""

    #: the Migration's name.
    name: str
    failure: Failure | None = None
    gate: Mapping[str, str] | None = None

    @property
    def ref(self) -> str:
        return f"migration/{self.name}"

    @property
    def migration(self) -> str:
        """The migration the failure or the gate is about; a placeholder when none is known."""
        if self.failure and self.failure.migration:
            return self.failure.migration
        if self.gate and self.gate.get("migration"):
            return self.gate["migration"]
        return "<migration>"

    def annotate(self, key: str, value: str) -> str:
        return f"kubectl annotate {self.ref} {key}={value} --overwrite"

    def retry(self) -> str:
        return self.annotate(ANNOTATION_RETRY, "$(date +%s)")


Hint = Callable[[HintContext], tuple[str, ...]]


def _fix_then_retry(what: str) -> Hint:
    return lambda c: (f"{what}, then: {c.retry()}",)


def _wait(what: str) -> Hint:
    return lambda c: (what,)


def _failed(c: HintContext) -> tuple[str, ...]:
    out = [
        "read status.failure (migration, statement, SQLSTATE, hint); fix forward: ship a "
        "corrected source (a new ConfigMap or image; the failure clears by itself)",
        f"or fix the database, then: {c.retry()}",
    ]
    if c.failure and c.failure.migration:
        out.append(
            c.annotate(ANNOTATION_MARK_APPLIED, c.failure.migration)
            + "  # only if you applied it by hand"
        )
    return tuple(out)


def _drift(c: HintContext) -> tuple[str, ...]:
    """SourceDrift: what the runner found decides the way out."""
    code = c.failure.code if c.failure else ""
    m = c.migration
    if code == "OutOfOrder":
        return (
            f"{m} sorts before an applied migration. If its changes are already in the "
            f"database: {c.annotate(ANNOTATION_MARK_APPLIED, m)}",
            "otherwise ship its change as a new migration that sorts after the last applied one "
            "(plain layout: rename the file; drizzle: generate it again with drizzle-kit, "
            "renaming a journal's file does not move it)",
        )
    if code == "UnknownApplied":
        return (
            "the database is ahead of this source (a tracking row matches no file): ship a "
            "source that has those migrations in spec.source (the newer ConfigMap or image)",
        )
    if code == "EditedAppliedStep":
        return (
            f"a step of {m} that already ran was edited: ship the file with that part as it "
            "was applied to finish it",
            "or run the new file from its first step (its applied steps run again): "
            + c.annotate(ANNOTATION_ALLOW_DRIFT, m),
        )
    return (
        f"the file of {m} changed after it was applied: ship it as it was applied "
        "(never edit an applied migration; put new changes in a new one)",
        "or accept the file as it is now (nothing runs again for an applied file; a partly "
        "applied one runs from its first step): " + c.annotate(ANNOTATION_ALLOW_DRIFT, m),
        "a file that failed half-way and was fixed, whose applied steps are unchanged: "
        + c.annotate(ANNOTATION_RESUME_EDITED, m),
    )


def _gate(c: HintContext) -> tuple[str, ...]:
    kind = (c.gate or {}).get("type", "")
    if kind == "Rollout":
        return (
            "roll out the new application version in every Deployment of "
            "spec.contract.rollout.deployments; the gate opens by itself when it completes",
        )
    return (c.annotate(ANNOTATION_APPROVE, c.migration),)


def _denied(c: HintContext) -> tuple[str, ...]:
    return (
        "spec.safety.destructive is Deny, so a retry stalls again. To run it: set "
        "spec.safety.destructive to RequireApproval, then "
        f"{c.annotate(ANNOTATION_APPROVE, c.migration)} (or set it to Allow)",
        "or ship a source without the destructive change",
    )


def _unknown_mark(c: HintContext) -> tuple[str, ...]:
    given = c.failure.migration if c.failure and c.failure.migration else "<name>"
    return (
        f"{ANNOTATION_MARK_APPLIED} {given!r} names no migration of the source: set it to the "
        f"migration you applied by hand (status.pending lists them): "
        f"{c.annotate(ANNOTATION_MARK_APPLIED, '<migration>')}",
        f"or remove it: kubectl annotate {c.ref} {ANNOTATION_MARK_APPLIED}-",
    )


def _pod(code: str) -> Hint:
    return lambda c: (f"{pod_failures.hint_for(code)}: {c.retry()}",)


_FOLLOW = "nothing to do: a Job runs or is about to (kubectl pgshift status NAME follows it)"

#: every reason -> what the user can do next, in order (the first line leads).
REASON_HINTS: dict[Reason, Hint] = {
    Reason.PENDING: _wait(_FOLLOW),
    Reason.PLANNING: _wait(_FOLLOW),
    Reason.BACKING_UP: _wait(_FOLLOW),
    Reason.APPLYING: _wait(_FOLLOW),
    Reason.BASELINING: _wait(_FOLLOW),
    Reason.MARKING_APPLIED: _wait(_FOLLOW),
    Reason.SECRET_NOT_FOUND: _wait(
        "create the Secret (and key) spec.database.urlSecretRef names; the Job starts by itself"
    ),
    Reason.SOURCE_NOT_FOUND: _wait(
        "create the ConfigMap spec.source.configMap.name names (or fix the name); it is "
        "looked at again by itself"
    ),
    Reason.DATABASE_UNREACHABLE: _wait(
        "retried by itself with backoff; check the server and the URL in the Secret of "
        "spec.database.urlSecretRef"
    ),
    Reason.LOCK_BUSY: _wait(
        "another run holds this database's migration lock; retried by itself (wait longer "
        "with spec.safety.lockWait)"
    ),
    Reason.RETRYING: _wait("retried by itself with backoff; status.failure says what failed"),
    Reason.AWAITING_APPROVAL: _gate,
    Reason.AWAITING_ROLLOUT: _gate,
    Reason.BLOCKED_BY_GATE: _gate,
    Reason.SUSPENDED: _wait("set spec.suspend to false to go on"),
    Reason.COMPLETE: _wait("nothing to do: every migration is applied"),
    Reason.MIGRATION_FAILED: _failed,
    Reason.LINT_FAILED: lambda c: (
        "fix the statements `pgshift lint` reports and ship a corrected source, or accept a "
        "rule for this migration in spec.overrides.<migration>.allow (or a "
        "`-- pgshift:allow=RULE` comment in a file not yet applied)",
    ),
    Reason.INVALID_SOURCE: lambda c: (
        "fix the file the message names and ship a corrected source (a new ConfigMap or "
        "image; it is planned again by itself)",
    ),
    Reason.SOURCE_TOO_LARGE: lambda c: (
        "a ConfigMap holds at most 1 MiB: ship the migrations in an image (spec.source.image)",
    ),
    Reason.SOURCE_DRIFT: _drift,
    Reason.INVALID_SPEC: lambda c: (
        "fix the spec field or annotation value the message names; a new generation is "
        "planned by itself",
    ),
    Reason.TRACKING_CONFLICT: lambda c: (
        "two Migrations record into one tracking table of one database: give one of them "
        "another spec.tracking.table (or spec.tracking.schema)",
    ),
    Reason.DESTRUCTIVE_DENIED: _denied,
    Reason.BACKUP_FAILED: _fix_then_retry(
        "read status.failure; fix the backup volume (spec.backup.volume.claimName: space, "
        "access) or the database, or go on without a backup (spec.backup.when: Never)"
    ),
    Reason.JOB_FAILED: _fix_then_retry(
        "read the Job's log (kubectl logs job/<status.job.name>) and status.failure"
    ),
    Reason.RETRIES_EXHAUSTED: _fix_then_retry(
        "fix what status.failure names (the database, the Secret, the lock holder)"
    ),
    Reason.SUMMARY_VERSION_UNKNOWN: _fix_then_retry(
        "choose a runner image of this operator's version in spec.job.image (or upgrade the "
        "operator)"
    ),
    Reason.IMAGE_UNAVAILABLE: _pod(pod_failures.IMAGE_NEVER_PULL.code),
    Reason.SOURCE_UNREADABLE: _pod(pod_failures.INIT_FAILED.code),
    Reason.OUT_OF_MEMORY: _pod(pod_failures.OOM.code),
    Reason.CONTAINER_CONFIG_ERROR: _pod(pod_failures.CONFIG_ERROR.code),
    Reason.DEADLINE_EXCEEDED: _pod(pod_failures.DEADLINE.code),
    Reason.UNKNOWN_MARK_APPLIED: _unknown_mark,
    # restore (pgshift.dev/restore; docs/operator.md "Restore").
    Reason.RESTORING: _wait(_FOLLOW),
    Reason.RESTORED: lambda c: (
        "the database is as of the backup (status.restored); edit or remove in the source the "
        "migrations in status.restored.pendingAgain that must not run again",
        f"then: kubectl annotate {c.ref} pgshift.dev/resume=$(date +%s) --overwrite, and set "
        "spec.suspend to false",
    ),
    Reason.RESTORE_REFUSED: lambda c: (
        "read the message: set spec.suspend to true first, or give pgshift.dev/restore this "
        "object's metadata.uid and a sha256 that kubectl pgshift backups NAME lists, or remove "
        "the annotation",
        f"a refusal by the runner (status.failure): fix what it names, then: {c.retry()}",
    ),
    # rollback (spec.target below what is applied; docs/operator.md "Rollback").
    Reason.ROLLING_BACK: _wait(_FOLLOW),
    Reason.AWAITING_ROLLBACK_APPROVAL: _wait(
        "run the down files status.rollback names: kubectl pgshift approve-rollback NAME (the "
        "pgshift.dev/approve-rollback annotation with status.rollback.approval), or set "
        "spec.target back"
    ),
    Reason.ROLLBACK_DISABLED: _wait(
        "spec.rollback is Deny, so nothing is undone: set spec.rollback to RequireApproval to "
        "roll back by down files, or set spec.target back to what is applied"
    ),
    Reason.ROLLBACK_UNAVAILABLE: lambda c: (
        "add the missing down file (a new source), finish the partly applied migration (set "
        "spec.target back), or restore status.lastBackup instead (docs/operator.md, Recovery)",
    ),
}

#: reasons whose hint is "nothing to do": status.recovery stays empty for them.
QUIET = frozenset(
    {
        Reason.PENDING,
        Reason.PLANNING,
        Reason.BACKING_UP,
        Reason.APPLYING,
        Reason.BASELINING,
        Reason.MARKING_APPLIED,
        Reason.COMPLETE,
        Reason.ROLLING_BACK,
        Reason.RESTORING,
    }
)


def hints(reason: Reason, context: HintContext) -> tuple[str, ...]:
    """What to do next, for this reason (its first line leads)."""
    return REASON_HINTS[reason](context)


#: runner failure codes whose own hint names a CLI flag or command -> the same advice for a
#: Migration (status.failure.hint). `{m}` is the failed migration.
OPERATOR_HINTS: dict[str, str] = {
    "Drift": (
        "an applied file was edited: ship it as it was applied, or accept the edit with the "
        f"{ANNOTATION_ALLOW_DRIFT}={{m}} annotation (a partly applied file whose applied steps "
        f"are unchanged: {ANNOTATION_RESUME_EDITED}={{m}})"
    ),
    "OutOfOrder": (
        f"if its changes are already in the database, annotate {ANNOTATION_MARK_APPLIED}={{m}}; "
        "otherwise ship it as a new migration that sorts after the last applied one (renaming "
        "a drizzle journal's file does not move it)"
    ),
    "UnknownApplied": (
        "the database is ahead of this source: ship a source (spec.source) that has the "
        "migrations its tracking table records"
    ),
    "UnknownMigration": (
        "a name in spec.target, spec.overrides or the "
        f"{ANNOTATION_ALLOW_DRIFT} annotation names no migration of the source: fix it"
    ),
    "EditedAppliedStep": (
        "ship the applied part of the file as it was to finish it, or run the new file from its "
        f"first step with the {ANNOTATION_ALLOW_DRIFT}={{m}} annotation"
    ),
    "LockNotAcquired": (
        "another pgshift run holds the migration lock; retried by itself (wait longer with "
        "spec.safety.lockWait)"
    ),
    "Connection": (
        "check the URL in the Secret of spec.database.urlSecretRef: host, port, database and "
        "credentials"
    ),
    "DatabaseUrl": "fix the URL in the Secret of spec.database.urlSecretRef",
    "UnknownStep": (
        f"give {ANNOTATION_APPROVE} a step key or migration that status.gate or status.pending "
        "shows"
    ),
    "Interrupted": "the next Job resumes by itself",
    "RestoreTargetNotEmpty": (
        "the database is not empty: restore into an empty one, or over it with "
        "`pgshift restore --clean`"
    ),
    # verification runs from the CLI only so far (`pgshift verify`); these say it its way.
    "ExternalEffects": (
        "the source reaches past its database (roles, ALTER SYSTEM, subscriptions...): a "
        "replay on a scratch server would run that there too; run `pgshift verify "
        "--allow-external` only if that is safe"
    ),
    "ScratchIsProduction": (
        "the scratch target is the production database: run `pgshift verify --scratch-url` "
        "with another server, or another database of this server"
    ),
    UNKNOWN_MARK_APPLIED: (
        f"set {ANNOTATION_MARK_APPLIED} to a migration of the source, or remove the annotation"
    ),
}


def operator_hint(code: str, runner_hint: str, migration: str) -> str:
    """The hint status shows for a runner failure: the operator's way where the runner's
    names a CLI flag, else the runner's own (PostgreSQL's hints included)."""
    text = OPERATOR_HINTS.get(code)
    if text is None:
        return runner_hint
    return text.replace("{m}", migration or "<migration>")
