"""The error-class -> reason mapping and the retry decision live once, in the contract."""

from __future__ import annotations

from pgshift.contract import (
    FAILURE_REASONS,
    SUMMARY_VERSION_UNKNOWN,
    Reason,
    failure_reason,
    failure_retryable,
    retry_reason,
)


def test_a_summary_of_an_unknown_version_has_its_own_reason() -> None:
    assert failure_reason(SUMMARY_VERSION_UNKNOWN) is Reason.SUMMARY_VERSION_UNKNOWN
    assert failure_reason("NoSuchCode") is Reason.JOB_FAILED
    assert retry_reason("LockNotAcquired") is Reason.LOCK_BUSY
    assert retry_reason("JobLost") is Reason.RETRYING
    assert all(isinstance(r, Reason) for r in FAILURE_REASONS.values())


def test_a_sqlstate_decides_else_the_flag_or_the_code() -> None:
    assert not failure_retryable("Connection", "28P01", runner_says=True)
    assert failure_retryable("MigrationFailed", "55P03", runner_says=False)
    assert failure_retryable("Interrupted", "57014", runner_says=False)
    assert not failure_retryable("MigrationFailed", "57014", runner_says=False)
    assert failure_retryable("JobLost", None, runner_says=False)
    assert failure_retryable("Whatever", "", runner_says=True)
    assert not failure_retryable(SUMMARY_VERSION_UNKNOWN, None, runner_says=False)
