"""Typed narrowing of pglast's parse tree, in one place.

pglast types every child of a node Optional (`AlterTableStmt.relation` is `RangeVar | None`,
`AlterTableCmd.def_` is `Node | tuple | None`) because its classes also describe trees built by
hand. Where PostgreSQL's grammar always gives the child, `required` / `child` say so and fail
loudly if pglast ever hands over a tree the grammar cannot produce; where the child may truly be
absent, callers test for None as before.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from pglast import ast
from pglast.enums import AlterTableType

T = TypeVar("T")
N = TypeVar("N", bound=ast.Node)


class UnexpectedTree(AssertionError):
    """pglast gave a tree PostgreSQL's grammar does not produce: a bug here or in pglast."""


def required(value: T | None, what: str) -> T:
    """`value`, which the grammar always gives (`what` names it for the error)."""
    if value is None:
        raise UnexpectedTree(f"parse tree without {what}")
    return value


def child(value: object, cls: type[N], what: str) -> N:
    """`value` as a `cls`, which the grammar always gives there (`what` names it)."""
    if not isinstance(value, cls):
        raise UnexpectedTree(f"parse tree with {type(value).__name__} as {what}, "
                             f"not {cls.__name__}")
    return value


def items(seq: tuple[Any, ...] | None) -> tuple[Any, ...]:
    """A list child, empty when pglast leaves it out (it gives None for an empty list)."""
    return seq or ()


def relname(rv: ast.RangeVar) -> str:
    """The table name of a RangeVar (the grammar always gives one)."""
    return required(rv.relname, "relation name")


class _OnRelation(Protocol):
    @property
    def relation(self) -> ast.RangeVar | None: ...


def relation(node: _OnRelation) -> ast.RangeVar:
    """The table a statement names, for statements whose grammar always names one (ALTER TABLE,
    CREATE INDEX, UPDATE, ...; not RenameStmt of a non-table object, whose relation is None)."""
    return required(node.relation, f"{type(node).__name__}'s table")


def subtype(cmd: ast.AlterTableCmd) -> AlterTableType:
    """What an ALTER TABLE command does (pglast always sets it, AT_AddColumn being 0)."""
    return required(cmd.subtype, "ALTER TABLE command's subtype")


def constraint_of(cmd: ast.AlterTableCmd) -> ast.Constraint:
    """The constraint an `ADD CONSTRAINT` command adds."""
    return child(cmd.def_, ast.Constraint, "ADD CONSTRAINT's constraint")


def column_of(cmd: ast.AlterTableCmd) -> ast.ColumnDef:
    """The column an `ADD COLUMN` or `ALTER COLUMN ... TYPE` command defines."""
    return child(cmd.def_, ast.ColumnDef, "the command's column definition")
