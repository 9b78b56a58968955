"""Split a migration into single statements with PostgreSQL's own parser, and attach directives.

Each drizzle chunk is parsed on its own (drizzle sends chunks to the server one by one, so a
statement never spans chunks). A statement keeps its text exactly as written (without the
trailing `;`) and its 1-based line in the file. `-- pgshift:` comments before a statement apply
to it; one that trails a statement on the line where it ends applies to that statement, which is
how people write `DROP TABLE t; -- pgshift:allow=ban-drop-table`.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from dataclasses import dataclass

from pglast import ast, parser

from pgshift.errors import DirectiveError, ParseError
from pgshift.migrations.model import Migration
from pgshift.safety.directives import combine, is_directive_comment, parse_directive_comment
from pgshift.safety.fastparse import parse_sql
from pgshift.safety.lines import LineCounter
from pgshift.safety.model import Directives
from pgshift.safety.nodes import required

_COMMENTS = frozenset({"SQL_COMMENT", "C_COMMENT"})


@dataclass(frozen=True)
class SourceStatement:
    """One statement of a migration file, as written."""

    #: 0-based among the file's statements.
    index: int
    #: 1-based line in the file where the statement's first token is.
    line: int
    text: str
    node: ast.Node
    #: from the statement's own `-- pgshift:` comments (not yet merged with overrides).
    directives: Directives


@dataclass
class _Pending:
    """Directive comments waiting for the statement they belong to."""

    directives: Directives | None = None
    line: int = 0

    def add(self, d: Directives, line: int) -> None:
        self.directives = d if self.directives is None else combine(self.directives, d)
        self.line = self.line or line

    def take(self) -> Directives:
        d = self.directives or Directives()
        self.directives, self.line = None, 0
        return d


#: the last few files split, by (path, text): a run analyses a file twice when an earlier file
#: of the run created its tables (engine/apply.py), and parsing is the larger part of the cost.
#: Parse trees are never changed after parsing (rewrites work on copies), so sharing is safe.
_CACHE: dict[tuple[str, str], tuple[SourceStatement, ...]] = {}
_CACHE_SIZE = 8
_CACHE_LOCK = threading.Lock()


def split_statements(migration: Migration) -> tuple[SourceStatement, ...]:
    """Every statement of the migration in file order.

    Raises ParseError / DirectiveError naming `path:line`.
    """
    key = (migration.path, migration.sql)
    found = _CACHE.get(key)
    if found is None:
        found = _split(migration)
        with _CACHE_LOCK:
            while len(_CACHE) >= _CACHE_SIZE:
                del _CACHE[next(iter(_CACHE))]
            _CACHE[key] = found
    return found


def _split(migration: Migration) -> tuple[SourceStatement, ...]:
    result: list[SourceStatement] = []
    pending = _Pending()
    for chunk in migration.chunks:
        sql = chunk.sql

        line_at = LineCounter(sql, chunk.line)

        try:
            raws = parse_sql(sql)
            # the scanner finds comments and each statement's first and last token; a chunk with
            # no comment (most of them) is cut by the parser's own locations instead.
            tokens = parser.scan(sql) if "--" in sql or "/*" in sql else None
        except parser.ParseError as exc:
            message, location = _parse_error(exc)
            line = line_at(location) if location is not None else chunk.line
            if sql.startswith("\ufeff"):
                message += " (the file starts with a byte-order mark; PostgreSQL refuses it too)"
            raise ParseError(f"{migration.path}:{line}: {message}") from None
        if tokens is None:
            for raw in raws:
                start = raw.stmt_location or 0  # pglast types it Optional; sql[None:] is sql[0:]
                end = start + raw.stmt_len if raw.stmt_len else len(sql)
                text = sql[start:end].strip()
                while text.endswith(";"):
                    text = text[:-1].rstrip()
                if not text:
                    continue
                text_start = start + (len(sql[start:end]) - len(sql[start:end].lstrip()))
                result.append(
                    SourceStatement(
                        index=len(result),
                        line=line_at(text_start),
                        text=text,
                        node=required(raw.stmt, "a statement"),
                        directives=pending.take()
                        if pending.directives is not None
                        else Directives(),
                    )
                )
            continue
        comments = [t for t in tokens if t.name in _COMMENTS]
        code = [t for t in tokens if t.name not in _COMMENTS]
        starts = [t.start for t in code]  # sorted: find a statement's tokens by bisection
        previous_end_line: int | None = None
        taken = 0  # comments consumed so far
        for raw in raws:
            start = raw.stmt_location or 0
            end = start + raw.stmt_len if raw.stmt_len else len(sql)
            window = code[bisect_left(starts, start) : bisect_left(starts, end)]
            body = [t for t in window if sql[t.start : t.end + 1] != ";"]
            if not body:
                continue
            first, last = body[0], body[-1]
            own = pending.take() if pending.directives is not None else Directives()
            # comments before this statement's end: trailing ones of the previous statement,
            # leading ones of this one, and ones inside it.
            trailing_for_previous: list[Directives] = []
            while taken < len(comments) and comments[taken].start < last.end:
                comment = comments[taken]
                taken += 1
                text = sql[comment.start : comment.end + 1]
                if not is_directive_comment(text):
                    continue
                cline = line_at(comment.start)
                d = parse_directive_comment(text, f"{migration.path}:{cline}")
                if previous_end_line is not None and cline == previous_end_line and result:
                    trailing_for_previous.append(d)
                else:
                    own = combine(own, d)
            for d in trailing_for_previous:
                prev = result[-1]
                result[-1] = SourceStatement(
                    prev.index, prev.line, prev.text, prev.node, combine(prev.directives, d)
                )
            result.append(
                SourceStatement(
                    index=len(result),
                    line=line_at(first.start),
                    text=sql[first.start : last.end + 1],
                    node=required(raw.stmt, "a statement"),
                    directives=own,
                )
            )
            previous_end_line = line_at(last.end)
        # comments after the chunk's last statement: trailing ones, or ones for what comes next.
        for comment in comments[taken:]:
            text = sql[comment.start : comment.end + 1]
            if not is_directive_comment(text):
                continue
            cline = line_at(comment.start)
            d = parse_directive_comment(text, f"{migration.path}:{cline}")
            if previous_end_line is not None and cline == previous_end_line and result:
                prev = result[-1]
                result[-1] = SourceStatement(
                    prev.index, prev.line, prev.text, prev.node, combine(prev.directives, d)
                )
            else:
                pending.add(d, cline)
    if pending.directives is not None:
        raise DirectiveError(
            f"{migration.path}:{pending.line}: directive applies to no statement "
            "(it must come directly before the statement it is for)"
        )
    return tuple(result)


def _parse_error(exc: parser.ParseError) -> tuple[str, int | None]:
    args = exc.args
    message = str(args[0]) if args else str(exc)
    location = args[1] if len(args) > 1 and isinstance(args[1], int) else None
    return message, location
