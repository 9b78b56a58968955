"""A migration that releases advisory locks can release pgshift's own: another run gets in.

`pg_advisory_unlock(...)`, `pg_advisory_unlock_shared(...)`, `pg_advisory_unlock_all()` and
`DISCARD ALL` (which unlocks all) are found in the statement's parse tree, and by their text in
the bodies of DO blocks and functions (which PostgreSQL's SQL parser does not look into). Besides
this lint finding, a run refuses such a file before anything runs unless the statement allows
this rule (`safety.control`), and after every step checks that the lock is still held.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from pglast import ast
from pglast.enums import DiscardMode
from pglast.visitors import Visitor

from pgshift.safety.model import Severity
from pgshift.safety.rules.base import Rule, Subject, Violation

ID = "releases-advisory-lock"
_UNLOCKS = frozenset({"pg_advisory_unlock", "pg_advisory_unlock_shared", "pg_advisory_unlock_all"})
#: the same in a body's text (a DO block or function is a string to the SQL parser).
_IN_TEXT = re.compile(
    r"\bpg_advisory_unlock(?:_all|_shared)?\"?\s*\(|\bdiscard\s+all\b", re.IGNORECASE
)


class _Finder(Visitor):
    def __init__(self) -> None:
        self.found: list[str] = []

    def visit_FuncCall(self, ancestors: object, node: ast.FuncCall) -> None:
        name = node.funcname[-1].sval.lower() if node.funcname else ""
        if name in _UNLOCKS:
            self.found.append(f"{name}()")

    def visit_DiscardStmt(self, ancestors: object, node: ast.DiscardStmt) -> None:
        if node.target == DiscardMode.DISCARD_ALL:
            self.found.append("DISCARD ALL")

    def visit_DefElem(self, ancestors: object, node: ast.DefElem) -> None:
        # `AS '<body>'` of DO and CREATE FUNCTION / PROCEDURE
        if node.defname != "as":
            return
        values = node.arg if isinstance(node.arg, tuple | list) else (node.arg,)
        for value in values:
            text = getattr(value, "sval", None)
            match = _IN_TEXT.search(text) if isinstance(text, str) else None
            if match:
                word = match.group(0).rstrip("(").rstrip().strip('"')
                self.found.append(f"{word.lower()}() in a body" if "unlock" in word.lower()
                                  else "DISCARD ALL in a body")


def may_release(text: str) -> bool:
    """False when the statement's text cannot hold what `lock_releases` finds, so its tree need
    not be walked (issue 14: the walk was a quarter of a large file's analysis). A function
    name or body reaches the tree with its letters as written unless escaped: `U&"..."` and
    `U&'...'` (unicode escapes) or `E'...'` (backslashes); DISCARD is a keyword."""
    lower = text.lower()
    return "unlock" in lower or "discard" in lower or "u&" in lower or "\\" in text


def lock_releases(node: ast.Node) -> list[str]:
    """What in this statement releases advisory locks ("pg_advisory_unlock_all()", ...)."""
    finder = _Finder()
    finder(node)
    return list(dict.fromkeys(finder.found))


def check(s: Subject) -> Iterator[Violation]:
    texts = (s.planned.original_sql, s.planned.sql)
    found = (lock_releases(s.node) if s.node is not None and any(map(may_release, texts))
             else [])
    if found:
        yield Violation(
            f"{', '.join(found)} releases advisory locks: pgshift's migration lock too, so "
            "another run could start while this one is still applying",
            "remove it; for a lock of your own, pg_advisory_xact_lock() is released at commit "
            "by itself",
        )


RULE = Rule(ID, Severity.ERROR, "no pg_advisory_unlock* or DISCARD ALL in migrations", check)
