"""What a decision asks for: the action to run, typed, and what the Migration says meanwhile.

A `RunJob` names the runner's action and the choices the machine made for it (which steps,
which approvals, what to back up). It holds no argv: `jobs.py` renders every argument of the
runner from it and the spec, in one place.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from pgshift.contract.reasons import Reason
from pgshift.controller.api import BackupScope, Destructive
from pgshift.controller.memory import Memory

#: where the backup claim is mounted in the runner's Pod; backup paths start here.
BACKUP_ROOT = "/backups"


class Action(enum.StrEnum):
    PLAN = "plan"
    APPLY = "apply"
    BACKUP = "backup"
    BASELINE = "baseline"
    MARK_APPLIED = "mark-applied"
    #: `pgshift rollback --to <spec.target>`: the down files of what is applied after it.
    ROLLBACK = "rollback"
    RESTORE = "restore"


ACTION_REASON = {
    Action.PLAN: Reason.PLANNING,
    Action.APPLY: Reason.APPLYING,
    Action.BACKUP: Reason.BACKING_UP,
    Action.BASELINE: Reason.BASELINING,
    Action.MARK_APPLIED: Reason.MARKING_APPLIED,
    Action.ROLLBACK: Reason.ROLLING_BACK,
    Action.RESTORE: Reason.RESTORING,
}


class Until(enum.StrEnum):
    """The phase an apply stops after when the plan's list was cut (no step key to stop at)."""

    BACKFILL = "backfill"


@dataclass(frozen=True)
class BackupTarget:
    """Where a backup goes and what it holds."""

    path: str
    keep: int
    #: the scope actually taken (AffectedTables falls back to Database when none is known).
    scope: BackupScope = BackupScope.DATABASE
    #: the tables of an AffectedTables backup; empty for the whole database.
    tables: tuple[str, ...] = ()


@dataclass(frozen=True)
class RestoreTarget:
    """Which dump goes back, and the id recorded as consumed in the database."""

    path: str
    sha256: str
    #: the annotation's value, `<metadata.uid>/<sha256>`.
    restore_id: str


@dataclass(frozen=True)
class RunJob:
    """One runner action and the choices made for it; `jobs.command` renders its argv."""

    action: Action
    #: refuse a source whose digest differs from the one this decision was made on.
    expect_digest: str = ""
    #: apply: stop before this step key (the first gated one).
    stop_before: str = ""
    #: apply: stop after this phase (set when no step key is known to stop at).
    until: Until | None = None
    #: apply: the destructive-step policy the runner enforces as well.
    destructive: Destructive | None = None
    #: apply: step keys, migration names and "*" that stand approved and name something.
    approvals: tuple[str, ...] = ()
    #: plan/apply: the migration a resume-edited request named, while it is still pending.
    resume_edited: str = ""
    #: plan/apply: migrations whose edited files pgshift.dev/allow-drift accepts.
    allow_drift: tuple[str, ...] = ()
    #: baseline: up to this migration; mark-applied: this migration; rollback: back to this one.
    migration: str = ""
    #: backup: where to and what.
    backup: BackupTarget | None = None
    #: restore: which dump, under which restore id.
    restore: RestoreTarget | None = None
    #: recorded on the Job as `pgshift.dev/<key>` annotations and read back when it finishes.
    notes: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # an intent that cannot be rendered is a bug in the machine: fail where it is made.
        if (self.backup is not None) != (self.action is Action.BACKUP):
            raise ValueError(f"{self.action.value}: a backup target goes with a backup only")
        if (self.restore is not None) != (self.action is Action.RESTORE):
            raise ValueError(f"{self.action.value}: a restore target goes with a restore only")
        named = self.action in (Action.BASELINE, Action.MARK_APPLIED, Action.ROLLBACK)
        if bool(self.migration) != named:
            raise ValueError(
                f"{self.action.value}: a migration name goes with baseline/mark/rollback"
            )
        applying = self.stop_before or self.until or self.destructive or self.approvals
        if applying and self.action not in (Action.APPLY, Action.ROLLBACK):
            raise ValueError(
                f"{self.action.value}: step selection and approvals are apply's and rollback's"
            )
        if self.resume_edited and self.action not in (Action.PLAN, Action.APPLY):
            raise ValueError(f"{self.action.value}: resume-edited goes with plan/apply only")
        if self.allow_drift and self.action not in (Action.PLAN, Action.APPLY):
            raise ValueError(f"{self.action.value}: allow-drift goes with plan/apply only")

    @property
    def needs_source(self) -> bool:
        """Mount the source: every action (a backup saves its files' progress rows; a restore
        reads which migrations it makes pending again and what they touched)."""
        return True

    @property
    def needs_claim(self) -> bool:
        """Mount the backup claim."""
        return self.action in (Action.BACKUP, Action.RESTORE)


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class Decision:
    memory: Memory
    reason: Reason
    message: str
    run: RunJob | None = None
    #: look again after this many seconds (a retry, a Rollout gate, a missing ConfigMap).
    wake_after: float | None = None
    events: tuple[Event, ...] = ()
