"""Split a migration into single statements with PostgreSQL's own parser, and attach directives.

Each drizzle chunk is parsed on its own (drizzle sends chunks to the server one by one, so a
statement never spans chunks). A statement keeps its text exactly as written (without the
trailing `;`) and its 1-based line in the file. `-- pgshift:` comments before a statement apply
to it; one that trails a statement on the line where it ends applies to that statement, which is
how people write `DROP TABLE t; -- pgshift:allow=ban-drop-table`.
"""

from __future__ import annotations

import re
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, TypeVar

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


#: a chunk longer than this is parsed a batch of statements at a time (`batches`), so its
#: parse trees never exist all at once (issue 14: a 50 MB file's trees took many times its size)
#: and the parsing thread lets the main one run between batches (a SIGTERM is not kept waiting).
BATCHED_ABOVE = 1 << 20
#: about how many characters of statements one batch holds.
BATCH_CHARS = 1 << 18

T = TypeVar("T")


def split_statements(migration: Migration) -> tuple[SourceStatement, ...]:
    """Every statement of the migration in file order.

    Raises ParseError / DirectiveError naming `path:line`.
    """
    key = (migration.path, migration.sql)
    found = _CACHE.get(key)
    if found is None:
        found = tuple(_split(migration))
        with _CACHE_LOCK:
            while len(_CACHE) >= _CACHE_SIZE:
                del _CACHE[next(iter(_CACHE))]
            _CACHE[key] = found
    return found


def is_large(migration: Migration) -> bool:
    """Whether `iter_statements` streams this file (its trees are not kept)."""
    return any(len(c.sql) > BATCHED_ABOVE for c in migration.chunks)


def iter_statements(migration: Migration) -> Iterator[SourceStatement]:
    """`split_statements`, but a large file's statements are parsed as they are consumed and
    not cached: only a batch's parse trees are alive at a time."""
    if not is_large(migration):
        return iter(split_statements(migration))
    return _split(migration)


def batches(sql: str, parse: Callable[[str], T]) -> Iterator[tuple[int, T]]:
    """(offset, parse(piece)) for consecutive pieces of `sql` that together are `sql`: the whole
    text when it is not longer than BATCHED_ABOVE, else pieces of about BATCH_CHARS, each cut
    right after a `;` outside strings, identifiers, comments and dollar quotes (`_cuts`).

    A wrong cut (a `;` inside a `BEGIN ATOMIC` body or a rule's `(...; ...)`, or a literal
    `_cuts` misread) leaves the piece before it unterminated, so its parse fails. On any error
    the rest of the text is parsed as one piece from the last good cut: the parser's state there
    is the whole text's (between statements), so its error is the whole text's, or, after a
    wrong cut, it parses. Errors are raised as parser.ParseError located in `sql`."""
    ends = _cuts(sql) if len(sql) > BATCHED_ABOVE else []
    start = 0
    for end in ends:
        try:
            result = parse(sql[start:end])
        except parser.ParseError:
            break
        yield start, result
        start = end
    if start == 0:
        yield 0, parse(sql)
        return
    try:
        yield start, parse(sql[start:])
    except parser.ParseError as exc:
        message, location = _parse_error(exc)
        if location is None:
            raise
        raise parser.ParseError(message, start + location) from None


#: a statement's end, or a whole literal or line comment (matched in C: a seed file holds many),
#: or what starts a block comment or dollar quote; a lone quote is an unterminated literal.
_LEXEME = re.compile(
    r""";|'[^']*(?:''[^']*)*'|"[^"]*(?:""[^"]*)*"|--[^\n]*"""
    r"""|(?<![\w$])[eE]'(?:[^'\\]|\\.|'')*'|/\*|(?<![\w$])\$(?:[^\W\d]\w*)?\$|['"]""",
    re.DOTALL,
)


def _cuts(sql: str) -> list[int]:
    """Offsets right after a top-level `;`, about BATCH_CHARS apart, as PostgreSQL's scanner
    reads the text (standard_conforming_strings on): where `batches` may cut. Empty when the
    text has no such place."""
    ends: list[int] = []
    last = pos = 0
    while True:
        found = _LEXEME.search(sql, pos)
        if found is None:
            return ends
        lexeme, at = found.group(), found.end()
        if lexeme == ";":
            if at - last >= BATCH_CHARS and at < len(sql):
                ends.append(at)
                last = at
            pos = at
            continue
        if lexeme in ("'", '"'):
            return ends  # unterminated: the rest is one piece (its parse names the error)
        if lexeme[0] in "'\"-" or lexeme[0] in "eE":  # a whole literal or line comment
            pos = at
            continue
        if lexeme == "/*":
            depth, close = 1, at
            while depth and close >= 0:  # block comments nest
                opening, ending = sql.find("/*", close), sql.find("*/", close)
                if ending < 0:
                    close = -1
                elif 0 <= opening < ending:
                    depth, close = depth + 1, opening + 2
                else:
                    depth, close = depth - 1, ending + 2
            pos = close
        else:  # $tag$
            close = sql.find(lexeme, at)
            pos = -1 if close < 0 else close + len(lexeme)
        if pos < 0 or pos > len(sql):
            return ends  # unterminated: the rest is one piece (its parse names the error)


def _split(migration: Migration) -> Iterator[SourceStatement]:
    """The statements in order; each is yielded once the next one is known (a directive
    trailing a statement on its line is found with the next statement's comments)."""
    previous: SourceStatement | None = None
    count = 0
    pending = _Pending()
    for chunk in migration.chunks:
        sql = chunk.sql
        line_at = LineCounter(sql, chunk.line)
        # the scanner finds comments and each statement's first and last token; a chunk with
        # no comment (most of them) is cut by the parser's own locations instead.
        comments_in = "--" in sql or "/*" in sql

        def parse(
            piece: str, comments_in: bool = comments_in
        ) -> tuple[tuple[ast.RawStmt, ...], tuple[Any, ...] | None, int]:
            tokens = tuple(parser.scan(piece)) if comments_in else None
            return parse_sql(piece), tokens, len(piece)

        def directive_in(
            comment: Any, base: int, sql: str = sql, line_at: LineCounter = line_at
        ) -> tuple[Directives, int] | None:
            """A `-- pgshift:` comment's directives and line; None for any other comment."""
            text = sql[base + comment.start : base + comment.end + 1]
            if not is_directive_comment(text):
                return None
            cline = line_at(base + comment.start)
            return parse_directive_comment(text, f"{migration.path}:{cline}"), cline

        previous_end_line: int | None = None  # of the chunk's previous statement
        try:
            for base, (raws, tokens, size) in batches(sql, parse):
                if tokens is None:
                    for raw in raws:
                        start = base + (raw.stmt_location or 0)
                        end = start + raw.stmt_len if raw.stmt_len else base + size
                        written = sql[start:end]
                        text = written.strip()
                        while text.endswith(";"):
                            text = text[:-1].rstrip()
                        if not text:
                            continue
                        text_start = start + (len(written) - len(written.lstrip()))
                        if previous is not None:
                            yield previous
                        previous = SourceStatement(
                            index=count,
                            line=line_at(text_start),
                            text=text,
                            node=required(raw.stmt, "a statement"),
                            directives=pending.take(),
                        )
                        count += 1
                    continue
                comments = [t for t in tokens if t.name in _COMMENTS]
                code = [t for t in tokens if t.name not in _COMMENTS]
                starts = [t.start for t in code]  # sorted: find a statement's tokens by bisection
                taken = 0  # comments consumed so far
                for raw in raws:
                    start = raw.stmt_location or 0
                    end = start + raw.stmt_len if raw.stmt_len else size
                    window = code[bisect_left(starts, start) : bisect_left(starts, end)]
                    body = [t for t in window if sql[base + t.start : base + t.end + 1] != ";"]
                    if not body:
                        continue
                    first, last = body[0], body[-1]
                    own = pending.take()
                    # comments before this statement's end: trailing ones of the previous
                    # statement, leading ones of this one, and ones inside it.
                    while taken < len(comments) and comments[taken].start < last.end:
                        found = directive_in(comments[taken], base)
                        taken += 1
                        if found is None:
                            continue
                        d, cline = found
                        if previous is not None and cline == previous_end_line:
                            previous = _with(previous, d)
                        else:
                            own = combine(own, d)
                    if previous is not None:
                        yield previous
                    previous = SourceStatement(
                        index=count,
                        line=line_at(base + first.start),
                        text=sql[base + first.start : base + last.end + 1],
                        node=required(raw.stmt, "a statement"),
                        directives=own,
                    )
                    count += 1
                    previous_end_line = line_at(base + last.end)
                # comments after the piece's last statement: trailing ones, or ones for what
                # comes next.
                for comment in comments[taken:]:
                    found = directive_in(comment, base)
                    if found is None:
                        continue
                    d, cline = found
                    if previous is not None and cline == previous_end_line:
                        previous = _with(previous, d)
                    else:
                        pending.add(d, cline)
        except parser.ParseError as exc:
            message, location = _parse_error(exc)
            line = LineCounter(sql, chunk.line)(location) if location is not None else chunk.line
            if sql.startswith("\ufeff"):
                message += " (the file starts with a byte-order mark; PostgreSQL refuses it too)"
            raise ParseError(f"{migration.path}:{line}: {message}") from None
    if pending.directives is not None:
        raise DirectiveError(
            f"{migration.path}:{pending.line}: directive applies to no statement "
            "(it must come directly before the statement it is for)"
        )
    if previous is not None:
        yield previous


def _with(statement: SourceStatement, d: Directives) -> SourceStatement:
    return replace(statement, directives=combine(statement.directives, d))


def _parse_error(exc: parser.ParseError) -> tuple[str, int | None]:
    args = exc.args
    message = str(args[0]) if args else str(exc)
    location = args[1] if len(args) > 1 and isinstance(args[1], int) else None
    return message, location
