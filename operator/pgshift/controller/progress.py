"""The runner's progress lines (docs/runner.md) read back from a Pod's log. PURE."""

from __future__ import annotations

import json
from typing import Any


def progress_from_log(text: str) -> dict[str, Any] | None:
    current: dict[str, Any] = {}
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(event, dict):
            continue
        if event.get("event") == "step.started":
            current = {k: event.get(k) for k in ("migration", "phase")} | {"key": event.get("step")}
        elif event.get("event") == "backfill.progress":
            if current.get("key") not in (None, event.get("step")):
                current = {"key": event.get("step")}
            current.setdefault("key", event.get("step"))
            current["rows"] = int(event.get("rows") or 0)
            current["batches"] = int(event.get("batches") or 0)
    return current or None
