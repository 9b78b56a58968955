"""`parse_sql`: pglast's parser.parse_sql, with its per-attribute checks skipped.

pglast builds each node of the tree by calling its Python class, whose `__setattr__` checks and
coerces every attribute (an import statement and an enum lookup per attribute): that is most of
the cost of parsing a large file (issue 14: 60 % of a 20,000-statement file's parse). The values
pglast's own C-to-Python conversion passes are already of the right types, so while *this
thread* parses, `Node.__setattr__` only applies the coercions that change a value (`bool`,
`char`), and the tree is equal to pglast's (tests/unit/safety/test_fastparse.py compares them
over every SQL text of the safety tests). Nodes built anywhere else, and in other threads at
the same time, keep pglast's checks.
"""

from __future__ import annotations

import threading
from typing import Any

from pglast import ast, parser

_checked_setattr = ast.Node.__setattr__
_trusted = threading.local()
_LIST = "List*"


def _setattr(self: ast.Node, name: str, value: Any) -> None:
    if not getattr(_trusted, "on", False):
        _checked_setattr(self, name, value)
        return
    slots = getattr(type(self), "__slots__", None)
    if value is not None and isinstance(slots, dict):
        slot = slots.get(name)  # pglast's (ctype, python types, coercion)
        if slot is not None:
            adaptor = slot[2]
            # a List* coercion only rebuilds the tuple pglast just built
            if adaptor is not None and slot[0] != _LIST:
                value = adaptor(value)
    object.__setattr__(self, name, value)


def _slots_as_known() -> bool:
    """pglast's slots are `{attribute: (ctype, python types, coercion)}` in the versions this
    was written for (7 and 8); in any other shape the checks are kept, only slower."""
    slots = getattr(ast.ColumnDef, "__slots__", None)
    return isinstance(slots, dict) and all(
        isinstance(v, tuple) and len(v) == 3 and (v[2] is None or callable(v[2]))
        for v in slots.values()
    )


FAST = _slots_as_known()
if FAST:
    ast.Node.__setattr__ = _setattr  # type: ignore[method-assign]


def parse_sql(sql: str) -> tuple[ast.RawStmt, ...]:
    """pglast's `parser.parse_sql(sql)` (same tree, same ParseError)."""
    if not FAST:
        return parser.parse_sql(sql)
    _trusted.on = True
    try:
        return parser.parse_sql(sql)
    finally:
        _trusted.on = False
