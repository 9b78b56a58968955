"""Identifiers over 63 bytes are truncated by PostgreSQL, with only a NOTICE."""

from __future__ import annotations

import re
from collections.abc import Iterator

from pglast import parser

from pgshift.safety.model import Severity
from pgshift.safety.rules.base import Rule, Subject, Violation

#: NAMEDATALEN - 1: the bytes an identifier keeps.
MAX_BYTES = 63
_UNICODE_ESCAPE = re.compile(r"\\(\\|[0-9A-Fa-f]{4}|\+[0-9A-Fa-f]{6})")


def _identifier(token: str, kind: str) -> str:
    """An identifier token as PostgreSQL stores it (before truncation)."""
    if kind == "UIDENT":  # U&"d\0061t": default escape character only
        body = token[3:-1].replace('""', '"')
        return _UNICODE_ESCAPE.sub(
            lambda m: "\\" if m.group(1) == "\\" else chr(int(m.group(1).lstrip("+"), 16)), body
        )
    if token.startswith('"'):
        return token[1:-1].replace('""', '"')
    # unquoted: PostgreSQL folds ASCII letters only, which keeps the byte length.
    return token.lower()


def _truncated(name: str) -> str:
    data = name.encode()[:MAX_BYTES]
    return data.decode(errors="ignore")  # PostgreSQL cuts at a character boundary too


def long_identifiers(sql: str) -> list[str]:
    """Identifiers of `sql` longer than 63 bytes, once each, in order. The parse tree holds
    them truncated already, so the tokens are read."""
    found: list[str] = []
    try:
        tokens = parser.scan(sql)
    except parser.ParseError:
        return found
    for token in tokens:
        if token.name not in ("IDENT", "UIDENT"):
            continue
        name = _identifier(sql[token.start : token.end + 1], token.name)
        if len(name.encode()) > MAX_BYTES and name not in found:
            found.append(name)
    return found


def check(s: Subject) -> Iterator[Violation]:
    for name in long_identifiers(s.planned.original_sql or s.planned.sql):
        yield Violation(
            f'identifier "{name}" is {len(name.encode())} bytes: PostgreSQL silently truncates '
            f'it to {MAX_BYTES} ("{_truncated(name)}"), so the object gets another name than '
            "the one the code and later migrations use, and two long names can collide",
            f"use a name of at most {MAX_BYTES} bytes",
        )


RULE = Rule(
    "identifier-too-long", Severity.WARNING, "identifiers of at most 63 bytes", check,
)
