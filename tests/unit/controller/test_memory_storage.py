"""Status is written from memory and read back into it in one place (for_storage /
from_storage), and a runner failure becomes status' failure through the contract."""

from __future__ import annotations

import json

from pgshift.contract import RunFailure
from pgshift.controller.memory import Failure, Memory, Plan, Step, from_status, user_status


def _through_json(value: object) -> object:
    return json.loads(json.dumps(value))


PLAN = Plan(
    generation=3,
    digest="sha256:x",
    steps=(Step("k-0", "0001_a", "expand"), Step("k-1", "0002_b", "contract", True, ("t",), "s")),
    pending=("0001_a", "0002_b"),
    pending_count=2,
    applied_count=1,
    last_applied="0000_init",
    affected_tables=("public.t",),
    names=("0000_init", "0001_a", "0002_b"),
)


def test_plan_and_failure_round_trip_through_status() -> None:
    failure = Failure.from_run(
        RunFailure("MigrationFailed", "boom", "0001_a", "k-0", "UPDATE t", 3, "23505", "d", "h"),
        job="shop-2-apply", time="2026-12-01T00:00:00Z", generation=3, digest="sha256:x",
    )  # fmt: skip
    memory = Memory(seq=4, plan=PLAN, failure=failure)
    back = from_status(_through_json(user_status(memory)))  # type: ignore[arg-type]
    assert back.plan == PLAN and back.failure == failure
    assert Plan.from_storage(_through_json(PLAN.for_storage())) == PLAN  # type: ignore[arg-type]


def test_a_runner_failure_is_decided_again_by_the_one_table() -> None:
    wrong_password = RunFailure("Connection", "auth failed", sqlstate="28P01", retryable=True)
    f = Failure.from_run(wrong_password, job="j", time="t", generation=1, digest="")
    assert not f.retryable and f.migration == "" and f.line == 0
    lock = RunFailure("MigrationFailed", "lock timeout", sqlstate="55P03", statement="x" * 900)
    f = Failure.from_run(lock, job="j", time="t", generation=1, digest="")
    assert f.retryable and len(f.statement) == 200
