"""One run's hold on a database: the engine behind every verb that connects.

`EngineSession` is a context manager over a checked connection (no transaction pooler, the
run's statement_timeout). It reads the database's state (`engine.state`) and catalog facts
(`safety.facts.CatalogFacts`) once per look at the database — before the migration lock, and
again once the lock is held, since another run may have applied files meanwhile — and runs the
verbs on them: `plan()`, `apply()`, `status()`, `mark()` (baseline, mark-applied). Bad input
is refused before the lock is waited for and before anything is written (`check_input`).
`pgshift.commands` turns what these return into summaries.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import psycopg
from psycopg import sql

from pgshift.engine import lock, tracking
from pgshift.engine.analysis import (
    FileAnalyzer,
    backfill_finder,
    catalog_facts,
    quick_check,
)
from pgshift.engine.apply import resume_edited, run_files
from pgshift.engine.connect import check_session, connect, parse_url
from pgshift.engine.plan import Plan, build_plan, check_names, pending_up_to
from pgshift.engine.result import db_error_retryable
from pgshift.engine.rollback import applied_after, plan_rollback
from pgshift.engine.runner import Outcome, Runner
from pgshift.engine.state import DbState, State, check_partial, compare, partial_drift
from pgshift.engine.steps import cut_steps, plan_version
from pgshift.errors import BackfillKeyError, DatabaseError, Drift, PooledConnection
from pgshift.logs import redact
from pgshift.migrations.model import Migration, Source, TrackingForm
from pgshift.safety.facts import CatalogFacts
from pgshift.safety.model import Directives, Finding, Phase
from pgshift.settings import RunSettings

Emit = Callable[..., None]


def quiet(event: str, **fields: Any) -> None:
    """An `emit` that reports nothing."""
    return None


@contextmanager
def connected(url: str | None, settings: RunSettings) -> Iterator[psycopg.Connection[Any]]:
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
            yield conn
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


@dataclass(frozen=True)
class Applied:
    """What `EngineSession.apply` did: the runner's outcome and the state after it."""

    outcome: Outcome
    state: DbState


@dataclass(frozen=True)
class RolledBack:
    """What `EngineSession.rollback` did: the runner's outcome (its `applied_migrations` are
    the migrations undone), the migrations it set out to undo (newest first), and the state
    after."""

    outcome: Outcome
    undo: tuple[str, ...]
    state: DbState


@dataclass(frozen=True)
class RollbackPreview:
    """What a rollback to `to` would undo (`EngineSession.rollback_preview`), for a plan."""

    to: str
    undo: tuple[str, ...]
    missing: tuple[str, ...]
    destructive: tuple[str, ...]
    contract: tuple[str, ...]
    steps: tuple[str, ...]
    findings: tuple[Finding, ...]


@dataclass(frozen=True)
class StatusReport:
    """What `EngineSession.status` found: the state, the recorded steps of partly applied
    files, the tracking table's form, and partly applied files cut from another version."""

    state: DbState
    partial_steps: list[str]
    form: TrackingForm | None
    partial_drift: list[Drift]


class EngineSession:
    """The engine for one verb on one database (see the module). Use as a context manager."""

    def __init__(
        self,
        source: Source,
        overrides: Mapping[str, Directives],
        settings: RunSettings,
        url: str | None,
        emit: Emit = quiet,
    ) -> None:
        self.source = source
        self.overrides = overrides
        self.settings = settings
        self.emit = emit
        self._url = url
        self._stack = contextlib.ExitStack()
        self._conn: psycopg.Connection[Any] | None = None
        self._facts: CatalogFacts | None = None

    def __enter__(self) -> EngineSession:
        self._conn = self._stack.enter_context(connected(self._url, self.settings))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        self._conn = None
        return self._stack.__exit__(exc_type, exc, tb)

    # --- what the database holds -------------------------------------------------------------

    @property
    def conn(self) -> psycopg.Connection[Any]:
        if self._conn is None:
            raise RuntimeError("EngineSession used outside its `with` block")
        return self._conn

    def read_state(self) -> DbState:
        """The source compared with the tracking table, now."""
        return compare(self.source, tracking.read_rows(self.conn, self.settings.tracking))

    @property
    def facts(self) -> CatalogFacts:
        """The catalog facts, read when first needed since the last look (see the module)."""
        if self._facts is None:
            self._facts = catalog_facts(self.conn)
        return self._facts

    def analyzer(self, *, lint: bool = False) -> FileAnalyzer:
        """The one analyzer of this run's files (`lint`: with findings, for `plan`)."""
        return FileAnalyzer(
            self.source,
            self.overrides,
            rewrite=self.settings.selection.rewrite,
            facts=self.facts,
            lint=lint,
            enable=self.settings.lint_rules if lint else frozenset(),
        )

    def version_of(self, migration: Migration) -> str:
        """`steps.plan_version` of a migration under these overrides and --no-rewrite."""
        return plan_version(
            migration, self.overrides.get(migration.name), self.settings.selection.rewrite
        )

    def pending(self, state: DbState) -> tuple[list[Migration], list[str]]:
        """The pending migrations up to the target, and the names of those after it."""
        return pending_up_to(self.source, state, self.settings.selection.target)

    # --- bad input, before anything is touched -----------------------------------------------

    def check_input(self) -> DbState:
        """Read the state and refuse what this run must not do before the lock is waited for:
        names that name nothing, disagreements with the tracking table (unless allowed), a
        partly applied file cut from another version, and the syntax, directives and
        statements (BEGIN, lock releases...) of the pending files (`quick_check`)."""
        state = self.read_state()
        self._check_names(state)
        state.check(self.settings.allow)
        self._check_partial(state)
        quick_check(self.pending(state)[0], self.overrides, self.facts)
        return state

    def _check_names(self, state: DbState) -> None:
        """Every migration name and step key given to this run names something
        (`plan.check_names`); only a pending file that a key's hash names is analysed, to know
        its steps' keys. Override names were checked when they were read."""
        analyze = self.analyzer()

        def keys_of(m: Migration) -> list[str]:
            statements = analyze(m).statements
            return [s.key for s in cut_steps(m, statements, (), self.version_of(m))]

        check_names(
            self.source,
            state,
            self.settings.selection,
            keys_of,
            drift_names=self.settings.allow.drift_only,
        )

    def _check_partial(self, state: DbState) -> None:
        check_partial(
            state,
            tracking.partial_files(self.conn, self.settings.tracking),
            self.settings.allow,
            self.version_of,
        )

    def _resume_edited(self, state: DbState, *, write: bool) -> dict[str, list[tuple[str, str]]]:
        """--resume-edited (`engine.apply.resume_edited`) over this run's pending files."""
        analyze = self.analyzer()
        return resume_edited(
            self.conn,
            self.settings.tracking,
            self.pending(state)[0],
            analyze,
            self.version_of,
            write=write,
        )

    def _preflight(self, pending: list[Migration]) -> None:
        """What `quick_check` cannot see, before the lock and the first statement: the full
        analysis of each pending file that has `-- pgshift:` directives or an override (the
        checks of a directive against its statement, an override's backfill without an
        UPDATE), and the key of each backfill they ask for on a table that exists now and that
        no earlier statement of the run mentions (tables the run creates or alters are checked
        when their step runs: the catalog cannot know them yet)."""
        if not pending:  # a no-op deploy loads neither pglast nor the rules
            return
        from pglast import parser

        from pgshift.engine import backfill as bf

        analyze = self.analyzer()
        trees: list[str] = []  # parse trees (JSON) of the files before this one, when first needed
        parsed = 0  # how many files `trees` holds

        def mentioned_before(position: int, name: str) -> bool:
            nonlocal parsed
            for m in pending[parsed:position]:
                trees.extend(parser.parse_sql_json(c.sql) for c in m.chunks)
            parsed = max(parsed, position)
            needle = f'"relname":{json.dumps(name)}'
            return any(needle in tree for tree in trees)

        for position, m in enumerate(pending):
            if m.name not in self.overrides and "pgshift:" not in m.sql:
                continue
            analysis = analyze(m)
            for i, st in enumerate(analysis.statements):
                b = st.backfill
                if b is None or st.rewrite:  # pgshift's own batching falls back when it can't
                    continue
                schema, name = b.table
                if any(
                    t.split(".")[-1] == name
                    for prior in analysis.statements[:i]
                    for t in prior.tables
                ) or mentioned_before(position, name):
                    continue
                if not self.facts.table_exists(schema, name):
                    continue
                try:
                    bf.resolve_key(self.conn, b)
                except BackfillKeyError as exc:
                    raise BackfillKeyError(
                        f"{m.path}:{st.line}: -- pgshift:backfill: {exc.message}"
                    ) from None

    # --- verbs -----------------------------------------------------------------------------

    def plan(self) -> Plan:
        """The pending steps, with findings; takes no lock, writes nothing. With
        --resume-edited, the steps it would move count as done."""
        state = self.check_input()
        done = tracking.done_steps(self.conn, self.settings.tracking)
        if self.settings.allow.resume_edited:
            moved = self._resume_edited(state, write=False)
            done |= {new for renames in moved.values() for _old, new in renames if new}
        return build_plan(
            self.source,
            state,
            self.analyzer(lint=True),
            done=done,
            target=self.settings.selection.target,
            version_of=self.version_of,
        )

    def apply(self) -> Applied:
        """Run the pending steps under the migration lock; stop where the selection says."""
        state = self.check_input()
        if self.settings.allow.resume_edited:  # an edited applied step is named before the lock
            self._resume_edited(state, write=False)
        self._preflight(self.pending(state)[0])
        conn, t = self.conn, self.settings.tracking
        with migration_lock(conn, self.settings, self.emit) as lock_pid:
            form = tracking.ensure(conn, t, self.source)
            # read again under the lock: another run may have applied files meanwhile.
            self._facts = None
            state = self.read_state()
            state.check(self.settings.allow)
            self._check_partial(state)
            if self.settings.allow.resume_edited:
                moved = self._resume_edited(state, write=True)
                for name, renames in moved.items():
                    self.emit("steps.resumedEdited", migration=name, moved=len(renames))
            # step records of another version of a pending file remain only with --allow-drift
            stale = tracking.partial_files(conn, t)
            for ms in state.pending:
                version = self.version_of(ms.migration)
                if stale.get(ms.migration.name, set()) - {version}:
                    tracking.forget_other_versions(conn, t, ms.migration, version)
            done = tracking.done_steps(conn, t)
            pending, beyond = self.pending(state)
            self.emit("plan", pending=len(pending), beyondTarget=len(beyond))
            # the analysis depends on the files alone (safety.analyze), and on function
            # volatility, where the source's own CREATE FUNCTIONs win over the catalog.
            analyze = self.analyzer()
            runner = Runner(
                conn, self.settings, form, self.emit, backfill_finder(analyze), lock_pid=lock_pid
            )
            outcome = run_files(
                runner,
                pending,
                analyze,
                done=done,
                selection=self.settings.selection,
                beyond=beyond,
                version_of=self.version_of,
            )
            after = state if conn.closed or conn.broken else self._state_or(state)
        return Applied(outcome, after)

    # --- rollback (engine/rollback.py) ---------------------------------------------------------

    def down_analyzer(self, *, lint: bool = False) -> FileAnalyzer:
        """The analyzer of down files: no overrides (they are keyed by the up file's name and
        describe it, not its down file), the run's --no-rewrite and lint rules."""
        return FileAnalyzer(
            self.source,
            {},
            rewrite=self.settings.selection.rewrite,
            facts=self.facts,
            lint=lint,
            enable=self.settings.lint_rules if lint else frozenset(),
        )

    def rollback_preview(self, state: DbState, to: str) -> RollbackPreview | None:
        """What a rollback to `to` would undo, with the down files' lint findings; None when
        nothing after `to` is applied. Takes no lock, writes nothing, raises nothing for a
        missing down file (a plan reports it)."""
        names = applied_after(self.source, state, to)
        if not names:
            return None
        analyze = self.down_analyzer(lint=True)
        missing: list[str] = []
        destructive: list[str] = []
        contract: list[str] = []
        steps: list[str] = []
        findings: list[Finding] = []
        done = tracking.done_steps(self.conn, self.settings.tracking)
        for name in names:
            down = self.source.down_of(name)
            if down is None:
                missing.append(name)
                continue
            analysis = analyze(down)
            findings.extend(analysis.findings)
            cut = cut_steps(down, analysis.statements, done)
            steps.extend(s.key for s in cut if not s.done)
            errors = any(f.severity == "error" for f in analysis.findings)
            if errors or any(s.destructive for s in cut):
                destructive.append(name)
            if any(s.phase is Phase.CONTRACT for s in cut):
                contract.append(name)
        return RollbackPreview(
            to,
            tuple(names),
            tuple(missing),
            tuple(destructive),
            tuple(contract),
            tuple(steps),
            tuple(findings),
        )

    def rollback(
        self,
        to: str,
        *,
        before_first_step: Callable[[], None] | None = None,
        restore_hint: str = "",
    ) -> RolledBack:
        """Undo the migrations applied after `to`, newest first, each by its down file (see
        `engine.rollback`), under the migration lock. `before_first_step`: runs under the lock
        once the rollback is known to run something (the whole-database backup)."""
        t = self.settings.tracking

        def checked(state: DbState) -> list[Any]:
            state.check(self.settings.allow)
            records = tracking.step_records(self.conn, t)
            return plan_rollback(self.source, state, to, records, restore_hint=restore_hint)

        undo = checked(self.read_state())
        quick_check([u.down for u in undo], {}, self.facts)
        conn = self.conn
        with migration_lock(conn, self.settings, self.emit) as lock_pid:
            form = tracking.ensure(conn, t, self.source)
            self._facts = None
            state = self.read_state()
            undo = checked(state)  # again under the lock: another run may have moved on
            names = tuple(u.up.name for u in undo)
            self.emit("rollback.plan", to=to, undo=list(names))
            if undo and before_first_step is not None:
                before_first_step()
            done = tracking.done_steps(conn, t)
            runner = Runner(
                conn,
                self.settings,
                form,
                self.emit,
                lock_pid=lock_pid,
                undo={u.up.name: u.up for u in undo},
            )
            outcome = run_files(
                runner,
                [u.down for u in undo],
                self.down_analyzer(),
                done=done,
                selection=self.settings.selection,
                beyond=[],
                as_written=False,
            )
            after = state if conn.closed or conn.broken else self._state_or(state)
        return RolledBack(outcome, names, after)

    def _state_or(self, fallback: DbState) -> DbState:
        try:
            return self.read_state()
        except psycopg.Error:
            return fallback

    def status(self) -> StatusReport:
        """What the database holds against the source; raises nothing on disagreement."""
        t = self.settings.tracking
        state = self.read_state()
        partial = sorted(tracking.done_steps(self.conn, t))
        form = tracking.current_form(self.conn, t)
        files = tracking.partial_files(self.conn, t)
        return StatusReport(state, partial, form, partial_drift(state, files, self.version_of))

    def baseline(self, up_to: str) -> tuple[list[str], DbState]:
        """Adopt a database built by `drizzle-kit push`: every pending migration up to `up_to`
        is recorded as applied without running it."""
        limit = self.source.index_of(up_to)
        return self.mark(lambda position, _m: position <= limit)

    def mark_applied(self, name: str) -> tuple[list[str], DbState]:
        """Record the migration `name` as applied without running it."""
        return self.mark(lambda _position, m: m.name == name)

    def mark(self, chosen: Callable[[int, Migration], bool]) -> tuple[list[str], DbState]:
        """Under the lock, record each pending migration `chosen(position, migration)` picks as
        applied without running it, in one transaction; the names marked and the state after."""
        conn, t = self.conn, self.settings.tracking
        with migration_lock(conn, self.settings, self.emit):
            form = tracking.ensure(conn, t, self.source)
            state = self.read_state()
            marked = []
            with conn.transaction():
                for i, ms in enumerate(state.migrations):
                    if ms.state is not State.PENDING or not chosen(i, ms.migration):
                        continue
                    tracking.insert_row(conn, t, ms.migration, form)
                    marked.append(ms.migration.name)
                    self.emit("migration.marked", migration=ms.migration.name)
            return marked, self.read_state()
