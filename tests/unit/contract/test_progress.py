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


def _at(second: int) -> str:
    return f"2026-01-02T03:04:{second:02d}.000000Z"


def test_rate_and_time_left_come_from_the_tails_first_and_last_backfill_lines() -> None:
    log = _log(
        {"event": "step.started", "step": "b-0", "migration": "m2", "phase": "backfill"},
        {"event": "backfill.progress", "step": "b-0", "rows": 1000, "batches": 1,
         "rowsEstimate": 10000, "timestamp": _at(0), "done": False},
        {"event": "backfill.progress", "step": "b-0", "rows": 2000, "batches": 2,
         "rowsEstimate": 10000, "timestamp": _at(4), "done": False},
        {"event": "backfill.progress", "step": "b-0", "rows": 3000, "batches": 3,
         "rowsEstimate": 10000, "timestamp": _at(10), "done": False},
    )  # fmt: skip
    step = progress_from_log(log)
    assert step == StepProgress(
        "b-0", "m2", "backfill", rows=3000, batches=3,
        rows_per_second=200.0, rows_estimate=10000, eta_seconds=35,
    )  # fmt: skip
    # status and the wire spell them in camelCase, and read them back.
    assert step is not None and step.as_dict()["rowsPerSecond"] == 200.0
    assert {"rowsEstimate", "etaSeconds"} <= step.as_dict().keys()
    assert StepProgress.from_dict(step.as_dict()) == step


def test_time_left_is_unknown_without_an_estimate_or_past_it_and_zero_when_done() -> None:
    def fold(*rows_estimate_done: tuple[int, int | None, bool]) -> StepProgress | None:
        lines = [{"event": "step.started", "step": "b-0", "phase": "backfill"}]
        for i, (rows, estimate, done) in enumerate(rows_estimate_done):
            line = {"event": "backfill.progress", "step": "b-0", "rows": rows, "batches": i + 1,
                    "timestamp": _at(i * 2), "done": done}  # fmt: skip
            if estimate is not None:
                line["rowsEstimate"] = estimate
            lines.append(line)
        return progress_from_log(_log(*lines))

    no_estimate = fold((10, None, False), (30, None, False))
    assert no_estimate is not None
    assert (no_estimate.rows_per_second, no_estimate.eta_seconds) == (10.0, None)
    stale = fold((10, 20, False), (30, 20, False))  # reltuples was out of date: no guess
    assert stale is not None and stale.eta_seconds is None
    done = fold((10, 100, False), (30, 100, True))
    assert done is not None and done.eta_seconds == 0
    one_line = fold((10, 100, False))  # one sample spans no time: no rate yet
    assert one_line is not None and (one_line.rows_per_second, one_line.eta_seconds) == (None, None)


def test_a_later_read_without_a_rate_keeps_the_last_known_figures() -> None:
    before = StepProgress("b-0", rows=100, rows_per_second=10.0, rows_estimate=500, eta_seconds=40)
    later = StepProgress("b-0", rows=150, batches=3)
    assert before.then(later) == StepProgress(
        "b-0", rows=150, batches=3, rows_per_second=10.0, rows_estimate=500, eta_seconds=40
    )
