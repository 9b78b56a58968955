"""Which default expressions make ADD COLUMN rewrite the table: volatile function calls.

PostgreSQL (11+) stores a non-volatile default once in the catalog and fills existing rows
from it; a default that calls a VOLATILE function is computed for every row, which rewrites
the whole table under ACCESS EXCLUSIVE. VOLATILE is also what `CREATE FUNCTION` gives a
function that does not say otherwise, so a function pgshift knows nothing about is volatile.

What is known, in the order it is asked:
1. an unqualified (or `pg_catalog.`) name of PostgreSQL's own functions: `builtin_functions`
   and `VOLATILE` below (pg_catalog comes first on every search path);
2. `known`: the volatility facts the caller has, keyed `name` and `schema.name` — what the
   file itself said so far (`CREATE FUNCTION ... IMMUTABLE`, `ALTER FUNCTION ... STABLE`), over
   what earlier files of the source said, over what the database's catalog says
   (`pg_proc.provolatile`, looked up by the engine and passed in as data);
3. anything else: volatile.
Volatility is one letter as in `pg_proc.provolatile`: `i`mmutable, `s`table, `v`olatile.
"""

from __future__ import annotations

from collections.abc import Mapping

from pglast import ast
from pglast.enums import ConstrType
from pglast.visitors import Visitor

from pgshift.safety.builtin_functions import NON_VOLATILE
from pgshift.safety.nodes import items

#: volatile functions people use as defaults: pg_catalog's, and extensions' (uuid-ossp) that a
#: catalog may not be asked about (offline lint).
VOLATILE = frozenset({
    "random", "gen_random_uuid", "uuid_generate_v1", "uuid_generate_v1mc", "uuid_generate_v4",
    "uuidv4", "uuidv7", "clock_timestamp", "timeofday",
    "nextval", "txid_current", "random_normal", "setseed", "currval", "lastval",
})
SERIAL = frozenset({"serial", "serial4", "bigserial", "serial8", "smallserial", "serial2"})

#: `CREATE FUNCTION`'s word for each volatility, and back.
_LETTER = {"immutable": "i", "stable": "s", "volatile": "v"}


class _Calls(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: list[tuple[str, ...]] = []

    def visit_FuncCall(self, ancestors: object, node: ast.FuncCall) -> None:
        self.names.append(tuple(p.sval for p in items(node.funcname)))


def volatility(funcname: tuple[str, ...], known: Mapping[str, str] | None = None) -> str | None:
    """`i`, `s` or `v` for a function name as written; None when nothing is known of it."""
    name = funcname[-1]
    schema = funcname[-2] if len(funcname) > 1 else None
    if schema in (None, "pg_catalog"):
        if name in VOLATILE:
            return "v"
        if name in NON_VOLATILE:
            return "s"
    known = known or {}
    if schema is not None and f"{schema}.{name}" in known:
        return known[f"{schema}.{name}"]
    return known.get(name)


def volatile_calls(expr: ast.Node, known: Mapping[str, str] | None = None) -> list[str]:
    """The functions `expr` calls that are volatile, or unknown and so volatile, in order."""
    calls = _Calls()
    calls(expr)
    return [".".join(n) for n in calls.names if volatility(n, known) in (None, "v")]


def unknown_calls(expr: ast.Node, known: Mapping[str, str] | None = None) -> list[str]:
    """Of `volatile_calls`, those taken as volatile only because nothing is known of them."""
    calls = _Calls()
    calls(expr)
    return [".".join(n) for n in calls.names if volatility(n, known) is None]


def rewrite_reason(column: ast.ColumnDef, known: Mapping[str, str] | None = None) -> str:
    """Why `ADD COLUMN column` rewrites an existing table ("" when it does not): the one
    answer the lint rule, the `volatile-default` rewrite and the tests share."""
    type_name = items(column.typeName.names)[-1].sval.lower() if column.typeName else ""
    reason = ""
    if type_name in SERIAL:
        reason = f"{type_name} fills every row from a sequence (nextval() is volatile)"
    for con in column.constraints or ():
        if con.contype == ConstrType.CONSTR_DEFAULT and con.raw_expr is not None:
            calls = volatile_calls(con.raw_expr, known)
            if calls:
                first = calls[0]
                if first in unknown_calls(con.raw_expr, known):
                    reason = (f"the default calls {first}(), which pgshift does not know: "
                              "PostgreSQL's default volatility is VOLATILE")
                else:
                    reason = f"the default calls {first}(), which is volatile"
        elif con.contype == ConstrType.CONSTR_IDENTITY:
            reason = "an identity column fills every row from a sequence"
        elif con.contype == ConstrType.CONSTR_GENERATED:
            reason = "a stored generated column is computed for every row"
    return reason


def _named(funcname: tuple[ast.String, ...]) -> list[str]:
    """The keys a function is known by: `name`, and `schema.name` when qualified."""
    parts: list[str] = [p.sval for p in funcname if p.sval is not None]
    return [parts[-1]] + ([".".join(parts[-2:])] if len(parts) > 1 else [])


def defined(node: ast.Node) -> dict[str, str]:
    """What a statement says about function volatility: `CREATE [OR REPLACE] FUNCTION`
    (VOLATILE unless it says IMMUTABLE or STABLE, as PostgreSQL does) or `ALTER FUNCTION`
    with a volatility; {} for anything else."""
    if isinstance(node, ast.CreateFunctionStmt) and not node.is_procedure:
        letter = "v"
        for option in node.options or ():
            if isinstance(option, ast.DefElem) and option.defname == "volatility":
                letter = _LETTER.get(str(getattr(option.arg, "sval", "")).lower(), "v")
        return dict.fromkeys(_named(items(node.funcname)), letter)
    if isinstance(node, ast.AlterFunctionStmt) and node.func is not None:
        for action in node.actions or ():
            if isinstance(action, ast.DefElem) and action.defname == "volatility":
                letter = _LETTER.get(str(getattr(action.arg, "sval", "")).lower(), "v")
                return dict.fromkeys(_named(items(node.func.objname)), letter)
    return {}


def may_define(sql: str) -> bool:
    """A cheap first look: can this text hold a CREATE/ALTER FUNCTION at all?"""
    return "function" in sql.lower()
