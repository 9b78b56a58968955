"""ALTER COLUMN TYPE rewrites the table and breaks old code."""

from __future__ import annotations

from collections.abc import Iterator

from pglast.enums import AlterTableType

from pgshift.safety.model import Severity
from pgshift.safety.names import render
from pgshift.safety.nodes import column_of, items
from pgshift.safety.rules.base import Rule, Subject, Violation, alter_cmds, table_of

#: targets that are catalog-only when they widen a varchar/text column (no USING): PostgreSQL
#: skips the rewrite for varchar(n) -> varchar(m >= n), varchar -> text and the like.
_MAYBE_FREE = frozenset({"text", "varchar", "citext"})


def check(s: Subject) -> Iterator[Violation]:
    if not s.on_existing:
        return
    for cmd in alter_cmds(s.node):
        if cmd.subtype != AlterTableType.AT_AlterColumnType:
            continue
        table = table_of(s.node)
        column = column_of(cmd)
        type_name = items(column.typeName.names)[-1].sval if column.typeName else ""
        shown = render(column.typeName) if column.typeName else type_name
        if type_name in _MAYBE_FREE and column.raw_default is None:
            # offline we cannot see the current type: say so rather than cry wolf.
            yield Violation(
                f"ALTER COLUMN {cmd.name} TYPE {shown}: free if it widens a varchar/text "
                f"column; any other change rewrites all of {table} under an ACCESS EXCLUSIVE "
                "lock, and old code may break on the new type",
                "if it only widens, allow it (-- pgshift:allow=changing-column-type); otherwise "
                "add a new column, write both, backfill, switch reads, drop the old one later",
                severity=Severity.WARNING,
            )
            continue
        yield Violation(
            f"ALTER COLUMN {cmd.name} TYPE {shown} usually rewrites all of {table} (and its "
            "indexes) "
            "under an ACCESS EXCLUSIVE lock, and old code may break on the new type",
            "add a new column of the new type, write both, backfill it in batches, switch "
            "reads, then drop the old column in a later migration",
        )


RULE = Rule(
    "changing-column-type", Severity.ERROR,
    "change a column's type through a new column", check,
)
