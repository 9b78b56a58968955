"""Names: tables as written, keys for "created in this file", invented identifiers, rendering."""

from __future__ import annotations

import hashlib

from pglast import ast
from pglast.stream import RawStream, maybe_double_quote_name

from pgshift.safety.nodes import relname

#: PostgreSQL truncates identifiers to NAMEDATALEN - 1 bytes.
MAX_IDENTIFIER_BYTES = 63


def render(node: ast.Node) -> str:
    """SQL text for a parse tree, as PostgreSQL's parser would read it back."""
    if isinstance(node, ast.IndexStmt) and node.nulls_not_distinct:
        return _render_index(node)
    return str(RawStream()(node))


def _render_index(node: ast.IndexStmt) -> str:
    """pglast 8 prints NULLS NOT DISTINCT after WITH/TABLESPACE/WHERE, which PostgreSQL refuses;
    print the head with pglast and the tail in the grammar's order."""
    head = type(node)(node())
    head.nulls_not_distinct = False
    head.options = head.tableSpace = head.whereClause = None
    text = str(RawStream()(head)) + " NULLS NOT DISTINCT"
    if node.options:
        text += " WITH (" + ", ".join(str(RawStream()(o)) for o in node.options) + ")"
    if node.tableSpace:
        text += " TABLESPACE " + quote(node.tableSpace)
    if node.whereClause is not None:
        text += " WHERE " + str(RawStream()(node.whereClause))
    return text


def quote(name: str) -> str:
    return str(maybe_double_quote_name(name))


def relation_name(rv: ast.RangeVar) -> tuple[str | None, str]:
    return (rv.schemaname or None, relname(rv))


def written(schema: str | None, name: str) -> str:
    """A table as the user wrote it: `projects` or `app.projects` (unquoted, for messages)."""
    return f"{schema}.{name}" if schema else name


def table_key(schema: str | None, name: str) -> str:
    """The key under which "created in this file" is tracked.

    Unqualified and `public.` names are the same table for every migration drizzle-kit writes
    (search_path is left alone), so both map to the bare name.
    """
    return name if schema in (None, "public") else f"{schema}.{name}"


def index_name(rv: ast.RangeVar, name: str | None) -> str | None:
    """An index lives in its table's schema: `app.items_name_idx` when the table is `app.items`."""
    if not name:
        return None
    return f"{rv.schemaname}.{name}" if rv.schemaname else name


def invent(*parts: str) -> str:
    """A deterministic identifier from `parts`, at most 63 bytes.

    Too long a name is cut (on a character boundary) and given a short hash of the full name,
    so two long names that share a prefix still differ, and the same input always gives the
    same name (a resumed run finds what an earlier attempt created).
    """
    full = "_".join(p for p in parts if p)
    if len(full.encode()) <= MAX_IDENTIFIER_BYTES:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    room = MAX_IDENTIFIER_BYTES - len(digest) - 1
    cut = full.encode()[:room].decode("utf-8", errors="ignore")
    return f"{cut}_{digest}"
