"""The controller decides retries from the runner's summary with the same table as the runner
(`pgshift.contract.sqlstates`): a SQLSTATE decides whatever the code; without one, the flag or
code."""

from __future__ import annotations

import pytest

from pgshift.controller.status import REASONS, Reason
from tests.unit.controller.test_decide import E1, decide, finished, observe, plan_result, step


def _failed(code: str, sqlstate: str, retryable: bool):  # type: ignore[no-untyped-def]
    d = decide(observe())
    d = step(d.memory, job=finished(d, plan_result(E1)))
    failure = {"code": code, "sqlstate": sqlstate, "message": "x", "retryable": retryable}
    return step(d.memory, job=finished(d, {"ok": False, "failure": failure}, ok=False))


@pytest.mark.parametrize(
    ("code", "sqlstate", "runner_says", "retried"),
    [
        ("Connection", "28P01", False, False),  # wrong password: stalls at once
        ("Connection", "28000", False, False),  # no pg_hba.conf entry, unknown role
        ("Connection", "3D000", False, False),  # no such database
        ("MigrationFailed", "28P01", True, False),  # the table wins over a stale flag
        ("Connection", "57P03", True, True),  # starting up / shutting down
        ("Connection", "53300", True, True),  # too many connections
        ("Connection", "08001", True, True),  # refused, DNS
        ("MigrationFailed", "57P01", True, True),  # fast shutdown, pg_terminate_backend
        ("MigrationFailed", "57P02", True, True),  # another backend crashed
        ("MigrationFailed", "", True, True),  # connection lost, no SQLSTATE
        ("MigrationFailed", "57P04", False, False),  # database dropped
        ("MigrationFailed", "53100", False, False),  # disk full
        ("MigrationFailed", "57014", False, False),  # statement_timeout
        ("Interrupted", "57014", True, True),  # the runner's own SIGTERM
        ("Connection", "", False, True),  # an older runner without SQLSTATEs: by the code
    ],
)
def test_retry_decision(code: str, sqlstate: str, runner_says: bool, retried: bool) -> None:
    d = _failed(code, sqlstate, runner_says)
    assert d.memory.failure is not None and d.memory.failure.retryable is retried
    assert REASONS[d.reason].stalled is not retried
    if not retried:
        assert d.reason is not Reason.RETRIES_EXHAUSTED  # no 5 minutes of futile attempts
