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

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

#: name -> the module that defines it, imported when first asked for: importing
#: `pgshift.safety.model` (the CLI, the engine's plan) must not load pglast and every rule
#: (issue 14: a third of a no-op deploy's start-up).
_WHERE = {
    "AUTO_BACKFILL": "analyze", "analyze": "analyze", "analyze_all": "analyze", "lint": "analyze",
    "parse_overrides": "directives", "CatalogFacts": "facts", "RULES": "rules",
    **{name: "model" for name in (
        "Analysis", "Backfill", "CatchUp", "Directives", "Finding", "LockClass", "Phase",
        "PlannedStatement", "Severity", "TxMode",
    )},
}  # fmt: skip


class _Package(types.ModuleType):
    """Importing the submodule `pgshift.safety.analyze` sets this package's `analyze` to the
    module; the function of that name must stay what `pgshift.safety.analyze` names, as when
    this package imported it eagerly."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _WHERE and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'pgshift.safety' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"pgshift.safety.{module}"), name)
    globals()[name] = value  # once
    return value


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
