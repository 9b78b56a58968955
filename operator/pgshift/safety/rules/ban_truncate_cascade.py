"""TRUNCATE ... CASCADE also empties every table that references it."""

from __future__ import annotations

from collections.abc import Iterator

from pglast import ast
from pglast.enums import DropBehavior

from pgshift.safety.model import Severity
from pgshift.safety.rules.base import Rule, Subject, Violation


def check(s: Subject) -> Iterator[Violation]:
    node = s.node
    if isinstance(node, ast.TruncateStmt) and node.behavior == DropBehavior.DROP_CASCADE:
        yield Violation(
            "TRUNCATE ... CASCADE also empties every table with a foreign key to these, "
            "under ACCESS EXCLUSIVE locks on all of them",
            "name every table to empty explicitly, without CASCADE",
        )


RULE = Rule("ban-truncate-cascade", Severity.ERROR, "truncate tables explicitly, not CASCADE",
            check)
