"""`DROP INDEX i` -> `DROP INDEX CONCURRENTLY i`: no ACCESS EXCLUSIVE lock on the table.

Only for one index without CASCADE (CONCURRENTLY allows nothing else); it runs as its own
autocommit step. Dropping an index is never atomic with anything else anyway.
"""

from __future__ import annotations

from pglast import ast
from pglast.enums import DropBehavior, ObjectType

from pgshift.safety.model import LockClass, TxMode
from pgshift.safety.nodes import items
from pgshift.safety.rewrites.base import Functions, Part, copy

ID = "concurrent-drop-index"


def rewrite(node: ast.Node, functions: Functions | None = None) -> list[Part] | None:
    if (not isinstance(node, ast.DropStmt) or node.removeType != ObjectType.OBJECT_INDEX
            or node.concurrent or len(node.objects or ()) != 1
            or node.behavior == DropBehavior.DROP_CASCADE):
        return None
    new = copy(node)
    new.concurrent = True
    name = ".".join(p.sval for p in items(node.objects)[0])
    return [Part(new, TxMode.AUTOCOMMIT, LockClass.WEAK, f"drop index {name} concurrently")]
