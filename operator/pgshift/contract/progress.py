"""The runner's progress lines (docs/runner.md, one JSON object per stdout line) and the
current step the controller shows from them. PURE."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any, TypeVar

from pgshift.contract.coerce import opt_int, opt_str, text


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _known(record: ProgressEvent | StepProgress) -> dict[str, Any]:
    """A record's fields that are known, in field order, under their wire names (camelCase):
    no nulls on the wire or in status."""
    return {_camel(k): v for k, v in asdict(record).items() if v is not None}


def _opt_float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


_T = TypeVar("_T")

STEP_STARTED = "step.started"
BACKFILL_PROGRESS = "backfill.progress"


@dataclass(frozen=True)
class ProgressEvent:
    """One progress line, with the fields the controller reads; the others are ignored."""

    event: str
    step: str | None = None
    migration: str | None = None
    phase: str | None = None
    rows: int | None = None
    batches: int | None = None
    #: the table's row estimate (pg_class.reltuples) when the backfill's walk started.
    rows_estimate: int | None = None
    #: the walk reached the end of the key range.
    done: bool | None = None
    #: when the runner wrote the line (every line carries it: docs/runner.md).
    timestamp: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return _known(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ProgressEvent:
        done = d.get("done")
        return cls(
            event=text(d.get("event")),
            step=opt_str(d.get("step")),
            migration=opt_str(d.get("migration")),
            phase=opt_str(d.get("phase")),
            rows=opt_int(d.get("rows")),
            batches=opt_int(d.get("batches")),
            rows_estimate=opt_int(d.get("rowsEstimate")),
            done=done if isinstance(done, bool) else None,
            timestamp=opt_str(d.get("timestamp")),
        )

    def at(self) -> float | None:
        """`timestamp` as POSIX seconds, None when absent or unreadable."""
        if not self.timestamp:
            return None
        try:
            return dt.datetime.fromisoformat(self.timestamp).timestamp()
        except ValueError:
            return None


@dataclass(frozen=True)
class StepProgress:
    """The step a running apply is at (`status.currentStep`): its key, migration and phase,
    the plan's summary of it, and for a backfill the rows and batches done, the rate over the
    log's tail, the table's row estimate and the seconds left at that rate (an estimate: a
    backfill with a WHERE guard updates fewer rows than the table holds)."""

    key: str | None = None
    migration: str | None = None
    phase: str | None = None
    summary: str | None = None
    rows: int | None = None
    batches: int | None = None
    rows_per_second: float | None = None
    rows_estimate: int | None = None
    eta_seconds: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """Only what is known (status carries no nulls)."""
        return _known(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> StepProgress | None:
        if not d:
            return None
        return cls(
            key=opt_str(d.get("key")),
            migration=opt_str(d.get("migration")),
            phase=opt_str(d.get("phase")),
            summary=opt_str(d.get("summary")),
            rows=opt_int(d.get("rows")),
            batches=opt_int(d.get("batches")),
            rows_per_second=_opt_float(d.get("rowsPerSecond")),
            rows_estimate=opt_int(d.get("rowsEstimate")),
            eta_seconds=opt_int(d.get("etaSeconds")),
        )

    def then(self, later: StepProgress) -> StepProgress:
        """This step updated by a later observation: the same step keeps what the later one
        does not say (the plan's summary); a new step starts afresh."""
        if later.key != self.key:
            return later
        return StepProgress(
            key=later.key,
            migration=later.migration if later.migration is not None else self.migration,
            phase=later.phase if later.phase is not None else self.phase,
            summary=later.summary if later.summary is not None else self.summary,
            rows=later.rows if later.rows is not None else self.rows,
            batches=later.batches if later.batches is not None else self.batches,
            rows_per_second=_either(later.rows_per_second, self.rows_per_second),
            rows_estimate=_either(later.rows_estimate, self.rows_estimate),
            eta_seconds=_either(later.eta_seconds, self.eta_seconds),
        )


def _either(later: _T | None, earlier: _T | None) -> _T | None:
    return later if later is not None else earlier


def read_events(lines: Iterable[str]) -> Iterable[ProgressEvent]:
    """The progress events among log lines (other lines, e.g. text output, are skipped)."""
    for line in lines:
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(data, Mapping):
            yield ProgressEvent.from_dict(data)


def progress_from_log(log: str) -> StepProgress | None:
    """The current step from a runner's log: the last `step.started`, with the rows and
    batches of its last `backfill.progress`, the rate between the first and the last of those
    in the log (same step, rows not going back), and the time left at that rate."""
    current: StepProgress | None = None
    samples: list[tuple[float, int]] = []
    done = False
    for event in read_events(log.splitlines()):
        if event.event == STEP_STARTED:
            current = StepProgress(key=event.step, migration=event.migration, phase=event.phase)
            samples, done = [], False
        elif event.event == BACKFILL_PROGRESS:
            if current is None or current.key not in (None, event.step):
                current = StepProgress(key=event.step)
                samples, done = [], False
            rows = event.rows or 0
            at = event.at()
            if samples and rows < samples[-1][1]:
                samples = []  # another pass counts afresh: the rate restarts
            if at is not None:
                samples.append((at, rows))
            done = bool(event.done)
            current = replace(
                current,
                key=current.key if current.key is not None else event.step,
                rows=rows,
                batches=event.batches or 0,
                rows_estimate=_either(event.rows_estimate, current.rows_estimate),
            )
    if current is None or current.rows is None:
        return current
    rate = backfill_rate(samples)
    return replace(
        current,
        rows_per_second=None if rate is None else round(rate, 1),
        eta_seconds=0 if done else eta(current.rows, current.rows_estimate, rate),
    )


def backfill_rate(samples: list[tuple[float, int]]) -> float | None:
    """Rows per second between the first and the last (time, rows) sample; None when they
    span no time."""
    if len(samples) < 2 or samples[-1][0] <= samples[0][0]:
        return None
    return max(0.0, (samples[-1][1] - samples[0][1]) / (samples[-1][0] - samples[0][0]))


def eta(rows: int, estimate: int | None, rate: float | None) -> int | None:
    """Seconds left at `rate` to reach `estimate` rows; None when either is unknown, the rate
    is 0, or the rows already passed the estimate (it was stale: no guess then)."""
    if estimate is None or rate is None or rate <= 0 or rows > estimate:
        return None
    return math.ceil((estimate - rows) / rate)
