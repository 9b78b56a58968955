"""The operator's Prometheus metrics (docs/metrics.md): what one reconcile observed, counted.

`Metrics.record` is pure bookkeeping over typed values (the runner's `RunSummary`, `Memory`,
`JobState`), so unit tests drive it without a cluster; `serve` is the only I/O (an HTTP
endpoint on its own thread, `PGSHIFT_METRICS`).

Cardinality is bounded: labels are phases, reasons, actions, outcomes, condition types and
2-character SQLSTATE classes, never a Migration, namespace, database or row value. Per-Migration
state (its phase, its running backfill's rate) is held here, keyed by (namespace, name), and
exposed only as fleet-wide sums.
"""

from __future__ import annotations

import threading
import urllib.parse
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Histogram, make_wsgi_app
from prometheus_client import Counter as PromCounter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pgshift.contract.progress import StepProgress
from pgshift.contract.summary import RunSummary, read_summary
from pgshift.controller.intent import Action
from pgshift.controller.memory import Failure, Memory
from pgshift.controller.observe import JobPhase, JobState

Key = tuple[str, str]

#: seconds: a plan or a step takes milliseconds to hours (backfills, index builds).
DURATION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)
#: a gate waits for people or a rollout: minutes to days.
GATE_BUCKETS = (10, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 7 * 24 * 3600)
#: phases of steps (contract.steps.Phase); anything else a newer runner reports is "other".
STEP_PHASES = ("expand", "backfill", "contract")


@dataclass
class _Seen:
    """What the metrics keep of one Migration between reconciles."""

    phase: str = ""
    conditions: tuple[tuple[str, str], ...] = ()
    #: the running backfill step, its rows when last counted and its rate (rows/s).
    backfill_step: str = ""
    backfill_rows: int = 0
    backfill_rate: float = 0.0
    #: the gate it waits at ("type/step") and since when (seconds, the caller's clock).
    gate: str = ""
    gate_since: float = 0.0


def sqlstate_class(sqlstate: str) -> str:
    """The SQLSTATE class (its first 2 characters), "" when none: 40 classes, not 250 codes."""
    s = sqlstate.strip()
    return s[:2].upper() if len(s) == 5 and s.isalnum() else ""


class Metrics(Collector):
    """Every series pgshift exposes, in one registry (tests make their own)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._seen: dict[Key, _Seen] = {}
        self._lock = threading.Lock()  # reconciles run in worker threads; scrapes in another
        r = self.registry
        self.jobs_started = PromCounter(
            "pgshift_jobs_started_total", "Jobs the operator created, by action.", ["action"],
            registry=r,
        )  # fmt: skip
        self.jobs_finished = PromCounter(
            "pgshift_jobs_finished_total",
            "Jobs that finished (folded into status), by action and outcome (succeeded|failed).",
            ["action", "outcome"],
            registry=r,
        )
        self.job_duration = Histogram(
            "pgshift_job_duration_seconds",
            "Run time of finished Jobs (start to completion), by action.",
            ["action"], buckets=DURATION_BUCKETS, registry=r,
        )  # fmt: skip
        self.step_duration = Histogram(
            "pgshift_step_duration_seconds",
            "Duration of each applied step, by phase (expand|backfill|contract|other): "
            'phase="backfill" is the backfill durations.',
            ["phase"], buckets=DURATION_BUCKETS, registry=r,
        )  # fmt: skip
        self.backfill_rows = PromCounter(
            "pgshift_backfill_rows_total",
            "Rows backfilled, as the running Jobs' progress lines report them.",
            registry=r,
        )
        self.backups = PromCounter(
            "pgshift_backups_total", "Backup Jobs finished, by outcome.", ["outcome"], registry=r
        )
        self.backup_bytes = PromCounter(
            "pgshift_backup_bytes_total", "Bytes of the dumps backups wrote.", registry=r
        )
        self.backup_duration = Histogram(
            "pgshift_backup_duration_seconds", "Run time of successful backup Jobs.",
            buckets=DURATION_BUCKETS, registry=r,
        )  # fmt: skip
        self.failures = PromCounter(
            "pgshift_failures_total",
            "Failures recorded in status.failure, by reason (the error class) and SQLSTATE "
            'class (2 characters, "" when the failure has none).',
            ["reason", "sqlstate_class"],
            registry=r,
        )
        self.gate_wait = Histogram(
            "pgshift_gate_wait_seconds",
            "Time a step waited at a gate before it opened, by gate type "
            "(Approval|Rollout|Destructive); measured by this operator process.",
            ["gate"], buckets=GATE_BUCKETS, registry=r,
        )  # fmt: skip
        r.register(self)

    # --- the gauges, computed at scrape time from what the operator last saw -------------------

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            seen = list(self._seen.values())
        phases = GaugeMetricFamily(
            "pgshift_migrations", "Migrations by status.phase.", labels=["phase"]
        )
        for phase, n in sorted(Counter(s.phase for s in seen if s.phase).items()):
            phases.add_metric([phase], n)
        conds = GaugeMetricFamily(
            "pgshift_migration_conditions",
            "Migrations by condition (Ready|Complete|Reconciling|Stalled) and its status.",
            labels=["condition", "status"],
        )
        for (cond, status), n in sorted(Counter(c for s in seen for c in s.conditions).items()):
            conds.add_metric([cond, status], n)
        running = [s for s in seen if s.backfill_step]
        backfills = GaugeMetricFamily(
            "pgshift_backfills_running", "Backfill steps running now (as last observed)."
        )
        backfills.add_metric([], len(running))
        rate = GaugeMetricFamily(
            "pgshift_backfill_rows_per_second",
            "Rows per second of the running backfills together (from their progress lines).",
        )
        rate.add_metric([], sum(s.backfill_rate for s in running))
        return [phases, conds, backfills, rate]

    def describe(self) -> Iterable[Metric]:
        return []  # the names are known only at collect time: registering checks nothing.

    # --- updates ------------------------------------------------------------------------------

    def job_started(self, action: Action) -> None:
        self.jobs_started.labels(action=action.value).inc()

    def record(
        self,
        key: Key,
        *,
        before: Memory,
        after: Memory,
        job: JobState | None,
        status: Mapping[str, Any],
        now: float,
    ) -> None:
        """One reconcile: `before`/`after` the Memory it read and wrote, `job` the Job it
        observed, `status` the status it rendered, `now` a monotonic clock (gate waits)."""
        with self._lock:
            seen = self._seen.setdefault(key, _Seen())
            seen.phase = str(status.get("phase") or "")
            seen.conditions = _conditions(status.get("conditions") or ())
            if job is not None and job.phase is not JobPhase.RUNNING:
                self._finished(job)
            self._failure(before.failure, after.failure)
            self._backfill(seen, job, after.current_step)
            self._gate(seen, after.gate, now)

    def forget(self, key: Key) -> None:
        """The Migration is gone: it no longer counts in the gauges."""
        with self._lock:
            self._seen.pop(key, None)

    def _finished(self, job: JobState) -> None:
        outcome = "succeeded" if job.phase is JobPhase.SUCCEEDED else "failed"
        self.jobs_finished.labels(action=job.action.value, outcome=outcome).inc()
        if job.seconds is not None:
            self.job_duration.labels(action=job.action.value).observe(job.seconds)
        summary = _summary(job.result)
        if job.action is Action.BACKUP:
            ok = outcome == "succeeded" and (summary is None or summary.ok)
            self.backups.labels(outcome="succeeded" if ok else "failed").inc()
            if ok and summary is not None and summary.backup is not None:
                self.backup_bytes.inc(max(0, summary.backup.size))
            if ok and job.seconds is not None:
                self.backup_duration.observe(job.seconds)
        if summary is None:
            return
        for migration in summary.applied:
            for step in migration.steps:
                phase = step.phase if step.phase in STEP_PHASES else "other"
                self.step_duration.labels(phase=phase).observe(max(0, step.duration_ms) / 1000)

    def _failure(self, before: Failure | None, after: Failure | None) -> None:
        if after is None or after == before:
            return
        if before is not None and (before.job, before.time) == (after.job, after.time):
            return  # the same failure, escalated (retries exhausted): counted once
        self.failures.labels(
            reason=after.code or "Unknown", sqlstate_class=sqlstate_class(after.sqlstate)
        ).inc()

    def _backfill(
        self, seen: _Seen, job: JobState | None, current: Mapping[str, Any] | None
    ) -> None:
        step = StepProgress.from_dict(current) if current else None
        running = (
            job is not None
            and job.phase is JobPhase.RUNNING
            and job.action is Action.APPLY
            and step is not None
            and step.phase == "backfill"
            and step.key is not None
        )
        if not running or step is None:
            seen.backfill_step, seen.backfill_rows, seen.backfill_rate = "", 0, 0.0
            return
        rows = step.rows or 0
        # a step first seen counts its rows so far (a resumed Job's include the checkpoint's).
        done_before = seen.backfill_rows if seen.backfill_step == step.key else 0
        if rows > done_before:
            self.backfill_rows.inc(rows - done_before)
        seen.backfill_step, seen.backfill_rows = step.key or "", max(rows, done_before)
        seen.backfill_rate = step.rows_per_second or 0.0

    def _gate(self, seen: _Seen, gate: Mapping[str, str] | None, now: float) -> None:
        held = f"{gate.get('type', '')}/{gate.get('step', '')}" if gate else ""
        if held == seen.gate:
            return
        if seen.gate and seen.gate_since:
            self.gate_wait.labels(gate=seen.gate.split("/", 1)[0] or "Unknown").observe(
                max(0.0, now - seen.gate_since)
            )
        seen.gate, seen.gate_since = held, (now if held else 0.0)


def _conditions(raw: Iterable[Any]) -> tuple[tuple[str, str], ...]:
    return tuple(
        (str(c.get("type")), str(c.get("status")))
        for c in raw
        if isinstance(c, Mapping) and c.get("type")
    )


def _summary(result: Mapping[str, Any] | None) -> RunSummary | None:
    if not result:
        return None
    try:
        return read_summary(result)
    except ValueError:  # an unreadable summary stalls the Migration (fold.py); no figures.
        return None


#: the operator's metrics; handlers and reconcile update it, `serve` exposes it.
METRICS = Metrics()


# --- the endpoint -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    path: str


class EndpointError(ValueError):
    """`PGSHIFT_METRICS` is not an `http://HOST:PORT/PATH` URL."""


def parse_endpoint(url: str) -> Endpoint | None:
    """`http://HOST:PORT/PATH` (the form of `PGSHIFT_LIVENESS`); "" = no endpoint."""
    if not url.strip():
        return None
    parts = urllib.parse.urlsplit(url.strip())
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "http" or not parts.hostname or port is None or parts.query:
        raise EndpointError(
            f"PGSHIFT_METRICS: {url!r} is not http://HOST:PORT/PATH (e.g. "
            "http://0.0.0.0:9090/metrics), or empty for no metrics endpoint"
        )
    return Endpoint(parts.hostname, port, parts.path or "/metrics")


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per scrape would drown the operator's own log


def serve(endpoint: Endpoint, metrics: Metrics = METRICS) -> WSGIServer:
    """Serve `metrics` at `endpoint` on a daemon thread (404 on any other path)."""
    exposition = make_wsgi_app(metrics.registry)

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "") != endpoint.path:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [f"metrics are at {endpoint.path}\n".encode()]
        result: Iterable[bytes] = exposition(environ, start_response)
        return result

    server = make_server(endpoint.host, endpoint.port, app, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, name="pgshift-metrics", daemon=True)
    thread.start()
    return server
