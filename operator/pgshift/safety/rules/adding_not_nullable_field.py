"""NOT NULL on an existing table: a full scan under ACCESS EXCLUSIVE, or a failing ADD COLUMN."""

from __future__ import annotations

from collections.abc import Iterator

from pglast import ast
from pglast.enums import AlterTableType, ConstrType

from pgshift.safety.model import Severity
from pgshift.safety.names import table_key
from pgshift.safety.nodes import child, column_of, items, relation, relname
from pgshift.safety.rules.base import Rule, Subject, Violation, alter_cmds, table_of


def check(s: Subject) -> Iterator[Violation]:
    if not s.on_existing:
        return
    for cmd in alter_cmds(s.node):
        table = table_of(s.node)
        if cmd.subtype == AlterTableType.AT_AddColumn:
            column = column_of(cmd)
            kinds = {c.contype for c in items(column.constraints)}
            if ConstrType.CONSTR_NOTNULL in kinds and not kinds & {
                ConstrType.CONSTR_DEFAULT, ConstrType.CONSTR_IDENTITY, ConstrType.CONSTR_GENERATED
            }:
                col = column.colname
                yield Violation(
                    f"ADD COLUMN {col} NOT NULL without a default fails on a table with rows "
                    f"({table}), under an ACCESS EXCLUSIVE lock",
                    f"add {col} nullable, backfill it, then SET NOT NULL (pgshift rewrites that "
                    "into the safe CHECK ... NOT VALID recipe), or give it a constant DEFAULT",
                )
        elif cmd.subtype == AlterTableType.AT_SetNotNull:
            rv = relation(child(s.node, ast.AlterTableStmt, "ALTER TABLE"))
            key = (table_key(rv.schemaname or None, relname(rv)), cmd.name)
            if s.planned.rewrite == "set-not-null" or key in s.ctx.not_null_checks:
                continue  # a validated CHECK (col IS NOT NULL) lets PostgreSQL skip the scan
            yield Violation(
                f"SET NOT NULL on {table}.{cmd.name} scans every row under an ACCESS EXCLUSIVE "
                "lock: reads and writes wait",
                f"ADD CONSTRAINT c CHECK ({cmd.name} IS NOT NULL) NOT VALID; VALIDATE CONSTRAINT "
                f"c; SET NOT NULL; DROP CONSTRAINT c (pgshift rewrites it so unless rewrite=false)",
            )


RULE = Rule(
    "adding-not-nullable-field", Severity.ERROR,
    "make existing columns NOT NULL through a validated CHECK", check,
)
