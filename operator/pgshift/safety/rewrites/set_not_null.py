"""`ALTER COLUMN c SET NOT NULL` -> the contract recipe that never scans under ACCESS EXCLUSIVE.

    ADD CONSTRAINT <n> CHECK (c IS NOT NULL) NOT VALID   -- brief lock; new NULLs rejected
    (catch-up: the engine re-runs the final pass of this run's backfill of c, if any)
    VALIDATE CONSTRAINT <n>                               -- scan, reads and writes continue
    ALTER COLUMN c SET NOT NULL                           -- PostgreSQL >= 12 uses the check
    DROP CONSTRAINT <n>

<n> is `<table>_<column>_not_null_check`, cut to 63 bytes with a hash when longer.
"""

from __future__ import annotations

from pglast import ast
from pglast.enums import AlterTableType, ConstrType, DropBehavior, NullTestType

from pgshift.safety.model import CatchUp, LockClass, TxMode
from pgshift.safety.names import invent, relation_name
from pgshift.safety.nodes import relation, relname, required
from pgshift.safety.rewrites.base import (
    Functions,
    Part,
    alter,
    copy,
    drop_constraint,
    single_cmd,
    validate,
)

ID = "set-not-null"


def constraint_name(table: str, column: str) -> str:
    return invent(table, column, "not_null_check")


def rewrite(node: ast.Node, functions: Functions | None = None) -> list[Part] | None:
    found = single_cmd(node)
    if found is None or found[1].subtype != AlterTableType.AT_SetNotNull:
        return None
    stmt, cmd = found
    return recipe(relation(stmt), required(cmd.name, "SET NOT NULL's column"),
                  set_not_null=copy(stmt))


def recipe(rv: ast.RangeVar, column: str, *, set_not_null: ast.Node | None = None) -> list[Part]:
    """The four statements for one column (`set_not_null`: the original statement, kept as is)."""
    name = constraint_name(relname(rv), column)
    check = ast.Constraint(
        contype=ConstrType.CONSTR_CHECK, conname=name, skip_validation=True,
        initially_valid=False, is_enforced=True,
        raw_expr=ast.NullTest(arg=ast.ColumnRef(fields=(ast.String(sval=column),)),
                              nulltesttype=NullTestType.IS_NOT_NULL),
    )
    add = alter(rv, ast.AlterTableCmd(subtype=AlterTableType.AT_AddConstraint, def_=check))
    if set_not_null is None:
        set_not_null = alter(rv, ast.AlterTableCmd(subtype=AlterTableType.AT_SetNotNull,
                                                   name=column,
                                                   behavior=DropBehavior.DROP_RESTRICT))
    col = f"{rv.relname}.{column}"
    return [
        Part(add, TxMode.TRANSACTION, LockClass.STRONG, f"add check {name} not valid on {col}"),
        Part(validate(rv, name), TxMode.AUTOCOMMIT, LockClass.WEAK,
             f"catch up and validate {name} on {col}",
             catch_up=CatchUp(table=relation_name(rv), column=column)),
        Part(set_not_null, TxMode.TRANSACTION, LockClass.STRONG, f"set not null {col}"),
        Part(drop_constraint(rv, name), TxMode.TRANSACTION, LockClass.STRONG,
             f"drop check {name} on {rv.relname}"),
    ]
