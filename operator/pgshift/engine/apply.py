"""Apply file by file while safety analyses the files ahead in a background thread.

Analysis (pglast parse trees, classification, rewrites) costs as much CPU as the client spends
on a small migration; the server's time on each file leaves the client idle. So the files are
analysed one thread ahead of the run: while the server executes file k, file k+1 is analysed
(psycopg waits on the socket without the GIL). Stops are decided step by step exactly as
`plan.select` decides them; bad syntax and directives were checked before the lock
(`analysis.quick_check`), so a late analysis error is rare and still ends the run cleanly.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor

from pgshift.engine.plan import Stop, StopReason, cut_steps, end_stop, select_steps
from pgshift.engine.result import Failure
from pgshift.engine.runner import Outcome, Runner
from pgshift.errors import PgshiftError
from pgshift.migrations.model import Migration
from pgshift.safety.model import Analysis
from pgshift.settings import Selection


def run_files(
    runner: Runner,
    pending: list[Migration],
    analyze: Callable[[Migration], Analysis],
    *,
    done: Collection[str],
    selection: Selection,
    beyond: list[str],
) -> Outcome:
    total = Outcome()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pgshift-analyze") as pool:
        futures: list[Future[Analysis]] = [pool.submit(analyze, m) for m in pending]
        try:
            for migration, future in zip(pending, futures, strict=True):
                try:
                    analysis = future.result()
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
                steps = tuple(
                    s for s in cut_steps(migration, analysis.statements, done) if not s.done
                )
                run, stop = select_steps(steps, selection)
                if run:
                    part = runner.run(run, stop or Stop(StopReason.DONE))
                    total.done.extend(part.done)
                    total.applied_migrations.extend(part.applied_migrations)
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
                code="Interrupted",
            )
            total.stop = Stop(StopReason.INTERRUPTED)
            total.exit_code = 1
            return total
        finally:
            for future in futures:
                future.cancel()
