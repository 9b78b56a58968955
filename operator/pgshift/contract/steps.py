"""The words a plan step is described in, on both sides of the seam: its phase (the
zero-downtime order the controller gates on) and its transaction mode. PURE.
`pgshift.safety.model` decides them per statement; the controller reads them from a plan.
"""

from __future__ import annotations

import enum


class Phase(enum.StrEnum):
    """Zero-downtime order: what old application code tolerates comes first."""

    EXPAND = "expand"
    BACKFILL = "backfill"
    CONTRACT = "contract"

    @property
    def rank(self) -> int:
        return _PHASE_RANK[self]


_PHASE_RANK = {Phase.EXPAND: 0, Phase.BACKFILL: 1, Phase.CONTRACT: 2}


class TxMode(enum.StrEnum):
    """How a statement may run."""

    #: inside a transaction with its neighbours of the same step.
    TRANSACTION = "transaction"
    #: alone, outside any transaction block (CREATE INDEX CONCURRENTLY, VACUUM, ...), or
    #: committed on its own before what follows may use it (ALTER TYPE ... ADD VALUE).
    AUTOCOMMIT = "autocommit"
    #: a keyset-batched backfill: one transaction per batch, checkpointed.
    BATCHED = "batched"
