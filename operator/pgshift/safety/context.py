"""What analysis knows about the database while it walks a run's statements in order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pgshift.safety.names import table_key

#: `existing_tables(schema, name)`: does the table exist in the database now? (schema None when
#: the statement does not name one.)
ExistingTables = Callable[[str | None, str], bool]


@dataclass
class Context:
    #: table keys (`names.table_key`) created earlier in this run, this migration included.
    created: set[str] = field(default_factory=set)
    existing_tables: ExistingTables | None = None
    #: the run has passed a contract statement: what follows runs after the gate, when the new
    #: application version may already use the tables this run created, so none is new any more.
    gated: bool = False
    #: table keys treated as existing whatever `existing_tables` says (see `learn`).
    assumed: set[str] = field(default_factory=set)
    #: (table key, column) with a `CHECK (col IS NOT NULL)` added earlier in this run: a later
    #: SET NOT NULL on it skips the scan once the check is validated.
    not_null_checks: set[tuple[str, str]] = field(default_factory=set)

    def is_new(self, schema: str | None, name: str) -> bool:
        """Created earlier in this run (before its gate): empty and private, so its statements
        run as written."""
        return not self.gated and table_key(schema, name) in self.created

    def learn(self, creates: tuple[str, ...], assumes: tuple[str, ...]) -> None:
        """What a statement just did: created tables are new; `assumes` are existing from now on
        whatever the database says (CREATE TABLE IF NOT EXISTS: the table may hold rows, and a
        resumed run must plan the same statements)."""
        self.created.update(creates)
        self.created.difference_update(assumes)
        self.assumed.update(assumes)

    def exists(self, schema: str | None, name: str) -> bool:
        """An existing table that may hold rows and serve traffic: rewrites and lint apply.

        Offline (no `existing_tables`), every table not created in this run is assumed to exist,
        the safe assumption for a plan that cannot look.
        """
        if self.is_new(schema, name):
            return False
        if table_key(schema, name) in self.assumed:
            return True
        return self.existing_tables is None or bool(self.existing_tables(schema, name))
