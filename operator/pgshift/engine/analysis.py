"""Glue between the engine and safety: the catalog facts (`catalog_facts`), the one way of
calling `safety.analyze` (`FileAnalyzer`), and the checks of bad input before a run
(`quick_check`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

import psycopg

from pgshift.errors import ParseError
from pgshift.migrations.model import Migration, Source
from pgshift.safety.directives import is_directive_comment, parse_directive_comment
from pgshift.safety.facts import CatalogFacts
from pgshift.safety.lines import LineCounter
from pgshift.safety.model import Analysis, Backfill, CatchUp, Directives

#: nothing known of the database (offline); `safety.analyze.NO_FACTS`, without importing it:
#: pglast and the rules load only when a file is analysed (a no-op deploy never does).
NO_FACTS = CatalogFacts()


def catalog_facts(conn: psycopg.Connection[Any]) -> CatalogFacts:
    """What safety and the engine's checks need to know of the database, read once: the tables
    that exist now (unqualified names resolve through the search path, as the migration's
    statements will), the volatility of the database's own functions, the server's major."""
    rows = conn.execute(
        "SELECT n.nspname, c.relname, n.nspname = ANY (current_schemas(false)) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p')"
    ).fetchall()
    return CatalogFacts(
        tables=frozenset((r[0], r[1]) for r in rows),
        visible_tables=frozenset(r[1] for r in rows if r[2]),
        functions=function_volatility(conn),
        server_major=server_major_of(conn),
    )


def function_volatility(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """What the catalog says of the volatility of the database's own functions (not
    pg_catalog's, which safety knows): `schema.name` and `name` -> `i`/`s`/`v`, `v` when any
    overload (or, for the bare name, any schema's function of that name) is VOLATILE. Safety
    takes it as data (`CatalogFacts.functions`); the source's own CREATE FUNCTIONs win."""
    rows = conn.execute(
        "SELECT n.nspname, p.proname, string_agg(DISTINCT p.provolatile::text, '') "
        "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND p.prokind = 'f' "
        "GROUP BY n.nspname, p.proname"
    ).fetchall()
    rank = {"i": 0, "s": 1, "v": 2}
    out: dict[str, str] = {}
    for schema, name, letters in rows:
        letter = max(letters, key=lambda c: rank.get(c, 2))
        out[f"{schema}.{name}"] = letter
        if rank[letter] >= rank.get(out.get(name, "i"), 0):
            out[name] = letter
    return out


def source_functions(
    source: Source, catalog: Mapping[str, str] | None = None
) -> dict[str, dict[str, str]]:
    """Migration name -> what is known of function volatility before it: the catalog, under
    what earlier files of the source define (`safety.analyze.functions_before`)."""
    from pgshift.safety.analyze import functions_before

    return functions_before(source.migrations, catalog)


class FileAnalyzer:
    """The one way the engine calls `safety.analyze`: this run's overrides, `--no-rewrite`,
    opt-in rules and catalog facts, with each file's function volatility as the catalog and
    the source's earlier files leave it (`source_functions`, computed when first needed).
    `lint=False`: without findings, for a run (lint is a tenth of the cost)."""

    def __init__(
        self,
        source: Source,
        overrides: Mapping[str, Directives],
        *,
        rewrite: bool,
        facts: CatalogFacts = NO_FACTS,
        lint: bool = False,
        enable: frozenset[str] = frozenset(),
    ) -> None:
        self.source = source
        self.overrides = overrides
        self.rewrite = rewrite
        self.facts = facts
        self.lint = lint
        self.enable = enable
        self._functions: dict[str, dict[str, str]] | None = None

    def __call__(
        self,
        migration: Migration,
        *,
        render: bool = True,
        new_tables: frozenset[str] = frozenset(),
        as_written: bool = False,
        refuse_control: bool = True,
    ) -> Analysis:
        """The stable analysis of `migration`; `render=False` leaves rewritten statements' SQL
        out; `new_tables`: the form in which those tables (created by files this run applied
        whole) are known to be new (`engine/apply.py`); `as_written`: that form, where a CREATE
        TABLE IF NOT EXISTS of a table absent from the catalog (read under the run's lock)
        creates a new one (`CatalogFacts.absent_creates`); `refuse_control=False` for a file that
        is read, not run."""
        if self._functions is None:
            self._functions = source_functions(self.source, self.facts.functions)
        from pgshift.safety.analyze import analyze

        facts = replace(
            self.facts,
            functions=self._functions.get(migration.name, {}),
            created_earlier=new_tables,
            absent_creates=as_written,
        )
        return analyze(
            migration,
            override=self.overrides.get(migration.name),
            facts=facts,
            rewrite=self.rewrite,
            lint=self.lint,
            render=render,
            refuse_control=refuse_control,
            enable=self.enable,
        )


def backfill_finder(analyzer: FileAnalyzer) -> Callable[[CatchUp], Backfill | None]:
    """Find the backfill a `CatchUp` refers to: the last batched UPDATE of the source that sets
    that column of that table. The source is analysed (offline) only when first asked, because
    the backfill may belong to a migration applied by an earlier run."""
    cache: list[Backfill] = []
    loaded = False

    def key(table: tuple[str | None, str]) -> str:
        from pgshift.safety.names import table_key  # pglast: only when a catch-up runs

        return table_key(table[0], table[1])

    def find(catch: CatchUp) -> Backfill | None:
        nonlocal loaded
        if not loaded:
            # each file alone, every table assumed to exist: as the backfill ran on a live table.
            for m in analyzer.source.migrations:
                # applied files too: they are read, not run
                analysis = analyzer(m, refuse_control=False)
                cache.extend(s.backfill for s in analysis.statements if s.backfill is not None)
            loaded = True
        for b in reversed(cache):
            if key(b.table) == key(catch.table) and catch.column in b.columns:
                return b
        return None

    return find


def server_major_of(conn: psycopg.Connection[Any]) -> int:
    """The server's PostgreSQL major (180006 -> 18), as libpq reported it at connect."""
    return int(conn.info.server_version) // 10000


def quick_check(
    migrations: Iterable[Migration],
    overrides: Mapping[str, Directives] | None = None,
    facts: CatalogFacts = NO_FACTS,
) -> None:
    """Syntax and `-- pgshift:` comments of these files, at C speed (pglast's scanner and
    parser without building Python parse trees), so bad input is reported before the lock is
    taken or a file applied, while the full analysis can run beside the run. Also what a run
    refuses (`safety.control`: BEGIN, SAVEPOINT..., lock releases not allowed), checked in full
    only for a file whose text or parse tree may hold it. With `facts.server_major`, syntax
    that major lacks is refused too (`safety.versions`)."""
    migrations = list(migrations)
    if not migrations:  # nothing pending: pglast need not even load
        return
    from pglast import parser

    from pgshift.safety import control
    from pgshift.safety.statements import batches
    from pgshift.safety.versions import GRAMMAR_MAJOR, check_parsed

    server_major = facts.server_major
    for m in migrations:
        suspect = False
        for chunk in m.chunks:
            text = chunk.sql

            line_at = LineCounter(text, chunk.line)

            def parse(piece: str) -> tuple[str, tuple[Any, ...], str]:
                # directives are `--` comments: a piece without one needs no scanning.
                tokens = tuple(parser.scan(piece)) if "--" in piece else ()
                return parser.parse_sql_json(piece), tokens, piece

            try:
                # a large chunk a batch at a time: its whole JSON tree would be many times
                # its size (safety.statements.batches; the errors are the whole text's).
                for base, (tree, tokens, piece) in batches(text, parse):
                    if server_major is not None and server_major < GRAMMAR_MAJOR:

                        def where(
                            at: int,
                            path: str = m.path,
                            line_at: Callable[..., int] = line_at,
                            base: int = base,
                        ) -> str:
                            return f"{path}:{line_at(base + at)}"

                        check_parsed(tree, server_major, where)
                    for token in tokens:
                        if token.name != "SQL_COMMENT":
                            continue
                        comment = piece[token.start : token.end + 1]
                        if is_directive_comment(comment):
                            at = line_at(base + token.start)
                            parse_directive_comment(comment, f"{m.path}:{at}")
                    suspect = suspect or control.may_need_check(piece, tree)
            except parser.ParseError as exc:
                args = exc.args
                message = str(args[0]) if args else str(exc)
                location = args[1] if len(args) > 1 and isinstance(args[1], int) else None
                line = LineCounter(text, chunk.line)(location) if location is not None else (
                    chunk.line)
                raise ParseError(f"{m.path}:{line}: {message}") from None
        if suspect:
            control.check(m, (overrides or {}).get(m.name))
