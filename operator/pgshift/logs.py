"""Progress events (JSON lines, or structlog's console renderer) and secret redaction.

Redaction works by structure, never by searching text for the password: a password can be
anything (`s`, `1`, `result`, `r@w/p%ss:w`), and replacing its substrings everywhere mangles
what is around it (`"***esult"`, JSON that no longer parses) while a differently encoded tail
still gets through. The places a credential can occur are known:
- the userinfo of a postgres URL (`postgresql://user:pass@host`): all of it becomes `***@`;
- a `password=` value (libpq's keyword/value conninfo, `PGPASSWORD=`): the value becomes `***`;
- a mapping key named like a password (`password`, `PGPASSWORD`): its value becomes `***`;
- the error messages about the URL itself (libpq's and urllib's parse errors quote a piece of
  it): `redact_url_error`, which also blanks a quoted fragment holding the password or an `@`.
The password never goes anywhere else: libpq gets it as a keyword, pg_dump in the environment.

Values are redacted, never serialised text, so every JSON line and the result file stay valid
JSON. JSON lines (a Job's progress feed, `--output json`, text output to a non-terminal) are
written by `JsonLogger`, a few lines of code: structlog is imported only for a terminal,
because its import (with rich) costs every Job some 80 ms of start-up.
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

from pgshift import signals

REDACTED = "***"

#: `postgres://user:pass@` / `postgresql://...@`: everything between the scheme and the last `@`
#: before whitespace or a quote is userinfo (a raw password may itself hold `@` or `/`).
_URL_USERINFO = re.compile(r"(postgres(?:ql)?://)(?:[^\s@'\"]*@)+", re.IGNORECASE)
#: `password=...` in keyword/value conninfo strings (and `PGPASSWORD=...`).
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
#: mapping keys whose value is a credential.
_SECRET_KEYS = frozenset({"password", "pgpassword", "passwd"})
#: a quoted fragment of a message: libpq quotes with "...", urllib with '...'.
_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")


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


def redact(text: str) -> str:
    """Remove credentials from `text` by structure: the userinfo of postgres URLs and
    `password=` values. Nothing else is touched, whatever the password looks like."""
    if not text:
        return text
    out = text
    # cheap tests first: most lines hold neither a URL nor a password keyword.
    if "://" in out:
        out = _URL_USERINFO.sub(lambda m: f"{m.group(1)}{REDACTED}@", out)
    if "assword" in out or "ASSWORD" in out:
        out = _KV_PASSWORD.sub(lambda m: f"{m.group(1)}{REDACTED}", out)
    return out


def redact_url_error(text: str, secrets: Iterable[str | None] = ()) -> str:
    """A message about a database URL itself (its parse error): `redact`, and every quoted
    fragment that holds one of `secrets` (raw or percent-encoded) or an `@` (a piece of a
    URL's userinfo, e.g. the tail of a raw password with `@` or `/`) becomes `"***"`."""
    forms = set()
    for secret in secrets:
        forms |= secret_forms(secret or "")

    def fragment(m: re.Match[str]) -> str:
        inner = m.group(0)[1:-1]
        if "@" in inner or any(f in inner for f in forms):
            return f"{m.group(0)[0]}{REDACTED}{m.group(0)[-1]}"
        return m.group(0)

    return _QUOTED.sub(fragment, redact(text))


def redact_values(value: Any) -> Any:
    """`redact` every string in a JSON-like value (dict keys are ours and stay), and blank the
    value of a password-named key."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {
            k: (
                REDACTED
                if isinstance(k, str) and k.lower() in _SECRET_KEYS and v
                else redact_values(v)
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_values(v) for v in value]
    return value


def redact_event(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: redact every string in the event, nested ones included."""
    for key, value in list(event.items()):
        event[key] = REDACTED if key.lower() in _SECRET_KEYS and value else redact_values(value)
    return event


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).isoformat().replace("+00:00", "Z")


def _json_line(method: str, event: str | None, fields: dict[str, Any]) -> str:
    """One JSON line: `event` first (so `grep '"event": "step.'` reads well), the fields
    redacted, then `level` and `timestamp`."""
    out: dict[str, Any] = {"event": event}
    for key, value in fields.items():
        if key.lower() in _SECRET_KEYS and value:
            out[key] = REDACTED
        else:
            out[key] = value if value is None or type(value) in _PLAIN else redact_values(value)
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
        # a SIGTERM waits for the line to be written whole: every line stays valid JSON.
        with signals.shielded(), self._lock:
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
