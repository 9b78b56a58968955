"""DROP INDEX takes ACCESS EXCLUSIVE on the index's table."""

from __future__ import annotations

from collections.abc import Iterator

from pglast import ast
from pglast.enums import ObjectType

from pgshift.safety.model import Severity
from pgshift.safety.rules.base import Rule, Subject, Violation


def check(s: Subject) -> Iterator[Violation]:
    node = s.node
    if (isinstance(node, ast.DropStmt) and node.removeType == ObjectType.OBJECT_INDEX
            and not node.concurrent):
        yield Violation(
            "DROP INDEX takes an ACCESS EXCLUSIVE lock on the index's table: it blocks reads "
            "and writes while it waits for and holds the lock",
            "DROP INDEX CONCURRENTLY (one index per statement, outside a transaction)",
        )


RULE = Rule(
    "require-concurrent-index-deletion", Severity.ERROR,
    "drop indexes CONCURRENTLY", check,
)
