"""CREATE INDEX on an existing table blocks writes for the whole build."""

from __future__ import annotations

from collections.abc import Iterator

from pglast import ast

from pgshift.safety.model import Severity
from pgshift.safety.nodes import relation, relname
from pgshift.safety.rules.base import Rule, Subject, Violation


def check(s: Subject) -> Iterator[Violation]:
    node = s.node
    if isinstance(node, ast.IndexStmt) and not node.concurrent and s.exists(relation(node)):
        name = node.idxname or "the index"
        yield Violation(
            f"CREATE INDEX {name} takes a SHARE lock on {relname(relation(node))}: "
            "it blocks inserts, updates and deletes until the whole index is built",
            "CREATE INDEX CONCURRENTLY (pgshift rewrites it so unless rewrite=false); it runs "
            "outside a transaction, and a failed build leaves an INVALID index to drop",
        )


RULE = Rule(
    "require-concurrent-index-creation", Severity.ERROR,
    "create indexes on existing tables CONCURRENTLY", check,
)
