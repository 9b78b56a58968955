"""`ADD COLUMN c T DEFAULT volatile() [NOT NULL]` -> add, set default, batched backfill, NOT NULL.

A volatile default (`gen_random_uuid()`, `clock_timestamp()`, a function pgshift does not know
to be IMMUTABLE or STABLE: `volatility.py`) is computed for every existing row, so PostgreSQL
rewrites the whole table under ACCESS EXCLUSIVE. Instead:

    ALTER TABLE t ADD COLUMN c T                         -- catalog only
    ALTER TABLE t ALTER COLUMN c SET DEFAULT volatile()  -- new rows get it from now on
    UPDATE t SET c = volatile() WHERE c IS NULL          -- keyset batches (phase backfill)
    -- NOT NULL: the set-not-null recipe (phase backfill: the default keeps new rows filled,
    -- so old code never trips the check, and the new application can rely on it once Ready)

Each existing row gets its own value of the expression, as with the original statement.
"""

from __future__ import annotations

from pglast import ast
from pglast.enums import AlterTableType, ConstrType, DropBehavior, NullTestType

from pgshift.safety.backfill import backfill_for
from pgshift.safety.model import LockClass, Phase, TxMode
from pgshift.safety.nodes import column_of, items, relation, required
from pgshift.safety.rewrites import set_not_null
from pgshift.safety.rewrites.base import Functions, Part, alter, copy, only_cmd, single_cmd
from pgshift.safety.volatility import SERIAL, volatile_calls

ID = "volatile-default"

_ALLOWED = frozenset({ConstrType.CONSTR_DEFAULT, ConstrType.CONSTR_NOTNULL, ConstrType.CONSTR_NULL})


def rewrite(node: ast.Node, functions: Functions | None = None) -> list[Part] | None:
    found = single_cmd(node)
    if found is None or found[1].subtype != AlterTableType.AT_AddColumn or found[1].missing_ok:
        return None  # ADD COLUMN IF NOT EXISTS: the backfill would touch an existing column
    stmt, cmd = found
    column = column_of(cmd)
    constraints = list(column.constraints or ())
    kinds = {c.contype for c in constraints}
    if not kinds <= _ALLOWED or column.typeName is None:
        return None
    if items(column.typeName.names)[-1].sval.lower() in SERIAL:
        return None
    default = next((c.raw_expr for c in constraints if c.contype == ConstrType.CONSTR_DEFAULT),
                   None)
    if default is None or not volatile_calls(default, functions):
        return None
    rv, name = relation(stmt), required(column.colname, "ADD COLUMN's name")
    add = copy(stmt)
    column_of(only_cmd(add)).constraints = None
    set_default = alter(rv, ast.AlterTableCmd(subtype=AlterTableType.AT_ColumnDefault, name=name,
                                              def_=default, behavior=DropBehavior.DROP_RESTRICT))
    fill = ast.UpdateStmt(
        relation=ast.RangeVar(schemaname=rv.schemaname, relname=rv.relname, inh=rv.inh,
                              relpersistence="p"),
        targetList=(ast.ResTarget(name=name, val=default),),
        whereClause=ast.NullTest(arg=ast.ColumnRef(fields=(ast.String(sval=name),)),
                                 nulltesttype=NullTestType.IS_NULL),
    )
    col = f"{rv.relname}.{name}"
    parts = [
        Part(add, TxMode.TRANSACTION, LockClass.STRONG, f"add column {col}", phase=Phase.EXPAND),
        Part(set_default, TxMode.TRANSACTION, LockClass.STRONG, f"set default {col}",
             phase=Phase.EXPAND),
        Part(fill, TxMode.BATCHED, LockClass.WEAK, f"fill {col} with its default",
             phase=Phase.BACKFILL, backfill=backfill_for(fill, None)),
    ]
    if ConstrType.CONSTR_NOTNULL in kinds:
        parts += [
            Part(p.node, p.tx, p.lock, p.summary, phase=Phase.BACKFILL, catch_up=p.catch_up)
            for p in set_not_null.recipe(rv, name)
        ]
    return parts
