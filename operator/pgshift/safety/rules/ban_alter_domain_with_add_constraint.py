"""ALTER DOMAIN ADD CONSTRAINT / SET NOT NULL checks every column of the domain's type."""

from __future__ import annotations

from collections.abc import Iterator

from pglast import ast
from pglast.enums import ConstrType

from pgshift.safety.model import Severity
from pgshift.safety.nodes import items
from pgshift.safety.rules.base import Rule, Subject, Violation


def check(s: Subject) -> Iterator[Violation]:
    node = s.node
    if not isinstance(node, ast.AlterDomainStmt):
        return
    domain = ".".join(p.sval for p in items(node.typeName))
    con = node.def_
    if (node.subtype == "C" and isinstance(con, ast.Constraint)
            and con.contype == ConstrType.CONSTR_CHECK and not con.skip_validation):
        name = con.conname or "<name>"
        yield Violation(
            f"ALTER DOMAIN {domain} ADD CONSTRAINT {con.conname or ''} scans every table column "
            "of that type under a SHARE lock on each table: writes wait for the whole scan",
            f"ADD CONSTRAINT {name} CHECK (...) NOT VALID (new values are checked at once), "
            f"then ALTER DOMAIN {domain} VALIDATE CONSTRAINT {name} in a later step (it checks "
            "the old rows without blocking writes)",
        )
    elif node.subtype == "O":
        yield Violation(
            f"ALTER DOMAIN {domain} SET NOT NULL scans every table column of that type under a "
            "SHARE lock on each table: writes wait for the whole scan",
            f"ALTER DOMAIN {domain} ADD CONSTRAINT <name> CHECK (VALUE IS NOT NULL) NOT VALID, "
            "then VALIDATE CONSTRAINT <name> in a later step",
        )


RULE = Rule(
    "ban-alter-domain-with-add-constraint", Severity.ERROR,
    "add domain constraints NOT VALID, then VALIDATE", check,
)
