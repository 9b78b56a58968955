"""REINDEX blocks writes (and reads through the index) while it rebuilds."""

from __future__ import annotations

from collections.abc import Iterator

from pglast import ast

from pgshift.safety.model import Severity
from pgshift.safety.options import option_on
from pgshift.safety.rules.base import Rule, Subject, Violation


def check(s: Subject) -> Iterator[Violation]:
    node = s.node
    # the option's value counts: REINDEX (CONCURRENTLY FALSE) blocks writes.
    if isinstance(node, ast.ReindexStmt) and not option_on(node.params, "concurrently"):
        yield Violation(
            "REINDEX takes a SHARE lock on the table (writes wait) and ACCESS EXCLUSIVE on each "
            "index (queries that use it wait) for the whole rebuild",
            "REINDEX (CONCURRENTLY) ... (outside a transaction)",
        )


RULE = Rule("ban-reindex-without-concurrently", Severity.ERROR, "reindex CONCURRENTLY", check)
