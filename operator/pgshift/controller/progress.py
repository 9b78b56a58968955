"""The runner's progress lines (docs/runner.md) read back from a Pod's log. PURE.

The reading is the contract's (`pgshift.contract.progress`); `JobState.progress` holds its
wire form (status' `currentStep` keys)."""

from __future__ import annotations

from typing import Any

from pgshift.contract.progress import progress_from_log as _current_step


def progress_from_log(text: str) -> dict[str, Any] | None:
    current = _current_step(text)
    return current.as_dict() if current else None
