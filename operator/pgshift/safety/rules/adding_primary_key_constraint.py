"""ADD PRIMARY KEY builds an index and sets NOT NULL under ACCESS EXCLUSIVE."""

from __future__ import annotations

from collections.abc import Iterator

from pglast import ast
from pglast.enums import AlterTableType, ConstrType

from pgshift.safety.model import Severity
from pgshift.safety.nodes import column_of, constraint_of, items
from pgshift.safety.rules.base import Rule, Subject, Violation, alter_cmds, table_of


def check(s: Subject) -> Iterator[Violation]:
    if not s.on_existing:
        return
    for cmd in alter_cmds(s.node):
        table = table_of(s.node)
        constraints: list[ast.Constraint] = []
        if cmd.subtype == AlterTableType.AT_AddConstraint:
            constraints = [constraint_of(cmd)]
        elif cmd.subtype == AlterTableType.AT_AddColumn:
            constraints = list(items(column_of(cmd).constraints))
        for con in constraints:
            if con.contype == ConstrType.CONSTR_PRIMARY and not con.indexname:
                yield Violation(
                    f"ADD PRIMARY KEY on {table} builds its index and scans nullable columns "
                    "for NULLs under an ACCESS EXCLUSIVE lock: reads and writes wait",
                    "make the columns NOT NULL with the CHECK ... NOT VALID recipe, CREATE UNIQUE "
                    f"INDEX CONCURRENTLY i ON {table} (...), then ADD CONSTRAINT pk PRIMARY KEY "
                    "USING INDEX i (pgshift rewrites it so unless rewrite=false)",
                )


RULE = Rule(
    "adding-primary-key-constraint", Severity.ERROR,
    "add primary keys USING INDEX built concurrently", check,
)
