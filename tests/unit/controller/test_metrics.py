"""The operator's metrics, updated from typed results (contract types, Memory, JobState), and
its endpoint served for real on a local port. No cluster."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from pgshift.contract.progress import StepProgress
from pgshift.contract.summary import (
    AppliedMigration,
    AppliedStep,
    BackupResult,
    RunFailure,
    RunSummary,
)
from pgshift.controller.intent import Action
from pgshift.controller.memory import Failure, Memory, Plan, Step
from pgshift.controller.metrics import (
    EndpointError,
    Metrics,
    parse_endpoint,
    serve,
    sqlstate_class,
)
from pgshift.controller.observe import JobPhase, JobState
from pgshift.controller.reconcile import progress_wanted, run_seconds

KEY = ("team-a", "billing-db-migrations")


def ready(phase: str = "Complete") -> dict[str, Any]:
    done = phase == "Complete"
    return {
        "phase": phase,
        "conditions": [
            {"type": "Ready", "status": "True" if done else "False"},
            {"type": "Complete", "status": "True" if done else "False"},
            {"type": "Reconciling", "status": "False" if done else "True"},
            {"type": "Stalled", "status": "False"},
        ],
    }


def value(m: Metrics, name: str, **labels: str) -> float:
    found = m.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def finished(action: Action, summary: RunSummary | None, *, ok: bool = True, **kw: Any) -> JobState:
    return JobState(
        name="job-1",
        action=action,
        phase=JobPhase.SUCCEEDED if ok else JobPhase.FAILED,
        result=summary.as_dict() if summary else None,
        seconds=kw.pop("seconds", 12.0),
        **kw,
    )


def record(m: Metrics, job: JobState | None, *, before: Memory | None = None, **kw: Any) -> None:
    after = kw.pop("after", None) or Memory()
    m.record(
        kw.pop("key", KEY),
        before=before or Memory(),
        after=after,
        job=job,
        status=kw.pop("status", None) or ready(),
        now=kw.pop("now", 0.0),
    )


def test_a_finished_apply_counts_the_job_its_duration_and_each_steps_by_phase() -> None:
    m = Metrics()
    summary = RunSummary(
        command="apply",
        applied=(
            AppliedMigration(
                "0001_add",
                (AppliedStep("e-0", "expand", 40), AppliedStep("b-0", "backfill", 90_000)),
            ),
            AppliedMigration("0002_new", (AppliedStep("x-0", "someday", 5),)),
        ),
    )
    m.job_started(Action.APPLY)
    record(m, finished(Action.APPLY, summary, seconds=95.0))
    assert value(m, "pgshift_jobs_started_total", action="apply") == 1
    assert value(m, "pgshift_jobs_finished_total", action="apply", outcome="succeeded") == 1
    assert value(m, "pgshift_job_duration_seconds_sum", action="apply") == 95.0
    assert value(m, "pgshift_step_duration_seconds_count", phase="expand") == 1
    assert value(m, "pgshift_step_duration_seconds_sum", phase="backfill") == 90.0
    # a phase a newer runner may report is counted, under a bounded label.
    assert value(m, "pgshift_step_duration_seconds_count", phase="other") == 1


def test_a_backup_counts_its_bytes_and_duration_and_a_failed_one_only_its_outcome() -> None:
    m = Metrics()
    dump = BackupResult(file="/backups/a.dump", size=4096, database="app@db:5432/app")
    record(m, finished(Action.BACKUP, RunSummary(command="backup", backup=dump), seconds=3.0))
    record(m, finished(Action.BACKUP, None, ok=False, reason="DeadlineExceeded"))
    assert value(m, "pgshift_backups_total", outcome="succeeded") == 1
    assert value(m, "pgshift_backups_total", outcome="failed") == 1
    assert value(m, "pgshift_backup_bytes_total") == 4096
    assert value(m, "pgshift_backup_duration_seconds_count") == 1
    assert value(m, "pgshift_backup_duration_seconds_sum") == 3.0
    assert value(m, "pgshift_jobs_finished_total", action="backup", outcome="failed") == 1


def test_a_new_failure_counts_once_by_reason_and_sqlstate_class() -> None:
    m = Metrics()
    run = RunFailure(code="MigrationFailed", message="duplicate key", sqlstate="23505")
    failure = Failure.from_run(run, job="job-3", time="t1", generation=1, digest="d")
    record(m, None, after=Memory(failure=failure))
    # the next reconciles see the same failure; retries exhausted escalates the same one.
    record(m, None, before=Memory(failure=failure), after=Memory(failure=failure))
    escalated = Failure(**{**failure.__dict__, "retryable": False})
    record(m, None, before=Memory(failure=failure), after=Memory(failure=escalated))
    assert value(m, "pgshift_failures_total", reason="MigrationFailed", sqlstate_class="23") == 1
    other = Failure(code="DeadlineExceeded", message="deadline", retryable=True, job="job-4")
    record(m, None, before=Memory(failure=failure), after=Memory(failure=other))
    assert value(m, "pgshift_failures_total", reason="DeadlineExceeded", sqlstate_class="") == 1


@pytest.mark.parametrize(
    ("sqlstate", "cls"), [("23505", "23"), ("40p01", "40"), ("", ""), ("bogus-value", "")]
)
def test_sqlstate_class_is_two_characters_or_nothing(sqlstate: str, cls: str) -> None:
    assert sqlstate_class(sqlstate) == cls


def test_phase_and_condition_gauges_count_migrations_and_forget_the_deleted() -> None:
    m = Metrics()
    record(m, None, key=("a", "one"), status=ready())
    record(m, None, key=("a", "two"), status=ready("Applying"))
    record(m, None, key=("b", "one"), status=ready("Applying"))
    record(m, None, key=("b", "one"), status=ready())  # moved on: counted once, in its phase
    assert value(m, "pgshift_migrations", phase="Complete") == 2
    assert value(m, "pgshift_migrations", phase="Applying") == 1
    assert value(m, "pgshift_migration_conditions", condition="Ready", status="True") == 2
    assert value(m, "pgshift_migration_conditions", condition="Reconciling", status="True") == 1
    m.forget(("a", "two"))
    assert value(m, "pgshift_migrations", phase="Applying") == 0


def _running(step: StepProgress) -> tuple[JobState, Memory]:
    job = JobState(name="job-2", action=Action.APPLY, phase=JobPhase.RUNNING)
    return job, Memory(current_step=step.as_dict())


def test_backfill_rows_count_what_each_observation_adds_and_the_rate_is_summed() -> None:
    m = Metrics()
    job, mem = _running(StepProgress("b-0", phase="backfill", rows=1000, rows_per_second=50.0))
    record(m, job, after=mem, key=("a", "one"))
    job, mem = _running(StepProgress("b-0", phase="backfill", rows=1600, rows_per_second=60.0))
    record(m, job, after=mem, key=("a", "one"))
    job, mem = _running(StepProgress("c-0", phase="backfill", rows=10, rows_per_second=5.0))
    record(m, job, after=mem, key=("a", "two"))
    assert value(m, "pgshift_backfill_rows_total") == 1610
    assert value(m, "pgshift_backfill_rows_per_second") == 65.0
    assert value(m, "pgshift_backfills_running") == 2
    # an expand step of a running apply is no backfill; a finished Job leaves none running.
    job, mem = _running(StepProgress("e-0", phase="expand"))
    record(m, job, after=mem, key=("a", "one"))
    record(m, finished(Action.APPLY, None), key=("a", "two"))
    assert value(m, "pgshift_backfills_running") == 0
    assert value(m, "pgshift_backfill_rows_per_second") == 0


def test_gate_wait_is_observed_when_the_gate_opens() -> None:
    m = Metrics()
    gate = {"type": "Approval", "step": "c-0", "migration": "0003_drop"}
    record(m, None, after=Memory(gate=gate), now=100.0)
    record(m, None, after=Memory(gate=gate), now=150.0)
    record(m, None, after=Memory(), now=400.0)
    assert value(m, "pgshift_gate_wait_seconds_count", gate="Approval") == 1
    assert value(m, "pgshift_gate_wait_seconds_sum", gate="Approval") == 300.0


def test_no_label_names_a_migration_namespace_database_or_step() -> None:
    m = Metrics()
    dump = BackupResult(file="/backups/x.dump", size=1, database="app@db.internal:5432/app")
    run = RunFailure(code="MigrationFailed", message="boom", sqlstate="42P01", step="b-0")
    job, mem = _running(StepProgress("b-0", "0002_fill", "backfill", rows=5))
    record(m, job, after=mem)
    failure = Failure.from_run(run, job="j", time="t", generation=1, digest="d")
    record(m, finished(Action.BACKUP, RunSummary(command="backup", backup=dump)), after=Memory(
        failure=failure, gate={"type": "Approval", "step": "b-0"}
    ))  # fmt: skip
    text = "\n".join(
        f"{s.name} {s.labels}" for metric in m.registry.collect() for s in metric.samples
    )
    for secret in (*KEY, "0002_fill", "b-0", "db.internal", "/backups/x.dump", "boom"):
        assert secret not in text


def test_the_endpoint_parses_like_liveness_and_bad_values_name_the_setting() -> None:
    assert parse_endpoint("") is None
    ep = parse_endpoint("http://0.0.0.0:9090/metrics")
    assert ep is not None and (ep.host, ep.port, ep.path) == ("0.0.0.0", 9090, "/metrics")
    ep = parse_endpoint("http://127.0.0.1:9100")
    assert ep is not None and ep.path == "/metrics"
    for bad in ("9090", "https://0.0.0.0:9090/metrics", "http://0.0.0.0/metrics", "http://h:x/"):
        with pytest.raises(EndpointError, match="PGSHIFT_METRICS"):
            parse_endpoint(bad)


@pytest.fixture
def served() -> Iterator[tuple[Metrics, str]]:
    m = Metrics()
    ep = parse_endpoint("http://127.0.0.1:0/prom")
    assert ep is not None
    server = serve(ep, m)
    try:
        yield m, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_endpoint_serves_the_exposition_at_its_path_only(
    served: tuple[Metrics, str],
) -> None:
    m, base = served
    m.job_started(Action.PLAN)
    record(m, None, status=ready())
    with urllib.request.urlopen(f"{base}/prom", timeout=10) as resp:
        body = resp.read().decode()
        assert resp.headers["Content-Type"].startswith("text/plain")
    assert 'pgshift_jobs_started_total{action="plan"} 1.0' in body
    assert 'pgshift_migrations{phase="Complete"} 1.0' in body
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{base}/metrics", timeout=10)
    assert err.value.code == 404
    err.value.close()


# --- the reconcile's pure parts the metrics and the progress reading rely on -------------------

PLAN = Plan(
    generation=1,
    digest="d",
    steps=(
        Step("e-0", "0001", "expand"),
        Step("b-0", "0002", "backfill"),
        Step("c-0", "0003", "contract"),
    ),
)


@pytest.mark.parametrize(
    ("current", "wanted"),
    [(None, True), ("e-0", True), ("b-0", True), ("c-0", False), ("gone", True)],
)
def test_progress_is_read_only_while_a_backfill_is_running_or_ahead(
    current: str | None, wanted: bool
) -> None:
    memory = Memory(plan=PLAN, current_step={"key": current} if current else None)
    assert progress_wanted(memory) is wanted
    no_backfill = Plan(generation=1, digest="d", steps=(Step("e-0", "0001", "expand"),))
    assert progress_wanted(Memory(plan=no_backfill)) is False
    truncated = Plan(generation=1, digest="d", steps=no_backfill.steps, truncated=True)
    assert progress_wanted(Memory(plan=truncated)) is True


def test_a_jobs_run_time_is_start_to_completion_or_to_its_failed_condition() -> None:
    ok = {"status": {"startTime": "2026-01-01T00:00:00Z", "completionTime": "2026-01-01T00:01:30Z"}}
    assert run_seconds(ok) == 90.0
    failed = {
        "status": {
            "startTime": "2026-01-01T00:00:00Z",
            "conditions": [
                {"type": "Failed", "status": "True", "lastTransitionTime": "2026-01-01T00:00:05Z"}
            ],
        }
    }
    assert run_seconds(failed) == 5.0
    assert run_seconds({"status": {}}) is None


def test_a_migrations_log_is_read_at_most_every_ten_seconds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pgshift.controller import reconcile
    from pgshift.controller.api import Ref

    clock = [1000.0]
    monkeypatch.setattr(reconcile.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(reconcile, "_log_read_at", {})
    one, other = Ref("ns", "one", "u1", 1), Ref("ns", "two", "u2", 1)
    backfilling = Memory(plan=PLAN, current_step={"key": "b-0"})
    assert reconcile._log_due(one, backfilling) is True
    clock[0] += 9.9  # a Pod event, a poll: too soon for this one, not for another
    assert reconcile._log_due(one, backfilling) is False
    assert reconcile._log_due(other, backfilling) is True
    clock[0] += 0.1
    assert reconcile._log_due(one, backfilling) is True
    clock[0] += 60  # past every backfill step: never read, however long it waited
    assert reconcile._log_due(one, Memory(plan=PLAN, current_step={"key": "c-0"})) is False
