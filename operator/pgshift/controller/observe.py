"""What one reconcile observed of a Migration: its spec and memory, the Job in flight, the
source, the Rollout gate's Deployments. Plain values, filled by `reconcile.py`, read by the
pure machine (`decide.py`)."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pgshift.controller.api import MigrationSpec, Ref
from pgshift.controller.config import Settings
from pgshift.controller.intent import Action
from pgshift.controller.memory import Memory
from pgshift.controller.rollout import DeploymentView


class JobPhase(enum.StrEnum):
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


@dataclass(frozen=True)
class JobState:
    """The Job in flight (labelled with the current seq), as observed."""

    name: str
    action: Action
    phase: JobPhase
    #: the runner's JSON summary from the termination message, if any.
    result: Mapping[str, Any] | None = None
    #: why it failed (DeadlineExceeded, BackoffLimitExceeded) or why its Pod waits
    #: (CreateContainerConfigError), with the message Kubernetes gave.
    reason: str = ""
    message: str = ""
    #: what it was created for: the Job's `pgshift.dev/*` annotations.
    notes: Mapping[str, str] = field(default_factory=dict)
    #: the runner's last progress (step key, migration, phase, backfill rows and batches).
    progress: Mapping[str, Any] | None = None
    #: run time of a finished Job (its startTime to completion), for the metrics.
    seconds: float | None = None


@dataclass(frozen=True)
class SourceState:
    #: the ConfigMap source's digest; "" for an image (known only from the plan).
    digest: str = ""
    #: SourceNotFound | InvalidSource | SourceTooLarge, or "" when fine.
    problem: str = ""
    message: str = ""


@dataclass(frozen=True)
class Observed:
    ref: Ref
    spec: MigrationSpec | None
    memory: Memory
    now: dt.datetime
    settings: Settings = field(default_factory=Settings)
    spec_problem: str = ""
    annotations: Mapping[str, str] = field(default_factory=dict)
    source: SourceState = SourceState()
    job: JobState | None = None
    #: the Rollout gate's Deployments, observed now (None unless contract.after is Rollout).
    rollout: tuple[DeploymentView, ...] | None = None
    #: another Migration using the same database Secret and tracking table.
    conflict: str = ""
    #: the first reconcile of this Migration by this operator process (a restart, or a
    #: Migration it has not seen yet): a plan in status is trusted only as decide.py allows.
    resumed: bool = False


def iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(s: str) -> dt.datetime | None:
    try:
        return dt.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return None
