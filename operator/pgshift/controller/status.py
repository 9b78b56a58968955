"""Conditions and status, from the machine's decision. PURE.

One table maps every reason to the four conditions, so Ready/Complete/Reconciling/Stalled can
never disagree with each other, and kstatus, Argo CD and Flux read the usual convention.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# the reasons and the mapping from the runner's error classes to them are the contract's.
from pgshift.contract.reasons import (
    FAILURE_REASONS,
    RETRY_REASONS,
    RETRYABLE_CODES,
    Reason,
    failure_reason,
)
from pgshift.controller.hints import QUIET, HintContext, hints
from pgshift.controller.memory import Memory, user_status

__all__ = [
    "FAILURE_REASONS",
    "RETRYABLE_CODES",
    "RETRY_REASONS",
    "Reason",
    "conditions",
    "failure_reason",
    "patch_for",
    "recovery",
    "render",
]

READY = "Ready"
COMPLETE = "Complete"
RECONCILING = "Reconciling"
STALLED = "Stalled"
CONDITION_TYPES = (READY, COMPLETE, RECONCILING, STALLED)


@dataclass(frozen=True)
class Meaning:
    ready: bool
    complete: bool
    reconciling: bool
    stalled: bool


_WORKING = Meaning(ready=False, complete=False, reconciling=True, stalled=False)
_WAITING = Meaning(ready=False, complete=False, reconciling=False, stalled=False)
_AT_GATE = Meaning(ready=True, complete=False, reconciling=False, stalled=False)
_HUMAN = Meaning(ready=False, complete=False, reconciling=False, stalled=True)

#: every reason and what it means for each condition (DESIGN.md, Status).
REASONS: dict[Reason, Meaning] = {
    Reason.PENDING: _WORKING,
    Reason.PLANNING: _WORKING,
    Reason.BACKING_UP: _WORKING,
    Reason.APPLYING: _WORKING,
    Reason.BASELINING: _WORKING,
    Reason.MARKING_APPLIED: _WORKING,
    Reason.SECRET_NOT_FOUND: _WORKING,
    Reason.SOURCE_NOT_FOUND: _WORKING,
    Reason.DATABASE_UNREACHABLE: _WORKING,
    Reason.LOCK_BUSY: _WORKING,
    Reason.RETRYING: _WORKING,
    # only contract steps at the end remain, held by their gate: the application may roll out.
    Reason.AWAITING_APPROVAL: _AT_GATE,
    Reason.AWAITING_ROLLOUT: _AT_GATE,
    # an expand/backfill step is held behind a gated step: not ready, but no failure either.
    Reason.BLOCKED_BY_GATE: _WAITING,
    Reason.SUSPENDED: _WAITING,
    Reason.COMPLETE: Meaning(ready=True, complete=True, reconciling=False, stalled=False),
    Reason.MIGRATION_FAILED: _HUMAN,
    Reason.LINT_FAILED: _HUMAN,
    Reason.INVALID_SOURCE: _HUMAN,
    Reason.SOURCE_TOO_LARGE: _HUMAN,
    Reason.SOURCE_DRIFT: _HUMAN,
    Reason.INVALID_SPEC: _HUMAN,
    Reason.TRACKING_CONFLICT: _HUMAN,
    Reason.DESTRUCTIVE_DENIED: _HUMAN,
    Reason.BACKUP_FAILED: _HUMAN,
    Reason.JOB_FAILED: _HUMAN,
    Reason.RETRIES_EXHAUSTED: _HUMAN,
    Reason.SUMMARY_VERSION_UNKNOWN: _HUMAN,
    Reason.IMAGE_UNAVAILABLE: _HUMAN,
    Reason.SOURCE_UNREADABLE: _HUMAN,
    Reason.OUT_OF_MEMORY: _HUMAN,
    Reason.CONTAINER_CONFIG_ERROR: _HUMAN,
    Reason.DEADLINE_EXCEEDED: _HUMAN,
    Reason.UNKNOWN_MARK_APPLIED: _HUMAN,
    # rollback (spec.target below what is applied; docs/operator.md "Rollback").
    Reason.ROLLING_BACK: _WORKING,
    # the database is ahead of the spec and waits for a person: as at a gate, the application
    # the spec describes can run (the undone migrations only added to it).
    Reason.AWAITING_ROLLBACK_APPROVAL: _AT_GATE,
    # spec.rollback Deny: nothing will be undone, and nothing else is to do.
    Reason.ROLLBACK_DISABLED: Meaning(ready=True, complete=True, reconciling=False, stalled=False),
    Reason.ROLLBACK_UNAVAILABLE: _HUMAN,
    Reason.RESTORING: _WORKING,
    # held after a restore until `pgshift.dev/resume`: a person decides what re-applies.
    Reason.RESTORED: _WAITING,
    Reason.RESTORE_REFUSED: _HUMAN,
}


def conditions(
    reason: Reason,
    message: str,
    generation: int,
    now: str,
    previous: list[Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The four conditions; `lastTransitionTime` moves only when a condition's status does."""
    meaning = REASONS[reason]
    wanted = {
        READY: meaning.ready,
        COMPLETE: meaning.complete,
        RECONCILING: meaning.reconciling,
        STALLED: meaning.stalled,
    }
    old = {c.get("type"): c for c in previous or ()}
    out = []
    for ctype in CONDITION_TYPES:
        value = "True" if wanted[ctype] else "False"
        before = old.get(ctype) or {}
        changed = before.get("status") != value
        out.append(
            {
                "type": ctype,
                "status": value,
                "reason": reason.value,
                "message": message[:1024],
                "observedGeneration": generation,
                "lastTransitionTime": now if changed else before.get("lastTransitionTime", now),
            }
        )
    return out


def recovery(reason: Reason, name: str, memory: Memory) -> list[str]:
    """What the user can do now (controller/hints.py): empty while a Job just runs."""
    if reason in QUIET:
        return []
    out = list(hints(reason, HintContext(name=name, failure=memory.failure, gate=memory.gate)))
    if reason is Reason.AWAITING_ROLLBACK_APPROVAL and memory.rollback:
        out.append(
            f"kubectl annotate migration/{name} pgshift.dev/approve-rollback="
            f"{memory.rollback.get('approval')} --overwrite  # runs the down files"
        )
    if memory.last_backup and reason in (
        Reason.MIGRATION_FAILED,
        Reason.SOURCE_DRIFT,
        Reason.ROLLBACK_UNAVAILABLE,
    ):
        out.append(
            f"a bad change applied: the backup {memory.last_backup.get('path')} (sha256 "
            f"{memory.last_backup.get('sha256') or '?'}) restores through the resource: set "
            "spec.suspend to true, then annotate pgshift.dev/restore=<metadata.uid>/<sha256> "
            "(docs/operator.md, Restore)"
        )
    return out


def render(
    *,
    reason: Reason,
    message: str,
    memory: Memory,
    generation: int,
    name: str,
    now: str,
    previous: Mapping[str, Any] | None,
    source_digest: str = "",
) -> dict[str, Any]:
    """The whole status, as the merge patch would leave it."""
    previous = previous or {}
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "phase": reason.value,
        "conditions": conditions(
            reason, message, generation, now, list(previous.get("conditions") or [])
        ),
        "sourceDigest": source_digest or (memory.plan.digest if memory.plan else "") or None,
        **user_status(memory),
        "recovery": recovery(reason, name, memory) or None,
    }
    return status


def patch_for(previous: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any] | None:
    """A JSON merge patch turning `previous` into `new`, or None when nothing changed.

    Keys absent from `new` are deleted (null); nulls in `new` mean absent, as the apiserver
    stores them, so an unchanged status compares equal and no patch is sent.
    """
    # through JSON once: tuples become lists, as the apiserver would hand them back.
    patch = _merge_diff(previous or {}, json.loads(json.dumps(strip_none(new))))
    return patch or None


def strip_none(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: strip_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_none(v) for v in value]
    return value


def _merge_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    patch: dict[str, Any] = {k: None for k in old if k not in new}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            # recurse: a merge patch keeps keys it does not mention, so stale ones are nulled.
            sub = _merge_diff(before, value)
            if sub:
                patch[key] = sub
        elif before != value:
            patch[key] = value
    return patch
