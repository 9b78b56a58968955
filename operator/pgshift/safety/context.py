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
    #: (table key, column) with a `CHECK (col IS NOT NULL)` added earlier in this run: a later
    #: SET NOT NULL on it skips the scan once the check is validated.
    not_null_checks: set[tuple[str, str]] = field(default_factory=set)

    def is_new(self, schema: str | None, name: str) -> bool:
        """Created earlier in this run (before its gate): empty and private, so its statements
        run as written."""
        return not self.gated and table_key(schema, name) in self.created

    def exists(self, schema: str | None, name: str) -> bool:
        """An existing table that may hold rows and serve traffic: rewrites and lint apply.

        Offline (no `existing_tables`), every table not created in this run is assumed to exist,
        the safe assumption for a plan that cannot look.
        """
        if self.is_new(schema, name):
            return False
        return self.existing_tables is None or bool(self.existing_tables(schema, name))
