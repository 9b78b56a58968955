"""Transaction control in a migration: COMMIT is a step boundary, the rest is refused."""

from __future__ import annotations

from collections.abc import Iterator

from pglast import ast
from pglast.enums import TransactionStmtKind

from pgshift.safety.model import Severity
from pgshift.safety.rules.base import Rule, Subject, Violation

ID = "transaction-nesting"

_WORDS = {
    TransactionStmtKind.TRANS_STMT_BEGIN: "BEGIN",
    TransactionStmtKind.TRANS_STMT_START: "START TRANSACTION",
    TransactionStmtKind.TRANS_STMT_COMMIT: "COMMIT AND CHAIN",
    TransactionStmtKind.TRANS_STMT_ROLLBACK: "ROLLBACK",
    TransactionStmtKind.TRANS_STMT_SAVEPOINT: "SAVEPOINT",
    TransactionStmtKind.TRANS_STMT_RELEASE: "RELEASE SAVEPOINT",
    TransactionStmtKind.TRANS_STMT_ROLLBACK_TO: "ROLLBACK TO SAVEPOINT",
    TransactionStmtKind.TRANS_STMT_PREPARE: "PREPARE TRANSACTION",
    TransactionStmtKind.TRANS_STMT_COMMIT_PREPARED: "COMMIT PREPARED",
    TransactionStmtKind.TRANS_STMT_ROLLBACK_PREPARED: "ROLLBACK PREPARED",
}

FIX = (
    "remove it: pgshift runs each step in a transaction of its own (or none, for CONCURRENTLY "
    "and friends) and a file in one when it can; a COMMIT; marks a step boundary"
)


def is_step_boundary(node: ast.Node) -> bool:
    """A plain top-level `COMMIT` / `END`: the statements after it form the next step."""
    return (
        isinstance(node, ast.TransactionStmt)
        and node.kind == TransactionStmtKind.TRANS_STMT_COMMIT
        and not node.chain
    )


def forbidden(node: ast.Node) -> str | None:
    """The transaction control statement a run refuses ("BEGIN", "SAVEPOINT", ...), or None."""
    if not isinstance(node, ast.TransactionStmt) or is_step_boundary(node):
        return None
    word = _WORDS.get(node.kind) if node.kind is not None else None
    return word or "transaction control"


def check(s: Subject) -> Iterator[Violation]:
    word = forbidden(s.node) if s.node is not None else None
    if word is not None:
        yield Violation(
            f"{word} in a migration: pgshift controls the transactions; the run refuses the "
            "file before anything runs",
            FIX,
        )


RULE = Rule(
    ID, Severity.ERROR, "no BEGIN / ROLLBACK / SAVEPOINT in migrations (COMMIT cuts a step)", check
)
