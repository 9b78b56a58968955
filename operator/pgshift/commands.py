"""One typed function per verb: the Python API, and what the CLI calls.

Every function returns a `Summary` (docs/runner.md) and raises `PgshiftError` for bad input.
Progress events go through `emit(event, **fields)` (the CLI wires it to `pgshift.logs`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from pgshift.engine import lock, tracking
from pgshift.engine.connect import Database, check_session, connect, parse_url
from pgshift.engine.result import Summary, db_error_retryable
from pgshift.errors import (
    EXIT_FAILED,
    BackfillKeyError,
    DatabaseError,
    DigestMismatch,
    OverridesError,
    PgshiftError,
    PooledConnection,
    UnknownMigration,
)
from pgshift.logs import redact
from pgshift.migrations import Layout, Migration, Source, read_source
from pgshift.settings import RunSettings, Tracking

if TYPE_CHECKING:  # the planner pulls in safety (pglast): backup and restore need neither
    from pgshift.engine.plan import Plan
    from pgshift.engine.state import DbState

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


@contextmanager
def session(
    url: str | None, settings: RunSettings
) -> Iterator[tuple[psycopg.Connection[Any], Database]]:
    """A checked connection (no transaction pooler) with the run's statement_timeout."""
    db = parse_url(url)
    conn = connect(db, application_name=settings.application_name)
    try:
        try:
            check_session(conn, db, application_name=settings.application_name)
        except psycopg.Error as exc:
            # e.g. pgbouncer in statement mode: "transaction blocks not allowed"
            raise PooledConnection(
                f"{db.display}: the session check failed ({exc.sqlstate}: "
                f"{redact(str(exc).strip().splitlines()[0] if str(exc).strip() else '')}): "
                "this connection does not behave like a PostgreSQL session"
            ) from None
        ms = int(settings.timeouts.statement_timeout * 1000)
        conn.execute(sql.SQL("SET statement_timeout = {}").format(sql.Literal(f"{ms}ms")))
        # PostgreSQL >= 14: a backend whose client died (a SIGKILLed Job) notices within a
        # second even mid-query or mid-lock-wait, rolls back and frees the migration lock.
        with contextlib.suppress(psycopg.Error):
            conn.execute("SET client_connection_check_interval = '1s'")
        try:
            yield conn, db
        except psycopg.Error as exc:
            # pgshift's own queries (tracking tables, planning); migration statements are
            # reported by the runner with their file and line.
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DatabaseError(
                f"{db.display}: {redact(text)} [{exc.sqlstate or '?'}]",
                hint="check the role's privileges on the tracking schema and the server's state",
                sqlstate=exc.sqlstate,
                retryable=db_error_retryable(exc),  # a restarting server, not a privilege
            ) from None
    finally:
        conn.close()


@contextmanager
def migration_lock(
    conn: psycopg.Connection[Any], settings: RunSettings, emit: Emit
) -> Iterator[int]:
    """Hold the migration lock for the block; yields the pid of the backend holding it."""

    def waiting(holder: lock.Holder | None) -> None:
        emit(
            "lock.waiting",
            holder=holder.describe() if holder else None,
            lockWaitS=settings.timeouts.lock_wait,
        )

    waited, pid = lock.acquire(conn, settings.timeouts.lock_wait, on_wait=waiting)
    emit("lock.acquired", waitedMs=int(waited * 1000))
    try:
        yield pid
    finally:
        if not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            # the session ends right after: if unlocking fails, the lock goes with it.
            with contextlib.suppress(psycopg.Error):
                lock.release(conn)


def _state(conn: psycopg.Connection[Any], source: Source, t: Tracking) -> DbState:
    from pgshift.engine.state import compare

    return compare(source, tracking.read_rows(conn, t))


def _plan(
    conn: psycopg.Connection[Any],
    source: Source,
    state: DbState,
    settings: RunSettings,
    overrides: dict[str, Any],
    done: set[str] | None = None,
) -> Plan:
    from pgshift.engine.analysis import (
        existing_tables,
        function_volatility,
        make_analyzer,
        source_functions,
    )
    from pgshift.engine.plan import build_plan

    analyzer = make_analyzer(
        overrides,
        rewrite=settings.selection.rewrite,
        existing=existing_tables(conn),
        functions=source_functions(source, function_volatility(conn)),
        enable=settings.lint_rules,
    )
    if done is None:
        done = tracking.done_steps(conn, settings.tracking)
    return build_plan(
        source,
        state,
        analyzer,
        done=done,
        target=settings.selection.target,
        version_of=_versions(overrides, settings),
    )


def _versions(overrides: dict[str, Any], settings: RunSettings) -> Callable[[Any], str]:
    """`plan.plan_version` of each migration under these overrides and --no-rewrite."""
    from pgshift.engine.steps import plan_version

    rewrite = settings.selection.rewrite
    return lambda m: plan_version(m, overrides.get(m.name), rewrite)


def _check_partial(
    conn: psycopg.Connection[Any],
    state: DbState,
    settings: RunSettings,
    overrides: dict[str, Any] | None = None,
) -> None:
    from pgshift.engine.state import check_partial

    check_partial(
        state,
        tracking.partial_files(conn, settings.tracking),
        settings.allow,
        _versions(overrides or {}, settings),
    )


def _resume_edited(
    conn: psycopg.Connection[Any],
    source: Source,
    state: DbState,
    settings: RunSettings,
    overrides: dict[str, Any],
    *,
    write: bool,
) -> dict[str, list[tuple[str, str]]]:
    """--resume-edited (engine.apply.resume_edited) over this run's pending files."""
    from pgshift.engine.analysis import make_analyzer
    from pgshift.engine.apply import resume_edited
    from pgshift.engine.plan import pending_up_to

    analyzer = make_analyzer(overrides, rewrite=settings.selection.rewrite, lint=False)
    return resume_edited(
        conn,
        settings.tracking,
        pending_up_to(source, state, settings.selection.target)[0],
        lambda m, render=True: analyzer(m, frozenset(), render=render),
        _versions(overrides, settings),
        write=write,
    )


def _check_names(
    source: Source, state: DbState, settings: RunSettings, overrides: Mapping[str, Any]
) -> None:
    """Every migration name and step key given to this run names something (plan.check_names);
    only a pending file that a key's hash names is analysed, to know its steps' keys."""
    from pgshift.engine.analysis import make_analyzer
    from pgshift.engine.plan import check_names
    from pgshift.engine.steps import cut_steps

    analyzer = make_analyzer(overrides, rewrite=settings.selection.rewrite, lint=False)
    version_of = _versions(dict(overrides), settings)

    def keys_of(m: Migration) -> list[str]:
        statements = analyzer(m, frozenset()).statements
        return [s.key for s in cut_steps(m, statements, (), version_of(m))]

    # override names were checked when they were read (source_overrides)
    check_names(source, state, settings.selection, keys_of)


def _preflight(
    conn: psycopg.Connection[Any],
    pending: list[Migration],
    settings: RunSettings,
    overrides: Mapping[str, Any],
) -> None:
    """What `analysis.quick_check` cannot see, before the lock and the first statement: the
    full analysis of each pending file that has `-- pgshift:` directives or an override (the
    checks of a directive against its statement, an override's backfill without an UPDATE),
    and the key of each backfill they ask for on a table that exists now and that no earlier
    statement of the run mentions (tables the run creates or alters are checked when their
    step runs: the catalog cannot know them yet)."""
    from pglast import parser

    from pgshift.engine import backfill as bf
    from pgshift.engine.analysis import existing_tables, make_analyzer

    analyzer = make_analyzer(overrides, rewrite=settings.selection.rewrite, lint=False)
    exists: Any = None
    trees: list[str] = []  # parse trees (JSON) of the files before this one, when first needed
    parsed = [0]  # how many files `trees` holds

    def mentioned_before(position: int, name: str) -> bool:
        for m in pending[parsed[0] : position]:
            trees.extend(parser.parse_sql_json(c.sql) for c in m.chunks)
        parsed[0] = max(parsed[0], position)
        needle = f'"relname":{json.dumps(name)}'
        return any(needle in tree for tree in trees)

    for position, m in enumerate(pending):
        if m.name not in overrides and "pgshift:" not in m.sql:
            continue
        analysis = analyzer(m, frozenset())
        for i, st in enumerate(analysis.statements):
            b = st.backfill
            if b is None or st.rewrite:  # pgshift's own batching falls back when it can't
                continue
            schema, name = b.table
            if any(
                t.split(".")[-1] == name for prior in analysis.statements[:i] for t in prior.tables
            ) or mentioned_before(position, name):
                continue
            if exists is None:
                exists = existing_tables(conn)
            if not exists(schema, name):
                continue
            try:
                bf.resolve_key(conn, b)
            except BackfillKeyError as exc:
                raise BackfillKeyError(
                    f"{m.path}:{st.line}: -- pgshift:backfill: {exc.message}"
                ) from None


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


def _migrations_table(state: DbState) -> list[dict[str, Any]]:
    return [
        {
            "name": ms.migration.name,
            "state": ms.state.value,
            **({"outOfOrder": True} if ms.out_of_order else {}),
        }
        for ms in state.migrations
    ]


def _problems(state: DbState) -> list[dict[str, str]]:
    return [{"code": p.code, "message": p.message} for p in state.problems()]


# --- verbs ---------------------------------------------------------------------------------


def plan(src: SourceOptions, url: str | None, settings: RunSettings) -> Summary:
    """Applied / pending / drifted per migration and the pending steps. Takes no lock, writes
    nothing. Named problems (OutOfOrder, Drift, UnknownApplied) raise unless allowed."""
    from pgshift.engine.plan import select

    source = load_source(src)
    overrides = source_overrides(source, src.overrides)
    check_digest(source, settings.selection.expect_digest)
    with session(url, settings) as (conn, _db):
        state = _state(conn, source, settings.tracking)
        _check_names(source, state, settings, overrides)
        state.check(settings.allow)
        _check_partial(conn, state, settings, overrides)
        from pgshift.engine.analysis import quick_check, server_major_of
        from pgshift.engine.plan import pending_up_to

        # what apply refuses before anything runs, plan names too (BEGIN, lock releases...)
        quick_check(
            pending_up_to(source, state, settings.selection.target)[0],
            overrides,
            server_major_of(conn),
        )
        done = tracking.done_steps(conn, settings.tracking)
        if settings.allow.resume_edited:  # what apply --resume-edited would count as done
            moved = _resume_edited(conn, source, state, settings, overrides, write=False)
            done |= {new for renames in moved.values() for _old, new in renames if new}
        the_plan = _plan(conn, source, state, settings, overrides, done)
    steps, stop = select(the_plan, settings.selection)
    summary = _base_summary("plan", source, state)
    findings = [*source_findings(source), *the_plan.findings]
    errors = sum(1 for f in findings if f.severity.value == "error")
    warnings = sum(1 for f in findings if f.severity.value == "warning")
    summary.stopped = stop.as_dict()
    summary.extra = {
        "steps": [s.as_dict() for s in the_plan.steps],
        "willRun": [s.key for s in steps],
        "affectedTables": the_plan.affected_tables,
        "findings": {"error": errors, "warning": warnings},
        "migrations": _migrations_table(state),
        "problems": _problems(state),
        "findingList": [f.as_dict() for f in findings],
    }
    return summary


def apply(
    src: SourceOptions, url: str | None, settings: RunSettings, emit: Emit = _quiet
) -> Summary:
    """Run the pending steps under the migration lock; stop where `settings.selection` says."""
    from pgshift.engine.analysis import (
        backfill_finder,
        function_volatility,
        make_analyzer,
        make_new_table_analyzer,
        quick_check,
        server_major_of,
        source_functions,
    )
    from pgshift.engine.apply import run_files
    from pgshift.engine.plan import Stop, StopReason, pending_up_to
    from pgshift.engine.state import compare
    from pgshift.engine.runner import Runner

    source = load_source(src)
    overrides = source_overrides(source, src.overrides)
    check_digest(source, settings.selection.expect_digest)
    with session(url, settings) as (conn, _db):
        # Bad input is reported before the lock is waited for or taken: disagreements with the
        # tracking table, and the syntax and directives of the pending files.
        state = compare(source, tracking.read_rows(conn, settings.tracking))
        _check_names(source, state, settings, overrides)
        state.check(settings.allow)
        _check_partial(conn, state, settings, overrides)
        pending_now = pending_up_to(source, state, settings.selection.target)[0]
        quick_check(pending_now, overrides, server_major_of(conn))
        version_of = _versions(overrides, settings)
        if settings.allow.resume_edited:  # an edited applied step is named before the lock
            _resume_edited(conn, source, state, settings, overrides, write=False)
        _preflight(conn, pending_now, settings, overrides)
        with migration_lock(conn, settings, emit) as lock_pid:
            form = tracking.ensure(conn, settings.tracking, source)
            # read again under the lock: another run may have applied files meanwhile.
            state = compare(source, tracking.read_rows(conn, settings.tracking))
            state.check(settings.allow)
            _check_partial(conn, state, settings, overrides)
            if settings.allow.resume_edited:
                moved = _resume_edited(conn, source, state, settings, overrides, write=True)
                for name, renames in moved.items():
                    emit("steps.resumedEdited", migration=name, moved=len(renames))
            # step records of another version of a pending file remain only with --allow-drift
            stale = tracking.partial_files(conn, settings.tracking)
            for ms in state.pending:
                version = version_of(ms.migration)
                if stale.get(ms.migration.name, set()) - {version}:
                    tracking.forget_other_versions(
                        conn, settings.tracking, ms.migration, version
                    )
            done = tracking.done_steps(conn, settings.tracking)
            pending, beyond = pending_up_to(source, state, settings.selection.target)
            emit("plan", pending=len(pending), beyondTarget=len(beyond))
            # the analysis depends on the files alone (safety.analyze), and on function
            # volatility, where the source's own CREATE FUNCTIONs win over the catalog.
            functions = source_functions(source, function_volatility(conn))
            analyzer = make_analyzer(
                overrides, rewrite=settings.selection.rewrite, lint=False, functions=functions
            )
            finder = backfill_finder(
                source, overrides, rewrite=settings.selection.rewrite, functions=functions
            )
            runner = Runner(conn, settings, form, emit, finder, lock_pid=lock_pid)
            outcome = run_files(
                runner,
                pending,
                lambda m, render=True: analyzer(m, frozenset(), render=render),
                done=done,
                selection=settings.selection,
                beyond=beyond,
                analyze_new=make_new_table_analyzer(
                    overrides, rewrite=settings.selection.rewrite, functions=functions
                ),
                version_of=version_of,
            )
            after = (
                state if conn.closed or conn.broken else _safe_state(conn, source, settings, state)
            )
    summary = _base_summary("apply", source, after)
    summary.applied = outcome.done
    summary.stopped = (outcome.stop or Stop(StopReason.DONE)).as_dict()
    summary.failure = outcome.failure
    summary.ok = outcome.failure is None
    summary.exit_code = outcome.exit_code
    summary.extra = {"appliedNow": outcome.applied_migrations}
    return summary


def _safe_state(
    conn: psycopg.Connection[Any], source: Source, settings: RunSettings, fallback: DbState
) -> DbState:
    try:
        return _state(conn, source, settings.tracking)
    except psycopg.Error:
        return fallback


def status(src: SourceOptions, url: str | None, settings: RunSettings) -> Summary:
    """What the database holds against the source (the `db:check`): never raises on
    disagreement; reports it, with `ok: false` and exit 1."""
    source = load_source(src)
    overrides = source_overrides(source, src.overrides)
    with session(url, settings) as (conn, _db):
        state = _state(conn, source, settings.tracking)
        partial = sorted(tracking.done_steps(conn, settings.tracking))
        form = tracking.current_form(conn, settings.tracking)
        files = tracking.partial_files(conn, settings.tracking)
    summary = _base_summary("status", source, state)
    from pgshift.engine.state import partial_drift

    versions = _versions(overrides, settings)
    problems = _problems(state) + [
        {"code": p.code, "message": p.message} for p in partial_drift(state, files, versions)
    ]
    summary.ok = not problems
    summary.exit_code = 0 if summary.ok else EXIT_FAILED
    summary.extra = {
        "trackingTable": f"{settings.tracking.schema}.{settings.tracking.table}",
        "trackingForm": form.value if form else None,
        "migrations": _migrations_table(state),
        "partialSteps": partial,
        "problems": problems,
    }
    return summary


def lint(src: SourceOptions, settings: RunSettings, server_version: int | None = None) -> Summary:
    """Findings only, offline: every table not created by the source is assumed to exist.
    With `server_version` (a major), syntax that major lacks is refused (SyntaxTooNew)."""
    from pgshift.engine.analysis import make_analyzer, quick_check, source_functions

    source = load_source(src)
    overrides = source_overrides(source, src.overrides)
    if server_version is not None:
        quick_check(source.migrations, overrides, server_version)

    # offline: what the source's CREATE FUNCTIONs say; any other non-builtin is volatile.
    analyzer = make_analyzer(
        overrides,
        rewrite=settings.selection.rewrite,
        functions=source_functions(source),
        enable=settings.lint_rules,
    )
    created: frozenset[str] = frozenset()
    keyless: Mapping[str, str] = {}
    findings = source_findings(source)
    for m in source.migrations:
        analysis = analyzer(m, created, keyless_before=keyless)  # type: ignore[call-arg]
        created = created | analysis.created_tables
        keyless = analysis.keyless
        findings.extend(analysis.findings)
    errors = sum(1 for f in findings if f.severity.value == "error")
    summary = Summary(
        command="lint",
        source_digest=source.digest,
        ok=errors == 0,
        exit_code=0 if errors == 0 else EXIT_FAILED,
    )
    summary.extra = {
        "findings": {
            "error": errors,
            "warning": sum(1 for f in findings if f.severity.value == "warning"),
        },
        "findingList": [f.as_dict() for f in findings],
    }
    return summary


def baseline(
    src: SourceOptions, url: str | None, settings: RunSettings, up_to: str, emit: Emit = _quiet
) -> Summary:
    """Adopt a database built by `drizzle-kit push`: record every migration up to `up_to` as
    applied without running it."""
    return _mark(src, url, settings, emit, command="baseline", up_to=up_to)


def mark_applied(
    src: SourceOptions, url: str | None, settings: RunSettings, name: str, emit: Emit = _quiet
) -> Summary:
    """Record one migration as applied without running it (a human fixed it by hand)."""
    return _mark(src, url, settings, emit, command="mark-applied", only=name)


def _mark(
    src: SourceOptions,
    url: str | None,
    settings: RunSettings,
    emit: Emit,
    *,
    command: str,
    up_to: str | None = None,
    only: str | None = None,
) -> Summary:
    source = load_source(src)
    check_digest(source, settings.selection.expect_digest)
    name = up_to or only or ""
    if source.get(name) is None:
        option = "--up-to" if up_to else "NAME"
        raise UnknownMigration(
            f"{command} {option} {name}: no migration of that name in {source.origin}"
        )
    limit = source.index_of(name)
    with session(url, settings) as (conn, _db), migration_lock(conn, settings, emit):
        form = tracking.ensure(conn, settings.tracking, source)
        state = _state(conn, source, settings.tracking)
        marked = []
        with conn.transaction():
            for i, ms in enumerate(state.migrations):
                if ms.state.value != "pending":
                    continue
                if (only is not None and ms.migration.name == only) or (
                    up_to is not None and i <= limit
                ):
                    tracking.insert_row(conn, settings.tracking, ms.migration, form)
                    marked.append(ms.migration.name)
                    emit("migration.marked", migration=ms.migration.name)
        after = _state(conn, source, settings.tracking)
    summary = _base_summary(command, source, after)
    summary.stopped = {"reason": "Done"}
    summary.extra = {"marked": marked}
    return summary


def backup(
    url: str | None,
    to: str,
    *,
    tables: list[str] | None = None,
    keep: int | None = None,
    lock_wait: float = 60.0,
    emit: Emit = _quiet,
) -> Summary:
    from pgshift.backup.dump import dump

    db = parse_url(url)
    info = dump(db, Path(to), tables=tables or [], lock_wait=lock_wait, keep=keep, emit=emit)
    summary = Summary(command="backup", stopped={"reason": "Done"})
    summary.extra = {"backup": info}
    return summary


def restore(url: str | None, from_: str, *, clean: bool = False, emit: Emit = _quiet) -> Summary:
    from pgshift.backup.restore import restore as do_restore

    db = parse_url(url)
    info = do_restore(db, Path(from_), clean=clean, emit=emit)
    summary = Summary(command="restore", stopped={"reason": "Done"})
    summary.extra = {"restore": info}
    return summary


def to_json(summary: Summary) -> str:
    return json.dumps(summary.as_dict(), default=str)
