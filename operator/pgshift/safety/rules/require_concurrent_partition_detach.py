"""DETACH PARTITION takes ACCESS EXCLUSIVE on the partitioned table."""

from __future__ import annotations

from collections.abc import Iterator

from pglast import ast
from pglast.enums import AlterTableType

from pgshift.safety.model import Severity
from pgshift.safety.rules.base import Rule, Subject, Violation, alter_cmds, table_of


def check(s: Subject) -> Iterator[Violation]:
    if not s.on_existing:
        return
    for cmd in alter_cmds(s.node):
        if (cmd.subtype == AlterTableType.AT_DetachPartition
                and isinstance(cmd.def_, ast.PartitionCmd) and not cmd.def_.concurrent):
            part = cmd.def_.name.relname if cmd.def_.name is not None else "the partition"
            yield Violation(
                f"DETACH PARTITION {part} takes an ACCESS EXCLUSIVE lock on {table_of(s.node)}: "
                "reads and writes of every partition wait",
                f"ALTER TABLE {table_of(s.node)} DETACH PARTITION {part} CONCURRENTLY (alone in "
                "its ALTER TABLE; pgshift runs it outside a transaction); if it is interrupted, "
                "DETACH PARTITION ... FINALIZE completes it",
            )


RULE = Rule(
    "require-concurrent-partition-detach", Severity.ERROR,
    "detach partitions CONCURRENTLY", check,
)
