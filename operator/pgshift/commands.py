"""One typed function per verb: the Python API, and what the CLI calls.

Every function returns a `Summary` (docs/runner.md) and raises `PgshiftError` for bad input.
Progress events go through `emit(event, **fields)` (the CLI wires it to `pgshift.logs`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pgshift.contract.summary import (
    BackupResult,
    FindingCounts,
    LintResult,
    MigrationState,
    PlanResult,
    PlanStep,
    RestoreResult,
    RollbackResult,
    SourceProblem,
    StatusResult,
    Stopped,
    StopReason,
    VerifyResult,
)
from pgshift.contract.summary import DriftItem as DriftRecord
from pgshift.contract.summary import Finding as FindingRecord
from pgshift.engine.connect import parse_url
from pgshift.engine.result import Summary
from pgshift.errors import (
    EXIT_FAILED,
    DigestMismatch,
    OverridesError,
    PgshiftError,
    UnknownMigration,
)
from pgshift.migrations import Layout, Source, read_source
from pgshift.settings import RunSettings, Tracking

if TYPE_CHECKING:  # the engine session pulls in safety (pglast): backup and restore need neither
    from pgshift.engine.plan import Plan, Stop
    from pgshift.engine.runner import Outcome
    from pgshift.engine.session import (
        Applied,
        EngineSession,
        RollbackPreview,
        RolledBack,
        StatusReport,
    )
    from pgshift.engine.state import DbState
    from pgshift.safety.model import Finding

Emit = Callable[..., None]


def _quiet(event: str, **fields: Any) -> None:
    return None


@dataclass(frozen=True)
class SourceOptions:
    dir: str = "."
    layout: str = "auto"
    #: YAML/JSON file: migration name -> directives (the shape of `spec.overrides`).
    overrides: str | None = None


# --- shared pieces -----------------------------------------------------------------------------


def load_source(opts: SourceOptions) -> Source:
    try:
        layout = Layout(opts.layout)
    except ValueError:
        raise PgshiftError(
            f"--layout: {opts.layout!r} is not one of {', '.join(v.value for v in Layout)}"
        ) from None
    return read_source(opts.dir, layout)


def load_overrides(path: str | None) -> dict[str, Any]:
    from pgshift.safety.directives import parse_overrides

    if not path:
        return {}
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise OverridesError(f"--overrides {path}: cannot read ({exc.strerror})") from None
    try:
        import yaml

        data = yaml.safe_load(text)  # YAML is a superset of JSON
    except Exception as exc:
        raise OverridesError(
            f"--overrides {path}: not YAML/JSON ({str(exc).splitlines()[0]})"
        ) from None
    return parse_overrides(data, path)


def source_overrides(source: Source, path: str | None) -> dict[str, Any]:
    """`--overrides` for this source: a key that names no migration of it is an error (a typo
    would silently leave the file it meant without its settings)."""
    from pgshift.migrations.names import unmatched_names

    overrides = load_overrides(path)
    unmatched = unmatched_names(
        source, [(f"--overrides {path}:", name) for name in overrides], step_keys=False
    )
    if unmatched:
        raise UnknownMigration(unmatched[0].message(source.origin), name=unmatched[0].name)
    return overrides


#: the id of the finding for files the source holds but drizzle's migrator never reads.
UNLISTED_RULE = "unlisted-migration-file"


def source_findings(source: Source) -> list[Any]:
    """Findings about the source itself, beside the rules' findings on statements: each file
    drizzle ignores (not in the journal; a v1 folder without migration.sql), pgshift ignores too
    (compatibility), and says so, since a backfill lost that way goes unnoticed."""
    from pgshift.safety.model import Finding, Severity

    why = (
        "not listed in meta/_journal.json: drizzle and pgshift never apply it"
        if source.layout is Layout.DRIZZLE
        else "has no migration.sql: drizzle and pgshift never apply it"
    )
    return [
        Finding(
            rule=UNLISTED_RULE,
            severity=Severity.WARNING,
            message=f"{path} {why}",
            path=path,
            line=1,
            help="add it with drizzle-kit (generate --custom) or delete it",
            docs="docs/drizzle.md",
        )
        for path in source.unlisted
    ]


def check_digest(source: Source, expected: str | None) -> None:
    if expected and expected != source.digest:
        raise DigestMismatch(
            f"--expect-digest {expected}: the source {source.origin} has digest {source.digest}"
        )


# --- verbs ---------------------------------------------------------------------------------


def _inputs(src: SourceOptions, settings: RunSettings) -> tuple[Source, dict[str, Any]]:
    """The source and its overrides, checked against `--expect-digest`."""
    source = load_source(src)
    overrides = source_overrides(source, src.overrides)
    check_digest(source, settings.selection.expect_digest)
    return source, overrides


def _session(
    source: Source,
    overrides: dict[str, Any],
    settings: RunSettings,
    url: str | None,
    emit: Emit = _quiet,
) -> EngineSession:
    from pgshift.engine.session import EngineSession

    return EngineSession(source, overrides, settings, url, emit)


def plan(
    src: SourceOptions, url: str | None, settings: RunSettings, rollback_to: str | None = None
) -> Summary:
    """Applied / pending / drifted per migration and the pending steps. Takes no lock, writes
    nothing. Named problems (OutOfOrder, Drift, UnknownApplied) raise unless allowed."""
    source, overrides = _inputs(src, settings)
    with _session(source, overrides, settings, url) as engine:
        the_plan = engine.plan()
        # a target below what is applied: what a rollback to it would undo (and its lint).
        to = rollback_to or settings.selection.target
        preview = engine.rollback_preview(the_plan.state, to) if to else None
    summary = _plan_summary(source, the_plan, settings, preview)
    return summary


def rollback(
    src: SourceOptions,
    url: str | None,
    settings: RunSettings,
    to: str,
    *,
    backup_dir: str | None = None,
    keep: int | None = None,
    dump_lock_wait: float = 60.0,
    emit: Emit = _quiet,
) -> Summary:
    """Undo the migrations applied after `to`, newest first, by their down files, under the
    migration lock. With `backup_dir`: a whole-database backup there first, under the lock,
    before the first down step (none when nothing is to undo)."""
    source, overrides = _inputs(src, settings)
    if not to.strip():
        raise UnknownMigration("--to: empty; name the migration to go back to")
    taken: list[BackupResult] = []

    def back_up() -> None:
        import datetime as dt
        import re

        from pgshift.backup.dump import dump

        assert backup_dir is not None
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        name = re.sub(r"[^A-Za-z0-9._-]", "_", to)[:80]
        path = Path(backup_dir) / f"{stamp}-rollback-to-{name}.dump"
        emit("backup.started", file=str(path), scope="database", why="rollback")
        info = dump(
            parse_url(url),
            path,
            tables=[],
            lock_wait=dump_lock_wait,
            keep=keep,
            emit=emit,
            tracking=settings.tracking,
            migrations=[m.name for m in source.migrations],
            # the rollback's session holds the migration lock while this runs
            lock_held=True,
        )
        taken.append(BackupResult.from_dict(info))

    hint = (
        f"add the down file, or restore a backup of {backup_dir} taken before it "
        "(pgshift restore --from <dump> --clean)"
        if backup_dir
        else ""
    )
    with _session(source, overrides, settings, url, emit) as engine:
        done = engine.rollback(
            to, before_first_step=back_up if backup_dir else None, restore_hint=hint
        )
    return _rollback_summary(source, to, done, taken[0] if taken else None)


def apply(
    src: SourceOptions, url: str | None, settings: RunSettings, emit: Emit = _quiet
) -> Summary:
    """Run the pending steps under the migration lock; stop where `settings.selection` says."""
    source, overrides = _inputs(src, settings)
    with _session(source, overrides, settings, url, emit) as engine:
        applied = engine.apply()
    return _apply_summary(source, applied)


def status(src: SourceOptions, url: str | None, settings: RunSettings) -> Summary:
    """What the database holds against the source (the `db:check`): never raises on
    disagreement; reports it, with `ok: false` and exit 1."""
    source = load_source(src)
    overrides = source_overrides(source, src.overrides)
    with _session(source, overrides, settings, url) as engine:
        report = engine.status()
    return _status_summary(source, report, settings)


def lint(src: SourceOptions, settings: RunSettings, server_version: int | None = None) -> Summary:
    """Findings only, offline: every table not created by the source is assumed to exist, and
    every function it does not define is volatile. With `server_version` (a major), syntax
    that major lacks is refused (SyntaxTooNew)."""
    from pgshift.engine.analysis import quick_check
    from pgshift.safety import CatalogFacts, analyze_all

    source = load_source(src)
    overrides = source_overrides(source, src.overrides)
    facts = CatalogFacts(server_major=server_version)
    if server_version is not None:
        quick_check(source.migrations, overrides, facts)
    analyses = analyze_all(
        source.migrations,
        overrides=overrides,
        facts=facts,
        rewrite=settings.selection.rewrite,
        enable=settings.lint_rules,
    )
    # down files are linted as any other SQL (their overrides would be the up file's: none).
    downs = analyze_all(
        source.downs, overrides={}, facts=facts, rewrite=settings.selection.rewrite,
        enable=settings.lint_rules,
    ) if source.downs else []
    findings = source_findings(source) + [f for a in [*analyses, *downs] for f in a.findings]
    return _lint_summary(source, findings)


def baseline(
    src: SourceOptions, url: str | None, settings: RunSettings, up_to: str, emit: Emit = _quiet
) -> Summary:
    """Adopt a database built by `drizzle-kit push`: record every migration up to `up_to` as
    applied without running it."""
    source = _named(src, settings, "baseline", "--up-to", up_to)
    with _session(source, {}, settings, url, emit) as engine:
        marked, after = engine.baseline(up_to)
    return _mark_summary("baseline", source, after, marked)


def mark_applied(
    src: SourceOptions, url: str | None, settings: RunSettings, name: str, emit: Emit = _quiet
) -> Summary:
    """Record one migration as applied without running it (a human fixed it by hand)."""
    source = _named(src, settings, "mark-applied", "NAME", name)
    with _session(source, {}, settings, url, emit) as engine:
        marked, after = engine.mark_applied(name)
    return _mark_summary("mark-applied", source, after, marked)


def _named(
    src: SourceOptions, settings: RunSettings, command: str, option: str, name: str
) -> Source:
    """The source of a marking verb, which must hold a migration `name`."""
    source = load_source(src)
    check_digest(source, settings.selection.expect_digest)
    if source.get(name) is None:
        raise UnknownMigration(
            f"{command} {option} {name}: no migration of that name in {source.origin}"
        )
    return source


# --- summaries -----------------------------------------------------------------------------


def _base_summary(command: str, source: Source, state: DbState) -> Summary:
    pending = [ms.migration.name for ms in state.pending]
    return Summary(
        command=command,
        source_digest=source.digest,
        applied_count=len(state.applied),
        pending_count=len(pending),
        pending=pending,
        last_applied=state.last_applied,
    )


def _migrations_table(state: DbState) -> tuple[MigrationState, ...]:
    return tuple(
        MigrationState(ms.migration.name, ms.state.value, ms.out_of_order)
        for ms in state.migrations
    )


def _problems(state: DbState) -> tuple[SourceProblem, ...]:
    return tuple(SourceProblem(p.code, p.message) for p in state.problems())


def _finding_counts(findings: list[Finding]) -> tuple[int, int]:
    from pgshift.safety.model import Severity  # loaded already: the findings are its values

    errors = sum(1 for f in findings if f.severity is Severity.ERROR)
    warnings = sum(1 for f in findings if f.severity is Severity.WARNING)
    return errors, warnings


def _plan_summary(
    source: Source,
    the_plan: Plan,
    settings: RunSettings,
    preview: RollbackPreview | None = None,
) -> Summary:
    from pgshift.engine.plan import select

    steps, stop = select(the_plan, settings.selection)
    state = the_plan.state
    summary = _base_summary("plan", source, state)
    findings = [*source_findings(source), *the_plan.findings]
    if preview is not None:
        findings += preview.findings
        summary.rollback = RollbackResult(
            to=preview.to,
            undo=preview.undo,
            missing=preview.missing,
            destructive=preview.destructive,
            contract=preview.contract,
            steps=preview.steps,
        )
    errors, warnings = _finding_counts(findings)
    summary.stopped = Stopped.from_dict(stop.as_dict())
    summary.plan = PlanResult(
        steps=tuple(PlanStep.from_dict(s.as_dict()) for s in the_plan.steps),
        will_run=tuple(s.key for s in steps),
        affected_tables=tuple(the_plan.affected_tables),
        findings=FindingCounts(errors, warnings),
        migrations=_migrations_table(state),
        problems=_problems(state),
        finding_list=tuple(FindingRecord.from_dict(f.as_dict()) for f in findings),
    )
    return summary


def _run_summary(command: str, source: Source, outcome: Outcome, state: DbState) -> Summary:
    """The summary of a run of steps (apply, rollback): what ran, where it stopped, why."""
    from pgshift.engine.plan import Stop

    stop: Stop = outcome.stop or Stop(StopReason.DONE)
    summary = _base_summary(command, source, state)
    summary.applied = outcome.done
    summary.stopped = Stopped.from_dict(stop.as_dict())
    summary.failure = outcome.failure
    summary.ok = outcome.failure is None
    summary.exit_code = outcome.exit_code
    return summary


def _apply_summary(source: Source, applied: Applied) -> Summary:
    summary = _run_summary("apply", source, applied.outcome, applied.state)
    summary.applied_now = list(applied.outcome.applied_migrations)
    return summary


def _rollback_summary(
    source: Source, to: str, done: RolledBack, backup: BackupResult | None
) -> Summary:
    from pgshift.engine.rollback import applied_after

    outcome = done.outcome
    summary = _run_summary("rollback", source, outcome, done.state)
    summary.backup = backup
    summary.rollback = RollbackResult(
        to=to,
        undo=tuple(applied_after(source, done.state, to)),
        undone=tuple(outcome.applied_migrations),
    )
    return summary


def _status_summary(source: Source, report: StatusReport, settings: RunSettings) -> Summary:
    summary = _base_summary("status", source, report.state)
    problems = _problems(report.state) + tuple(
        SourceProblem(p.code, p.message) for p in report.partial_drift
    )
    summary.ok = not problems
    summary.exit_code = 0 if summary.ok else EXIT_FAILED
    summary.status = StatusResult(
        tracking_table=f"{settings.tracking.schema}.{settings.tracking.table}",
        tracking_form=report.form.value if report.form else None,
        migrations=_migrations_table(report.state),
        partial_steps=tuple(report.partial_steps),
        problems=problems,
    )
    return summary


def _lint_summary(source: Source, findings: list[Finding]) -> Summary:
    errors, warnings = _finding_counts(findings)
    summary = Summary(
        command="lint",
        source_digest=source.digest,
        ok=errors == 0,
        exit_code=0 if errors == 0 else EXIT_FAILED,
    )
    summary.lint = LintResult(
        findings=FindingCounts(errors, warnings),
        finding_list=tuple(FindingRecord.from_dict(f.as_dict()) for f in findings),
    )
    return summary


def _mark_summary(command: str, source: Source, after: DbState, marked: list[str]) -> Summary:
    summary = _base_summary(command, source, after)
    summary.stopped = Stopped(StopReason.DONE)
    summary.marked = marked
    return summary


# --- backup and restore ------------------------------------------------------------------


def backup(
    url: str | None,
    to: str,
    *,
    tables: list[str] | None = None,
    keep: int | None = None,
    lock_wait: float = 60.0,
    emit: Emit = _quiet,
    tracking: Tracking | None = None,
    src: SourceOptions | None = None,
) -> Summary:
    """The dump and its manifest; with a source, the saved progress rows are its files' only."""
    from pgshift.backup.dump import dump

    db = parse_url(url)
    names = [m.name for m in load_source(src).migrations] if src is not None else None
    info = dump(
        db,
        Path(to),
        tables=tables or [],
        lock_wait=lock_wait,
        keep=keep,
        emit=emit,
        tracking=tracking,
        migrations=names,
    )
    summary = Summary(command="backup", stopped=Stopped(StopReason.DONE))
    summary.backup = BackupResult.from_dict(info)
    return summary


def restore(
    url: str | None,
    from_: str,
    *,
    clean: bool = False,
    emit: Emit = _quiet,
    src: SourceOptions | None = None,
    restore_id: str = "",
    lock_wait: float = 60.0,
) -> Summary:
    """The dump back, and its saved rows; with a source, the check of migrations applied after
    the backup against a table-scoped dump names them, and they read as pending again."""
    from pgshift.backup.restore import restore as do_restore

    db = parse_url(url)
    source = load_source(src) if src is not None else None
    overrides = source_overrides(source, src.overrides) if source and src else {}
    info = do_restore(
        db,
        Path(from_),
        clean=clean,
        emit=emit,
        source=source,
        overrides=overrides,
        restore_id=restore_id,
        lock_wait=lock_wait,
    )
    summary = Summary(command="restore", stopped=Stopped(StopReason.DONE))
    summary.restore = RestoreResult.from_dict(info)
    return summary


# --- verification ----------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyChoices:
    """`pgshift verify`'s own options (`engine.verify.VerifyOptions` once checked)."""

    #: the scratch server (default: env SCRATCH_DATABASE_URL).
    scratch_url: str | None = None
    #: `--ignore` patterns: NAME or KIND:NAME, fnmatch (`index:public.*_dba_idx`).
    ignore: tuple[str, ...] = ()
    #: `--baseline NAME`: compare only objects of the migrations after NAME.
    baseline: str | None = None
    #: `--allow-external`: replay statements that reach past the database anyway.
    allow_external: bool = False


def verify(
    src: SourceOptions,
    url: str | None,
    settings: RunSettings,
    choices: VerifyChoices,
    emit: Emit = _quiet,
) -> Summary:
    """Production's schema against the schema its applied migrations build on an empty scratch
    database (docs/runner.md, "verify"): `ok: false` and exit 1 on drift."""
    from pgshift.engine.verify import VerifyOptions
    from pgshift.engine.verify import verify as run_verify
    from pgshift.errors import UsageError
    from pgshift.schemadiff.compare import BadIgnorePattern, IgnoreList

    try:
        ignore = IgnoreList(tuple(choices.ignore))
    except BadIgnorePattern as exc:
        raise UsageError(f"--ignore {exc}") from None
    source, overrides = _inputs(src, settings)
    options = VerifyOptions(
        scratch_url=choices.scratch_url,
        ignore=ignore,
        baseline_up_to=choices.baseline,
        allow_external=choices.allow_external,
    )
    verified = run_verify(source, overrides, settings, url, options, emit)
    comparison = verified.comparison
    summary = Summary(
        command="verify", source_digest=source.digest, stopped=Stopped(StopReason.DONE)
    )
    summary.ok = not comparison.drift and not verified.snapshot_drift
    summary.exit_code = 0 if summary.ok else EXIT_FAILED
    summary.last_applied = verified.expected_up_to
    summary.verify = VerifyResult(
        in_sync=summary.ok,
        drift=_drift_records(comparison.drift),
        ignored=comparison.ignored,
        compared=comparison.compared,
        schemas=verified.schemas,
        expected_up_to=verified.expected_up_to,
        pending=verified.pending,
        baseline_up_to=choices.baseline,
        cleaned=verified.cleaned,
        snapshot=verified.snapshot_file,
        snapshot_drift=_drift_records(verified.snapshot_drift),
    )
    return summary


def _drift_records(drift: tuple[Any, ...]) -> tuple[DriftRecord, ...]:
    return tuple(
        DriftRecord(d.kind.value, d.object_kind.value, d.name, d.attribute, d.message)
        for d in drift
    )


def to_json(summary: Summary) -> str:
    return json.dumps(summary.as_dict(), default=str)
