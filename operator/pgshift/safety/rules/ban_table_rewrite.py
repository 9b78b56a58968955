"""SET LOGGED / UNLOGGED / ACCESS METHOD / TABLESPACE copy the whole table under ACCESS
EXCLUSIVE."""

from __future__ import annotations

from collections.abc import Iterator

from pglast import ast
from pglast.enums import AlterTableType, ObjectType

from pgshift.safety.model import Severity
from pgshift.safety.rules.base import Rule, Subject, Violation, table_of

_WHAT = {
    AlterTableType.AT_SetLogged: ("SET LOGGED", "writes the whole table to the WAL"),
    AlterTableType.AT_SetUnLogged: ("SET UNLOGGED", "copies the whole table"),
    AlterTableType.AT_SetAccessMethod: ("SET ACCESS METHOD", "rewrites the whole table"),
    AlterTableType.AT_SetTableSpace: ("SET TABLESPACE", "copies every file of it"),
}
_KINDS = {ObjectType.OBJECT_TABLE: "table", ObjectType.OBJECT_MATVIEW: "materialized view",
          ObjectType.OBJECT_INDEX: "index"}


def check(s: Subject) -> Iterator[Violation]:
    node = s.node
    if isinstance(node, ast.AlterTableMoveAllStmt):
        yield Violation(
            f"ALTER ... ALL IN TABLESPACE {node.orig_tablespacename} SET TABLESPACE copies every "
            "object it moves under an ACCESS EXCLUSIVE lock on each: reads and writes wait",
            "move objects outside the migration, in a maintenance window",
        )
        return
    if not isinstance(node, ast.AlterTableStmt) or node.objtype not in _KINDS:
        return
    if node.objtype == ObjectType.OBJECT_TABLE and not s.on_existing:
        return  # a table this file created is empty
    for cmd in node.cmds or ():
        known = isinstance(cmd, ast.AlterTableCmd) and cmd.subtype is not None
        what = _WHAT.get(cmd.subtype) if known else None
        if what is None:
            continue
        verb, does = what
        yield Violation(
            f"{verb} on {_KINDS[node.objtype]} {table_of(node)} {does} under an ACCESS "
            "EXCLUSIVE lock (and its indexes): reads and writes wait until it is done",
            "do it in a maintenance window, or build a new table and switch to it (expand and "
            "contract); for a new table, create it with the setting it needs",
        )


RULE = Rule(
    "ban-table-rewrite", Severity.ERROR,
    "no SET LOGGED/UNLOGGED/ACCESS METHOD/TABLESPACE on existing tables", check,
)
