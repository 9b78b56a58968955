"""What a rollback to a migration undoes, checked before anything runs. PURE.

`pgshift rollback --to NAME` undoes the migrations applied after NAME, newest first, each with
its down file (`<name>.down.sql`, `Source.downs`). A down file runs like an up file: cut into
steps keyed by the down file's hash (`steps.step_key` of the down `Migration`), its progress in
`pgshift_steps` under the migration's name, and the migration's tracking row deleted in the
transaction of its last step (`tracking.row_delete`). So a rollback killed at any point is
resumed by running it again.

Refused, naming what, before the lock is waited for and before anything is written:
- a migration to undo without a down file (DownFileMissing; a backup can restore instead);
- a tracking table that applied them in another order than the source's (RollbackOrder);
- a migration left partly applied, or partly rolled back from another down file or by a
  rollback to another target (PartlyApplied: finish it or restore first).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from pgshift.engine.state import DbState, State
from pgshift.engine.tracking import Row, StepRecord
from pgshift.errors import (
    DownFileMissing,
    Drift,
    PartlyApplied,
    RollbackOrder,
    UnknownMigration,
    UsageError,
)
from pgshift.migrations.model import Migration, Source
from pgshift.migrations.reader import DOWN_SUFFIX, V1_DOWN_FILE


@dataclass(frozen=True)
class Undo:
    """One migration to undo: the migration, its down file, its tracking row."""

    up: Migration
    down: Migration
    row: Row


def down_path(up: Migration) -> str:
    """Where the down file of `up` goes (named in DownFileMissing)."""
    if up.path.endswith("/migration.sql"):  # a drizzle-kit 1.0 folder
        return up.path.removesuffix("migration.sql") + V1_DOWN_FILE
    return up.path.removesuffix(".sql") + DOWN_SUFFIX


def applied_after(source: Source, state: DbState, to: str) -> list[str]:
    """The applied migrations after `to` in file order, newest first (`to` must exist)."""
    limit = source.index_of(to)
    return [
        ms.migration.name
        for ms in reversed(state.migrations)
        if ms.state is not State.PENDING and source.index_of(ms.migration.name) > limit
    ]


def plan_rollback(
    source: Source,
    state: DbState,
    to: str,
    records: Sequence[StepRecord],
    *,
    restore_hint: str = "",
) -> list[Undo]:
    """The migrations to undo, newest first; raises the named errors of the module.
    `restore_hint`: the backup that can restore instead, named when a down file is missing."""
    if source.get(to) is None:
        raise UnknownMigration(f"--to {to}: no migration of that name in {source.origin}", name=to)
    target = next(ms for ms in state.migrations if ms.migration.name == to)
    if target.state is State.PENDING:
        raise UsageError(
            f"--to {to}: that migration is not applied; a rollback goes back to an applied one"
        )
    names = applied_after(source, state, to)
    by_name = {ms.migration.name: ms for ms in state.migrations}
    undo: list[Undo] = []
    missing: list[Migration] = []
    for name in names:
        ms = by_name[name]
        if ms.state is State.DRIFTED:
            raise Drift(
                f"{ms.migration.path}: migration {name} changed since it was applied; its down "
                "file may not undo what ran",
                hint="restore the applied file, or restore a backup instead",
                migration=name,
            )
        down = source.down_of(name)
        if down is None:
            missing.append(ms.migration)
            continue
        assert ms.row is not None  # applied
        undo.append(Undo(ms.migration, down, ms.row))
    if missing:
        first = missing[0]
        others = f" (also {', '.join(m.name for m in missing[1:])})" if missing[1:] else ""
        raise DownFileMissing(
            f"{down_path(first)}: migration {first.name} has no down file{others}; "
            f"nothing was rolled back",
            hint=restore_hint or DownFileMissing.hint,
            migration=first.name,
        )
    # the tracking table's order of the migrations to undo (oldest first) must be the source's.
    rows = [u.row for u in reversed(undo)]
    for before, after in itertools.pairwise(rows):
        if after.id < before.id:
            late = next(u for u in undo if u.row is before)
            early = next(u for u in undo if u.row is after)
            raise RollbackOrder(
                f"tracking row id {after.id} ({early.up.name}) was applied before row id "
                f"{before.id} ({late.up.name}), which sorts before it in the source; "
                "undoing in reverse file order would not undo in reverse applied order",
                migration=early.up.name,
            )
    down_version = {u.up.name: u.down.hash for u in undo}
    for r in records:
        recorded = by_name.get(r.migration)
        if recorded is None:
            continue  # another source's steps (a shared tracking schema)
        if r.migration in down_version and r.hash == down_version[r.migration]:
            continue  # this rollback's own progress: resumed
        what = (
            "partly applied"
            if recorded.state is State.PENDING
            else "partly rolled back by another down file or another rollback"
        )
        raise PartlyApplied(
            f"{recorded.migration.path}: migration {r.migration} is {what} "
            f"(step {r.step} recorded); a rollback must not start from the middle of a file",
            migration=r.migration,
        )
    return undo
