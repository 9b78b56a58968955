"""DROP TABLE loses data and breaks old code."""

from __future__ import annotations

from collections.abc import Iterator

from pglast import ast
from pglast.enums import ObjectType

from pgshift.safety.model import Severity
from pgshift.safety.nodes import items
from pgshift.safety.rules.base import Rule, Subject, Violation


def check(s: Subject) -> Iterator[Violation]:
    node = s.node
    if (isinstance(node, ast.DropStmt) and node.removeType == ObjectType.OBJECT_TABLE
            and s.on_existing):
        names = ", ".join(".".join(p.sval for p in o) for o in items(node.objects))
        yield Violation(
            f"DROP TABLE {names} loses its rows and breaks the application version still "
            "running (ACCESS EXCLUSIVE)",
            "stop using the table first; pgshift runs it in the contract phase after a backup; "
            "silence with -- pgshift:allow=ban-drop-table",
        )


RULE = Rule("ban-drop-table", Severity.WARNING, "drop tables only after the code stops using them",
            check)
