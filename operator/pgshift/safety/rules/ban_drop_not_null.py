"""DROP NOT NULL lets new code write NULLs that old code, still running, does not expect."""

from __future__ import annotations

from collections.abc import Iterator

from pglast import ast
from pglast.enums import AlterTableType, ObjectType

from pgshift.safety.model import Severity
from pgshift.safety.nodes import items
from pgshift.safety.rules.base import Rule, Subject, Violation, table_of


def check(s: Subject) -> Iterator[Violation]:
    node = s.node
    if isinstance(node, ast.AlterDomainStmt) and node.subtype == "N":
        domain = ".".join(p.sval for p in items(node.typeName))
        yield Violation(
            f"ALTER DOMAIN {domain} DROP NOT NULL: columns of this type may now hold NULL, "
            "which the running application's code may not handle",
            "ship code that handles NULL in these columns first, then drop NOT NULL in a later "
            "migration",
        )
        return
    if (not isinstance(node, ast.AlterTableStmt) or not s.on_existing
            or node.objtype not in (ObjectType.OBJECT_TABLE, ObjectType.OBJECT_FOREIGN_TABLE)):
        return
    for cmd in node.cmds or ():
        if isinstance(cmd, ast.AlterTableCmd) and cmd.subtype == AlterTableType.AT_DropNotNull:
            yield Violation(
                f"DROP NOT NULL on {table_of(node)}.{cmd.name}: once new code writes NULL "
                "there, the old application version, still serving, may read a NULL it "
                "never expected",
                "ship code that handles NULL in this column first (reads) and only then code "
                "that writes NULL; allow this rule once that is so",
            )


RULE = Rule(
    "ban-drop-not-null", Severity.WARNING,
    "drop NOT NULL only when running code handles NULL", check,
)
