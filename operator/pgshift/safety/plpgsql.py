"""See into the one kind of DO block that migrations are full of: guarded DDL.

Older drizzle-kit versions (and many hand-written files) wrap DDL in a DO block that ignores
"already exists" errors:

    DO $$ BEGIN
     ALTER TABLE "posts" ADD CONSTRAINT "posts_author_fk" FOREIGN KEY (...) REFERENCES ...;
    EXCEPTION
     WHEN duplicate_object THEN null;
    END $$;

A DO block is opaque to PostgreSQL's SQL parser, so without this it would land in contract as
"unknown". When the block holds only plain SQL statements, guarded by handlers that do nothing
on duplicate errors, it is classified and linted as those statements (and still runs as written).
"""

from __future__ import annotations

from typing import Any

from pglast import ast, parse_plpgsql, parse_sql

from pgshift.safety.names import render
from pgshift.safety.nodes import required

#: SQLSTATE condition names an idempotent guard may swallow.
_DUPLICATES = frozenset({
    "duplicate_object", "duplicate_table", "duplicate_column", "duplicate_schema",
    "duplicate_function", "undefined_object", "undefined_table", "undefined_column",
})


def guarded_statements(node: ast.DoStmt) -> list[ast.Node] | None:
    """The SQL statements of a guarded-DDL DO block, or None if it does anything else."""
    language = "plpgsql"
    for arg in node.args or ():
        if arg.defname == "language":
            language = arg.arg.sval.lower()
    if language != "plpgsql":
        return None
    try:
        (function,) = parse_plpgsql(render(node))
        action = function["PLpgSQL_function"]["action"]["PLpgSQL_stmt_block"]
    except Exception:  # anything unexpected means "cannot see into it"
        return None
    queries = _block(action)
    if not queries:
        return None
    statements: list[ast.Node] = []
    for query in queries:
        try:
            statements.extend(required(raw.stmt, "a statement") for raw in parse_sql(query))
        except Exception:  # not plain SQL after all
            return None
    return statements


def _block(block: dict[str, Any]) -> list[str] | None:
    if block.get("exceptions") is not None and not _harmless(block["exceptions"]):
        return None
    queries: list[str] = []
    for item in block.get("body") or ():
        ((kind, body),) = item.items()
        if kind == "PLpgSQL_stmt_execsql" and not body.get("into"):
            queries.append(body["sqlstmt"]["PLpgSQL_expr"]["query"])
        elif kind == "PLpgSQL_stmt_block":
            inner = _block(body)
            if inner is None:
                return None
            queries.extend(inner)
        elif kind == "PLpgSQL_stmt_return" and not body:
            continue  # the implicit RETURN at the end of every block
        else:
            return None
    return queries


def _harmless(exceptions: dict[str, Any]) -> bool:
    """Only `WHEN duplicate_... THEN null;` handlers (their action lists are empty)."""
    for exc in exceptions.get("PLpgSQL_exception_block", {}).get("exc_list", ()):
        handler = exc.get("PLpgSQL_exception", {})
        if handler.get("action"):
            return False
        for cond in handler.get("conditions", ()):
            if cond.get("PLpgSQL_condition", {}).get("condname") not in _DUPLICATES:
                return False
    return True
