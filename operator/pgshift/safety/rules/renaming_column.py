"""RENAME COLUMN breaks every query of the old application version that names it."""

from __future__ import annotations

from collections.abc import Iterator

from pglast import ast
from pglast.enums import ObjectType

from pgshift.safety.model import Severity
from pgshift.safety.nodes import relation, relname
from pgshift.safety.rules.base import Rule, Subject, Violation


def check(s: Subject) -> Iterator[Violation]:
    node = s.node
    if (isinstance(node, ast.RenameStmt) and node.renameType == ObjectType.OBJECT_COLUMN
            and s.on_existing):
        yield Violation(
            f"RENAME COLUMN {relname(relation(node))}.{node.subname} to {node.newname} breaks "
            "queries of the application version still running (ACCESS EXCLUSIVE, brief)",
            "add the new column, write both, backfill, switch reads, drop the old one later; "
            "or silence with -- pgshift:allow=renaming-column if no running code uses it",
        )


RULE = Rule("renaming-column", Severity.WARNING, "rename columns by expand and contract", check)
