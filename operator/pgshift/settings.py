"""Run settings: frozen dataclasses, every field documented with its unit and why its default.

The CLI builds them from flags, the controller from `spec`; the engine only reads them.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

from pgshift.errors import UsageError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str | float | int, option: str) -> float:
    """`500ms`, `2s`, `5m`, `1h` or a bare number of seconds -> seconds.

    Errors name the option, so the one-line message says which flag or field to fix.
    """
    if isinstance(text, bool):
        raise UsageError(f"{option}: {text!r} is not a duration (e.g. 500ms, 2s, 5m)")
    if isinstance(text, int | float):
        if text < 0:
            raise UsageError(f"{option}: {text!r} must not be negative")
        return float(text)
    match = _DURATION.match(text)
    if not match:
        raise UsageError(f"{option}: {text!r} is not a duration (e.g. 500ms, 2s, 5m, or seconds)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def format_duration(seconds: float) -> str:
    """Seconds -> the text `parse_duration` reads back, in the largest whole unit (300 -> `5m`,
    0.2 -> `200ms`): how the CLI's help and the CRD write the defaults held here."""
    for unit, size in (("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if seconds >= size and (seconds / size).is_integer():
            return f"{seconds / size:g}{unit}"
    millis = round(seconds * 1000, 6)  # 0.3 * 1000 is 300.00000000000006
    if seconds and seconds < 1 and millis.is_integer():
        return f"{millis:g}ms"
    return f"{seconds:g}s"


class DestructivePolicy(enum.StrEnum):
    """What a run does with destructive steps (drop, rename, type change, ...)."""

    #: run them like any other step.
    ALLOW = "Allow"
    #: stop before each one unless `--approve` names its step key or migration.
    REQUIRE_APPROVAL = "RequireApproval"
    #: refuse: stop before the first one with reason NeedsApproval and never run it.
    DENY = "Deny"


@dataclass(frozen=True)
class Tracking:
    """Where the tracking tables live; always composed as identifiers, never formatted."""

    #: drizzle's `migrationsSchema`; pgshift's own step and checkpoint tables live here too.
    schema: str = "drizzle"
    #: drizzle's `migrationsTable`.
    table: str = "__drizzle_migrations"


@dataclass(frozen=True)
class Timeouts:
    """Lock and statement bounds, in seconds (0 = none)."""

    #: how long to poll for the database-wide advisory lock before naming its holder and
    #: giving up. 5 min: long enough to queue behind another run, short enough for a Job.
    lock_wait: float = 300.0
    #: `lock_timeout` for statements that take strong locks. A waiting ALTER blocks every query
    #: behind it, so it must give up fast and retry; 2 s is what the application can absorb.
    lock_timeout: float = 2.0
    #: `statement_timeout` for every statement; 0 = none (backfills and index builds are long).
    statement_timeout: float = 0.0
    #: how many times a lock timeout (55P03) or deadlock (40P01) is retried before failing.
    lock_retries: int = 5
    #: first backoff between retries, doubled each time up to `retry_backoff_max`.
    retry_backoff: float = 1.0
    retry_backoff_max: float = 30.0


@dataclass(frozen=True)
class BackfillSettings:
    """How batched backfills are paced."""

    #: batch size is adapted so one batch's transaction takes about this long (seconds).
    #: 200 ms keeps row locks short enough that application p99 barely moves.
    target_batch_time: float = 0.2
    #: sleep between batches (seconds); 0 because pauses add up (1000 x 50 ms = 50 s).
    batch_pause: float = 0.0
    #: rows in the first batch, before any timing is known.
    initial_batch_size: int = 1000
    min_batch_size: int = 10
    max_batch_size: int = 100_000


@dataclass(frozen=True)
class DumpSettings:
    """How `pgshift backup` runs pg_dump."""

    #: pg_dump's `--lock-wait-timeout` (seconds): a dump waits this long for each table's
    #: share lock, then fails instead of queueing behind (and blocking) a long ALTER.
    lock_wait: float = 60.0


@dataclass(frozen=True)
class Allow:
    """Opt-ins to proceed past named problems between the source and the database."""

    #: a pending file older than an applied one (merged from another branch).
    out_of_order: bool = False
    #: an applied file whose content changed (any file).
    drift: bool = False
    #: the files whose drift is accepted when `drift` is off (`--allow-drift=NAME`): the
    #: operator's `pgshift.dev/allow-drift` names them, so another edited file still stops.
    drift_only: frozenset[str] = frozenset()
    #: tracking rows that match no file (the database is ahead of the source).
    unknown: bool = False
    #: a partly applied file edited since: finish its remaining steps when the applied steps'
    #: text is unchanged (`--resume-edited`).
    resume_edited: bool = False

    def accepts_drift(self, migration: str | None) -> bool:
        """Whether drift of this migration (an edited applied or partly applied file) is let
        through."""
        return self.drift or (migration is not None and migration in self.drift_only)


@dataclass(frozen=True)
class Selection:
    """Which pending steps a run may execute, and where it must stop."""

    #: stop after this migration (name); None = the last one.
    target: str | None = None
    #: run steps in order and stop at the first step of a later phase ("expand", ...).
    until_phase: str | None = None
    #: stop before this step key (the controller's gates).
    stop_before: str | None = None
    #: refuse to run a source whose digest differs (`sha256:...`).
    expect_digest: str | None = None
    #: step keys or migration names approved for destructive steps.
    approve: frozenset[str] = frozenset()
    destructive: DestructivePolicy = DestructivePolicy.ALLOW
    #: let safety rewrite unsafe statements into their safe forms.
    rewrite: bool = True


@dataclass(frozen=True)
class RunSettings:
    """Everything a mutating run needs besides the source and the URL."""

    tracking: Tracking = field(default_factory=Tracking)
    timeouts: Timeouts = field(default_factory=Timeouts)
    backfill: BackfillSettings = field(default_factory=BackfillSettings)
    allow: Allow = field(default_factory=Allow)
    selection: Selection = field(default_factory=Selection)
    #: the `application_name` every connection reports, so a lock holder is recognisable.
    application_name: str = "pgshift"
    #: opt-in lint rules to report too (`--enable-rule`; docs/rules/README.md): style advice
    #: that is off by default.
    lint_rules: frozenset[str] = frozenset()
