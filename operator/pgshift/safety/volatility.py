"""Which default expressions make ADD COLUMN rewrite the table: volatile function calls."""

from __future__ import annotations

from pglast import ast
from pglast.visitors import Visitor

#: PostgreSQL functions marked VOLATILE that people use as defaults. A non-volatile default
#: (a constant, now(), a stable function) is stored once in the catalog since PostgreSQL 11.
VOLATILE = frozenset({
    "random", "gen_random_uuid", "uuid_generate_v1", "uuid_generate_v1mc", "uuid_generate_v4",
    "uuidv4", "uuidv7", "clock_timestamp", "timeofday",
    "nextval", "txid_current", "random_normal", "setseed", "currval", "lastval",
})
SERIAL = frozenset({"serial", "serial4", "bigserial", "serial8", "smallserial", "serial2"})


class _Calls(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def visit_FuncCall(self, ancestors: object, node: ast.FuncCall) -> None:
        self.names.append(node.funcname[-1].sval.lower())


def volatile_calls(expr: ast.Node) -> list[str]:
    """The known-volatile functions `expr` calls, in order."""
    calls = _Calls()
    calls(expr)
    return [n for n in calls.names if n in VOLATILE]
