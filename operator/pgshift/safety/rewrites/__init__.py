"""Safe rewrites: each turns one unsafe statement on an existing table into safe statements.

One module per rewrite, each with an `ID` (what `PlannedStatement.rewrite` says) and a
`rewrite(node, functions) -> list[Part] | None` (`functions`: what is known of function
volatility, see `volatility.py`). The first that applies wins. Rewrites are only asked about
tables that exist: a table created earlier in the same file is empty and private, and its
statements run as written, atomically.
"""

from __future__ import annotations

from collections.abc import Callable

from pglast import ast

from pgshift.safety.rewrites import (
    concurrent_drop_index,
    concurrent_index,
    guarded_not_valid,
    not_valid,
    primary_key_using_index,
    set_not_null,
    unique_using_index,
    volatile_default,
)
from pgshift.safety.rewrites.base import Functions, Part

REWRITES: dict[str, Callable[[ast.Node, Functions | None], list[Part] | None]] = {
    m.ID: m.rewrite
    for m in (
        concurrent_index,
        concurrent_drop_index,
        not_valid,
        set_not_null,
        unique_using_index,
        primary_key_using_index,
        volatile_default,
        guarded_not_valid,
    )
}


def rewrite(node: ast.Node, functions: Functions | None = None) -> tuple[str, list[Part]] | None:
    for rewrite_id, fn in REWRITES.items():
        parts = fn(node, functions)
        if parts:
            return rewrite_id, parts
    return None


__all__ = ["REWRITES", "Part", "rewrite"]
