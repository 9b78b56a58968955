"""A statement pgshift cannot see into (DO blocks, unknown commands) runs in contract."""

from __future__ import annotations

from collections.abc import Iterator

from pglast import ast

from pgshift.safety.model import Severity
from pgshift.safety.plpgsql import guarded_statements
from pgshift.safety.rules.base import Rule, Subject, Violation


def check(s: Subject) -> Iterator[Violation]:
    if (isinstance(s.node, ast.DoStmt) and s.planned.phase.value == "contract"
            and guarded_statements(s.node) is None):
        yield Violation(
            "a DO block can do anything, so pgshift runs it in the contract phase (after the "
            "gate) and bounds its lock waits",
            "say what it is with -- pgshift:phase=expand|backfill|contract",
        )


RULE = Rule("unclassified-statement", Severity.INFO,
            "say which phase a DO block belongs to", check)
