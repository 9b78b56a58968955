"""What analysis knows about a file while it walks the file's statements in order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pgshift.safety.model import Phase
from pgshift.safety.names import table_key


@dataclass
class Context:
    #: table keys (`names.table_key`) created earlier in this file.
    created: set[str] = field(default_factory=set)
    #: (table key, column) with a *validated* `CHECK (col IS NOT NULL)` from earlier in this
    #: file (added without NOT VALID, or VALIDATEd since): a later SET NOT NULL on it skips the
    #: scan. PostgreSQL ignores a NOT VALID check for that (it proves nothing about old rows).
    not_null_checks: set[tuple[str, str]] = field(default_factory=set)
    #: (table key, constraint name) -> column, for a `CHECK (col IS NOT NULL) NOT VALID` not
    #: validated yet: its VALIDATE CONSTRAINT moves it to `not_null_checks`.
    unvalidated_not_null: dict[tuple[str, str], str] = field(default_factory=dict)
    #: what is known of function volatility (`volatility.volatility`'s `known`): the facts the
    #: caller passed (catalog, earlier files), then what this file's CREATE/ALTER FUNCTION said.
    functions: dict[str, str] = field(default_factory=dict)
    #: the file has passed a contract statement: what follows runs after the gate, when the new
    #: application version may already use the tables the file created, so none is new any more.
    gated: bool = False
    #: (table key, constraint name) -> the phase its ADD CONSTRAINT runs in, for its VALIDATE.
    constraint_phases: dict[tuple[str, str], Phase] = field(default_factory=dict)
    #: table keys treated as existing whatever else is known (see `learn`).
    assumed: set[str] = field(default_factory=set)
    #: for lint only: table key -> why an UPDATE of it cannot be batched (no single-column
    #: primary key), from CREATE TABLE / ADD PRIMARY KEY here and in earlier files.
    keyless: dict[str, str] = field(default_factory=dict)

    #: (schema, name) -> the table is absent from the catalog read under this run's lock
    #: (`CatalogFacts.absent_creates`): a CREATE TABLE IF NOT EXISTS of it creates it. None:
    #: the stable plan, which never asks.
    absent: Callable[[str | None, str], bool] | None = None

    def learn(self, creates: tuple[str, ...], assumes: tuple[str, ...]) -> None:
        """What a statement just did: created tables are new; `assumes` exist from now on
        (CREATE TABLE IF NOT EXISTS: the table may hold rows; a rename keeps them)."""
        self.created.update(creates)
        self.created.difference_update(assumes)
        self.assumed.update(assumes)

    def is_new(self, schema: str | None, name: str) -> bool:
        """Created earlier in this file (before its gate): empty and private, so its statements
        run as written."""
        return not self.gated and table_key(schema, name) in self.created

    def exists(self, schema: str | None, name: str) -> bool:
        """An existing table that may hold rows and serve traffic: rewrites and lint apply.

        Every table this file did not create is assumed to exist: the safe assumption, and one
        that does not change when a run resumes a half-applied file.
        """
        return not self.is_new(schema, name)
