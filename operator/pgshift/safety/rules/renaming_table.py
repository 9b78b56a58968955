"""RENAME TABLE breaks every query of the old application version that names it."""

from __future__ import annotations

from collections.abc import Iterator

from pglast import ast
from pglast.enums import ObjectType

from pgshift.safety.model import Severity
from pgshift.safety.nodes import relation, relname
from pgshift.safety.rules.base import Rule, Subject, Violation


def check(s: Subject) -> Iterator[Violation]:
    node = s.node
    if (isinstance(node, ast.RenameStmt) and node.renameType == ObjectType.OBJECT_TABLE
            and s.on_existing):
        yield Violation(
            f"RENAME TABLE {relname(relation(node))} to {node.newname} breaks queries of the "
            "application version still running (ACCESS EXCLUSIVE, brief)",
            "create the new table (or a view with the new name) and move the code over first; "
            "or silence with -- pgshift:allow=renaming-table if no running code uses it",
        )


RULE = Rule("renaming-table", Severity.WARNING, "rename tables by expand and contract", check)
