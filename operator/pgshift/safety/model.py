"""What the safety part tells the engine about each statement. PURE: no I/O.

The contract between `safety` (parse, classify, lint, rewrite) and `engine` (cut into steps, run):
`safety.analyze(...)` turns one migration into `PlannedStatement`s — the statements that will
really run, in order, each with its phase, transaction mode, lock class and backfill spec — plus
lint `Finding`s. The engine cuts consecutive statements with the same phase and transaction
mode into steps and never reorders them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

# the step phases and transaction modes cross the runner/controller seam (plan steps).
from pgshift.contract.steps import Phase as Phase
from pgshift.contract.steps import TxMode as TxMode


class LockClass(enum.StrEnum):
    """How a statement's locks affect the application; decides lock_timeout."""

    #: takes no lock that blocks reads or writes of existing tables (CREATE TABLE, CONCURRENTLY,
    #: VALIDATE CONSTRAINT): no lock_timeout.
    WEAK = "weak"
    #: waits for a lock that blocks reads or writes (ALTER TABLE, DROP, ...): short lock_timeout.
    STRONG = "strong"


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True)
class Directives:
    """Settings from `-- pgshift:` comments before a statement, or from `overrides`."""

    phase: Phase | None = None
    no_transaction: bool = False
    #: `-- pgshift:backfill` (key=None: the table's primary key) or `backfill key=COL`.
    backfill: bool = False
    backfill_key: str | None = None
    allow: frozenset[str] = frozenset()
    #: `-- pgshift:rewrite=false`: run this statement exactly as written.
    rewrite: bool = True


@dataclass(frozen=True)
class Finding:
    """A lint rule's verdict on one statement."""

    rule: str
    severity: Severity
    message: str
    #: where it is: the migration's path and the statement's 1-based line in that file.
    path: str
    line: int
    #: what to write instead (the safe form), if there is one.
    help: str = ""
    #: the rule's docs page, relative to the repository (docs/rules/<rule>.md).
    docs: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "rule": self.rule,
            "severity": self.severity.value,
            "message": self.message,
            "path": self.path,
            "line": self.line,
            "help": self.help or None,
            "docs": self.docs or None,
        }


@dataclass(frozen=True)
class Backfill:
    """How to run an UPDATE as keyset batches."""

    #: schema-qualified target table, as parsed: (schema or None, name).
    table: tuple[str | None, str]
    #: the key column; None = the table's primary key, resolved by the engine.
    key: str | None
    #: the UPDATE's SET list and WHERE, re-rendered; the engine adds the key range.
    set_sql: str
    where_sql: str | None
    #: the engine runs a final pass only when the guard makes the UPDATE idempotent.
    idempotent: bool
    #: the columns the SET list assigns (so a later set-not-null recipe finds its backfill).
    columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class CatchUp:
    """Before this statement, re-run the final pass of this run's backfill of `table.column`.

    Set on the VALIDATE of the set-not-null recipe: the NOT VALID check is committed by then, so
    no new NULLs arrive, and rows that old code wrote with NULL since the backfill are filled
    before VALIDATE scans. No backfill of that column in the run: nothing to do.
    """

    #: (schema or None, name), as in `Backfill.table`.
    table: tuple[str | None, str]
    column: str


@dataclass(frozen=True)
class PlannedStatement:
    """One statement the engine will run, with everything it needs to decide how."""

    #: the SQL that will really run (the original, or one statement of its rewrite).
    sql: str
    phase: Phase
    tx: TxMode
    lock: LockClass
    destructive: bool
    #: the original statement in the file: 0-based index among the file's statements, its
    #: 1-based line, and its text as written.
    source_index: int
    line: int
    original_sql: str
    #: "" when run as written; else the rewrite's id (e.g. "concurrent-index").
    rewrite: str = ""
    #: tables the statement changes (schema-qualified when written so).
    tables: tuple[str, ...] = ()
    #: for CREATE INDEX CONCURRENTLY: the index to drop if a failed build left it INVALID;
    #: `schema.name` when the table is schema-qualified (an index lives in its table's schema).
    index_name: str | None = None
    backfill: Backfill | None = None
    #: a short human description: "add column projects.slug".
    summary: str = ""
    #: a UNIQUE index built CONCURRENTLY: a failed build leaves an INVALID index that still
    #: rejects duplicates, so drop it at once after the failure, not only before a retry.
    index_unique: bool = False
    #: run a backfill's catch-up pass first (see `CatchUp`).
    catch_up: CatchUp | None = None
    #: a top-level `COMMIT` came right before it in the file: it starts a new step, and what
    #: came before is committed first.
    after_commit: bool = False
    #: every table the statement names was created earlier in this file's own transaction (or
    #: by this statement): the statements that may follow one holding a strong lock on an
    #: existing table inside one transaction (`engine.steps.as_written_steps`).
    on_new_only: bool = False


@dataclass(frozen=True)
class Analysis:
    """A whole migration, analysed."""

    statements: tuple[PlannedStatement, ...]
    findings: tuple[Finding, ...] = field(default=())
    #: tables this migration creates (the analysis of a file depends on the file alone, so that
    #: a resumed run plans a half-applied file exactly as the first run did; the engine passes
    #: them as `CatalogFacts.created_earlier` for later untouched files of the same run:
    #: engine/apply.py).
    created_tables: frozenset[str] = frozenset()
    #: the migration has a contract statement (informational, like `created_tables`).
    gated: bool = False
    #: for lint only, never the plan: table key -> why pgshift cannot batch an UPDATE of it
    #: ("has no primary key"), as this file and the earlier ones (`keyless_before`) leave them.
    keyless: Mapping[str, str] = field(default_factory=dict)
    #: what is known of function volatility after this file (`volatility.py`): what the caller
    #: passed in, then what this file's CREATE/ALTER FUNCTION statements said.
    functions: Mapping[str, str] = field(default_factory=dict)
