"""The database's state against the source. PURE: a source and the tracking rows in.

Each migration is applied, pending or drifted; out-of-order files and rows that match no file
are named problems with opt-ins (`DbState.check`); a pending file partly applied from another
version of its text or settings is Drift (`partial_drift`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pgshift.engine.tracking import Row, match_row_to_migration
from pgshift.errors import Drift, OutOfOrder, PgshiftError, UnknownApplied
from pgshift.migrations.model import Layout, Migration, Source, TrackingForm
from pgshift.settings import Allow


class State(enum.StrEnum):
    APPLIED = "applied"
    PENDING = "pending"
    DRIFTED = "drifted"


@dataclass(frozen=True)
class MigrationState:
    migration: Migration
    state: State
    row: Row | None = None
    #: a pending file that sorts before an applied one.
    out_of_order: bool = False


@dataclass(frozen=True)
class DbState:
    """The source compared with the tracking table."""

    migrations: tuple[MigrationState, ...]
    #: rows that record no migration of this source.
    unknown_rows: tuple[Row, ...] = ()
    #: the source's layout: what puts a file out of order differs (`out_of_order_hint`).
    layout: Layout | None = None

    @property
    def applied(self) -> tuple[MigrationState, ...]:
        return tuple(m for m in self.migrations if m.state is not State.PENDING)

    @property
    def pending(self) -> tuple[MigrationState, ...]:
        return tuple(m for m in self.migrations if m.state is State.PENDING)

    @property
    def last_applied(self) -> str | None:
        applied = self.applied
        return applied[-1].migration.name if applied else None

    def problems(self) -> list[PgshiftError]:
        """Every disagreement between source and database, as the error it would raise."""
        out: list[PgshiftError] = []
        last = self.applied[-1].migration.name if self.applied else None
        for ms in self.migrations:
            m = ms.migration
            if ms.out_of_order:
                out.append(
                    OutOfOrder(
                        f"{m.path}: pending migration {m.name} sorts before the last applied one "
                        f"({last}); drizzle would skip it silently",
                        hint=out_of_order_hint(self.layout, m.name, last),
                        migration=m.name,
                    )
                )
            if ms.state is State.DRIFTED and ms.row is not None:
                out.append(
                    Drift(
                        f"{m.path}: applied migration {m.name} changed since it was applied "
                        f"(tracking row id {ms.row.id} has hash {ms.row.hash[:12]}, the file "
                        f"{m.hash[:12]})",
                        migration=m.name,
                    )
                )
        for row in self.unknown_rows:
            label = f"name {row.name}, " if row.name else ""
            out.append(
                UnknownApplied(
                    f"tracking row id {row.id} ({label}created_at {row.created_at}, hash "
                    f"{row.hash[:12]}) matches no migration of this source",
                    row=row.id,
                )
            )
        return out

    def check(self, allow: Allow) -> None:
        """Raise the first problem that is not allowed."""
        for problem in self.problems():
            if isinstance(problem, OutOfOrder) and allow.out_of_order:
                continue
            drifted = isinstance(problem, Drift)
            if drifted and allow.accepts_drift(problem.details.get("migration")):
                continue
            if isinstance(problem, UnknownApplied) and allow.unknown:
                continue
            raise problem


def out_of_order_hint(layout: Layout | None, name: str, last: str | None) -> str:
    """What gets a pending file that sorts before an applied one applied, for this layout: a
    drizzle journal orders by its entries, so renaming the file moves nothing there."""
    marked = f"if its changes are already in the database, `pgshift mark-applied {name}`"
    if layout is Layout.DRIZZLE:
        return (
            "the journal (meta/_journal.json) orders it, so renaming the file does not move it: "
            f"{marked}; to run it where it is, pass --allow-out-of-order; or generate its "
            f"change again as a new migration after {last}"
        )
    return (
        f"rename it to sort after {last}; or {marked}; or pass --allow-out-of-order to run it "
        "where it is"
    )


def partial_drift(
    state: DbState,
    partial: Mapping[str, set[str]],
    version_of: Callable[[Migration], str] | None = None,
) -> list[Drift]:
    """A pending file that an earlier run left partly applied, edited since or now cut under
    other settings (`plan_version`): its recorded steps belong to another version of its plan,
    and resuming would run the new one from the middle."""
    out = []
    for ms in state.pending:
        m = ms.migration
        version = version_of(m) if version_of is not None else m.hash
        other = sorted(h for h in partial.get(m.name, set()) if h != version)
        if other:
            what = (
                f"the file is {m.hash[:12]}"
                if version == m.hash
                else f"the file is {m.hash[:12]}, cut now under other overrides or --no-rewrite"
            )
            out.append(
                Drift(
                    f"{m.path}: migration {m.name} was partly applied from another version "
                    f"of the file or other settings (steps recorded for {other[0][:12]}, "
                    f"{what})",
                    hint=(
                        "pass --resume-edited to run its remaining steps when the applied "
                        "ones are unchanged; or restore the file or settings to finish it; or "
                        "--allow-drift to run the new one from its first step"
                    ),
                    migration=m.name,
                )
            )
    return out


def check_partial(
    state: DbState,
    partial: Mapping[str, set[str]],
    allow: Allow,
    version_of: Callable[[Migration], str] | None = None,
) -> None:
    problems = [
        p
        for p in partial_drift(state, partial, version_of)
        if not allow.accepts_drift(p.details.get("migration"))
    ]
    # --resume-edited: the engine compares the applied steps' text under the lock instead.
    if problems and not allow.resume_edited:
        raise problems[0]


def compare(source: Source, rows: list[Row]) -> DbState:
    """Match tracking rows to migrations: by name in a v1 table (falling back to drizzle 1.0's
    created_at/hash rule for nameless rows), by `created_at` in a stable one."""
    used: set[int] = set()
    row_of: dict[str, Row] = {}
    v1 = source.tracking_form is TrackingForm.V1
    by_when: dict[int, Row] = {}
    by_name: dict[str, Row] = {}
    for each in rows:
        if each.name is not None:
            by_name.setdefault(each.name, each)
        if each.created_at is not None:
            by_when.setdefault(each.created_at, each)
    row: Row | None
    for m in source.migrations:
        row = by_name.get(m.name) if v1 else None
        if row is None and not v1:
            row = by_when.get(m.when)
            # a v1-shaped table under a stable source: a named row must name this file.
            if row is not None and row.name is not None and row.name != m.name:
                row = None
        if row is not None and row.id not in used:
            used.add(row.id)
            row_of[m.name] = row
    if v1:
        for nameless in rows:
            if nameless.id in used or nameless.name is not None:
                continue
            matched = match_row_to_migration(nameless, source.migrations)
            if matched is not None and matched.name not in row_of:
                used.add(nameless.id)
                row_of[matched.name] = nameless
    states: list[MigrationState] = []
    applied_positions = [i for i, m in enumerate(source.migrations) if m.name in row_of]
    last_applied_pos = max(applied_positions, default=-1)
    max_created = max((r.created_at for r in rows if r.created_at is not None), default=None)
    for i, m in enumerate(source.migrations):
        row = row_of.get(m.name)
        if row is None:
            # drizzle's stable migrator skips files not newer than the newest row.
            late = i < last_applied_pos or (
                not v1 and max_created is not None and m.when <= max_created
            )
            states.append(MigrationState(m, State.PENDING, out_of_order=late))
        elif row.hash != m.hash:
            states.append(MigrationState(m, State.DRIFTED, row))
        else:
            states.append(MigrationState(m, State.APPLIED, row))
    unknown = tuple(r for r in rows if r.id not in used)
    return DbState(migrations=tuple(states), unknown_rows=unknown, layout=source.layout)
