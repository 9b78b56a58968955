"""DROP COLUMN breaks the old application version and loses the data."""

from __future__ import annotations

from collections.abc import Iterator

from pglast.enums import AlterTableType

from pgshift.safety.model import Severity
from pgshift.safety.rules.base import Rule, Subject, Violation, alter_cmds, table_of


def check(s: Subject) -> Iterator[Violation]:
    if not s.on_existing:
        return
    for cmd in alter_cmds(s.node):
        if cmd.subtype == AlterTableType.AT_DropColumn:
            yield Violation(
                f"DROP COLUMN {table_of(s.node)}.{cmd.name} loses its data and breaks queries "
                "of the application version still running (ACCESS EXCLUSIVE, brief)",
                "stop reading and writing the column first (drizzle: remove it from the schema "
                "and deploy); pgshift runs it in the contract phase after a backup; silence with "
                "-- pgshift:allow=ban-drop-column",
            )


RULE = Rule(
    "ban-drop-column", Severity.WARNING, "drop columns only after the code stops using them",
    check,
)
