"""Apply file by file while safety analyses the files ahead in a background thread.

Analysis (pglast parse trees, classification, rewrites) costs as much CPU as the client spends
on a small migration; the server's time on each file leaves the client idle. So the files are
analysed one thread ahead of the run: while the server executes file k, file k+1 is analysed
(psycopg waits on the socket without the GIL). Stops are decided step by step exactly as
`plan.select` decides them; bad syntax and directives were checked before the lock
(`analysis.quick_check`), so a late analysis error is rare and still ends the run cleanly.

Tables created earlier in the same run. The plan of a file depends on the file alone (stable
step keys; see `safety.analyze`), so a `CREATE INDEX` or `FOREIGN KEY` on a table that an
earlier file of this run created is planned as a safe rewrite (CONCURRENTLY, NOT VALID +
VALIDATE, batches), as for a table that holds rows. That table is empty and private until the
run ends: nothing has seen it yet. So a file that no run has started, that this run may run
entirely (no stop inside it), and whose form with those tables known as new
(`CatalogFacts.created_earlier`) can share one transaction, runs in that form, as written, in
one transaction under its stable steps' keys. It commits whole or not at all, records no step,
and so never needs resuming; a run that stops or fails before it leaves it pending as if
untouched. Only files wholly applied
by this run count: a table created by a file that an earlier run started may have been seen.

The same form serves a file whose `CREATE TABLE IF NOT EXISTS` (drizzle-kit < 0.26 writes every
CREATE so) names a table the catalog lacks, read under this run's lock: the statement creates
it, so what follows on it runs as written (`CatalogFacts.absent_creates`) instead of cut into
NOT VALID + VALIDATE and CONCURRENTLY steps that buy nothing on an empty table. Either way the
form must not hold a strong lock on an existing table longer than the stable steps would: after
the first statement that takes one, only statements on tables that this file's transaction
created may follow (`steps.as_written_steps`); otherwise the file runs in its stable steps.

Session settings. Before each file after the first, the session is reset (`Runner.reset_session`:
RESET ALL, the role, temporary tables), so a `SET search_path` or `SET ROLE` in one file never
changes where the next file's objects land; a resumed run starts in a fresh session, the same.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, TypeVar

import psycopg

from pgshift import signals
from pgshift.contract.summary import StopReason
from pgshift.engine import tracking
from pgshift.engine.plan import Analyze, Stop, end_stop, select_steps
from pgshift.engine.result import Failure
from pgshift.engine.runner import Outcome, Runner
from pgshift.engine.steps import as_written_steps, cut_steps, resume_renames, step_key
from pgshift.errors import Interrupted, PgshiftError
from pgshift.migrations.model import Migration
from pgshift.safety.model import Analysis, TxMode
from pgshift.settings import Selection, Tracking

#: a file that may create tables with IF NOT EXISTS (drizzle-kit < 0.26 writes every CREATE so):
#: where the catalog lacks them, its as-written form knows them as new
#: (`CatalogFacts.absent_creates`).
_IF_NOT_EXISTS = re.compile(r"if\s+not\s+exists", re.IGNORECASE)


@dataclass(frozen=True)
class _Prepared:
    #: the stable analysis; its rewritten statements' SQL is left out unless `complete`.
    analysis: Analysis
    #: the file's form with `basis` known as new tables, when it may run so (see the module).
    as_written: Analysis | None = None
    basis: frozenset[str] = frozenset()
    complete: bool = True


def _preparer(
    analyze: Analyze,
    as_written: bool,
    done: Collection[str],
    selection: Selection,
    version_of: Callable[[Migration], str] | None = None,
) -> Callable[[Migration], _Prepared]:
    """Runs in the analysis thread, file after file in order: the stable analysis, or, for an
    untouched file after untouched files that created tables, the stable plan's shape and the
    as-written form given those tables, when the file can run in it (the main thread checks
    again before using it)."""
    created: set[str] = set()

    def prepare(m: Migration) -> _Prepared:
        # this file's keys under this run's settings (`<hash12>[.<version6>]-<index>`); records
        # under other settings never reach here (plan: Drift).
        version = version_of(m) if version_of else ""
        prefix = step_key(m, 0, version).removesuffix("0")
        untouched = not any(k.startswith(prefix) for k in done)
        out: _Prepared | None = None
        if as_written and (created or _IF_NOT_EXISTS.search(m.sql)) and untouched:
            shape = analyze(m, render=False)
            if not any(s.rewrite and not s.sql for s in shape.statements):
                out = _Prepared(shape)  # nothing was left out: the stable analysis itself
            elif any(s.tx is not TxMode.TRANSACTION for s in shape.statements):
                basis = frozenset(created)
                written = analyze(m, new_tables=basis, as_written=True)
                steps = cut_steps(m, shape.statements, (), version)
                _run, stop = select_steps(steps, selection)
                if stop is None and as_written_steps(steps, written.statements) is not None:
                    out = _Prepared(shape, written, basis, complete=False)
        if out is None:
            out = _Prepared(analyze(m))
        if untouched:  # the main thread counts the as-written form's only if it ran it
            created.update((out.as_written or out.analysis).created_tables)
        return out

    return prepare


def resume_edited(
    conn: psycopg.Connection[Any],
    tracking_settings: Tracking,
    pending: list[Migration],
    analyze: Analyze,
    version_of: Callable[[Migration], str],
    *,
    write: bool,
) -> dict[str, list[tuple[str, str]]]:
    """--resume-edited: for each pending file that an earlier run left partly applied under
    another version of its text (or settings), move the records of its applied steps to the
    keys of its plan now, when their statement text is unchanged (`steps.resume_renames`;
    EditedAppliedStep otherwise). `write=False` only checks (before the lock). Returns
    migration name -> the (old key, new key) moves."""
    records = tracking.step_records(conn, tracking_settings)
    checkpoints = tracking.checkpoint_text_hashes(conn, tracking_settings)
    out: dict[str, list[tuple[str, str]]] = {}
    for m in pending:
        version = version_of(m)
        prefix = step_key(m, 0, version).removesuffix("0")
        old = [r for r in records if r.migration == m.name and not r.step.startswith(prefix)]
        old_checkpoints = {
            key: (text_hash, rows)
            for key, (name, text_hash, rows) in checkpoints.items()
            if name == m.name and not key.startswith(prefix)
        }
        if not old and not old_checkpoints:
            continue
        steps = cut_steps(m, analyze(m, render=False).statements, (), version)
        renames = resume_renames(m, steps, old, old_checkpoints)
        if write:
            tracking.rekey_steps(conn, tracking_settings, renames, version)
        out[m.name] = renames
    return out


In = TypeVar("In")
Out = TypeVar("Out")


class _Ahead(Generic[In, Out]):
    """`work(item)` for each item in order, in one daemon thread, ahead of the main thread.

    A daemon thread, not a pool's: a SIGTERM must not wait for the analysis of a large file
    (tens of seconds) before the process exits, and the interpreter joins a pool's threads at
    exit. Leaving the block skips the items not started; the one running is abandoned."""

    def __init__(self, work: Callable[[In], Out], items: Sequence[In]) -> None:
        self.futures: list[Future[Out]] = [Future() for _ in items]
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(work, items), name="pgshift-analyze", daemon=True
        )

    def __enter__(self) -> _Ahead[In, Out]:
        self._thread.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        for future in self.futures:
            future.cancel()

    def _run(self, work: Callable[[In], Out], items: Sequence[In]) -> None:
        for item, future in zip(items, self.futures, strict=True):
            if self._stop.is_set() or not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(work(item))
            except BaseException as exc:  # handed to the main thread by `result`
                future.set_exception(exc)

    @staticmethod
    def result(future: Future[Out]) -> Out:
        # short waits: the main thread runs its signal handler between them, whichever thread
        # the kernel delivered the signal to.
        while True:
            try:
                return future.result(timeout=0.1)
            except FutureTimeout:
                continue


def run_files(
    runner: Runner,
    pending: list[Migration],
    analyze: Analyze,
    *,
    done: Collection[str],
    selection: Selection,
    beyond: list[str],
    as_written: bool = True,
    version_of: Callable[[Migration], str] | None = None,
) -> Outcome:
    """Apply `pending` in order. `as_written=False` never runs a file in the form in which the
    tables earlier files of this run created are known as new (`CatalogFacts.created_earlier`).
    `version_of`:
    `steps.plan_version` under this run's settings (default: the file's hash)."""
    total = Outcome()
    #: tables created by files that this run applied whole, from their first step.
    fresh: set[str] = set()
    prepare = _preparer(analyze, as_written, done, selection, version_of)
    #: a file already ran in this session: its SETs must not reach the next one.
    ran_before = False
    with _Ahead(prepare, pending) as ahead:
        try:
            for migration, future in zip(pending, ahead.futures, strict=True):
                try:
                    prepared = ahead.result(future)
                    analysis = prepared.analysis
                except PgshiftError as exc:
                    total.failure = Failure(
                        migration=migration.name,
                        step=None,
                        statement=None,
                        line=None,
                        sqlstate=None,
                        message=exc.message,
                        hint=exc.hint or None,
                        code=exc.code,
                    )
                    total.stop = Stop(StopReason.FAILED, None, exc.message)
                    total.exit_code = exc.exit_code
                    return total
                version = version_of(migration) if version_of is not None else ""
                every = cut_steps(migration, analysis.statements, done, version)
                steps = tuple(s for s in every if not s.done)
                run, stop = select_steps(steps, selection)
                whole = stop is None and len(steps) == len(every)
                fast = None
                if whole and prepared.as_written is not None and prepared.basis <= fresh:
                    fast = as_written_steps(run, prepared.as_written.statements)
                if fast is not None:
                    run = fast
                elif not prepared.complete:  # only the shape was analysed: the whole, now
                    analysis = analyze(migration)
                    every = cut_steps(migration, analysis.statements, done, version)
                    steps = tuple(s for s in every if not s.done)
                    run, stop = select_steps(steps, selection)
                if run:
                    if ran_before:  # this file starts with the session as the run found it
                        runner.reset_session()
                    ran_before = True
                    # finished steps go straight into `total`'s lists: a SIGTERM right after
                    # the runner returns cannot lose them.
                    part = runner.run(run, stop or Stop(StopReason.DONE), into=total)
                    if part.failure is not None:
                        total.failure, total.stop, total.exit_code = (
                            part.failure,
                            part.stop,
                            part.exit_code,
                        )
                        return total
                if stop is not None:
                    total.stop = stop
                    return total
                if whole:
                    ran = prepared.as_written if fast is not None else None
                    fresh.update((ran or analysis).created_tables)
            total.stop = end_stop(beyond)
            return total
        except KeyboardInterrupt:  # SIGTERM while waiting for an analysis
            total.failure = Failure(
                migration=None,
                step=None,
                statement=None,
                line=None,
                sqlstate="57014",
                message="interrupted (SIGTERM) between steps",
                hint="rerun to resume",
                retryable=True,
                code=Interrupted.code,
            )
            total.stop = Stop(StopReason.INTERRUPTED)
            total.exit_code = 1
            return total
        finally:
            # the steps are over: from here on a SIGTERM must not cut the bookkeeping short
            # (the summary says what the tracking table holds; see pgshift/signals.py).
            signals.hold()
