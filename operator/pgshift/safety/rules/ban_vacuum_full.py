"""VACUUM FULL and CLUSTER rewrite the table under ACCESS EXCLUSIVE."""

from __future__ import annotations

from collections.abc import Iterator

from pglast import ast

from pgshift.safety.model import Severity
from pgshift.safety.options import option_on
from pgshift.safety.rules.base import Rule, Subject, Violation


def check(s: Subject) -> Iterator[Violation]:
    node = s.node
    # the option's value counts: VACUUM (FULL FALSE) is a plain VACUUM.
    full = isinstance(node, ast.VacuumStmt) and option_on(node.options, "full")
    if full or isinstance(node, ast.ClusterStmt):
        verb = "VACUUM FULL" if full else "CLUSTER"
        yield Violation(
            f"{verb} rewrites the table under an ACCESS EXCLUSIVE lock: reads and writes wait "
            "for the whole rewrite",
            "plain VACUUM in a migration, or pg_repack outside one",
        )


RULE = Rule("ban-vacuum-full", Severity.ERROR, "no VACUUM FULL or CLUSTER in migrations", check)
