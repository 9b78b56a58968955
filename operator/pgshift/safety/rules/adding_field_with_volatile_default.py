"""ADD COLUMN with a volatile default rewrites the whole table under ACCESS EXCLUSIVE."""

from __future__ import annotations

from collections.abc import Iterator

from pglast.enums import AlterTableType

from pgshift.safety.model import Severity
from pgshift.safety.nodes import column_of
from pgshift.safety.rules.base import Rule, Subject, Violation, alter_cmds, table_of
from pgshift.safety.volatility import rewrite_reason


def check(s: Subject) -> Iterator[Violation]:
    if not s.on_existing:
        return
    for cmd in alter_cmds(s.node):
        if cmd.subtype != AlterTableType.AT_AddColumn:
            continue
        column = column_of(cmd)
        col, table = column.colname, table_of(s.node)
        # the same answer the volatile-default rewrite acts on.
        reason = rewrite_reason(column, s.ctx.functions)
        if reason:
            unknown = "does not know" in reason
            yield Violation(
                f"ADD COLUMN {col}: {reason}, so PostgreSQL rewrites all of {table} under an "
                "ACCESS EXCLUSIVE lock: reads and writes wait",
                ("if the function is IMMUTABLE or STABLE, say so where pgshift can see it "
                 "(its CREATE FUNCTION in this or an earlier file; plan and apply also read the "
                 "database catalog); otherwise " if unknown else "")
                + f"ADD COLUMN {col} without the default; ALTER COLUMN {col} SET DEFAULT ...; "
                "backfill existing rows in batches (pgshift rewrites a plain defaulted column so "
                "unless rewrite=false)",
            )


RULE = Rule(
    "adding-field-with-volatile-default", Severity.ERROR,
    "add columns whose default rewrites the table in steps", check,
)
