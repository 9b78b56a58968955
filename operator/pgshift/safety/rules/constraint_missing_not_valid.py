"""ADD FOREIGN KEY / CHECK validates every row while holding a lock."""

from __future__ import annotations

from collections.abc import Iterator

from pglast.enums import AlterTableType, ConstrType

from pgshift.safety.model import Severity
from pgshift.safety.nodes import constraint_of, relname, required
from pgshift.safety.rules.base import Rule, Subject, Violation, alter_cmds, table_of


def check(s: Subject) -> Iterator[Violation]:
    if not s.on_existing:
        return
    for cmd in alter_cmds(s.node):
        if cmd.subtype != AlterTableType.AT_AddConstraint:
            continue
        con = constraint_of(cmd)
        if con.skip_validation:
            continue
        table = table_of(s.node)
        name = con.conname or "<name>"
        if con.contype == ConstrType.CONSTR_FOREIGN:
            referenced = relname(required(con.pktable, "the referenced table"))
            yield Violation(
                f"ADD FOREIGN KEY {con.conname or ''} scans {table} to validate it under a SHARE "
                f"ROW EXCLUSIVE lock on {table} and {referenced}: writes to both wait",
                f"ADD CONSTRAINT {name} ... NOT VALID, then ALTER TABLE {table} VALIDATE "
                f"CONSTRAINT {name} in a later step (pgshift rewrites named constraints so)",
            )
        elif con.contype == ConstrType.CONSTR_CHECK:
            yield Violation(
                f"ADD CHECK {con.conname or ''} scans all of {table} under an ACCESS EXCLUSIVE "
                "lock: reads and writes wait",
                f"ADD CONSTRAINT {name} CHECK (...) NOT VALID, then VALIDATE CONSTRAINT {name} "
                "in a later step (pgshift rewrites named constraints so)",
            )


RULE = Rule(
    "constraint-missing-not-valid", Severity.ERROR,
    "add foreign keys and checks NOT VALID, then VALIDATE", check,
)
