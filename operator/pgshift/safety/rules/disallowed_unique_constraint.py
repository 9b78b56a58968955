"""ADD UNIQUE builds its index under ACCESS EXCLUSIVE."""

from __future__ import annotations

from collections.abc import Iterator

from pglast.enums import ConstrType

from pgshift.safety.model import Severity
from pgshift.safety.rules.base import Rule, Subject, Violation, constraints_added


def check(s: Subject) -> Iterator[Violation]:
    for table, con in constraints_added(s):
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
