"""Lenient readers for JSON values from another process (an older or newer runner, a status
written by an older operator). PURE. A value of the wrong type reads as absent, never raises:
the summary is advisory (the database's tables hold the truth), and a runner of another
version must not be able to crash the operator."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def opt_str(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value)


def text(value: Any, default: str = "") -> str:
    found = opt_str(value)
    return default if found is None or found == "" else found


def opt_int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def integer(value: Any, default: int = 0) -> int:
    found = opt_int(value)
    return default if found is None else found


def flag(value: Any, default: bool = False) -> bool:
    if value is None:
        return default
    return bool(value)


def strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)):
        return ()
    return tuple(str(v) for v in value if v is not None and not isinstance(v, (dict, list)))


def opt_strings(value: Any) -> tuple[str, ...] | None:
    return None if value is None else strings(value)


def mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def mappings(value: Any) -> tuple[Mapping[str, Any], ...]:
    if not isinstance(value, (list, tuple)):
        return ()
    return tuple(v for v in value if isinstance(v, Mapping))
