"""What the database's catalog says, as one frozen value: the only input from a database that
safety reads. PURE: the engine builds it (`engine.analysis.catalog_facts`); offline callers
(`pgshift lint`, tests) build it by hand or leave it empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


def _frozen(mapping: Mapping[str, str] | None = None) -> Mapping[str, str]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class CatalogFacts:
    """Facts about the database a migration runs on. Empty (`CatalogFacts()`): offline, nothing
    known; every table is assumed to exist, every non-builtin function is VOLATILE, the
    server's grammar is the parser's own.

    The plan of a file must not depend on which tables exist now (a resumed run must cut it as
    the first run did: see `safety.analyze`), so `analyze` never reads `tables`; the engine's
    own checks before a run do (`table_exists`)."""

    #: tables (and partitioned tables) that exist now, as (schema, name).
    tables: frozenset[tuple[str, str]] = frozenset()
    #: the names of those tables an unqualified name resolves to (in the search path).
    visible_tables: frozenset[str] = frozenset()
    #: table keys (`names.table_key`) that earlier files of this very run created in the same
    #: transaction: empty and private, so their statements may run as written (`analyze`).
    created_earlier: frozenset[str] = frozenset()
    #: the form a file runs in whole, in one transaction of this run (engine/apply.py), where
    #: `tables` was read under the run's lock: a `CREATE TABLE IF NOT EXISTS` of a table that
    #: `tables` lacks creates it, so it is new (drizzle-kit < 0.26 writes every CREATE so).
    #: Never set for the stable plan, which must not depend on the catalog (`analyze`).
    absent_creates: bool = False
    #: what is known of function volatility before the file: `name` / `schema.name` ->
    #: `i`/`s`/`v` (`pg_proc.provolatile`, under what earlier files of the source define).
    functions: Mapping[str, str] = field(default_factory=_frozen)
    #: the server's PostgreSQL major (18); None: unknown, the parser's grammar is assumed.
    server_major: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.functions, MappingProxyType):
            object.__setattr__(self, "functions", _frozen(self.functions))

    def table_exists(self, schema: str | None, name: str) -> bool:
        """Does the table exist now? An unqualified name resolves through the search path, as
        the migration's statements will."""
        return (schema, name) in self.tables if schema else name in self.visible_tables
