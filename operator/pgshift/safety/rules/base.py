"""What a lint rule is: a stable id, a severity, a check over one statement as it will run."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pglast import ast

from pgshift.safety.context import Context
from pgshift.safety.model import PlannedStatement, Severity


@dataclass(frozen=True)
class Subject:
    """One statement as it will run (after any rewrite), with what a rule needs to judge it."""

    node: ast.Node
    planned: PlannedStatement
    #: the statement changes a table that exists (not one created earlier in this file).
    on_existing: bool
    ctx: Context

    @property
    def rewritten(self) -> bool:
        return bool(self.planned.rewrite)

    def exists(self, rv: ast.RangeVar) -> bool:
        return self.ctx.exists(rv.schemaname or None, rv.relname)


@dataclass(frozen=True)
class Violation:
    """What a rule found; the registry turns it into a `Finding` with path, line and docs."""

    message: str
    help: str = ""
    #: a rule may soften (or harden) its default severity for a case.
    severity: Severity | None = None


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    #: one line for `pgshift lint --rules` and the docs index.
    title: str
    check: Callable[[Subject], Iterable[Violation]]

    @property
    def docs(self) -> str:
        return f"docs/rules/{self.id}.md"


def alter_cmds(node: ast.Node) -> list[ast.AlterTableCmd]:
    """The commands of an ALTER TABLE on a table (not an index, view or sequence)."""
    from pglast.enums import ObjectType

    if isinstance(node, ast.AlterTableStmt) and node.objtype == ObjectType.OBJECT_TABLE:
        return [c for c in node.cmds or () if isinstance(c, ast.AlterTableCmd)]
    return []


def table_of(node: ast.AlterTableStmt) -> str:
    rv = node.relation
    return f"{rv.schemaname}.{rv.relname}" if rv.schemaname else rv.relname
