"""Safety: parse with PostgreSQL's own parser (pglast), classify, lint, rewrite. PURE.

The entry point the engine uses:

    analyze(migration, *, override=None, facts=CatalogFacts(), rewrite=True, lint=True,
            render=True, keyless_before=None, refuse_control=True, enable=frozenset())
        -> Analysis

The plan of a migration depends on its text, override and `rewrite` only (so a resumed run
plans a half-applied file as the first run did). `facts` (`CatalogFacts`) is the one input
from the database, built by the engine from the catalog: function volatility is read, and
`created_earlier` gives the form the engine may run an untouched file in, whole, in one
transaction; the tables that exist now are not read (see `analyze`). `lint`/`render` leave out
what a run does not need; `keyless_before` informs lint only.

plus `analyze_all` (a source's migrations in order, as lint reads them), `lint` (findings
only, offline), `parse_overrides` (spec.overrides / --overrides) and the rule registry `RULES`.
"""

from pgshift.safety.analyze import AUTO_BACKFILL, analyze, analyze_all, lint
from pgshift.safety.directives import parse_overrides
from pgshift.safety.facts import CatalogFacts
from pgshift.safety.model import (
    Analysis,
    Backfill,
    CatchUp,
    Directives,
    Finding,
    LockClass,
    Phase,
    PlannedStatement,
    Severity,
    TxMode,
)
from pgshift.safety.rules import RULES

__all__ = [
    "AUTO_BACKFILL",
    "RULES",
    "Analysis",
    "Backfill",
    "CatalogFacts",
    "CatchUp",
    "Directives",
    "Finding",
    "LockClass",
    "Phase",
    "PlannedStatement",
    "Severity",
    "TxMode",
    "analyze",
    "analyze_all",
    "lint",
    "parse_overrides",
]
