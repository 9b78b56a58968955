"""The run summary of docs/runner.md: one JSON object, at most 4 KiB (a Job's termination
message), and failures with their retry decision (the table is `pgshift.contract.sqlstates`).

Imports no psycopg at load time: the CLI writes an `Interrupted` summary even when a SIGTERM
comes while the driver is still being imported.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pgshift.contract.sqlstates import is_retryable
from pgshift.engine import signals
from pgshift.logs import redact, redact_values

if TYPE_CHECKING:
    import psycopg

#: Kubernetes keeps at most 4096 bytes of a termination message.
MAX_SUMMARY_BYTES = 4096


def db_error_retryable(exc: psycopg.Error, *, cancelled_by_us: bool = False) -> bool:
    """The retry table for a driver error: by its SQLSTATE (`cancelled_by_us`, or a SIGTERM
    came: 57014 is the runner's own cancel); without one, a lost connection
    (OperationalError: the server crashed, the network dropped) is retryable, a client-side
    error is not."""
    import psycopg  # loaded already: `exc` is one of its errors

    sqlstate = exc.sqlstate or exc.diag.sqlstate
    if sqlstate:
        # a 57014 after our own SIGTERM is the cancel we asked for: a rerun resumes.
        ours = cancelled_by_us or signals.requested()
        return is_retryable(sqlstate, cancelled_by_us=ours)
    return isinstance(exc, psycopg.OperationalError)


@dataclass(frozen=True)
class Failure:
    migration: str | None
    step: str | None
    statement: str | None
    line: int | None
    sqlstate: str | None
    message: str
    detail: str | None = None
    hint: str | None = None
    retryable: bool = False
    code: str = "MigrationFailed"

    def as_dict(self) -> dict[str, Any]:
        return {
            "migration": self.migration,
            "step": self.step,
            "statement": (self.statement or "")[:200] or None,
            "line": self.line,
            "sqlstate": self.sqlstate,
            "message": self.message,
            "detail": self.detail,
            "hint": self.hint,
            "retryable": self.retryable,
            "code": self.code,
        }

    def one_line(self) -> str:
        where = " ".join(
            p
            for p in (
                self.migration or "",
                f"step {self.step}" if self.step else "",
                f"line {self.line}" if self.line else "",
            )
            if p
        )
        state = f" [{self.sqlstate}]" if self.sqlstate else ""
        text = f"error[{self.code}]: {where + ': ' if where else ''}{self.message}{state}"
        if self.hint:
            text += f" (hint: {self.hint})"
        return " ".join(redact(text).split())


def failure_from_db_error(
    exc: psycopg.Error,
    *,
    migration: str | None,
    step: str | None,
    statement: str | None,
    line: int | None,
    code: str = "MigrationFailed",
) -> Failure:
    diag = exc.diag
    sqlstate = exc.sqlstate or diag.sqlstate
    text = str(exc).strip()
    message = diag.message_primary or (text.splitlines()[0] if text else type(exc).__name__)
    return Failure(
        migration=migration,
        step=step,
        statement=statement,
        line=line,
        sqlstate=sqlstate,
        message=redact(message or ""),
        detail=redact(diag.message_detail) if diag.message_detail else None,
        hint=redact(diag.message_hint) if diag.message_hint else None,
        retryable=db_error_retryable(exc),
        code=code,
    )


@dataclass
class StepDone:
    key: str
    migration: str
    phase: str
    duration_ms: int


@dataclass
class Summary:
    """What a command reports; `as_dict` is the contract, `bounded_json` the termination message."""

    command: str
    ok: bool = True
    source_digest: str | None = None
    stopped: dict[str, Any] | None = None
    applied: list[StepDone] = field(default_factory=list)
    applied_count: int = 0
    pending_count: int = 0
    pending: list[str] = field(default_factory=list)
    last_applied: str | None = None
    failure: Failure | None = None
    #: command-specific fields (plan: steps, affectedTables, findings; backup: file, sha256...).
    extra: dict[str, Any] = field(default_factory=dict)
    exit_code: int = 0

    def as_dict(self) -> dict[str, Any]:
        grouped: dict[str, list[list[Any]]] = {}
        for s in self.applied:
            grouped.setdefault(s.migration, []).append([s.key, s.phase, s.duration_ms])
        out: dict[str, Any] = {
            "command": self.command,
            "ok": self.ok,
            "sourceDigest": self.source_digest,
            "stopped": self.stopped,
            "applied": [{"migration": m, "steps": steps} for m, steps in grouped.items()],
            "appliedCount": self.applied_count,
            "pendingCount": self.pending_count,
            "pending": list(self.pending),
            "lastApplied": self.last_applied,
            "failure": self.failure.as_dict() if self.failure else None,
        }
        out.update(self.extra)
        return out

    def bounded_json(self, limit: int = MAX_SUMMARY_BYTES) -> str:
        return bounded_json(self.as_dict(), limit)


def _dump(data: dict[str, Any]) -> str:
    # values are redacted, never the serialised text: the output stays valid JSON.
    return json.dumps(redact_values(data), separators=(",", ":"), default=str)


def bounded_json(data: dict[str, Any], limit: int = MAX_SUMMARY_BYTES) -> str:
    """Serialise within `limit` bytes: trim the longest lists from their end (marking
    `truncated`), then shorten long strings; the scalars a controller needs stay whole."""
    text = _dump(data)
    if len(text.encode()) <= limit:
        return text
    data = json.loads(json.dumps(data, default=str))
    data["truncated"] = True
    list_keys = [k for k, v in data.items() if isinstance(v, list)]
    while len(_dump(data).encode()) > limit:
        longest = max(list_keys, key=lambda k: len(json.dumps(data[k])), default=None)
        if longest is None or not data[longest]:
            break
        data[longest] = data[longest][
            : max(0, len(data[longest]) // 2 if len(data[longest]) > 1 else 0)
        ]
    for budget in (400, 200, 80):
        if len(_dump(data).encode()) <= limit:
            break
        data = _shorten(data, budget)
    text = _dump(data)
    if len(text.encode()) > limit:  # last resort: only what a controller cannot do without
        keep = {
            k: data.get(k)
            for k in (
                "command",
                "ok",
                "stopped",
                "appliedCount",
                "pendingCount",
                "lastApplied",
                "truncated",
            )
        }
        if data.get("failure"):
            keep["failure"] = {
                k: data["failure"].get(k)
                for k in ("migration", "step", "sqlstate", "code", "retryable")
            }
        text = _dump(keep)
    return text


def _shorten(value: Any, budget: int) -> Any:
    if isinstance(value, str) and len(value) > budget:
        return value[: budget - 1] + "…"
    if isinstance(value, dict):
        return {k: _shorten(v, budget) for k, v in value.items()}
    if isinstance(value, list):
        return [_shorten(v, budget) for v in value]
    return value
