"""One UPDATE over an existing table holds its row locks for the whole run."""

from __future__ import annotations

from collections.abc import Iterator

from pglast import ast

from pgshift.safety.backfill import idempotent
from pgshift.safety.model import Severity, TxMode
from pgshift.safety.names import relation_name, table_key
from pgshift.safety.nodes import relation, relname
from pgshift.safety.rules.base import Rule, Subject, Violation


def check(s: Subject) -> Iterator[Violation]:
    node = s.node
    if isinstance(node, ast.UpdateStmt) and s.planned.tx is TxMode.BATCHED:
        yield from _keyless(s, node)
        return
    if not isinstance(node, ast.UpdateStmt) or not s.on_existing:
        return
    table = relname(relation(node))
    if node.fromClause or node.returningClause or node.withClause or relation(node).alias:
        why = "it has an alias, FROM, RETURNING or WITH, which pgshift does not batch"
        help_ = "write it as a single-table UPDATE with a guard, or run it as written (allow)"
    elif idempotent(node):
        why = "pgshift would batch it, but rewrites are off for it"
        help_ = "-- pgshift:backfill (key=COL) batches it even with rewrites off"
    elif node.whereClause is None:
        why = "it has no WHERE guard, so pgshift cannot tell it is safe to re-run"
        help_ = ("add a guard such as WHERE col IS NULL, or -- pgshift:backfill (key=COL) to walk "
                 "the keys once in batches")
    else:
        why = "its WHERE does not exclude the rows it has changed, so re-running it is not safe"
        help_ = ("make the guard exclude updated rows (SET c = ... WHERE c IS NULL), or "
                 "-- pgshift:backfill (key=COL) to walk the keys once in batches")
    yield Violation(
        f"UPDATE {table} runs as one transaction holding row locks on every row it changes "
        f"until it ends; {why}",
        help_,
    )


RULE = Rule("unbatched-backfill", Severity.WARNING, "backfill existing rows in batches", check)


def _keyless(s: Subject, node: ast.UpdateStmt) -> Iterator[Violation]:
    """A batched UPDATE of a table that an earlier migration left without a single-column
    primary key: pgshift's own batching falls back to the UPDATE as written (warning); a
    `backfill` directive without `key=` fails when it runs (error)."""
    bf = s.planned.backfill
    if bf is None or bf.key is not None:
        return
    why = s.ctx.keyless.get(table_key(*relation_name(relation(node))))
    if why is None:
        return
    table = relname(relation(node))
    if s.planned.rewrite:
        yield Violation(
            f"UPDATE {table} cannot be batched: {table} {why}, so it runs as written, one "
            "transaction holding row locks on every row it changes until it ends",
            f"name a unique, NOT NULL, indexed column: -- pgshift:backfill key=COL (or give "
            f"{table} a single-column primary key)",
        )
    else:
        yield Violation(
            f"-- pgshift:backfill on {table}, which {why}: the run stops here with "
            "error[BackfillKey]",
            "name a unique, NOT NULL, indexed column: -- pgshift:backfill key=COL",
            severity=Severity.ERROR,
        )
