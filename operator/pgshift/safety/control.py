"""What a run refuses in a file before anything runs: transaction control and lock releases.

- A top-level `COMMIT` / `END` is a step boundary (docs/runner.md), never sent; every other
  transaction control statement (`BEGIN`, `ROLLBACK`, `SAVEPOINT`, `PREPARE TRANSACTION`, ...)
  would fight pgshift's own transactions and is refused.
- `pg_advisory_unlock*()` and `DISCARD ALL` can release pgshift's migration lock; refused unless
  the statement (or the migration's override) allows `releases-advisory-lock`.
"""

from __future__ import annotations

from pgshift.errors import ReleasesLock, TransactionControl
from pgshift.migrations.model import Migration
from pgshift.safety.directives import merge
from pgshift.safety.model import Directives
from pgshift.safety.rules import releases_advisory_lock, transaction_nesting
from pgshift.safety.statements import SourceStatement, iter_statements


def may_need_check(text: str, tree_json: str) -> bool:
    """A cheap filter over a chunk's text and its parse tree as JSON: False means the chunk
    holds nothing `check` refuses."""
    lower = text.lower()
    return '"TransactionStmt"' in tree_json or "unlock" in lower or "discard" in lower


def check(migration: Migration, override: Directives | None = None) -> None:
    """Raise TransactionControl / ReleasesLock naming `path:line` and the fix."""
    for source in iter_statements(migration):
        check_statement(migration, source, override)


def check_statement(
    migration: Migration, source: SourceStatement, override: Directives | None = None
) -> None:
    """`check` for one statement (a large file is checked as its statements stream by)."""
    word = transaction_nesting.forbidden(source.node)
    if word is not None:
        raise TransactionControl(
            f"{migration.path}:{source.line}: {word} in a migration file",
            hint=transaction_nesting.FIX,
        )
    found = (releases_advisory_lock.lock_releases(source.node)
             if releases_advisory_lock.may_release(source.text) else [])
    if found and releases_advisory_lock.ID not in merge(source.directives, override).allow:
        raise ReleasesLock(
            f"{migration.path}:{source.line}: {', '.join(found)} releases advisory locks, "
            "pgshift's migration lock included"
        )
