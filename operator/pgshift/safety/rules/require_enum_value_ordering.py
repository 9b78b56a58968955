"""Opt-in style: say where a new enum value goes (ORDER BY sorts enums by position)."""

from __future__ import annotations

from collections.abc import Iterator

from pglast import ast

from pgshift.safety.model import Severity
from pgshift.safety.nodes import items
from pgshift.safety.rules.base import Rule, Subject, Violation


def check(s: Subject) -> Iterator[Violation]:
    node = s.node
    if isinstance(node, ast.AlterEnumStmt) and node.newVal and not node.oldVal \
            and not node.newValNeighbor:
        enum = ".".join(p.sval for p in items(node.typeName))
        yield Violation(
            f"ADD VALUE {node.newVal!r} to {enum} without BEFORE or AFTER appends it at the end: "
            "ORDER BY and comparisons on the enum sort by position, not by name",
            f"ALTER TYPE {enum} ADD VALUE {node.newVal!r} BEFORE|AFTER '<existing value>' when "
            "the order matters; allow this rule when the end is right",
        )


RULE = Rule(
    "require-enum-value-ordering", Severity.WARNING,
    "say where a new enum value goes (BEFORE/AFTER)", check, opt_in=True,
)
