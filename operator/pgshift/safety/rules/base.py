"""What a lint rule is: a stable id, a severity, a check over one statement as it will run."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from pglast import ast

from pgshift.safety.context import Context
from pgshift.safety.model import PlannedStatement, Severity
from pgshift.safety.nodes import child, column_of, constraint_of, items, relation, relname, required


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
        return self.ctx.exists(rv.schemaname or None, relname(rv))


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
    #: off unless asked for (`--enable-rule`): style advice, not a danger to a running system.
    opt_in: bool = False

    @property
    def docs(self) -> str:
        return f"docs/rules/{self.id}.md"


def alter_cmds(node: ast.Node) -> list[ast.AlterTableCmd]:
    """The commands of an ALTER TABLE on a table (not an index, view or sequence)."""
    from pglast.enums import ObjectType

    if isinstance(node, ast.AlterTableStmt) and node.objtype == ObjectType.OBJECT_TABLE:
        return [c for c in node.cmds or () if isinstance(c, ast.AlterTableCmd)]
    return []


def constraints_added(s: Subject) -> Iterator[tuple[str, ast.Constraint]]:
    """The constraints an ALTER TABLE adds to an existing table (ADD CONSTRAINT's, or those
    written on an ADD COLUMN), each with the table as written."""
    from pglast.enums import AlterTableType

    if not s.on_existing:
        return
    for cmd in alter_cmds(s.node):
        table = table_of(s.node)
        if cmd.subtype == AlterTableType.AT_AddConstraint:
            yield table, constraint_of(cmd)
        elif cmd.subtype == AlterTableType.AT_AddColumn:
            for con in items(column_of(cmd).constraints):
                yield table, con


def table_of(node: ast.Node) -> str:
    """The table of an ALTER TABLE (one `alter_cmds` gave commands for), as written."""
    rv = relation(child(node, ast.AlterTableStmt, "ALTER TABLE"))
    return f"{rv.schemaname}.{relname(rv)}" if rv.schemaname else relname(rv)


def declared_types(node: ast.Node) -> list[tuple[str, ast.TypeName]]:
    """(column, type) for each column type a statement declares: CREATE TABLE columns,
    ADD COLUMN, ALTER COLUMN TYPE (for the type-style rules)."""
    from pglast.enums import AlterTableType

    out: list[tuple[str, ast.TypeName]] = []
    if isinstance(node, ast.CreateStmt):
        for element in node.tableElts or ():
            if isinstance(element, ast.ColumnDef) and element.typeName is not None:
                out.append((required(element.colname, "column name"), element.typeName))
    for cmd in alter_cmds(node):
        column = cmd.def_
        if (cmd.subtype in (AlterTableType.AT_AddColumn, AlterTableType.AT_AlterColumnType)
                and isinstance(column, ast.ColumnDef) and column.typeName is not None):
            out.append((required(column.colname or cmd.name, "column name"), column.typeName))
    return out


def type_key(type_name: ast.TypeName) -> str:
    """`integer` -> "int4", `pg_catalog.varchar(10)` -> "varchar": the name PostgreSQL's
    grammar gives it, without a pg_catalog qualifier ("" for another schema's type)."""
    names: list[str] = [required(p.sval, "a type name") for p in items(type_name.names)]
    if len(names) > 1 and names[-2] != "pg_catalog":
        return ""
    return names[-1].lower()


def style_rule(rule_id: str, title: str, types: dict[str, str], advice: str,
               why: str) -> Rule:
    """An opt-in rule that flags declared columns of `types` (type key -> how it is shown)."""

    def check(s: Subject) -> Iterable[Violation]:
        for column, type_name in declared_types(s.node):
            shown = types.get(type_key(type_name))
            if shown is None or (type_key(type_name) == "varchar" and not type_name.typmods):
                continue  # varchar without a length is text under another name
            yield Violation(f"column {column} is {shown}: {why}", advice)

    return Rule(rule_id, Severity.WARNING, title, check, opt_in=True)
