"""ADD PRIMARY KEY builds an index and sets NOT NULL under ACCESS EXCLUSIVE."""

from __future__ import annotations

from collections.abc import Iterator

from pglast.enums import ConstrType

from pgshift.safety.model import Severity
from pgshift.safety.rules.base import Rule, Subject, Violation, constraints_added


def check(s: Subject) -> Iterator[Violation]:
    for table, con in constraints_added(s):
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
