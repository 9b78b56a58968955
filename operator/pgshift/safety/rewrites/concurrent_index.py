"""`CREATE INDEX` on an existing table -> `CREATE INDEX CONCURRENTLY` (writes keep flowing)."""

from __future__ import annotations

from pglast import ast

from pgshift.safety.model import LockClass, TxMode
from pgshift.safety.names import index_name
from pgshift.safety.nodes import relation, relname
from pgshift.safety.rewrites.base import Functions, Part, copy

ID = "concurrent-index"


def rewrite(node: ast.Node, functions: Functions | None = None) -> list[Part] | None:
    if not isinstance(node, ast.IndexStmt) or node.concurrent:
        return None
    new = copy(node)
    new.concurrent = True
    rv = relation(node)
    table = relname(rv)
    what = "unique index" if node.unique else "index"
    return [
        Part(new, TxMode.AUTOCOMMIT, LockClass.WEAK,
             f"create {what} {node.idxname or ''} concurrently on {table}".replace("  ", " "),
             index_name=index_name(rv, node.idxname), index_unique=bool(node.unique)),
    ]
