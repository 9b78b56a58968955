"""Glue between the engine and safety: which tables exist, overrides, and `safety.analyze`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import psycopg

from pgshift.engine.plan import Analyzer
from pgshift.errors import ParseError
from pgshift.migrations.model import Migration, Source
from pgshift.safety import analyze, control
from pgshift.safety.analyze import functions_before
from pgshift.safety.directives import is_directive_comment, parse_directive_comment
from pgshift.safety.model import Analysis, Backfill, CatchUp, Directives
from pgshift.safety.names import table_key


def existing_tables(conn: psycopg.Connection[Any]) -> Any:
    """A `(schema, name) -> bool` over the tables that exist now (unqualified names resolve
    through the search path, as the migration's statements will)."""
    rows = conn.execute(
        "SELECT n.nspname, c.relname, n.nspname = ANY (current_schemas(false)) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p')"
    ).fetchall()
    qualified = {(r[0], r[1]) for r in rows}
    visible = {r[1] for r in rows if r[2]}

    def exists(schema: str | None, name: str) -> bool:
        return (schema, name) in qualified if schema else name in visible

    return exists


def function_volatility(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """What the catalog says of the volatility of the database's own functions (not
    pg_catalog's, which safety knows): `schema.name` and `name` -> `i`/`s`/`v`, `v` when any
    overload (or, for the bare name, any schema's function of that name) is VOLATILE. Safety
    takes it as data (`analyze(functions=...)`); the source's own CREATE FUNCTIONs win."""
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
    return functions_before(source.migrations, catalog)


def backfill_finder(
    source: Source,
    overrides: Mapping[str, Directives],
    *,
    rewrite: bool,
    functions: Mapping[str, Mapping[str, str]] | None = None,
) -> Callable[[CatchUp], Backfill | None]:
    """Find the backfill a `CatchUp` refers to: the last batched UPDATE of the source that sets
    that column of that table. The source is analysed (offline) only when first asked, because
    the backfill may belong to a migration applied by an earlier run."""
    cache: list[Backfill] = []
    loaded = False

    def key(table: tuple[str | None, str]) -> str:
        return table_key(table[0], table[1])

    def find(catch: CatchUp) -> Backfill | None:
        nonlocal loaded
        if not loaded:
            # each file alone, every table assumed to exist: as the backfill ran on a live table.
            for m in source.migrations:
                analysis = analyze(
                    m,
                    override=overrides.get(m.name),
                    rewrite=rewrite,
                    lint=False,
                    functions=(functions or {}).get(m.name),
                    refuse_control=False,  # applied files too: they are read, not run
                )
                cache.extend(s.backfill for s in analysis.statements if s.backfill is not None)
            loaded = True
        for b in reversed(cache):
            if key(b.table) == key(catch.table) and catch.column in b.columns:
                return b
        return None

    return find


def make_analyzer(
    overrides: Mapping[str, Directives],
    *,
    rewrite: bool,
    existing: Any = None,
    lint: bool = True,
    functions: Mapping[str, Mapping[str, str]] | None = None,
    enable: frozenset[str] = frozenset(),
) -> Analyzer:
    """`analyze(migration, created_before)` with this run's overrides and database knowledge
    (`lint=False`: without findings, for a run); `functions`: `source_functions`; `enable`:
    the opt-in rules to report."""

    def run(
        migration: Migration,
        created_before: frozenset[str],
        *,
        render: bool = True,
        keyless_before: Mapping[str, str] | None = None,
    ) -> Analysis:
        result: Analysis = analyze(
            migration,
            override=overrides.get(migration.name),
            existing_tables=existing,
            created_before=created_before,
            rewrite=rewrite,
            lint=lint,
            render=render,
            keyless_before=keyless_before,
            functions=(functions or {}).get(migration.name),
            enable=enable,
        )
        return result

    return run


def make_new_table_analyzer(
    overrides: Mapping[str, Directives],
    *,
    rewrite: bool,
    functions: Mapping[str, Mapping[str, str]] | None = None,
) -> Callable[[Migration, frozenset[str]], Analysis]:
    """`analyze(migration, new_tables)`: the form of a file in which the tables that earlier
    files of this run created are known to be new (see `engine/apply.py`)."""

    def run(migration: Migration, new_tables: frozenset[str]) -> Analysis:
        result: Analysis = analyze(
            migration,
            override=overrides.get(migration.name),
            rewrite=rewrite,
            new_tables=new_tables,
            lint=False,
            functions=(functions or {}).get(migration.name),
        )
        return result

    return run


def server_major_of(conn: psycopg.Connection[Any]) -> int:
    """The server's PostgreSQL major (180006 -> 18), as libpq reported it at connect."""
    return int(conn.info.server_version) // 10000


def quick_check(
    migrations: Iterable[Migration],
    overrides: Mapping[str, Directives] | None = None,
    server_major: int | None = None,
) -> None:
    """Syntax and `-- pgshift:` comments of these files, at C speed (pglast's scanner and
    parser without building Python parse trees), so bad input is reported before the lock is
    taken or a file applied, while the full analysis can run beside the run. Also what a run
    refuses (`safety.control`: BEGIN, SAVEPOINT..., lock releases not allowed), checked in full
    only for a file whose text or parse tree may hold it. With `server_major`, syntax that
    major lacks is refused too (`safety.versions`)."""
    from pglast import parser

    from pgshift.safety.versions import GRAMMAR_MAJOR, check_parsed

    for m in migrations:
        suspect = False
        for chunk in m.chunks:
            text = chunk.sql

            def line_at(offset: int, text: str = text, base: int = chunk.line) -> int:
                return base + text.count("\n", 0, offset)

            try:
                tree = parser.parse_sql_json(text)
                # directives are `--` comments: a chunk without one needs no scanning.
                tokens = parser.scan(text) if "--" in text else ()
            except parser.ParseError as exc:
                args = exc.args
                message = str(args[0]) if args else str(exc)
                location = args[1] if len(args) > 1 and isinstance(args[1], int) else None
                line = line_at(location) if location is not None else chunk.line
                raise ParseError(f"{m.path}:{line}: {message}") from None
            if server_major is not None and server_major < GRAMMAR_MAJOR:
                check_parsed(tree, server_major, lambda at, path=m.path: f"{path}:{line_at(at)}")
            for token in tokens:
                if token.name != "SQL_COMMENT":
                    continue
                comment = text[token.start : token.end + 1]
                if is_directive_comment(comment):
                    parse_directive_comment(comment, f"{m.path}:{line_at(token.start)}")
            suspect = suspect or control.may_need_check(text, tree)
        if suspect:
            control.check(m, (overrides or {}).get(m.name))
