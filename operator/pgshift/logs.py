"""Progress events (JSON lines, or structlog's console renderer) and secret redaction.

Every event passes through redaction (`_json_line`, or `redact_event` for the console), which
removes registered secrets (the password raw and percent-encoded) and the userinfo of any
postgres URL, so no log line, error message or summary can echo a credential even when a driver
puts the URL into its message.

JSON lines (a Job's progress feed, `--output json`, text output to a non-terminal) are written
by `JsonLogger`, a few lines of code: structlog is imported only for a terminal, because its
import (with rich) costs every Job some 80 ms of start-up.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
import sys
import threading
import urllib.parse
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

REDACTED = "***"

#: `postgres://user:pass@` / `postgresql://...@`: everything between the scheme and the last `@`
#: before whitespace or a quote is userinfo (a raw password may itself hold `@` or `/`).
_URL_USERINFO = re.compile(r"(postgres(?:ql)?://)(?:[^\s@'\"]*@)+", re.IGNORECASE)
#: `password=...` in keyword/value conninfo strings.
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)

_secrets: set[str] = set()
#: `_secrets`, longest first (see `redact`), kept sorted as they are registered.
_secret_order: tuple[str, ...] = ()


def secret_forms(secret: str) -> set[str]:
    """The ways a secret can appear in text: raw and every common percent-encoding."""
    if not secret:
        return set()
    forms = {
        secret,
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote(secret),
        urllib.parse.quote_plus(secret),
    }
    return {f for f in forms if f}


def register_secret(secret: str | None) -> None:
    """Redact this secret (in all its encodings) from every later log event and message."""
    global _secret_order
    if secret:
        _secrets.update(secret_forms(secret))
        _secret_order = tuple(sorted(_secrets, key=len, reverse=True))


def password_of(url: str | None) -> str | None:
    """The decoded password of a postgres URL, or None."""
    if not url:
        return None
    try:
        raw = urllib.parse.urlsplit(url).password
    except ValueError:
        return None
    return urllib.parse.unquote(raw) if raw else None


def redact(text: str, url: str | None = None, secrets: Iterable[str] = ()) -> str:
    """Remove credentials from `text`: URL userinfo, `password=` values, and the password of
    `url` and every registered secret, raw and percent-encoded (longest forms first, so an
    encoded form is not half-replaced by a raw substring)."""
    if not text:
        return text
    forms: Iterable[str] = _secret_order
    pw = password_of(url)
    if secrets or pw:
        extra = set(_secrets)
        for s in secrets:
            extra |= secret_forms(s)
        if pw:
            extra |= secret_forms(pw)
        forms = sorted(extra, key=len, reverse=True)
    out = text
    # cheap tests first: most lines hold neither a URL nor a password keyword.
    if "://" in out:
        out = _URL_USERINFO.sub(lambda m: f"{m.group(1)}{REDACTED}@", out)
    if "assword" in out or "ASSWORD" in out:
        out = _KV_PASSWORD.sub(lambda m: f"{m.group(1)}{REDACTED}", out)
    for form in forms:
        if form in out:
            out = out.replace(form, REDACTED)
    return out


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    return value


def redact_event(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: redact every string in the event, nested ones included."""
    for key, value in list(event.items()):
        event[key] = _redact_value(value)
    return event


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).isoformat().replace("+00:00", "Z")


def _json_line(method: str, event: str | None, fields: dict[str, Any]) -> str:
    """One JSON line: `event` first (so `grep '"event": "step.'` reads well), the fields
    redacted, then `level` and `timestamp`."""
    out: dict[str, Any] = {"event": event}
    for key, value in fields.items():
        out[key] = value if value is None or type(value) in _PLAIN else _redact_value(value)
    out.setdefault("level", _LEVELS.get(method, method))
    out.setdefault("timestamp", _now())
    return json.dumps(out, default=str)


#: structlog's names for the methods that are aliases (as its `add_log_level`).
_LEVELS = {"warn": "warning", "exception": "error"}
#: values that need no redaction.
_PLAIN = frozenset({int, float, bool})


class JsonLogger:
    """`info(event, **fields)` & co.: one redacted JSON line per event (see `_json_line`),
    flushed at once (a Job's log is read live, and a killed Job loses nothing it printed)."""

    def __init__(self, target: TextIO, level: int = logging.INFO) -> None:
        self._target = target
        self._level = level
        self._lock = threading.Lock()

    def _log(self, method: str, level: int, event: str | None, fields: dict[str, Any]) -> None:
        if level < self._level:
            return
        line = _json_line(method, event, fields)
        with self._lock:
            self._target.write(line + "\n")
            self._target.flush()

    def debug(self, event: str | None = None, **fields: Any) -> None:
        self._log("debug", logging.DEBUG, event, fields)

    def info(self, event: str | None = None, **fields: Any) -> None:
        self._log("info", logging.INFO, event, fields)

    def warning(self, event: str | None = None, **fields: Any) -> None:
        self._log("warning", logging.WARNING, event, fields)

    warn = warning

    def error(self, event: str | None = None, **fields: Any) -> None:
        self._log("error", logging.ERROR, event, fields)

    def exception(self, event: str | None = None, **fields: Any) -> None:
        self._log("exception", logging.ERROR, event, fields)

    def critical(self, event: str | None = None, **fields: Any) -> None:
        self._log("critical", logging.CRITICAL, event, fields)

    def bind(self, **_fields: Any) -> JsonLogger:
        return self


#: set by `configure` for JSON output; None: structlog's console renderer (or its defaults).
_json_logger: JsonLogger | None = None


def configure(output: str = "text", *, stream: TextIO | None = None, level: str = "info") -> None:
    """Where progress events go and how they look.

    `--output json`: JSON lines on stdout (a Job's log is the progress feed; the summary is the
    last line). Text: events on stderr (stdout holds only the final table), readable on a
    terminal and JSON lines when stderr is not one (a log collector).
    """
    global _json_logger
    # psycopg logs a warning when a failed pipeline is torn down; the runner reports the
    # failure itself, and stderr must keep its one `error[...]` line.
    psycopg_log = logging.getLogger("psycopg")
    if not psycopg_log.handlers:
        psycopg_log.addHandler(logging.NullHandler())
        psycopg_log.propagate = False
    if output == "json":
        target, as_json = stream or sys.stdout, True
    else:
        target = stream or sys.stderr
        as_json = not target.isatty()
    minimum = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    if as_json:
        _json_logger = JsonLogger(target, minimum)
        return
    _json_logger = None
    import structlog

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_event,
            structlog.dev.ConsoleRenderer(colors=target.isatty()),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(minimum),
        logger_factory=structlog.PrintLoggerFactory(file=target),
        # a logger taken after this call binds once; configure() again for another target.
        cache_logger_on_first_use=True,
    )


def get_logger(name: str = "pgshift") -> Any:
    if _json_logger is not None:
        return _json_logger
    import structlog

    return structlog.get_logger(name)
