"""The runner's progress lines (docs/runner.md, one JSON object per stdout line) and the
current step the controller shows from them. PURE."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from pgshift.contract.coerce import opt_int, opt_str, text


def _known(record: ProgressEvent | StepProgress) -> dict[str, Any]:
    """A record's fields that are known, in field order: no nulls on the wire or in status."""
    return {k: v for k, v in asdict(record).items() if v is not None}


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

    def as_dict(self) -> dict[str, Any]:
        return _known(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ProgressEvent:
        return cls(
            event=text(d.get("event")),
            step=opt_str(d.get("step")),
            migration=opt_str(d.get("migration")),
            phase=opt_str(d.get("phase")),
            rows=opt_int(d.get("rows")),
            batches=opt_int(d.get("batches")),
        )


@dataclass(frozen=True)
class StepProgress:
    """The step a running apply is at (`status.currentStep`): its key, migration and phase,
    the plan's summary of it, and for a backfill the rows and batches done."""

    key: str | None = None
    migration: str | None = None
    phase: str | None = None
    summary: str | None = None
    rows: int | None = None
    batches: int | None = None

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
        )


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
    batches of its last `backfill.progress`."""
    current: StepProgress | None = None
    for event in read_events(log.splitlines()):
        if event.event == STEP_STARTED:
            current = StepProgress(key=event.step, migration=event.migration, phase=event.phase)
        elif event.event == BACKFILL_PROGRESS:
            if current is None or current.key not in (None, event.step):
                current = StepProgress(key=event.step)
            current = StepProgress(
                key=current.key if current.key is not None else event.step,
                migration=current.migration,
                phase=current.phase,
                rows=event.rows or 0,
                batches=event.batches or 0,
            )
    return current
