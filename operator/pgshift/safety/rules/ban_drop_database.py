"""DROP DATABASE in a migration."""

from __future__ import annotations

from collections.abc import Iterator

from pglast import ast

from pgshift.safety.model import Severity
from pgshift.safety.rules.base import Rule, Subject, Violation


def check(s: Subject) -> Iterator[Violation]:
    if isinstance(s.node, ast.DropdbStmt):
        yield Violation(
            f"DROP DATABASE {s.node.dbname} loses a whole database; a migration is the wrong "
            "place for it",
            "drop databases by hand, after a backup",
        )


RULE = Rule("ban-drop-database", Severity.ERROR, "no DROP DATABASE in migrations", check)
