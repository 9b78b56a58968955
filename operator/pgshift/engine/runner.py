"""Run selected steps: transactions, timeouts, retries, progress records, failures.

- Consecutive transactional steps of one file run in ONE transaction with the file's tracking
  row (or, when the run stops inside the file, with their `pgshift_steps` records), so a file
  that can run in a transaction fails with no effects and no row.
- An autocommit step runs alone; its progress is recorded right after it. Before a
  concurrent index build, an INVALID index a failed attempt left behind is dropped.
- A batched step runs as checkpointed keyset batches (`backfill.py`).
- STRONG statements run under `lock_timeout`; WEAK ones with none. 55P03 and 40P01 are retried
  with exponential backoff, a bounded number of times: the whole transaction, the statement,
  or the batch.
- SIGTERM (like Ctrl-C) cancels the running query; the run stops with reason Interrupted and a
  rerun resumes after the last committed step or batch.
- On a direct connection a transactional file goes to the server as one query string (the
  simple query protocol: BEGIN, its statements, its record, COMMIT; one round trip); if
  anything fails, it is rolled back and the same transaction is run again statement by
  statement, which names the failing statement and retries lock timeouts (event
  `pipeline.fallback`). Behind a proxy every step also checks it still runs on the lock
  holder's backend.
- A failed CREATE UNIQUE INDEX CONCURRENTLY drops the INVALID index it left at once.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pgerr
from psycopg import sql

from pgshift.contract.summary import StopReason
from pgshift.engine import backfill as bf
from pgshift.engine import lock, tracking
from pgshift.engine.plan import Stop
from pgshift.engine.result import Failure, StepDone, failure_from_db_error
from pgshift.engine.steps import Step
from pgshift.errors import (
    BackfillKeyError,
    Interrupted,
    LockTimeout,
    MigrationFailed,
    PgshiftError,
    PooledConnection,
)
from pgshift.migrations.model import Migration, TrackingForm
from pgshift.safety.model import Backfill, CatchUp, LockClass, PlannedStatement, TxMode
from pgshift.settings import RunSettings
from pgshift.signals import sigterm_cancels

T = TypeVar("T")
Emit = Callable[..., None]

_RETRYABLE_LOCK = (pgerr.LockNotAvailable, pgerr.DeadlockDetected)

#: before a step's records, in its transaction: pgshift's tables are written as the session's
#: own user even when the file did `SET ROLE` (LOCAL: the file's role is back after COMMIT, for
#: its later steps; the next file starts after `reset_session`).
_AS_SESSION_USER = "SET LOCAL SESSION AUTHORIZATION DEFAULT"
_ROLE_WORDS = re.compile(r"\b(?:role|authorization)\b", re.IGNORECASE)


def _may_set_role(step: Step) -> bool:
    """The file may change the current role (`SET ROLE`, `SET SESSION AUTHORIZATION`, also in a
    DO block): a cheap, conservative test of its text."""
    return _ROLE_WORDS.search(step.migration.sql) is not None


#: about how many characters one query string of a pipelined transaction holds: a 50 MB file
#: goes as a few dozen queries of one transaction, not one string (and its UTF-8 copy, and
#: libpq's) of the file's size (issue 14); one round trip each.
QUERY_CHARS = 1 << 20


def _query_strings(parts: list[str]) -> Iterator[str]:
    """`parts` joined with `;\n` into queries of about QUERY_CHARS (a part is never split)."""
    piece: list[str] = []
    size = 0
    for part in parts:
        if piece and size + len(part) > QUERY_CHARS:
            yield ";\n".join(piece)
            piece, size = [], 0
        piece.append(part)
        size += len(part) + 2
    if piece:
        yield ";\n".join(piece)


@dataclass
class Outcome:
    done: list[StepDone] = field(default_factory=list)
    applied_migrations: list[str] = field(default_factory=list)
    stop: Stop | None = None
    failure: Failure | None = None
    exit_code: int = 0


@dataclass
class _Current:
    step: Step | None = None
    statement: PlannedStatement | None = None


class Runner:
    def __init__(
        self,
        conn: psycopg.Connection[Any],
        settings: RunSettings,
        form: TrackingForm,
        emit: Emit,
        find_backfill: Callable[[CatchUp], Backfill | None] | None = None,
        *,
        lock_pid: int | None = None,
        undo: Mapping[str, Migration] | None = None,
    ) -> None:
        self.conn = conn
        #: a rollback: the steps run down files, and the last step of each deletes the tracking
        #: row of the migration it undoes (migration name -> that migration).
        self.undo = undo
        self.settings = settings
        self.form = form
        self.emit = emit
        self.current = _Current()
        #: the backfill a set-not-null recipe's catch-up pass re-runs (see safety's CatchUp).
        self.find_backfill = find_backfill
        #: the session's lock_timeout as last set (None: unknown); a transaction starts with it,
        #: so SET LOCAL is sent only when a statement needs another value.
        self._session_lock_timeout: float | None = None
        #: the backend that took the migration lock; every step checks it still runs there.
        self.lock_pid = lock_pid if lock_pid is not None else conn.info.backend_pid
        self._held = lock.held(self.lock_pid)
        #: The lock is held by the very backend libpq connected to (its pid came in the
        #: connection's BackendKeyData). A direct connection is one backend for life, so steps
        #: need no lock check and a transactional file can be sent as one pipeline: one round
        #: trip instead of one per statement. Behind a pooler the pid is the pooler's: every
        #: step then checks the lock in its own transaction.
        self.direct = self.lock_pid == conn.info.backend_pid
        #: the lock_timeout in force in the transaction being sent (see `_statements`).
        self._local_lock_timeout: float | None = None
        #: the steps being run and when they started: see `_settle`.
        self._in_flight: tuple[tuple[Step, ...], float] = ((), 0.0)

    # --- timeouts and retries -------------------------------------------------------------

    def lock_timeout_for(self, lock_class: LockClass) -> float:
        """Strong locks: give up fast (a waiting ALTER blocks every query queued behind it).
        Weak ones (CONCURRENTLY, VALIDATE) block nobody: no limit."""
        return self.settings.timeouts.lock_timeout if lock_class is LockClass.STRONG else 0.0

    def set_session_lock_timeout(self, value: float) -> None:
        if value != self._session_lock_timeout:
            self.conn.execute(lock.lock_timeout_sql(value, local=False))
            self._session_lock_timeout = value

    def with_retries(self, what: str, fn: Callable[[], T]) -> T:
        t = self.settings.timeouts
        attempt = 0
        while True:
            try:
                return fn()
            except _RETRYABLE_LOCK as exc:
                if attempt >= t.lock_retries:
                    raise
                delay = min(t.retry_backoff * (2**attempt), t.retry_backoff_max)
                attempt += 1
                self.emit(
                    "lock.retry",
                    what=what,
                    sqlstate=exc.sqlstate,
                    attempt=attempt,
                    retries=t.lock_retries,
                    delayMs=int(delay * 1000),
                    message=(exc.diag.message_primary or str(exc)),
                )
                time.sleep(delay)

    def reset_session(self) -> None:
        """Between files: what one file SET for the session (search_path, role, any setting,
        temporary tables) must not change where the next file's objects land. `RESET ALL`
        leaves the role alone (PostgreSQL exempts it), hence RESET SESSION AUTHORIZATION and
        ROLE first; `DISCARD ALL` would release the migration lock, hence `DISCARD TEMP`. Then
        the run's own session settings again. One round trip."""
        ms = int(self.settings.timeouts.statement_timeout * 1000)
        parts = [
            "RESET SESSION AUTHORIZATION",
            "RESET ROLE",
            "RESET ALL",
            "DISCARD TEMP",
            sql.SQL("SET statement_timeout = {}").format(sql.Literal(f"{ms}ms")).as_string(
                self.conn
            ),
        ]
        if self.conn.info.server_version >= 140000:
            parts.append("SET client_connection_check_interval = '1s'")
        self.conn.execute(";\n".join(parts))
        self._session_lock_timeout = None

    # --- steps ------------------------------------------------------------------------------

    def run(self, steps: tuple[Step, ...], stop: Stop, *, into: Outcome | None = None) -> Outcome:
        """Run `steps`; `into`: an outcome whose lists of finished steps and applied migrations
        this run's outcome shares (appends to)."""
        out = Outcome(stop=stop)
        if into is not None:
            out.done, out.applied_migrations = into.done, into.applied_migrations
        i = 0
        try:
            with sigterm_cancels():
                while i < len(steps):
                    step = steps[i]
                    if step.tx is TxMode.TRANSACTION:
                        group = [step]
                        while (
                            i + len(group) < len(steps)
                            and not group[-1].last
                            and steps[i + len(group)].tx is TxMode.TRANSACTION
                            and not steps[i + len(group)].after_commit
                            and steps[i + len(group)].migration.name == step.migration.name
                        ):
                            group.append(steps[i + len(group)])
                        self._transaction_group(group, out)
                        i += len(group)
                    elif step.tx is TxMode.BATCHED:
                        self._batched(step, out)
                        i += 1
                    else:
                        self._autocommit(step, out)
                        i += 1
        except KeyboardInterrupt:
            self._settle(out)
            out.failure = self._failure_here(
                sqlstate="57014",
                message="interrupted (SIGTERM): the running query was cancelled",
                hint="rerun to resume after the last finished step",
                retryable=True,
                code=Interrupted.code,
            )
            out.stop = Stop(StopReason.INTERRUPTED, self.current.step)
            out.exit_code = 1
        except psycopg.Error as exc:
            self._settle(out)
            out.failure = self._failure(exc)
            out.stop = Stop(StopReason.FAILED, self.current.step)
            out.exit_code = 1
        except PgshiftError as exc:
            self._settle(out)
            out.failure = self._failure_here(
                sqlstate=None, message=exc.message, hint=exc.hint or None, code=exc.code
            )
            out.stop = Stop(StopReason.FAILED, self.current.step)
            out.exit_code = exc.exit_code
        return out

    def _failure_here(
        self,
        *,
        sqlstate: str | None,
        message: str,
        hint: str | None,
        code: str,
        retryable: bool = False,
    ) -> Failure:
        """A failure of what was running (step and statement) when it happened."""
        step, st = self.current.step, self.current.statement
        return Failure(
            migration=step.migration.name if step else None,
            step=step.key if step else None,
            statement=st.sql if st else None,
            line=st.line if st else None,
            sqlstate=sqlstate,
            message=message,
            hint=hint,
            retryable=retryable,
            code=code,
        )

    def _failure(self, exc: psycopg.Error) -> Failure:
        step, st = self.current.step, self.current.statement
        code = LockTimeout.code if isinstance(exc, _RETRYABLE_LOCK) else MigrationFailed.code
        failure = failure_from_db_error(
            exc,
            migration=step.migration.name if step else None,
            step=step.key if step else None,
            statement=(st.sql.strip() if st else None),
            line=st.line if st else None,
            code=code,
        )
        if code == LockTimeout.code and not failure.hint:
            failure = Failure(
                **{
                    **failure.__dict__,
                    "hint": (
                        f"gave up after {self.settings.timeouts.lock_retries} retries; "
                        "a long transaction "
                        "holds a lock this statement needs (see pg_stat_activity)"
                    ),
                }
            )
        return failure

    def _flying(self, steps: tuple[Step, ...]) -> None:
        self._in_flight = (steps, time.monotonic())

    def _settle(self, out: Outcome) -> None:
        """After an interruption or a failure, the steps in flight whose records the database
        holds count as done: their COMMIT went through though the client saw an error (a
        SIGTERM while the server committed: psycopg's cancel came too late, and it re-raises
        the interrupt anyway). So the summary says what the tracking table holds."""
        steps, t0 = self._in_flight
        finished = {d.key for d in out.done}
        missing = [s for s in steps if s.key not in finished]
        if not missing or self.conn.closed or self.conn.broken:
            return
        t = self.settings.tracking
        try:
            if self.conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                self.conn.execute("ROLLBACK")
            recorded = tracking.done_steps(self.conn, t)
            rows = tracking.read_rows(self.conn, t)
        except psycopg.Error:
            return  # not knowable now; the next run reads the truth from the table
        ms = int((time.monotonic() - t0) * 1000)
        for step in missing:
            m = step.migration
            if self.undo is not None:  # a down file is done when its migration's row is gone
                up = self.undo[m.name]
                over = not any(r.hash == up.hash and r.created_at == up.when for r in rows)
            else:
                over = any(r.hash == m.hash and r.name in (None, m.name) for r in rows)
            if over or step.key in recorded:
                self._finished(step, ms, out)

    def _records(
        self, step: Step, *, clear_steps: bool = True, only_if: sql.Composable | None = None
    ) -> list[sql.Composed]:
        """What finishing `step` writes: its progress, or (last step) the file's tracking row
        (`tracking.row_record` / `step_record`: the SQL is composed there, once)."""
        t = self.settings.tracking
        if step.last and self.undo is not None:
            up = self.undo[step.migration.name]
            return tracking.row_delete(t, up, self.form, only_if=only_if)
        if step.last:
            return tracking.row_record(
                t, step.migration, self.form, clear_steps=clear_steps, only_if=only_if
            )
        return [
            tracking.step_record(
                t,
                step.key,
                step.migration,
                version=step.version,
                text_hash=step.text_hash,
                only_if=only_if,
            )
        ]

    def _record(self, step: Step, *, clear_steps: bool = True, checked: bool = True) -> None:
        """Inside the step's transaction: its records, `checked`: written only if this backend
        still holds the migration lock (checked in the same statement): else a transaction
        pooler swapped backends, and the transaction rolls back. Unchecked in a pipeline on a
        direct connection (the row count is not known yet; the backend is the lock's)."""
        insert, *rest = self._records(
            step, clear_steps=clear_steps, only_if=self._held if checked else None
        )
        cur = self.conn.execute(insert)
        if checked and cur.rowcount != 1:
            raise PooledConnection(lock.NOT_HELD_MESSAGE)
        for query in rest:
            self.conn.execute(query)

    def _finished(self, step: Step, ms: int, out: Outcome) -> None:
        out.done.append(StepDone(step.key, step.migration.name, step.phase.value, ms))
        self.emit("step.finished", step=step.key, migration=step.migration.name, durationMs=ms)
        if step.last:
            out.applied_migrations.append(step.migration.name)
            event = "migration.rolledBack" if self.undo is not None else "migration.applied"
            self.emit(event, migration=step.migration.name)

    def _started(self, step: Step) -> None:
        self.current.step = step
        self.current.statement = None
        self.emit(
            "step.started",
            step=step.key,
            migration=step.migration.name,
            phase=step.phase.value,
            tx=step.tx.value,
        )

    def _catch_ups(self, step: Step, statements: tuple[PlannedStatement, ...]) -> None:
        """Before a set-not-null recipe's VALIDATE: the catch-up pass of the column's backfill,
        in its own batches (the NOT VALID check already stops new NULLs)."""
        for st in statements:
            if st.catch_up is None or self.find_backfill is None:
                continue
            self.current.step, self.current.statement = step, st
            found = self.find_backfill(st.catch_up)
            if found is None:
                continue
            bf.catch_up(
                self.conn,
                backfill=found,
                settings=self.settings.backfill,
                lock_timeout=self.settings.timeouts.lock_timeout,
                run_batch=lambda fn: self.with_retries(step.migration.name, fn),
                progress=lambda data: self.emit("backfill.progress", step=step.key, **data),
            )

    def _transaction_group(self, group: list[Step], out: Outcome) -> None:
        self._flying(tuple(group))
        durations: list[int] = []
        for step in group:
            self._catch_ups(step, step.statements)

        # a file run whole in this transaction recorded no step progress: nothing to clear.
        whole = group[0].index == 0 and group[-1].last
        if self.direct and self._pipelined(group, whole, out):
            return

        def body() -> None:
            durations.clear()
            self.set_session_lock_timeout(self.settings.timeouts.lock_timeout)
            with self.conn.transaction():
                self._local_lock_timeout = self._session_lock_timeout
                for step in group:
                    t0 = time.monotonic()
                    for st, setting in self._statements(step):
                        self.current.statement = st
                        if setting is not None:
                            self.conn.execute(setting)
                        self.conn.execute(st.sql)
                    durations.append(int((time.monotonic() - t0) * 1000))
                # the records after every statement of the group (one transaction either way):
                # written as the session's own user, whatever role the file SET.
                if _may_set_role(group[0]):
                    self.conn.execute(_AS_SESSION_USER)
                for step in group:
                    if step.last or not whole:  # a whole file commits with its row alone
                        self._record(step, clear_steps=not whole)
                # before COMMIT: a step that released the lock rolls back (LockLost).
                lock.verify(self.conn, self.lock_pid)

        self.with_retries(group[0].migration.name, body)
        for step, ms in zip(group, durations, strict=True):
            self._finished(step, ms, out)

    def _statements(
        self, step: Step
    ) -> Iterator[tuple[PlannedStatement, sql.Composed | None]]:
        """A transactional step, started (`step.started`): each statement that has SQL, with
        the `SET LOCAL lock_timeout` to send before it when it needs another value than the one
        in force (a transaction starts with the session's). The one walk over a group's
        statements, whether they go one by one or in one query string."""
        self._started(step)
        for st in step.statements:
            if not st.sql.strip():
                continue
            wanted = self.lock_timeout_for(st.lock)
            setting = None
            if wanted != self._local_lock_timeout:
                setting = lock.lock_timeout_sql(wanted)
                self._local_lock_timeout = wanted
            yield st, setting

    def _pipelined(self, group: list[Step], whole: bool, out: Outcome) -> bool:
        """The fast path: BEGIN, every statement, the record and COMMIT in one query string
        (the simple query protocol: one round trip, and one result to read back). Any error
        rolls it all back and returns False: the caller then runs the group statement by
        statement, which retries lock timeouts and names the failing statement exactly."""
        self.set_session_lock_timeout(self.settings.timeouts.lock_timeout)
        t0 = time.monotonic()
        parts = ["BEGIN"]
        self._local_lock_timeout = self._session_lock_timeout
        for step in group:
            for st, setting in self._statements(step):
                if setting is not None:
                    parts.append(setting.as_string(self.conn))
                # as written; the ";" that ends each statement here is not part of its text,
                # whose last token is never a comment (safety.statements).
                parts.append(st.sql)
        if _may_set_role(group[0]):
            parts.append(_AS_SESSION_USER)
        for step in group:
            if step.last or not whole:  # a whole file commits with its row alone
                records = self._records(step, clear_steps=not whole)
                parts += [q.as_string(self.conn) for q in records]
        # the lock is still ours, or the transaction fails before COMMIT (see `lock.verify`).
        parts.append(lock.still_held_sql(self.lock_pid))
        parts.append("COMMIT")
        try:
            for query in _query_strings(parts):
                self.conn.execute(query)
        except psycopg.Error as exc:
            if self.conn.broken:
                raise
            if self.conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                self.conn.execute("ROLLBACK")
            # the statements may have released the lock before failing (a release is not
            # undone by ROLLBACK): never run them again without it.
            lock.verify(self.conn, self.lock_pid)
            self.emit("pipeline.fallback", migration=group[0].migration.name, sqlstate=exc.sqlstate)
            return False
        ms = int((time.monotonic() - t0) * 1000)
        for step in group:
            self._finished(step, ms // len(group), out)
        return True

    def _alone(
        self,
        step: Step,
        out: Outcome,
        run_statement: Callable[[Step, PlannedStatement], None],
        *,
        catch_ups: bool = False,
    ) -> None:
        """The frame of a step that runs outside a transaction (autocommit, batched): started,
        each statement in turn, then the lock check, its record in a transaction of its own,
        finished."""
        self._flying((step,))
        self._started(step)
        t0 = time.monotonic()
        if catch_ups:
            self._catch_ups(step, step.statements)
        for st in step.statements:
            self.current.statement = st
            run_statement(step, st)
        lock.verify(self.conn, self.lock_pid)  # not recorded, and no next step, without it
        self._record_alone(step)
        self._finished(step, int((time.monotonic() - t0) * 1000), out)

    def _autocommit(self, step: Step, out: Outcome) -> None:
        self._alone(step, out, self._autocommit_statement, catch_ups=True)

    def _autocommit_statement(self, step: Step, st: PlannedStatement) -> None:
        """One statement on its own (CONCURRENTLY...), retried on lock timeouts; a valid index
        of its name is a build an earlier run finished, an INVALID one is dropped first."""

        def body() -> None:
            if not self.direct:
                lock.assert_held(self.conn)
            if st.index_name:
                found = self._index(st.index_name)
                if found and found[1]:
                    # an earlier run built it and was killed before recording the step.
                    self.emit(
                        "step.skipped",
                        step=step.key,
                        why=f"index {st.index_name} exists and is valid",
                    )
                    return
                if found:  # INVALID: a failed concurrent build left it; drop it first
                    self._drop_invalid_index(found[0])
            self.set_session_lock_timeout(self.lock_timeout_for(st.lock))
            try:
                self.conn.execute(st.sql)
            except BaseException:
                if st.index_name and st.index_unique:
                    self._drop_failed_unique(st.index_name)
                raise

        self.with_retries(step.migration.name, body)

    def _record_alone(self, step: Step) -> None:
        """Record an autocommit or batched step in a transaction of its own (on a direct
        connection as one pipeline: one round trip)."""
        if not self.direct:
            with self.conn.transaction():
                if _may_set_role(step):
                    self.conn.execute(_AS_SESSION_USER)
                self._record(step)
            return
        with self.conn.pipeline(), self.conn.transaction():
            if _may_set_role(step):
                self.conn.execute(_AS_SESSION_USER)
            self._record(step, checked=False)

    def _batched(self, step: Step, out: Outcome) -> None:
        self._alone(step, out, self._batched_statement)

    def _batched_statement(self, step: Step, st: PlannedStatement) -> None:
        """A backfill in checkpointed keyset batches; an UPDATE pgshift chose to batch runs as
        written when its table has no key to batch over."""
        if st.backfill is None:  # safety marks BATCHED only with a backfill spec
            raise PgshiftError(
                f"{step.migration.path}:{st.line}: batched statement without a backfill spec"
            )
        # batches wait for row locks the application holds: bounded like strong locks.
        lock_timeout = self.settings.timeouts.lock_timeout

        def run_batch(fn: Callable[[], Any]) -> Any:
            return self.with_retries(step.migration.name, fn)

        def progress(data: dict[str, Any]) -> None:
            self.emit("backfill.progress", **data)

        try:
            key = bf.resolve_key(self.conn, st.backfill)
        except BackfillKeyError as exc:
            if not st.rewrite:  # `-- pgshift:backfill` (or the override) asked for batches
                raise BackfillKeyError(
                    f"{step.migration.path}:{st.line}: -- pgshift:backfill: {exc.message}"
                ) from None
            # pgshift chose to batch it (an idempotent UPDATE): it runs as written instead.
            self.emit("backfill.unbatched", step=step.key, why=exc.message)
            self.with_retries(
                step.migration.name,
                lambda: bf.run_unbatched(self.conn, st.sql, lock_timeout),
            )
            return
        # the checkpoint carries the step's text hash (--resume-edited compares it).
        tracking.tag_checkpoint(
            self.conn, self.settings.tracking, step.key, step.migration.name, step.text_hash
        )
        bf.run(
            self.conn,
            step=step.key,
            migration=step.migration.name,
            backfill=st.backfill,
            settings=self.settings.backfill,
            tracking=self.settings.tracking,
            lock_timeout=lock_timeout,
            run_batch=run_batch,
            progress=progress,
            key=key,
        )

    # --- invalid indexes --------------------------------------------------------------------

    def _index(self, name: str) -> tuple[str, bool] | None:
        schema, _, rel = name.rpartition(".")
        row = self.conn.execute(
            "SELECT c.oid::regclass::text, i.indisvalid FROM pg_class c "
            "JOIN pg_index i ON i.indexrelid = c.oid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname = %s AND (CASE WHEN %s = '' THEN pg_table_is_visible(c.oid) "
            "ELSE n.nspname = %s END)",
            (rel.strip('"'), schema, schema.strip('"')),
        ).fetchone()
        return (row[0], bool(row[1])) if row else None

    def _drop_failed_unique(self, name: str) -> None:
        """A failed `CREATE UNIQUE INDEX CONCURRENTLY` (duplicates, a lock timeout, SIGTERM)
        can leave an INVALID index that still rejects duplicates in new writes: the
        application's inserts would fail until someone drops it. Drop it now, not only before
        the retry. Best effort: the failure being reported matters more; the next run drops it
        anyway."""
        if self.conn.closed or self.conn.broken:
            return
        try:
            found = self._index(name)
            if found and not found[1]:
                self._drop_invalid_index(found[0])
        except psycopg.Error as exc:
            self.emit("index.dropInvalidFailed", index=name, sqlstate=exc.sqlstate)

    def _drop_invalid_index(self, regclass: str) -> None:
        self.emit("index.dropInvalid", index=regclass)
        self.set_session_lock_timeout(0.0)
        # regclass::text is already quoted as needed.
        self.conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.SQL(regclass)))
