"""The plan. PURE: a source, its state (`engine.state`) and safety's analyses in; a plan out.

The pending files up to the target, each cut into steps (`engine.steps`); which of them a run
executes and where and why it stops (`select`, `select_steps`); the names a run was given
checked against the source (`check_names`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from pgshift.contract.summary import StopReason
from pgshift.engine.state import DbState
from pgshift.engine.steps import Step, cut_steps
from pgshift.errors import UnknownMigration, UnknownStep, UsageError
from pgshift.migrations.model import Migration, Source
from pgshift.migrations.names import KeysOf, unmatched_names
from pgshift.safety.model import Analysis, Finding, Phase
from pgshift.settings import DestructivePolicy, Selection


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


class Analyze(Protocol):
    """The stable analysis of one file under a run's settings (`engine.analysis.FileAnalyzer`):
    `render=False` leaves rewritten statements' SQL out (the plan's shape); `new_tables`: the
    form in which those tables are known to be new (see `engine/apply.py`); `as_written`: that
    form, where also a CREATE TABLE IF NOT EXISTS of a table the catalog lacks creates it."""

    def __call__(
        self,
        migration: Migration,
        *,
        render: bool = True,
        new_tables: frozenset[str] = frozenset(),
        as_written: bool = False,
    ) -> Analysis: ...


def check_names(
    source: Source,
    state: DbState,
    selection: Selection,
    keys_of: KeysOf,
    overrides: Collection[str] = (),
    drift_names: Collection[str] = (),
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
    names_only += [("--allow-drift", name) for name in sorted(drift_names)]
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
    analyze: Analyze,
    *,
    done: Collection[str] = (),
    target: str | None = None,
    version_of: Callable[[Migration], str] | None = None,
) -> Plan:
    """Analyse each pending migration up to `target` (each on its own: `safety.analyze`) and
    cut it into steps."""
    pending, beyond = pending_up_to(source, state, target)
    steps: list[Step] = []
    findings: list[Finding] = []
    analyses: dict[str, Analysis] = {}
    for m in pending:
        analysis = analyze(m)
        analyses[m.name] = analysis
        findings.extend(analysis.findings)
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
