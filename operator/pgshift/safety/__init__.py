"""Safety: parse with PostgreSQL's own parser (pglast), classify, lint, rewrite. PURE.

The entry point the engine uses:

    analyze(migration, *, override=None, existing_tables=None, created_before=frozenset(),
            rewrite=True, after_gate=False) -> Analysis

Pass each migration of a run the union of the earlier ones' `created_tables` as
`created_before`, and `after_gate=<previous Analysis>.gated` (`analyze_all` does both).

plus `analyze_all` (a run's migrations in order), `lint` (findings only, offline),
`parse_overrides` (spec.overrides / --overrides) and the rule registry `RULES`.
"""

from pgshift.safety.analyze import AUTO_BACKFILL, analyze, analyze_all, lint
from pgshift.safety.directives import parse_overrides
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
