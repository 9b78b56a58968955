"""BEGIN / COMMIT in a migration fight pgshift's own transactions."""

from __future__ import annotations

from collections.abc import Iterator

from pglast import ast

from pgshift.safety.model import Severity
from pgshift.safety.rules.base import Rule, Subject, Violation


def check(s: Subject) -> Iterator[Violation]:
    if isinstance(s.node, ast.TransactionStmt):
        yield Violation(
            "transaction control in a migration: pgshift runs each step in its own transaction "
            "(or none, for CONCURRENTLY and friends), so a COMMIT here would end it early and "
            "leave the file half applied",
            "remove BEGIN/COMMIT; use -- pgshift:no-transaction for statements that must run "
            "outside one",
        )


RULE = Rule("transaction-nesting", Severity.ERROR, "no BEGIN / COMMIT in migrations", check)
