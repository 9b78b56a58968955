"""Progress lines read back into the current step (contract.progress)."""

from __future__ import annotations

import json

from pgshift.contract import ProgressEvent, StepProgress, progress_from_log


def _log(*events: dict[str, object]) -> str:
    return "\n".join(["pgshift: a text line", *(json.dumps(e) for e in events), "[1, 2]"])


def test_the_last_started_step_with_its_backfill_counts() -> None:
    log = _log(
        {"event": "step.started", "step": "a-0", "migration": "m1", "phase": "expand", "tx": "x"},
        {"event": "step.started", "step": "b-0", "migration": "m2", "phase": "backfill"},
        {"event": "backfill.progress", "step": "b-0", "rows": 10, "batches": 1, "new": True},
        {"event": "backfill.progress", "step": "b-0", "rows": 20, "batches": 2},
    )
    assert progress_from_log(log) == StepProgress("b-0", "m2", "backfill", rows=20, batches=2)


def test_a_backfill_of_another_step_starts_afresh_and_nothing_is_none() -> None:
    log = _log(
        {"event": "step.started", "step": "a-0", "migration": "m1", "phase": "expand"},
        {"event": "backfill.progress", "step": "b-0", "rows": 5, "batches": 1},
    )
    assert progress_from_log(log) == StepProgress("b-0", rows=5, batches=1)
    assert progress_from_log(_log()) is None


def test_a_later_observation_of_the_same_step_keeps_the_plans_summary() -> None:
    planned = StepProgress("b-0", "m2", "backfill", summary="update users")
    seen = StepProgress("b-0", rows=5, batches=1)
    assert planned.then(seen) == StepProgress("b-0", "m2", "backfill", "update users", 5, 1)
    assert planned.then(StepProgress("c-0")) == StepProgress("c-0")


def test_round_trips() -> None:
    event = ProgressEvent("backfill.progress", "b-0", rows=3, batches=1)
    assert ProgressEvent.from_dict(event.as_dict() | {"level": "info"}) == event
    step = StepProgress("b-0", "m2", "backfill", "s", 3, 1)
    assert StepProgress.from_dict(step.as_dict()) == step
    assert StepProgress.from_dict(None) is None
