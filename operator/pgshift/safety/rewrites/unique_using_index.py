"""`ADD CONSTRAINT c UNIQUE (cols)` -> `CREATE UNIQUE INDEX CONCURRENTLY c`, `UNIQUE USING INDEX c`.

The constraint (and its index) end up exactly as the original would make them: same name, same
columns and options. A failed concurrent build leaves an INVALID index that still rejects
duplicates; the statement is marked `index_unique` so the engine drops it at once. Unnamed
constraints are left alone (PostgreSQL picks `<table>_<cols>_key`; drizzle-kit names them).
"""

from __future__ import annotations

from pglast import ast
from pglast.enums import AlterTableType, ConstrType, SortByDir, SortByNulls

from pgshift.safety.model import LockClass, TxMode
from pgshift.safety.names import index_name
from pgshift.safety.nodes import constraint_of, items, relation, relname
from pgshift.safety.rewrites.base import Functions, Part, alter, single_cmd

ID = "unique-using-index"


def _column(name: str) -> ast.IndexElem:
    return ast.IndexElem(name=name, ordering=SortByDir.SORTBY_DEFAULT,
                         nulls_ordering=SortByNulls.SORTBY_NULLS_DEFAULT)


def index_on(rv: ast.RangeVar, name: str, con: ast.Constraint) -> ast.IndexStmt:
    """The unique index a UNIQUE / PRIMARY KEY constraint would build, built CONCURRENTLY."""
    return ast.IndexStmt(
        idxname=name,
        relation=ast.RangeVar(schemaname=rv.schemaname, relname=rv.relname, inh=True,
                              relpersistence="p"),
        accessMethod="btree",
        tableSpace=con.indexspace,
        indexParams=tuple(_column(k.sval) for k in items(con.keys)),
        indexIncludingParams=tuple(_column(k.sval) for k in con.including or ()) or None,
        options=con.options,
        unique=True,
        nulls_not_distinct=bool(con.nulls_not_distinct),
        concurrent=True,
    )


def rewrite(node: ast.Node, functions: Functions | None = None) -> list[Part] | None:
    found = single_cmd(node)
    if found is None or found[1].subtype != AlterTableType.AT_AddConstraint:
        return None
    stmt, cmd = found
    con = constraint_of(cmd)
    if con.contype != ConstrType.CONSTR_UNIQUE or con.indexname or not con.conname:
        return None
    if getattr(con, "without_overlaps", False):
        return None  # WITHOUT OVERLAPS needs a GiST index and PostgreSQL 18: leave it as written
    rv, name = relation(stmt), con.conname
    index = index_on(rv, name, con)
    using = ast.Constraint(
        contype=ConstrType.CONSTR_UNIQUE, conname=name, indexname=name,
        deferrable=con.deferrable, initdeferred=con.initdeferred,
    )
    table = relname(rv)
    return [
        Part(index, TxMode.AUTOCOMMIT, LockClass.WEAK,
             f"create unique index {name} concurrently on {table}",
             index_name=index_name(rv, name), index_unique=True),
        Part(alter(rv, ast.AlterTableCmd(subtype=AlterTableType.AT_AddConstraint, def_=using)),
             TxMode.TRANSACTION, LockClass.STRONG, f"add unique {name} using index on {table}"),
    ]
