"""Every failure the runner can report reaches status with a deliberate reason: a new error
class without one fails here instead of showing up as JobFailed in a user's cluster."""

from __future__ import annotations

import pgshift.errors as errors
from pgshift.controller.status import FAILURE_REASONS, REASONS, RETRY_REASONS, RETRYABLE_CODES


def _error_classes(base: type[errors.PgshiftError]) -> list[type[errors.PgshiftError]]:
    found = []
    for sub in base.__subclasses__():
        found.append(sub)
        found.extend(_error_classes(sub))
    return found


def test_every_runner_error_code_maps_to_a_reason() -> None:
    missing = sorted(
        {
            cls.code
            for cls in _error_classes(errors.PgshiftError)
            if cls.code not in FAILURE_REASONS and cls.code not in RETRYABLE_CODES
            and cls.code != "Interrupted"  # always retryable: the next Job resumes
        }
    )
    assert missing == [], f"runner error codes without a reason in controller/status.py: {missing}"


def test_retryable_codes_wait_with_a_named_reason_or_retrying() -> None:
    for code, reason in RETRY_REASONS.items():
        assert code in RETRYABLE_CODES
        assert reason in REASONS
