"""The plan. PURE: a source, the tracking rows and safety's analyses in; a plan out.

State: each migration is applied, pending or drifted; out-of-order files and rows that match no
file are named problems with opt-ins. Steps: the pending statements, in file order, cut into
runs of one phase and one transaction mode; a step never spans files; key `<hash12>-<index>`.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace

from pgshift.engine.tracking import Row, StepRecord, match_row_to_migration
from pgshift.errors import (
    Drift,
    EditedAppliedStep,
    OutOfOrder,
    PgshiftError,
    UnknownApplied,
    UnknownMigration,
    UnknownStep,
    UsageError,
)
from pgshift.migrations.model import Migration, Source, TrackingForm
from pgshift.migrations.names import KeysOf, unmatched_names
from pgshift.safety.model import (
    Analysis,
    Directives,
    Finding,
    LockClass,
    Phase,
    PlannedStatement,
    TxMode,
)
from pgshift.settings import Allow, DestructivePolicy, Selection


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
            if isinstance(problem, Drift) and allow.drift:
                continue
            if isinstance(problem, UnknownApplied) and allow.unknown:
                continue
            raise problem


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
    problems = partial_drift(state, partial, version_of)
    # --resume-edited: the engine compares the applied steps' text under the lock instead.
    if problems and not allow.drift and not allow.resume_edited:
        raise problems[0]


def compare(source: Source, rows: list[Row]) -> DbState:
    """Match tracking rows to migrations: by name in a v1 table (falling back to drizzle 1.0's
    created_at/hash rule for nameless rows), by `created_at` in a stable one."""
    used: set[int] = set()
    row_of: dict[str, Row] = {}
    v1 = source.tracking_form is TrackingForm.V1
    by_when: dict[int, Row] = {}
    by_name: dict[str, Row] = {}
    for row in rows:
        if row.name is not None:
            by_name.setdefault(row.name, row)
        if row.created_at is not None:
            by_when.setdefault(row.created_at, row)
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
        for row in rows:
            if row.id in used or row.name is not None:
                continue
            m = match_row_to_migration(row, source.migrations)
            if m is not None and m.name not in row_of:
                used.add(row.id)
                row_of[m.name] = row
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
    return DbState(migrations=tuple(states), unknown_rows=unknown)


# --- steps -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """A run of consecutive statements of one file with one phase and one transaction mode."""

    key: str
    migration: Migration
    #: position of the step within its file, from 0.
    index: int
    phase: Phase
    tx: TxMode
    statements: tuple[PlannedStatement, ...]
    #: the last step of its file: writing the tracking row belongs to it.
    last: bool
    #: finished in an earlier run (recorded in pgshift_steps).
    done: bool = False
    #: what the file's steps were cut from (`plan_version`); recorded with the step.
    version: str = ""
    #: a top-level COMMIT in the file came right before this step: it never shares a
    #: transaction with the step before it.
    after_commit: bool = False
    #: sha256 of the step's statement text (`step_text_hash`); recorded with the step, so a
    #: rerun of an edited file can tell whether the applied steps are unchanged.
    text_hash: str = ""

    @property
    def destructive(self) -> bool:
        return any(s.destructive for s in self.statements)

    @property
    def tables(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for s in self.statements:
            for t in s.tables:
                seen.setdefault(t, None)
        return tuple(seen)

    @property
    def summary(self) -> str:
        parts = [s.summary for s in self.statements if s.summary]
        text = "; ".join(parts) or (self.statements[0].sql.strip().splitlines() or [""])[0]
        return text[:160]

    def as_dict(self) -> dict[str, object]:
        return {
            "key": self.key,
            "migration": self.migration.name,
            "phase": self.phase.value,
            "tx": self.tx.value,
            "destructive": self.destructive,
            "tables": list(self.tables),
            "summary": self.summary,
        }


def step_key(migration: Migration, index: int, version: str = "") -> str:
    """`<hash12>-<index>`; `<hash12>.<6 hex>-<index>` when settings other than the defaults
    shape the file's steps (see `plan_version`), so records of one cut never pass for another's."""
    if version and version != migration.hash:
        return f"{migration.hash[:12]}.{version[:6]}-{index}"
    return f"{migration.hash[:12]}-{index}"


def plan_version(migration: Migration, override: Directives | None, rewrite: bool) -> str:
    """What a file's steps were cut from: its hash, and the settings that change the cut (its
    override's phase, transaction mode, backfill and rewrite, and `--no-rewrite`; not `allow`,
    which only silences lint). The file's hash itself with the defaults, so records made before
    this existed still match. Stored with each step record: a half-applied file resumed under
    other settings would be cut differently, which is Drift, like an edited file."""
    parts = []
    if not rewrite:
        parts.append("no-rewrite")
    if override is not None:
        parts.append(
            f"phase={override.phase.value if override.phase else ''};"
            f"no-transaction={override.no_transaction};backfill={override.backfill};"
            f"key={override.backfill_key or ''};rewrite={override.rewrite}"
        )
    if not parts or parts == [
        "phase=;no-transaction=False;backfill=False;key=;rewrite=True"
    ]:
        return migration.hash
    text = "\0".join([migration.hash, *parts])
    return hashlib.sha256(text.encode()).hexdigest()


def step_text_hash(phase: Phase, tx: TxMode, statements: tuple[PlannedStatement, ...]) -> str:
    """What a step runs, as the file wrote it: its phase, transaction mode and each statement's
    source text and rewrite (the rendered SQL follows from those, and `render=False` leaves it
    out). Independent of the file's hash, so the steps an edit did not touch keep theirs."""
    parts = [phase.value, tx.value]
    for st in statements:
        parts += [str(st.source_index), st.rewrite, st.original_sql]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def cut_steps(
    migration: Migration,
    statements: tuple[PlannedStatement, ...],
    done: Collection[str] = (),
    version: str = "",
) -> tuple[Step, ...]:
    """Cut one file's statements into steps. Autocommit and batched statements are alone; a
    top-level COMMIT in the file (`after_commit`) ends a step."""
    groups: list[list[PlannedStatement]] = []
    for st in statements:
        joinable = (
            groups
            and not st.after_commit
            and st.tx is TxMode.TRANSACTION
            and groups[-1][-1].tx is TxMode.TRANSACTION
            and groups[-1][-1].phase is st.phase
        )
        if joinable:
            groups[-1].append(st)
        else:
            groups.append([st])
    if not groups:
        # an empty file still gets a step: its tracking row must be written.
        empty = PlannedStatement(
            sql="",
            phase=Phase.EXPAND,
            tx=TxMode.TRANSACTION,
            lock=LockClass.WEAK,
            destructive=False,
            source_index=0,
            line=1,
            original_sql="",
        )
        groups.append([empty])
    steps = []
    for i, g in enumerate(groups):
        key = step_key(migration, i, version)
        steps.append(
            Step(
                key=key,
                migration=migration,
                index=i,
                phase=g[0].phase,
                tx=g[0].tx,
                statements=tuple(g),
                last=i == len(groups) - 1,
                done=key in done,
                version=version or migration.hash,
                after_commit=i > 0 and g[0].after_commit,
                text_hash=step_text_hash(g[0].phase, g[0].tx, tuple(g)),
            )
        )
    return tuple(steps)


def step_index(key: str) -> int:
    """The index in a step key `<hash12>[.<6 hex>]-<index>`."""
    return int(key.rsplit("-", 1)[1])


def resume_renames(
    migration: Migration,
    steps: tuple[Step, ...],
    records: list[StepRecord],
    checkpoints: Mapping[str, tuple[str | None, int]],
) -> list[tuple[str, str]]:
    """--resume-edited: the step records (and backfill checkpoints: key -> (text hash, rows))
    that an earlier version of this file (or of its plan) left, moved to the keys of `steps`,
    the file's plan now. Each record's step must exist now with the same statement text
    (`text_hash`), else EditedAppliedStep lists every step that differs: resuming would skip
    text that never ran, or run a step's statements twice. A checkpoint without progress
    (only tagged) that no longer matches is dropped instead."""
    by_index = {s.index: s for s in steps}
    renames: list[tuple[str, str]] = []
    changed: list[str] = []

    def match(key: str, text_hash: str | None, what: str) -> str | None:
        index = step_index(key)
        now = by_index.get(index)
        if text_hash is None:
            changed.append(f"{key} ({what}; recorded before pgshift kept step text hashes)")
        elif now is None:
            changed.append(f"{key} ({what}; the file has no step {index} now)")
        elif now.text_hash != text_hash:
            changed.append(f"{key} ({what}; now step {now.key} at line {now.statements[0].line})")
        else:
            return now.key
        return None

    recorded = {r.step for r in records}
    for r in sorted(records, key=lambda r: step_index(r.step)):
        new = match(r.step, r.text_hash, "applied")
        if new is not None:
            renames.append((r.step, new))
    for key, (text_hash, rows) in sorted(checkpoints.items()):
        if key in recorded:
            continue  # the step's record decides; its checkpoint follows it
        now = by_index.get(step_index(key))
        if rows == 0 and (now is None or now.text_hash != text_hash):
            renames.append((key, ""))  # no progress: nothing to keep
            continue
        new = match(key, text_hash, f"backfill, {rows} rows done")
        if new is not None:
            renames.append((key, new))
    if changed:
        raise EditedAppliedStep(
            f"{migration.path}: --resume-edited: migration {migration.name} was edited in "
            f"steps an earlier run applied: {'; '.join(changed)}",
            migration=migration.name,
        )
    return [(old, new) for old, new in renames if old != new]


def as_written_steps(
    steps: tuple[Step, ...], statements: tuple[PlannedStatement, ...]
) -> tuple[Step, ...] | None:
    """A file's steps (its stable cut, keys and phases) carrying another form of the same file
    (`statements`: safety's analysis with the run's new tables, statements run as written), all
    in one transaction; None when that form cannot be run so.

    Each statement goes into the step that held the first statement made from the same source
    statement (a rewrite's statements take the original's place, so order is kept); a step left
    without statements runs nothing. Refused when a statement needs its own transaction, or would
    belong to a later phase than its step (stops are decided on the stable steps).
    """
    if not steps or any(st.tx is not TxMode.TRANSACTION for st in statements):
        return None
    if any(step.after_commit for step in steps):  # the file asked for a commit in between
        return None
    home: dict[int, int] = {}
    for i, step in enumerate(steps):
        for st in step.statements:
            home.setdefault(st.source_index, i)
    groups: list[list[PlannedStatement]] = [[] for _ in steps]
    last = 0
    for st in statements:
        i = home.get(st.source_index)
        if i is None or i < last or st.phase.rank > steps[i].phase.rank:
            return None
        groups[i].append(st)
        last = i
    out = []
    for step, group in zip(steps, groups, strict=True):
        if not group:
            group = [
                PlannedStatement(
                    sql="",
                    phase=step.phase,
                    tx=TxMode.TRANSACTION,
                    lock=LockClass.WEAK,
                    destructive=False,
                    source_index=step.statements[0].source_index,
                    line=step.statements[0].line,
                    original_sql="",
                )
            ]
        out.append(replace(step, tx=TxMode.TRANSACTION, statements=tuple(group)))
    return tuple(out)


@dataclass(frozen=True)
class Plan:
    source: Source
    state: DbState
    #: pending steps in order (those of migrations after `target` left out), done ones removed.
    steps: tuple[Step, ...]
    #: migrations pending after this run's target.
    beyond_target: tuple[str, ...] = ()
    findings: tuple[Finding, ...] = ()
    analyses: Mapping[str, Analysis] = field(default_factory=dict)

    @property
    def pending_names(self) -> list[str]:
        names: dict[str, None] = {}
        for s in self.steps:
            names.setdefault(s.migration.name, None)
        return [*names, *self.beyond_target]

    @property
    def affected_tables(self) -> list[str]:
        seen: dict[str, None] = {}
        for s in self.steps:
            if s.destructive:
                for t in s.tables:
                    seen.setdefault(t, None)
        return list(seen)


Analyzer = Callable[[Migration, frozenset[str]], Analysis]


def check_names(
    source: Source,
    state: DbState,
    selection: Selection,
    keys_of: KeysOf,
    overrides: Collection[str] = (),
) -> None:
    """Every name this run was given (`--target`, `--stop-before`, `--approve`, override keys)
    must name a migration or step of the source, or a run could ignore a stop and run what it
    was told not to: raise UnknownMigration / UnknownStep for the first that names nothing.
    `keys_of(m)`: the step keys of pending migration `m` under this run's settings; names of
    applied migrations' steps are consumed silently (`migrations.names`)."""
    applied = {ms.migration.name for ms in state.applied}

    def keys(m: Migration) -> Collection[str] | None:
        return None if m.name in applied else keys_of(m)

    names_only = [("--target", selection.target)] if selection.target else []
    names_only += [("--overrides", name) for name in overrides]
    either = [("--stop-before", selection.stop_before)] if selection.stop_before else []
    either += [("--approve", name) for name in sorted(selection.approve)]
    unmatched = unmatched_names(source, names_only, step_keys=False) + unmatched_names(
        source, either, keys
    )
    if unmatched:
        first = unmatched[0]
        error = UnknownStep if first.is_step_key else UnknownMigration
        raise error(first.message(source.origin), name=first.name)


def pending_up_to(
    source: Source, state: DbState, target: str | None
) -> tuple[list[Migration], list[str]]:
    """The pending migrations up to `target` (all when None), and the names of those after it."""
    pending = [ms.migration for ms in state.pending]
    if target is None:
        return pending, []
    if source.get(target) is None:
        raise UnknownMigration(f"--target {target}: no migration of that name in the source")
    limit = source.index_of(target)
    beyond = [m.name for m in pending if source.index_of(m.name) > limit]
    return [m for m in pending if source.index_of(m.name) <= limit], beyond


def build_plan(
    source: Source,
    state: DbState,
    analyze: Analyzer,
    *,
    done: Collection[str] = (),
    target: str | None = None,
    version_of: Callable[[Migration], str] | None = None,
) -> Plan:
    """Analyse each pending migration up to `target` and cut it into steps.

    `analyze(migration, created_before)` gets the tables that earlier pending migrations of this
    run create, so safety treats them as new and empty.
    """
    pending, beyond = pending_up_to(source, state, target)
    steps: list[Step] = []
    findings: list[Finding] = []
    analyses: dict[str, Analysis] = {}
    created: frozenset[str] = frozenset()
    for m in pending:
        analysis = analyze(m, created)
        analyses[m.name] = analysis
        findings.extend(analysis.findings)
        created = created | analysis.created_tables
        version = version_of(m) if version_of is not None else ""
        steps.extend(s for s in cut_steps(m, analysis.statements, done, version) if not s.done)
    return Plan(
        source=source,
        state=state,
        steps=tuple(steps),
        beyond_target=tuple(beyond),
        findings=tuple(findings),
        analyses=analyses,
    )


# --- what a run executes -----------------------------------------------------------------------


class StopReason(enum.StrEnum):
    DONE = "Done"
    TARGET = "Target"
    UNTIL_PHASE = "UntilPhase"
    STOP_BEFORE = "StopBefore"
    NEEDS_APPROVAL = "NeedsApproval"
    FAILED = "Failed"
    INTERRUPTED = "Interrupted"


@dataclass(frozen=True)
class Stop:
    reason: StopReason
    step: Step | None = None
    why: str = ""

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"reason": self.reason.value}
        if self.step is not None:
            out.update(
                step=self.step.key, migration=self.step.migration.name, phase=self.step.phase.value
            )
        if self.why:
            out["why"] = self.why
        return out


def select(plan: Plan, selection: Selection) -> tuple[tuple[Step, ...], Stop]:
    """The steps this run executes, in order, and where and why it stops."""
    run, stop = select_steps(plan.steps, selection)
    return run, stop or end_stop(plan.beyond_target)


def end_stop(beyond_target: tuple[str, ...] | list[str]) -> Stop:
    """Why a run that ran every selected step stopped: its target, or the end."""
    if beyond_target:
        return Stop(
            StopReason.TARGET,
            None,
            f"--target reached; {len(beyond_target)} later migration(s) left pending",
        )
    return Stop(StopReason.DONE)


def select_steps(
    steps: tuple[Step, ...] | list[Step], selection: Selection
) -> tuple[tuple[Step, ...], Stop | None]:
    """The leading steps a run may execute, and the stop before the first it may not (None:
    all of them). Evaluated step by step, so a run can apply it file by file."""
    until = None
    if selection.until_phase:
        try:
            until = Phase(selection.until_phase)
        except ValueError:
            raise UsageError(
                f"--until-phase: {selection.until_phase!r} is not one of expand, backfill, contract"
            ) from None
    run: list[Step] = []
    for step in steps:
        # a step key, or a migration: before its first pending step (check_names: it exists).
        if selection.stop_before in (step.key, step.migration.name):
            return tuple(run), Stop(StopReason.STOP_BEFORE, step, f"--stop-before {step.key}")
        if until is not None and step.phase.rank > until.rank:
            return tuple(run), Stop(
                StopReason.UNTIL_PHASE,
                step,
                f"next step is {step.phase.value}, --until-phase {until.value}",
            )
        if step.destructive and selection.destructive is not DestructivePolicy.ALLOW:
            approved = (
                step.key in selection.approve
                or step.migration.name in selection.approve
                or "*" in selection.approve  # the controller's wildcard approval
            )
            if selection.destructive is DestructivePolicy.DENY or not approved:
                return tuple(run), Stop(
                    StopReason.NEEDS_APPROVAL,
                    step,
                    f"destructive step ({step.summary}) needs --approve {step.key} "
                    f"(policy {selection.destructive.value})",
                )
        run.append(step)
    return tuple(run), None
