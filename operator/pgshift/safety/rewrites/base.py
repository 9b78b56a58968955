"""What a rewrite returns: the statements that replace one unsafe statement, with how each runs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pglast import ast
from pglast.enums import AlterTableType, DropBehavior, ObjectType

from pgshift.safety.model import Backfill, CatchUp, LockClass, Phase, TxMode
from pgshift.safety.nodes import N, child, items

#: what is known of functions' volatility (`volatility.volatility`'s `known`), for the rewrites
#: whose answer depends on it.
Functions = Mapping[str, str]


@dataclass(frozen=True)
class Part:
    """One statement of a rewrite. `phase=None` keeps the original statement's phase."""

    node: ast.Node
    tx: TxMode
    lock: LockClass
    summary: str
    phase: Phase | None = None
    index_name: str | None = None
    index_unique: bool = False
    catch_up: CatchUp | None = None
    #: set for a part that runs as keyset batches (tx BATCHED).
    backfill: Backfill | None = None


def copy(node: N) -> N:
    """A deep copy of a parse tree (through its dict form), to change without touching the input."""
    return type(node)(node())


def alter(rv: ast.RangeVar, *cmds: ast.AlterTableCmd) -> ast.AlterTableStmt:
    return ast.AlterTableStmt(
        relation=ast.RangeVar(schemaname=rv.schemaname, relname=rv.relname, inh=rv.inh,
                              relpersistence="p"),
        cmds=cmds, objtype=ObjectType.OBJECT_TABLE, missing_ok=False,
    )


def validate(rv: ast.RangeVar, name: str) -> ast.AlterTableStmt:
    return alter(rv, ast.AlterTableCmd(subtype=AlterTableType.AT_ValidateConstraint, name=name,
                                       behavior=DropBehavior.DROP_RESTRICT))


def drop_constraint(rv: ast.RangeVar, name: str) -> ast.AlterTableStmt:
    return alter(rv, ast.AlterTableCmd(subtype=AlterTableType.AT_DropConstraint, name=name,
                                       behavior=DropBehavior.DROP_RESTRICT))


def single_cmd(node: ast.Node) -> tuple[ast.AlterTableStmt, ast.AlterTableCmd] | None:
    """An ALTER TABLE on a table with its one command; rewrites leave multi-command ones alone
    (splitting them would change what a failure leaves behind; lint still reports them)."""
    if (isinstance(node, ast.AlterTableStmt) and node.objtype == ObjectType.OBJECT_TABLE
            and len(node.cmds or ()) == 1):
        return node, only_cmd(node)
    return None


def only_cmd(stmt: ast.AlterTableStmt) -> ast.AlterTableCmd:
    """The command of a one-command ALTER TABLE (`single_cmd`'s, or a copy of it)."""
    return child(items(stmt.cmds)[0], ast.AlterTableCmd, "ALTER TABLE's command")
