"""Safety: parse with PostgreSQL's own parser (pglast), classify, lint, rewrite. PURE.

The entry point the engine uses:

    analyze(migration, *, override=None, existing_tables=None, created_before=frozenset(),
            rewrite=True, after_gate=False, new_tables=frozenset(), lint=True, render=True,
            keyless_before=None) -> Analysis

The plan of a migration depends on its text, override and `rewrite` only (so a resumed run
plans a half-applied file as the first run did); `existing_tables`, `created_before` and
`after_gate` are accepted and not used — see `analyze`. `new_tables` gives the form the engine
may run an untouched file in, whole, in one transaction; `lint`/`render` leave out what a run
does not need; `keyless_before` informs lint only.

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
