"""ALTER COLUMN TYPE rewrites the table and breaks old code."""

from __future__ import annotations

from collections.abc import Iterator

from pglast.enums import AlterTableType

from pgshift.safety.model import Severity
from pgshift.safety.rules.base import Rule, Subject, Violation, alter_cmds, table_of


def check(s: Subject) -> Iterator[Violation]:
    if not s.on_existing:
        return
    for cmd in alter_cmds(s.node):
        if cmd.subtype == AlterTableType.AT_AlterColumnType:
            table = table_of(s.node)
            yield Violation(
                f"ALTER COLUMN {cmd.name} TYPE usually rewrites all of {table} (and its indexes) "
                "under an ACCESS EXCLUSIVE lock, and old code may break on the new type",
                "add a new column of the new type, write both, backfill it in batches, switch "
                "reads, then drop the old column in a later migration",
            )


RULE = Rule(
    "changing-column-type", Severity.ERROR,
    "change a column's type through a new column", check,
)
