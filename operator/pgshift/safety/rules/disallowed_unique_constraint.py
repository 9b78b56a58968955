"""ADD UNIQUE builds its index under ACCESS EXCLUSIVE."""

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
            if con.contype == ConstrType.CONSTR_UNIQUE and not con.indexname:
                name = con.conname or "<name>"
                yield Violation(
                    f"ADD UNIQUE {con.conname or ''} builds its index on {table} under an ACCESS "
                    "EXCLUSIVE lock: reads and writes wait for the whole build",
                    f"CREATE UNIQUE INDEX CONCURRENTLY {name} ON {table} (...); then ALTER TABLE "
                    f"{table} ADD CONSTRAINT {name} UNIQUE USING INDEX {name} (pgshift rewrites "
                    "named constraints so)",
                )


RULE = Rule(
    "disallowed-unique-constraint", Severity.ERROR,
    "add unique constraints USING INDEX built concurrently", check,
)
